"""A whole run of the tiny workload: report content, history, cache reuse, interruption."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core.config import registry
from core.run.runner import RunOptions, run_task

REPO = Path(__file__).resolve().parent.parent

# ByteMLPerf's report keys: ours must be a superset.
BYTEMLPERF_TOP = {
    "Model",
    "Backend",
    "Host Info",
    "Dataset",
    "Instance Count",
    "Device Count",
    "Graph Compile",
    "Accuracy",
    "Performance",
}
BYTEMLPERF_COMPILE = {"Compile Duration", "Compile Precision", "Subgraph Coverage", "Optimizations"}
BYTEMLPERF_ACCURACY = {
    "Data Percent",
    "Exact Match",
    "F1 Score",
    "Mean Diff",
    "Std Diff",
    "Max Diff",
    "Max Rel-Diff",
    "Mean Rel-Diff",
    "Diff Dist",
}
BYTEMLPERF_PERF = {"BS", "QPS", "AVG Latency", "P99 Latency"}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    path = run_task(registry.load_task("tiny-bert-squad"), RunOptions(hardware_type="CPU", output_dir=out)).written
    return out, path, json.loads(path.read_text())


def test_report_has_bytemlperf_keys_and_ours(tiny_run):
    _, path, report = tiny_run
    assert (
        path.name == "result-fp32.json" and path.parent.name == "tiny-bert-squad" and path.parent.parent.name == "CPU"
    )
    assert BYTEMLPERF_TOP <= set(report)
    assert BYTEMLPERF_COMPILE <= set(report["Graph Compile"])
    assert BYTEMLPERF_ACCURACY <= set(report["Accuracy"])
    for row in report["Performance"]:
        assert BYTEMLPERF_PERF <= set(row)
        assert {"P50 Latency", "P90 Latency", "Std Latency", "Iterations", "Measured Seconds"} <= set(row)
        assert row["Status"] == "ok" and row["QPS"] > 0 and row["Iterations"] >= 1
        assert row["P50 Latency"] <= row["P99 Latency"] <= row["Max Latency"]
    assert [row["BS"] for row in report["Performance"]] == [1, 4]
    assert report["Run"]["status"] == "complete"
    assert report["Weights"]["kind"] == "synthetic" and "SYNTHETIC" in report["Weights"]["note"]
    assert report["Host"]["cores"] >= 1 and "torch" in report["Software"]
    assert report["Config"]["workload"]["model"] == "tiny-bert-squad"


def test_every_timed_call_is_kept_beside_the_run_and_the_qps_carries_its_interval(tiny_run):
    from core.common.arrays import load_arrays

    out, _, report = tiny_run
    run_id = report["Run"]["id"]
    arrays, meta = load_arrays(out / "CPU" / "tiny-bert-squad" / "runs" / f"{run_id}-samples" / "latency.npz")
    assert meta["unit"] == "ns" and sorted(arrays) == ["bs1", "bs4"]
    for row in report["Performance"]:
        samples = arrays[f"bs{row['BS']}"]
        assert samples.dtype == np.int64 and len(samples) == row["Iterations"]
        assert abs(float(np.median(samples)) / 1e6 - row["P50 Latency"]) < 1e-3 * max(1.0, row["P50 Latency"])
        if row["Iterations"] >= 4:
            assert row["QPS Low 95%"] <= row["QPS High 95%"] and row["QPS Low 95%"] > 0


def test_report_accuracy_and_numeric_sections(tiny_run):
    _, path, report = tiny_run
    accuracy = report["Accuracy"]
    # Synthetic weights: the scores are whatever they are; the counts are the bundled sample's.
    assert isinstance(accuracy["Exact Match"], float) and accuracy["F1 Score"] >= accuracy["Exact Match"]
    assert accuracy["Questions"] == 40 and accuracy["Features"] == 81
    assert "not meaningful" in accuracy["Note"]
    # Against the PyTorch FP32 reference: FP32 engines agree to rounding; the auto choice may be bf16/int8,
    # which the accuracy gate let through (drift well under the reference's spread).
    assert accuracy["Numeric Reference"] == "CPU pytorch FP32"
    assert accuracy["Max Diff"] < (1e-3 if report["Graph Compile"]["Compile Precision"] == "FP32" else 0.5)
    assert (path.parent / accuracy["Diff Dist"]).read_bytes().startswith(b"\x89PNG")
    assert report["Dataset Throughput"]["Features"] == accuracy["Features"]


def test_every_run_is_kept_in_history(tiny_run):
    out, path, report = tiny_run
    kept = out / "CPU" / "tiny-bert-squad" / "runs" / f"{report['Run']['id']}.json"
    assert json.loads(kept.read_text()) == report
    page = path.with_suffix(".html").read_text()
    assert "tiny-bert-squad" in page and "data:image/png;base64" in page
    second = run_task(
        registry.load_task("tiny-bert-squad"),
        RunOptions(hardware_type="CPU", output_dir=out, batch_sizes=[2], compile_only=False),
    ).written
    latest = json.loads(second.read_text())
    assert latest["Run"]["id"] != report["Run"]["id"]
    assert [row["BS"] for row in latest["Performance"]] == [2]
    assert latest["Graph Compile"]["Cache"] == "hit"  # the second run reuses the compiled artifact
    assert kept.is_file()  # the first run is still there


def test_compile_only_measures_nothing_and_never_replaces_the_latest_report(tmp_path):
    latest = tmp_path / "CPU" / "tiny-bert-squad" / "result-fp32.json"
    latest.parent.mkdir(parents=True)
    latest.write_text('{"Model": "tiny-bert-squad", "Performance": [{"BS": 1, "QPS": 9.0}]}', encoding="utf-8")
    before = latest.read_bytes()
    path = run_task(
        registry.load_task("tiny-bert-squad"), RunOptions(hardware_type="CPU", output_dir=tmp_path, compile_only=True)
    ).written
    report = json.loads(path.read_text())
    assert path.parent.name == "runs" and path.stem == report["Run"]["id"]  # kept under runs/ only
    assert report["Performance"] == [] and "Graph Compile" in report
    assert "compile only" in " ".join(report["Run"]["notes"]) and "unchanged" in " ".join(report["Run"]["notes"])
    assert "result-fp32.json is unchanged" in " ".join(report["Run"]["notes"])  # the file kept, not "result-auto"
    assert latest.read_bytes() == before and not latest.with_suffix(".html").exists()


def test_test_perf_false_skips_the_performance_section(tmp_path):
    workload = tmp_path / "no-perf.yaml"
    workload.write_text("model: tiny-bert-squad\ntest_perf: false\n", encoding="utf-8")
    path = run_task(registry.load_task(str(workload)), RunOptions(hardware_type="CPU", output_dir=tmp_path)).written
    report = json.loads(path.read_text())
    assert report["Performance"] == [] and report["Run"]["status"] == "complete"
    assert "test_perf is false" in " ".join(report["Run"]["notes"])


def sigterm_after(tmp_path, workload_text: str, marker: str, env: dict | None = None) -> tuple[dict, list[str]]:
    """Start a run, send SIGTERM once a line starting with `marker` appears, return the report it left."""
    workload = tmp_path / "long.yaml"
    workload.write_text(workload_text, encoding="utf-8")
    out = tmp_path / "reports"
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.perf_engine", "--task", str(workload), "--output-dir", str(out)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    deadline = time.time() + 180
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith(marker) or time.time() > deadline:
            break
    proc.send_signal(signal.SIGTERM)
    lines += proc.stdout.readlines()
    proc.wait(timeout=60)
    assert proc.returncode == 130, "".join(lines)
    return json.loads((out / "CPU" / "tiny-bert-squad" / "result-fp32.json").read_text()), lines


LONG = (
    "model: tiny-bert-squad\niterations: 100000000\nbatch_sizes: [1, 2, 4]\n"
    "warmup_iterations: 1\nmin_seconds: 0\nmax_seconds: 4\n"
)


def test_sigterm_writes_an_incomplete_report(tmp_path):
    report, lines = sigterm_after(tmp_path, LONG + "engine: onnxruntime\nprecision: FP32\n", "bs 1:")
    assert report["Run"]["status"] == "incomplete"
    assert [row["BS"] for row in report["Performance"]] == [1]
    assert report["Performance"][0]["Status"] == "ok"


def test_sigterm_while_choosing_the_engine_still_writes_a_report(tmp_path):
    # A private state folder: no cached decision, so the run really is choosing when the signal comes.
    report, lines = sigterm_after(
        tmp_path, LONG, "choosing among", env=dict(os.environ, PERFBENCH_HOME=str(tmp_path / "home"))
    )
    assert report["Run"]["status"] == "incomplete" and report["Performance"] == []
    assert any("interrupted" in note for note in report["Run"]["notes"])


def test_mnli_run_reports_matched_and_mismatched(tmp_path):
    path = run_task(
        registry.load_task("tiny-deberta-v2-mnli"), RunOptions(hardware_type="CPU", output_dir=tmp_path)
    ).written
    report = json.loads(path.read_text())
    accuracy = report["Accuracy"]
    # Synthetic weights score whatever they score; an accuracy is a share of the 40 examples of each split.
    for key in ("Accuracy Matched", "Accuracy Mismatched"):
        assert accuracy[key] * 40 / 100 == pytest.approx(round(accuracy[key] * 40 / 100))
    assert accuracy["Max Diff"] < (1e-3 if report["Graph Compile"]["Compile Precision"] == "FP32" else 0.5)
    assert report["Dataset"] == "open_mnli"
    assert {row["BS"] for row in report["Performance"]} == {1, 8}
    # DeBERTa-v2 declares int32 inputs; the compiled graph takes exactly those.
    assert report["Config"]["model"]["input_type"] == "INT32,INT32"


def test_repo_relative_tokenizer_paths_resolve_from_any_directory(tmp_path, monkeypatch):
    import dataclasses

    from core.model.source import resolve_source
    from core.run.context import make_loader, model_inputs

    task = registry.load_task("tiny-bert-squad")
    inputs = model_inputs(task, resolve_source(task.model, model_file=task.model_file))
    monkeypatch.chdir(tmp_path)
    present = dataclasses.replace(task, model=task.model.model_copy(update={"tokenizer": "datasets/open_squad/sample"}))
    assert make_loader(present, inputs).request.tokenizer == str(REPO / "datasets/open_squad/sample")
    # A vocab file that is not installed (bert's open_squad vocab.txt) is not an error: the run falls back.
    missing = dataclasses.replace(
        task, model=task.model.model_copy(update={"tokenizer": "datasets/open_squad/no-vocab.txt"})
    )
    features = make_loader(missing, inputs).load()
    assert features.provenance["tokenizer"]["kind"] == "fallback"
