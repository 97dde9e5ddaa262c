"""The typed report: one definition of the key names, rows and reports that round-trip, vendor spellings read."""

from __future__ import annotations

import json

from core.measure.timing import LatencyStats, Measurement
from core.reporting.report import RunReport
from core.reporting.schema import PERF_KEYS, ROW_KEYS, PerfRow
from core.reporting.sections import (
    Accuracy,
    CandidateRow,
    EngineSelection,
    GraphCompile,
    HostInfo,
    LoadGenResult,
    NumericDrift,
    Weights,
)


def measured_row() -> PerfRow:
    stats = LatencyStats.from_ns([10_000_000, 12_000_000, 11_000_000, 30_000_000])
    row = Measurement(
        batch_size=4,
        latency=stats,
        measured_seconds=0.063,
        warmup_iterations=2,
        warmup_seconds=0.1,
        stop_reason="time cap",
        clients=2,
    ).perf_row()
    row.peak_rss_mb = 512.5
    return row


def test_every_field_has_one_report_key_and_bytemlperf_keys_are_among_them():
    fields = set(PerfRow.__dataclass_fields__) - {"extra"}
    assert fields == set(ROW_KEYS) and len(set(ROW_KEYS.values())) == len(ROW_KEYS)
    assert {"BS", "QPS", "AVG Latency", "P99 Latency"} <= set(ROW_KEYS.values())
    assert set(PERF_KEYS) <= set(ROW_KEYS.values())


def test_a_measured_row_round_trips_through_json():
    row = measured_row()
    data = json.loads(json.dumps(row.to_dict()))
    assert data["BS"] == 4 and data["Clients"] == 2 and data["Status"] == "ok" and "Error" not in data
    assert data["Warning"].startswith("only 4 timed iterations")
    assert PerfRow.from_dict(data) == row


def test_bytemlperf_and_stc_rows_are_read_with_their_spellings_and_unknown_keys_kept():
    plain = PerfRow.from_dict({"BS": 8, "QPS": 100.0, "AVG Latency": 80.0, "P99 Latency": 95.0})
    assert plain.ok and plain.avg_latency == 80.0 and plain.extra == {}
    stc = PerfRow.from_dict({"BS": 1, "QPS": 824.49, "AVG_Latency": 1.2, "P99_Latency": 1.5, "Chip Temp": 61})
    assert (stc.avg_latency, stc.p99_latency, stc.extra) == (1.2, 1.5, {"Chip Temp": 61})
    assert stc.to_dict()["Chip Temp"] == 61 and "AVG Latency" in stc.to_dict()
    assert not PerfRow.from_dict({"BS": 2}).ok  # a row with no QPS did not run


def test_a_run_report_round_trips_and_names_its_failed_batch_sizes():
    report = RunReport(
        model="m",
        backend="CPU",
        precision="FP32",
        dataset="open_squad",
        performance=[measured_row(), PerfRow(bs=16, status="failed", error="MemoryError: ")],
        accuracy=Accuracy(
            data_percent=100,
            metrics={"F1 Score": 87.5},
            nonfinite_outputs=0,
            drift=NumericDrift(mean_diff=0.01, nonfinite=0, diff_dist="runs/x-diff.png"),
        ),
        host=HostInfo(cpu="AMD EPYC", flags=["avx2"]),
        weights=Weights(kind="synthetic", note="seeded"),
        graph_compile=GraphCompile(
            compile_precision="FP32",
            engine="onnxruntime",
            engine_selection=EngineSelection(
                chosen="onnxruntime FP32",
                candidates=[
                    CandidateRow("onnxruntime", "FP32", qps=3.5, gate="pass", chosen=True),
                    CandidateRow("openvino", "INT8", gate="fail", why="drift 0.4 > 0.25"),
                ],
            ),
        ),
        loadgen=[LoadGenResult("Offline", result="VALID", qps=9.1, unmet=None)],
        sections={"Software": {"torch": "2.13.0"}},
    )
    report.status = "complete"
    data = json.loads(json.dumps(report.to_dict()))
    again = RunReport.from_dict(data)
    assert again.to_dict() == data
    assert again.failed_batch_sizes == [16] and again.performance[0] == report.performance[0]
    assert data["Host Info"] == "AMD EPYC" and data["Accuracy"]["F1 Score"] == 87.5
    # ByteMLPerf's keys where ByteMLPerf puts them: drift statistics inside Accuracy, not a section of their own.
    assert data["Accuracy"]["Mean Diff"] == 0.01 and data["Graph Compile"]["Compile Precision"] == "FP32"
    assert again.accuracy.drift.mean_diff == 0.01 and again.accuracy.quality() == {"F1 Score": 87.5}
    rows = again.graph_compile.engine_selection.candidates
    assert [(r.label, r.passed, r.chosen) for r in rows] == [
        ("onnxruntime FP32", True, True),
        ("openvino INT8", False, None),
    ]
    assert again.loadgen_by_scenario["Offline"].number("QPS") == 9.1 and again.weights.synthetic


def test_sections_keep_keys_they_do_not_model_and_read_odd_values_as_absent():
    compile_ = GraphCompile.from_dict({"Compile Duration": "3.5", "Vendor Flag": {"x": 1}})
    assert compile_.number("Compile Duration") == 3.5 and compile_.to_dict()["Vendor Flag"] == {"x": 1}
    assert GraphCompile.from_dict(["not", "an", "object"]) == GraphCompile()
    accuracy = Accuracy.from_dict({"Exact Match": 80.2, "Questions": 10570, "Non-finite Outputs": 2, "Max Diff": "nan"})
    assert accuracy.quality() == {"Exact Match": 80.2} and accuracy.counts == {"Questions": 10570}
    assert accuracy.problems() == {"Non-finite Outputs": 2.0} and accuracy.drift.number("Max Diff") is None
