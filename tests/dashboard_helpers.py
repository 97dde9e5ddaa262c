"""Kept runs of two models in a reports folder, as perfbench writes them (JSON and its page), for the dashboard."""

from __future__ import annotations

import json
from pathlib import Path

from core.reporting.report import RunReport
from core.reporting.schema import PerfRow
from core.reporting.sections import GraphCompile, HostInfo, LoadGenResult


def write_run(
    root: Path,
    model: str,
    run_id: str,
    started: str,
    qps: dict[int, float],
    *,
    host: str = "AMD EPYC",
    loadgen: str | None = None,
) -> Path:
    report = RunReport(
        model=model,
        backend="CPU",
        precision="FP32",
        dataset=None,
        run_id=run_id,
        started=started,
        performance=[
            PerfRow(bs=bs, qps=value, avg_latency=1000 * bs / value, p99_latency=1100 * bs / value, iterations=500)
            for bs, value in qps.items()
        ],
        graph_compile=GraphCompile(engine="onnxruntime", compile_precision="FP32"),
        host=HostInfo(cpu=host),
        loadgen=[LoadGenResult("Offline", result=loadgen, qps=max(qps.values()))] if loadgen else [],
        status="complete",
    )
    path = root / "CPU" / model / "runs" / f"{run_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_dict()), encoding="utf-8")
    path.with_suffix(".html").write_text("<!DOCTYPE html><title>run</title><h1>run page</h1>", encoding="utf-8")
    return path


BYTEMLPERF_REPORT = {  # as ByteMLPerf's general_perf writes it: no Run, no page, an Execution Date
    "Model": "ALBERT-TORCH-FP32",
    "Backend": "IPU",
    "Host Info": "Intel(R) Xeon(R) Platinum 8358",
    "Execution Date": "2026-10-30 12:00:00",
    "Graph Compile": {"Compile Duration": 12.5, "Compile Precision": "FP16"},
    "Performance": [{"BS": 4, "QPS": 3088.0, "AVG Latency": 1.29, "P99 Latency": 1.5}],
}


def three_runs_of_two_models(root: Path) -> None:
    """albert: three nights on one host, the third 20% slower at bs 4, and a vendor's ByteMLPerf report;
    resnet: two runs, LoadGen verdicts."""
    vendor = root / "IPU" / "albert-torch-fp32" / "result-fp16.json"
    vendor.parent.mkdir(parents=True, exist_ok=True)
    vendor.write_text(json.dumps(BYTEMLPERF_REPORT), encoding="utf-8")
    write_run(root, "albert-torch-fp32", "20261101T010000-aaaaaa", "2026-11-01T01:00:00+00:00", {1: 10.0, 4: 30.0})
    write_run(root, "albert-torch-fp32", "20261102T010000-bbbbbb", "2026-11-02T01:00:00+00:00", {1: 10.2, 4: 30.3})
    write_run(root, "albert-torch-fp32", "20261103T010000-cccccc", "2026-11-03T01:00:00+00:00", {1: 10.1, 4: 24.0})
    write_run(
        root, "resnet50-torch-fp32", "20261101T020000-dddddd", "2026-11-01T02:00:00+00:00", {4: 80.0}, loadgen="VALID"
    )
    write_run(
        root,
        "resnet50-torch-fp32",
        "20261102T020000-eeeeee",
        "2026-11-02T02:00:00+00:00",
        {4: 81.0},
        loadgen="INVALID",
        host="Intel Xeon",
    )
