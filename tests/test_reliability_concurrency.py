"""Two runs at once: the compiled-artifact cache, the feature cache and the reports stay whole."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

from core.common.arrays import load_arrays, load_or_build
from core.reporting.report import RunReport
from core.reporting.schema import PerfRow
from core.reporting.writer import write_report

REPO = Path(__file__).resolve().parent.parent


def start(args: list[str], home: Path) -> subprocess.Popen:
    env = dict(os.environ, PERFBENCH_HOME=str(home))
    return subprocess.Popen(
        [sys.executable, *args], cwd=REPO, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def finish(procs: list[subprocess.Popen]) -> list[str]:
    outputs = [p.communicate(timeout=240)[0] for p in procs]
    for proc, out in zip(procs, outputs):
        assert proc.returncode == 0, out
    return outputs


def test_two_processes_compile_the_same_model_into_one_cache_and_one_report_folder(tmp_path):
    home, out = tmp_path / "home", tmp_path / "reports"
    # A short measured run: a compile-only run never writes the latest report, and that write is raced here too.
    workload = tmp_path / "short.yaml"
    workload.write_text(
        "model: tiny-bert-squad\nbatch_sizes: [1]\niterations: 1\nwarmup_iterations: 1\n"
        "min_seconds: 0\nmax_seconds: 0.5\nengine: onnxruntime\nprecision: FP32\n",
        encoding="utf-8",
    )
    args = ["-m", "core.perf_engine", "--task", str(workload), "--output-dir", str(out)]
    finish([start(args, home), start(args, home)])

    compiled = home / "compiled" / "tiny-bert-squad"
    for stage in ("export", "onnxruntime"):  # the shared export, then the engine's artifact
        entries = list((compiled / stage).iterdir())
        assert [e.name.startswith(".build-") for e in entries] == [False]  # one entry, no half-built leftovers
    artifact = entries[0]
    meta = json.loads((artifact / "compile.json").read_text())
    import onnx

    graph = onnx.load(str(artifact / "model.onnx")).graph
    assert [i.name for i in graph.input] == meta["input_names"]

    folder = out / "CPU" / "tiny-bert-squad"
    runs = sorted((folder / "runs").glob("*.json"))
    assert len(runs) == 2
    ids = {json.loads(p.read_text())["Run"]["id"] for p in runs}
    assert len(ids) == 2
    latest = json.loads((folder / "result-fp32.json").read_text())
    assert latest["Run"]["id"] in ids and latest["Run"]["status"] == "complete"
    assert not list(folder.rglob("*.tmp"))


SQUAD_LOAD = """
import sys
from pathlib import Path
from datasets.base import DatasetRequest, ModelInputs
from datasets.open_squad.loader import SquadLoader
model = ModelInputs(names=("ids", "mask", "types"), dtypes=("LONG",) * 3, seq_len=128, vocab_size=1000,
                    type_vocab_size=2, outputs=("start_logits", "end_logits"))
features = SquadLoader(DatasetRequest(model=model, cache_dir=Path(sys.argv[1]))).load()
print(features.inputs["ids"].sum(), len(features))
"""


def test_two_processes_build_the_same_feature_cache(tmp_path):
    cache = tmp_path / "features"
    outputs = finish([start(["-c", SQUAD_LOAD, str(cache)], tmp_path), start(["-c", SQUAD_LOAD, str(cache)], tmp_path)])
    assert outputs[0].split()[-2:] == outputs[1].split()[-2:]
    files = sorted(p.name for p in (cache / "open_squad").iterdir())
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".npz")  # no temporary leftovers
    arrays, _ = load_arrays(cache / "open_squad" / files[1])
    assert int(arrays["token_ids"].sum()) == int(outputs[0].split()[-2])


def test_feature_cache_missing_its_sidecar_is_rebuilt(tmp_path):
    path = tmp_path / "f.npz"
    load_or_build(path, lambda: {"a": np.arange(5)}, {})
    path.with_suffix(".json").unlink()  # as a reader sees it between a concurrent writer's two renames
    arrays, hit = load_or_build(path, lambda: {"a": np.arange(5)}, {})
    assert not hit and arrays["a"].tolist() == [0, 1, 2, 3, 4]


def test_a_truncated_feature_cache_is_rebuilt(tmp_path):
    path = tmp_path / "f.npz"
    load_or_build(path, lambda: {"a": np.arange(1000)}, {})
    path.write_bytes(path.read_bytes()[:200])
    arrays, hit = load_or_build(path, lambda: {"a": np.arange(1000)}, {})
    assert not hit and arrays["a"].sum() == 499500


def test_reports_written_at_once_are_all_kept_and_the_latest_is_whole(tmp_path):
    reports = [RunReport(model="m", backend="HW", precision="FP32", dataset=None) for _ in range(3)]
    for i, report in enumerate(reports):
        report.performance.append(PerfRow(bs=1, qps=float(i)))
        report.status = "complete"
    threads = [threading.Thread(target=write_report, args=(report, tmp_path)) for report in reports]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    folder = tmp_path / "HW" / "m"
    kept = {json.loads(p.read_text())["Run"]["id"] for p in (folder / "runs").glob("*.json")}
    assert kept == {r.run_id for r in reports}
    assert json.loads((folder / "result-fp32.json").read_text())["Run"]["id"] in kept
    assert not [p for p in folder.rglob("*") if p.name.startswith(".")]  # no temporary files left
