"""Runs that go wrong part-way: a failing batch size, Ctrl-C, NaN/Inf outputs, a broken reference cache.

A plugin backend (installed through the entry-point group, like a third-party package) fails or
returns NaN/Inf on demand, so every case is deterministic and takes about a second.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from plugin_helpers import install_plugin

from core.common.errors import UserError
from core.config import registry
from core.reporting.report import RunReport
from core.run.runner import RunOptions, run_task

REPO = Path(__file__).resolve().parent.parent

PLUGIN = textwrap.dedent(
    '''
    """Test hardware: random logits; fails or returns NaN/Inf when a test asks it to."""
    import numpy as np
    from pydantic import BaseModel, ConfigDict

    from backends.base import BackendSpec, CompileBackend, CompiledModel, RuntimeBackend

    FAIL = {}                          # batch size -> exception raised by the timed call
    POISON = {"mode": None, "batches": 0}  # mode "first-row" | "all"; counts poisoned accuracy batches
    ACCURACY_BS = 8


    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        engine: str = "flaky"


    class Compile(CompileBackend):
        def compile(self, request):
            return CompiledModel(engine="flaky", precision=request.precision, artifact=None,
                                 input_names=request.model.input_names, output_names=request.model.output_names,
                                 compile_seconds=0.0, cache_hit=False, optimizations=[])


    class Runtime(RuntimeBackend):
        def load(self, batch_size):
            self.batch_size = batch_size

        def predict(self, feeds):
            first = next(iter(feeds.values()))
            rng = np.random.default_rng(int(first.sum()))
            out = {name: rng.standard_normal(first.shape).astype(np.float32) for name in self.compiled.output_names}
            if POISON["mode"] and self.batch_size == ACCURACY_BS:
                start, end = self.compiled.output_names[:2]
                if POISON["mode"] == "all":
                    out[start][:] = np.nan
                    out[end][:] = np.nan
                else:  # one feature per batch: NaN start and +Inf end at position 0 (always a valid position)
                    out[start][0, 0] = np.nan
                    out[end][0, 0] = np.inf
                POISON["batches"] += 1
            return out

        def bind(self, feeds):
            outputs = self.predict(feeds)
            failure = FAIL.get(self.batch_size)

            def call():
                if failure is not None:
                    raise failure
                return outputs

            return call


    BACKEND = BackendSpec(name="FLAKY", description="test plugin", config_class=Options,
                          compile_backend=Compile, runtime_backend=Runtime)
    '''
)


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory):
    root = install_plugin(tmp_path_factory.mktemp("plugin"), "flaky_backend", "FLAKY", PLUGIN)
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(root))
        yield root
    sys.modules.pop("flaky_backend", None)


@pytest.fixture
def plugin(plugin_dir):
    import flaky_backend

    flaky_backend.FAIL.clear()
    flaky_backend.POISON.update(mode=None, batches=0)
    yield flaky_backend
    flaky_backend.FAIL.clear()
    flaky_backend.POISON.update(mode=None, batches=0)


def workload(tmp_path: Path, **fields) -> Path:
    data = {
        "model": "tiny-bert-squad",
        "iterations": 3,
        "warmup_iterations": 1,
        "min_seconds": 0,
        "max_seconds": 1,
        "test_accuracy": False,
        "test_numeric": False,
        "batch_sizes": [1],
        **fields,
    }
    path = tmp_path / "w.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def strict_json(path: Path) -> dict:
    """Parse as JSON proper: NaN/Infinity literals are Python's extension, not JSON."""

    def refuse(constant):
        raise AssertionError(f"{path} holds the non-JSON literal {constant}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def run(tmp_path: Path, **fields) -> dict:
    task = registry.load_task(str(workload(tmp_path, **fields)))
    return strict_json(run_task(task, RunOptions(hardware_type="FLAKY", output_dir=tmp_path / "reports")).written)


def latest_report(tmp_path: Path) -> dict:
    return strict_json(tmp_path / "reports" / "FLAKY" / "tiny-bert-squad" / "result-fp32.json")


# --- a crash in one batch size --------------------------------------------------------------------


def test_a_failing_batch_size_is_recorded_and_the_run_goes_on(plugin, tmp_path):
    # Engine messages carry brackets; they must reach the report verbatim, not be read as console markup.
    plugin.FAIL[2] = RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION [/arena] failed to allocate")
    plugin.FAIL[3] = MemoryError("out of memory")
    report = run(tmp_path, batch_sizes=[1, 2, 3, 4])
    rows = {row["BS"]: row for row in report["Performance"]}
    assert sorted(rows) == [1, 2, 3, 4]
    assert rows[1]["Status"] == rows[4]["Status"] == "ok" and rows[4]["QPS"] > 0
    assert rows[2]["Status"] == "failed" and rows[2]["Error"].startswith("RuntimeError: [ONNXRuntimeError]")
    assert "[/arena]" in rows[2]["Error"]
    assert rows[3]["Status"] == "failed" and rows[3]["Error"] == "MemoryError: out of memory"
    assert report["Run"]["status"] == "complete"


def test_run_task_returns_the_typed_report_it_wrote(plugin, tmp_path):
    plugin.FAIL[2] = RuntimeError("engine error")
    task = registry.load_task(str(workload(tmp_path, batch_sizes=[1, 2])))
    report = run_task(task, RunOptions(hardware_type="FLAKY", output_dir=tmp_path / "reports"))
    assert report.failed_batch_sizes == [2] and report.performance[0].ok and report.performance[0].qps > 0
    assert report.written == tmp_path / "reports" / "FLAKY" / "tiny-bert-squad" / "result-fp32.json"
    assert RunReport.from_dict(strict_json(report.written)).performance == report.performance


def test_the_command_exits_1_when_a_batch_size_failed(plugin, tmp_path, capsys):
    from core.perf_engine import main

    plugin.FAIL[2] = RuntimeError("engine error")
    path = workload(tmp_path, batch_sizes=[1, 2])
    assert main(["--task", str(path), "--hardware_type", "FLAKY", "--output-dir", str(tmp_path / "reports")]) == 1
    assert "batch sizes 2 failed" in capsys.readouterr().err
    plugin.FAIL.clear()
    assert main(["--task", str(path), "--hardware_type", "FLAKY", "--output-dir", str(tmp_path / "reports")]) == 0


@pytest.mark.parametrize(
    ("failure", "status"),
    [(UserError("bad engine option", field="engine_options.x"), "failed"), (KeyboardInterrupt(), "incomplete")],
)
def test_bad_input_and_ctrl_c_are_not_swallowed_as_batch_failures(plugin, tmp_path, failure, status):
    plugin.FAIL[2] = failure
    with pytest.raises(type(failure)):
        run(tmp_path, batch_sizes=[1, 2, 4])
    report = latest_report(tmp_path)
    assert report["Run"]["status"] == status
    assert [(row["BS"], row["Status"]) for row in report["Performance"]] == [(1, "ok")]  # bs 1 kept, bs 4 never ran


# --- Ctrl-C ---------------------------------------------------------------------------------------


def test_sigint_writes_an_incomplete_report_and_exits_non_zero(plugin_dir, tmp_path):
    path = workload(tmp_path, iterations=10**9, batch_sizes=[1, 2, 4], max_seconds=2)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(plugin_dir), str(REPO)]))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "core.perf_engine",
            "--task",
            str(path),
            "--hardware_type",
            "FLAKY",
            "--output-dir",
            str(tmp_path / "reports"),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # A test suite started in the background inherits SIGINT ignored, and Python then never turns
        # SIGINT into KeyboardInterrupt: give the child the default disposition a terminal user has.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 90
    for line in proc.stdout:  # wait until batch size 1 is measured and batch size 2 has begun
        if line.startswith("bs 1:") or time.time() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, rest
    assert "Traceback" not in rest
    report = latest_report(tmp_path)
    assert report["Run"]["status"] == "incomplete"
    assert "interrupted" in " ".join(report["Run"]["notes"])
    assert [(row["BS"], row["Status"]) for row in report["Performance"]] == [(1, "ok")]
    assert report["Performance"][0]["QPS"] > 0


# --- NaN/Inf outputs ------------------------------------------------------------------------------


def test_nan_and_inf_outputs_are_counted_not_scored(plugin, tmp_path):
    plugin.POISON["mode"] = "first-row"
    report = run(tmp_path, test_accuracy=True, test_numeric=True)
    accuracy = report["Accuracy"]
    poisoned = plugin.POISON["batches"]  # one poisoned feature per accuracy batch
    assert poisoned >= 2
    assert accuracy["Non-finite Outputs"] == poisoned  # SQuAD: those features propose no answer
    assert accuracy["Non-finite"] == 2 * poisoned  # numeric: one NaN and one Inf value each, left out
    assert accuracy["Compared Values"] > 0 and accuracy["Max Diff"] >= accuracy["Mean Diff"] > 0
    assert any("NaN/Inf" in note for note in report["Run"]["notes"])


def test_all_outputs_nan_score_nothing_and_the_report_stays_json(plugin, tmp_path):
    plugin.POISON["mode"] = "all"
    report = run(tmp_path, test_accuracy=True, test_numeric=True)
    accuracy = report["Accuracy"]
    assert accuracy["Non-finite Outputs"] == accuracy["Features"]
    assert accuracy["Empty Predictions"] == accuracy["Questions"]
    assert accuracy["Exact Match"] == 0 and accuracy["F1 Score"] == 0
    # No finite pair to compare: the statistics are absent (null), not NaN.
    assert accuracy["Compared Values"] == 0 and accuracy["Mean Diff"] is None and accuracy["Max Diff"] is None


def test_a_broken_reference_cache_is_recomputed(plugin, tmp_path, monkeypatch):
    """A reference left half-written (a concurrent run, a crash) or corrupted must not end the run."""
    monkeypatch.setenv("PERFBENCH_HOME", str(tmp_path / "home"))
    first = run(tmp_path, test_numeric=True)
    cached = list((tmp_path / "home" / "reference" / "tiny-bert-squad").rglob("*.npz"))
    assert len(cached) == 1
    cached[0].with_suffix(".json").unlink()  # the npz is there, its sidecar not (yet)
    assert run(tmp_path, test_numeric=True)["Accuracy"]["Max Diff"] == first["Accuracy"]["Max Diff"]
    cached[0].write_bytes(cached[0].read_bytes()[:100])  # truncated
    assert run(tmp_path, test_numeric=True)["Accuracy"]["Max Diff"] == first["Accuracy"]["Max Diff"]
