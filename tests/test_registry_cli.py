"""Task/backend resolution, the entry-point plugin group, and the CLI's answers to bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from plugin_helpers import install_plugin

import backends
from core.common.errors import UserError
from core.config import registry

REPO = Path(__file__).resolve().parent.parent

PLUGIN = textwrap.dedent(
    '''
    """A hardware type installed as a separate package: echoes zeros of the right shapes."""
    import numpy as np
    from pydantic import BaseModel, ConfigDict

    from backends.base import BackendSpec, CompileBackend, CompiledModel, RuntimeBackend


    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        engine: str = "zeros"
        best_batch_sizes: list[int] | None = None  # what get_best_batch_size answers (ByteMLPerf's hook)


    class Compile(CompileBackend):
        def get_best_batch_size(self):
            return self.config.best_batch_sizes

        def compile(self, request):
            return CompiledModel(engine="zeros", precision=request.precision, artifact=None,
                                 input_names=request.model.input_names, output_names=request.model.output_names,
                                 compile_seconds=0.0, cache_hit=False, optimizations=["none"])


    class Runtime(RuntimeBackend):
        def load(self, batch_size):
            self.batch_size = batch_size

        def predict(self, feeds):
            first = next(iter(feeds.values()))
            return {name: np.zeros(first.shape, np.float32) for name in self.compiled.output_names}


    BACKEND = BackendSpec(name="ZEROS", description="test plugin", config_class=Options,
                          compile_backend=Compile, runtime_backend=Runtime)
    '''
)


@pytest.fixture
def plugin_path(tmp_path, monkeypatch) -> Path:
    install_plugin(tmp_path, "zeros_backend", "ZEROS", PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def cli(*args: str, env_extra: dict | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run(
        [sys.executable, "-m", "core.perf_engine", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_bundled_tasks_and_models_all_load():
    names = registry.task_names()
    for expected in (
        "albert-torch-fp32",
        "bert-torch-fp32",
        "roberta-torch-fp32",
        "deberta-torch-fp32",
        "tiny-bert-squad",
    ):
        assert expected in names
    for name in names:
        task = registry.load_task(name)
        if task.is_llm:  # llm_perf finds its entry by the task's name; tests/test_llm_workloads.py checks those
            assert task.model_file.stem == name
            continue
        assert task.model.model == task.workload.model
        # Networks no library builds have no architecture (tests/test_zoo_models.py covers their refusal).
        assert (
            task.model.architecture in registry.ARCHITECTURES.names()
            or task.model.model_format == "onnx"
            or task.model.framework == "Tensorflow"
        )


def test_unknown_task_lists_what_exists():
    with pytest.raises(UserError) as err:
        registry.load_task("albert-torch-fp3")
    text = str(err.value)
    assert "unknown task 'albert-torch-fp3'" in text and "did you mean albert-torch-fp32" in text
    assert "bert-torch-fp32" in text


@pytest.mark.parametrize("name", ["../workloads/albert-torch-fp32", "workloads/albert-torch-fp32", "..", "/etc/passwd"])
def test_task_names_are_never_paths(name):
    with pytest.raises(UserError, match="neither a task name nor"):
        registry.resolve_task_file(name)


def test_explicit_workload_file_and_missing_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("model: tiny-bert-squad\nbatch_sizes: [2]\n", encoding="utf-8")
    assert registry.load_task(str(path)).workload.batch_sizes == [2]
    with pytest.raises(UserError, match="workload file not found"):
        registry.load_task(str(tmp_path / "absent.json"))


def test_batch_size_above_model_maximum(tmp_path):
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"model": "tiny-bert-squad", "batch_sizes": [1, 512]}), encoding="utf-8")
    with pytest.raises(UserError, match="batch size 512 exceeds the model's max_batch_size 16"):
        registry.load_task(str(path))


def test_unknown_model_in_workload_names_the_field(tmp_path):
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"model": "albert-torch-fp64"}), encoding="utf-8")
    with pytest.raises(UserError) as err:
        registry.load_task(str(path))
    assert "w.json: model: unknown model 'albert-torch-fp64'" in str(err.value)


def test_unknown_hardware_type_lists_known():
    with pytest.raises(UserError) as err:
        backends.load_backend("TPUX")
    assert "unknown hardware type 'TPUX'" in str(err.value) and "CPU" in str(err.value)


def test_cpu_backend_and_option_validation():
    spec = backends.load_backend("CPU")
    assert spec.make_config("pytorch", {}, source="w.json").engine == "pytorch"
    with pytest.raises(UserError) as err:
        spec.make_config(None, {"intra_op_thread": 2}, source="w.json")
    assert "w.json: engine_options.intra_op_thread" in str(err.value)
    with pytest.raises(UserError, match="w.json: engine:"):
        spec.make_config("tensorrt", {}, source="w.json")


def test_plugin_backend_through_entry_point(plugin_path, tmp_path):
    assert "ZEROS" in backends.hardware_types()
    spec = backends.load_backend("ZEROS")
    assert spec.name == "ZEROS"
    # The plugin runs a whole workload through the same runner as the built-in backends.
    from core.run.runner import RunOptions, run_task

    workload = tmp_path / "w.yaml"
    workload.write_text(
        "model: tiny-bert-squad\niterations: 3\nbatch_sizes: [1, 2]\n"
        "warmup_iterations: 1\nmin_seconds: 0\nmax_seconds: 1\n",
        encoding="utf-8",
    )
    report_path = run_task(
        registry.load_task(str(workload)), RunOptions(hardware_type="ZEROS", output_dir=tmp_path / "r")
    ).written
    report = json.loads(report_path.read_text())
    assert report["Backend"] == "ZEROS"
    assert [row["BS"] for row in report["Performance"]] == [1, 2]
    assert all(row["Status"] == "ok" and row["QPS"] > 0 for row in report["Performance"])


def test_a_backends_best_batch_sizes_replace_the_workloads_and_the_report_says_so(plugin_path, tmp_path):
    from core.run.runner import RunOptions, run_task

    workload = tmp_path / "w.yaml"
    workload.write_text(
        "model: tiny-bert-squad\niterations: 2\nbatch_sizes: [1, 2]\nwarmup_iterations: 1\nmin_seconds: 0\n"
        "max_seconds: 1\nengine_options: {best_batch_sizes: [4, 3]}\n",
        encoding="utf-8",
    )
    report = run_task(registry.load_task(str(workload)), RunOptions(hardware_type="ZEROS", output_dir=tmp_path / "r"))
    assert [row.bs for row in report.performance] == [3, 4]
    assert report.graph_compile.best_batch_sizes == [3, 4]
    assert any("recommended by the ZEROS backend replace the workload's [1, 2]" in note for note in report.notes)


def test_cli_lists_plugin_hardware(plugin_path):
    result = cli("--show_hardware_list", env_extra={"PYTHONPATH": f"{plugin_path}{os.pathsep}{REPO}"})
    assert result.returncode == 0
    assert set(result.stdout.split()) >= {"CPU", "ZEROS"}


def test_cli_help_and_listing_answer_fast():
    start = time.perf_counter()
    result = cli("--help")
    assert result.returncode == 0 and "--hardware_type" in result.stdout and "--batch-sizes" in result.stdout
    listing = cli("--show_task_list")
    assert "albert-torch-fp32" in listing.stdout.split()
    # Generous bound: only proves the heavy libraries are not imported (they take many seconds here).
    assert time.perf_counter() - start < 20


@pytest.mark.parametrize("args", [["--help"], ["--show_task_list"], ["--show_hardware_list"]])
def test_help_and_listings_import_no_heavy_library(args):
    code = (
        f"import sys\nfrom core.perf_engine import main\ntry:\n    status = main({args!r})\n"
        "except SystemExit as stop:  # --help ends in argparse's exit\n    status = stop.code\n"
        "heavy = ('torch', 'transformers', 'onnxruntime', 'openvino', 'matplotlib')\n"
        "print(status)\nprint(sorted(m for m in heavy if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-2:] == ["0", "[]"]  # it answered, and without the heavy libraries


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--task", "nope"], "unknown task 'nope'"),
        (["--task", "albert-torch-fp32", "--hardware_type", "TPUX"], "unknown hardware type 'TPUX'"),
        (["--task", "../etc/passwd"], "neither a task name nor"),
        (["--task", "tiny-bert-squad", "--batch-sizes", "64"], "exceeds the model's max_batch_size"),
        ([], "no task given"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(args, words):
    result = cli(*args)
    assert result.returncode == 2, result.stderr
    assert words in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_bad_file_one_line_and_debug_shows_traceback(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"model": "tiny-bert-squad", "iterations": 0}', encoding="utf-8")
    result = cli("--task", str(bad))
    assert result.returncode == 2 and "bad.json: iterations:" in result.stderr and "Traceback" not in result.stderr
    debug = cli("--task", str(bad), "--debug")
    assert "Traceback" in debug.stderr


def test_cli_batch_sizes_must_be_integers():
    result = cli("--task", "tiny-bert-squad", "--batch-sizes", "1,x")
    assert result.returncode == 2 and "comma-separated list of integers" in result.stderr
