"""Sweeps: each job in its own process, crashes recorded, --resume, bad sweep files refused up front,
and a two-node Ray cluster placing jobs by hardware type and surviving a lost node.

Hardware types are plugin backends installed through the entry-point group, as a third party would:
FASTA/FASTB answer at once (FASTB also reports device memory), ABORT aborts its own process while
compiling, HANG announces itself and then waits (for the lost-node test).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import textwrap
import threading
import time
from pathlib import Path

import pytest
from plugin_helpers import install_plugin

from core.fleet import sweep

PLUGIN = textwrap.dedent(
    """
    import os
    import sys
    import time

    import numpy as np
    from pydantic import BaseModel, ConfigDict

    from backends.base import BackendSpec, CompileBackend, CompiledModel, RuntimeBackend

    NAME, MODE = {name!r}, {mode!r}


    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        engine: str = "fake"


    class Compile(CompileBackend):
        def compile(self, request):
            if MODE == "abort":
                print("about to abort", flush=True)
                os.abort()
            if MODE == "hang":
                open(os.path.join(os.environ["SWEEP_TEST_MARKERS"], NAME), "w").close()
                time.sleep(300)
            return CompiledModel(engine="fake", precision=request.precision, artifact=None,
                                 input_names=request.model.input_names, output_names=request.model.output_names,
                                 compile_seconds=0.0, cache_hit=False)


    class Runtime(RuntimeBackend):
        def load(self, batch_size):
            self.batch_size = batch_size

        def predict(self, feeds):
            first = next(iter(feeds.values()))
            return {{name: np.zeros(first.shape, np.float32) for name in self.compiled.output_names}}

        def meters(self):
            return [DeviceMemory(self.batch_size)] if MODE == "device" else []


    class DeviceMemory:
        def __init__(self, batch_size):
            self.batch_size = batch_size

        def begin(self):
            pass

        def end(self):
            pass

        def row_fields(self, measurement):
            return {{"device_memory_mb": float(self.batch_size)}}


    BACKEND = BackendSpec(name=NAME, description="sweep test plugin", config_class=Options,
                          compile_backend=Compile, runtime_backend=Runtime)
    """
)
PLUGINS = {"FASTA": "fast", "FASTB": "device", "ABORT": "abort", "HANG": "hang"}
WORKLOAD = {
    "model": "tiny-bert-squad",
    "batch_sizes": [1, 2],
    "iterations": 2,
    "warmup_iterations": 1,
    "min_seconds": 0,
    "max_seconds": 0.5,
    "test_accuracy": False,
    "test_numeric": False,
}


@pytest.fixture(scope="module")
def plugins(tmp_path_factory):
    """Plugins importable here and, through PYTHONPATH, in every job process and Ray worker."""
    root = tmp_path_factory.mktemp("plugins")
    for name, mode in PLUGINS.items():
        install_plugin(root, f"sweep_{name.lower()}", name, PLUGIN.format(name=name, mode=mode))
    markers = tmp_path_factory.mktemp("markers")
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(root))
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
        mp.setenv("SWEEP_TEST_MARKERS", str(markers))
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")
        yield markers


def sweep_file(folder: Path, **fields) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "w.json").write_text(json.dumps(WORKLOAD), encoding="utf-8")
    path = folder / "sweep.yaml"
    path.write_text(json.dumps({"tasks": ["w.json"], **fields}), encoding="utf-8")  # JSON is YAML
    return path


def run_sweep(*args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = sweep.main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def entries(out_dir: Path) -> dict[str, dict]:
    data = json.loads((out_dir / "sweep.json").read_text(encoding="utf-8"))
    return {e["hardware_type"]: e for e in data["jobs"]}


@pytest.fixture(scope="module")
def local_sweep(plugins, tmp_path_factory):
    folder = tmp_path_factory.mktemp("local")
    path = sweep_file(folder, hardware_types=["ABORT", "FASTB"], batch_sizes=[1, 4])
    code, out, _ = run_sweep(path, "--output-dir", folder / "out")
    return path, folder / "out", code, out


# ---------------------------------------------------------------- local
def test_a_job_that_aborts_is_crashed_and_the_other_jobs_finish(local_sweep):
    _, out_dir, code, out = local_sweep
    jobs = entries(out_dir)
    assert code == 1
    crashed = jobs["ABORT"]
    assert crashed["status"] == "crashed" and crashed["signal"] == "SIGABRT" and crashed["report"] is None
    assert "SIGABRT" in crashed["error"] and "about to abort" in crashed["output_tail"]
    ok = jobs["FASTB"]
    assert ok["status"] == "ok" and ok["error"] is None
    report = json.loads((out_dir / ok["report"]).read_text(encoding="utf-8"))
    assert ok["report"].startswith("FASTB/tiny-bert-squad/runs/")
    # The sweep's overrides reached the job; memory figures are in every row, device memory where reported.
    assert [row["BS"] for row in report["Performance"]] == [1, 4]
    assert [row["Device Memory MB"] for row in report["Performance"]] == [1.0, 4.0]
    assert all(row["Peak RSS MB"] > 0 for row in report["Performance"])
    assert (out_dir / ok["log"]).is_file() and (out_dir / ok["workload"]).is_file()
    assert "QPS per batch size" in out and "1 crashed, 1 ok" in out


def test_resume_skips_finished_jobs_only(local_sweep, tmp_path):
    path, out_dir, _, _ = local_sweep
    copy = tmp_path / "out"
    shutil.copytree(out_dir, copy)
    runs_before = sorted(copy.glob("*/*/runs/*.json"))
    code, _, _ = run_sweep(path, "--output-dir", copy, "--resume")
    jobs = entries(copy)
    assert code == 1  # the crash is run again, and crashes again
    assert jobs["FASTB"]["status"] == "skipped" and jobs["FASTB"]["report"] == entries(out_dir)["FASTB"]["report"]
    assert jobs["ABORT"]["status"] == "crashed"
    assert sorted(copy.glob("*/*/runs/*.json")) == runs_before  # nothing ran again that had a report

    # A changed override is a different job: its earlier report does not count.
    changed = sweep_file(tmp_path / "changed", hardware_types=["FASTB"], batch_sizes=[2])
    code, _, _ = run_sweep(changed, "--output-dir", copy, "--resume")
    assert code == 0 and entries(copy)["FASTB"]["status"] == "ok"
    assert len(sorted(copy.glob("*/*/runs/*.json"))) == len(runs_before) + 1


@pytest.mark.parametrize(
    "fields, field, message",
    [
        ({"tasks": ["no-such-task"]}, "tasks[0]", "unknown task 'no-such-task'"),
        ({"tasks": ["../workloads/tiny-bert-squad"]}, "tasks[0]", "neither a task name"),
        ({"hardware_types": ["FASTA", "TPU9"]}, "hardware_types[1]", "unknown hardware type 'TPU9'"),
        ({"scenario": "Warp"}, "scenario", "unknown scenario 'Warp'"),  # a workload field, validated as one
        ({"batch_size": [1]}, "batch_size", "did you mean 'batch_sizes'"),
        ({"batch_sizes": [64]}, "batch_sizes", "exceeds the model's max_batch_size 16"),
        ({"precision": "FP8"}, "precision", "Input should be"),
        ({"job_timeout_seconds": -1}, "job_timeout_seconds", "greater than 0"),
        ({"hardware_types": []}, "hardware_types", "at least 1 item"),
    ],
)
def test_a_bad_sweep_file_is_refused_before_any_job_starts(plugins, tmp_path, fields, field, message):
    path = sweep_file(tmp_path, **{"hardware_types": ["FASTA"], **fields})
    code, out, err = run_sweep(path, "--output-dir", tmp_path / "out")
    assert code == 2 and out == ""
    line = err.strip()
    assert "\n" not in line and str(path) in line and f"{field}:" in line and message in line
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- on a Ray cluster
@pytest.fixture(scope="module")
def cluster(plugins):
    from ray.cluster_utils import Cluster

    def resources(*hardware):
        return {**{sweep.hw_resource(hw): 1 for hw in hardware}, sweep.SLOT_RESOURCE: 1}

    small = {"num_cpus": 1, "object_store_memory": 80 << 20}
    ray_cluster = Cluster(
        initialize_head=True, head_node_args={**small, "include_dashboard": False, "resources": resources("FASTA")}
    )
    try:
        second = ray_cluster.add_node(**small, resources=resources("FASTB", "ABORT"))
        ray_cluster.wait_for_nodes()
        yield (
            ray_cluster,
            {"FASTA": ray_cluster.head_node.node_id, "FASTB": second.node_id, "ABORT": second.node_id},
            small,
            resources,
        )
    finally:
        ray_cluster.shutdown()


def test_cluster_runs_each_job_on_a_node_of_its_hardware_type(cluster, tmp_path):
    ray_cluster, node_of, _, _ = cluster
    path = sweep_file(tmp_path, hardware_types=["FASTA", "FASTB", "ABORT"])
    code, out, _ = run_sweep(path, "--output-dir", tmp_path / "out", "--address", ray_cluster.address)
    jobs = entries(tmp_path / "out")
    assert code == 1
    for hw in ("FASTA", "FASTB", "ABORT"):
        assert jobs[hw]["node"] == node_of[hw], hw
    assert jobs["FASTA"]["status"] == jobs["FASTB"]["status"] == "ok"
    assert jobs["ABORT"]["status"] == "crashed" and jobs["ABORT"]["signal"] == "SIGABRT"
    # The reports came back as data: the jobs wrote them in private temporary folders on their nodes.
    for hw in ("FASTA", "FASTB"):
        assert json.loads((tmp_path / "out" / jobs[hw]["report"]).read_text(encoding="utf-8"))["Backend"] == hw


def test_a_hardware_type_no_node_declares_is_refused(cluster, tmp_path):
    ray_cluster = cluster[0]
    path = sweep_file(tmp_path, hardware_types=["FASTA", "HANG"])  # installed here, but on no node
    code, _, err = run_sweep(path, "--output-dir", tmp_path / "out", "--address", ray_cluster.address)
    assert code == 2 and "hardware_types[1]: no alive node" in err and "ray start" in err
    assert not (tmp_path / "out").exists()


def test_a_node_lost_mid_job_marks_that_job_crashed(cluster, plugins, tmp_path):
    ray_cluster, _, small, resources = cluster
    doomed = ray_cluster.add_node(**small, resources=resources("HANG"))
    ray_cluster.wait_for_nodes()
    path = sweep_file(tmp_path, hardware_types=["HANG", "FASTA"])
    result: dict = {}
    runner = threading.Thread(
        target=lambda: result.update(
            code=run_sweep(path, "--output-dir", tmp_path / "out", "--address", ray_cluster.address)[0]
        )
    )
    runner.start()
    deadline = time.monotonic() + 120  # a bound on a hung test, not a timing assertion
    while not (plugins / "HANG").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (plugins / "HANG").exists(), "the HANG job never started"
    ray_cluster.remove_node(doomed, allow_graceful=False)
    runner.join(timeout=180)
    assert not runner.is_alive()
    jobs = entries(tmp_path / "out")
    assert result["code"] == 1
    assert jobs["HANG"]["status"] == "crashed" and jobs["HANG"]["report"] is None
    assert jobs["HANG"]["error"].startswith("lost: ")  # Ray's NodeDiedError, as one line
    assert jobs["FASTA"]["status"] == "ok"


def test_an_unreachable_cluster_is_one_line(plugins, tmp_path):
    import socket

    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path = sweep_file(tmp_path, hardware_types=["FASTA"])
    code, _, err = run_sweep(path, "--output-dir", tmp_path / "out", "--address", f"127.0.0.1:{port}")
    assert code == 2 and err.strip().startswith("error: --address: cannot reach the Ray head")
    assert not (tmp_path / "out").exists()
