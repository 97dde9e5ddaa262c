"""The typed report: one definition of the key names, rows and reports that round-trip, vendor spellings read."""

from __future__ import annotations

import json

from core.measure.timing import LatencyStats, Measurement
from core.reporting.report import RunReport
from core.reporting.schema import PERF_KEYS, ROW_KEYS, PerfRow


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
        sections={"Accuracy": {"F1 Score": 87.5}, "Host": {"cpu": "AMD EPYC"}},
    )
    report.status = "complete"
    data = json.loads(json.dumps(report.to_dict()))
    again = RunReport.from_dict(data)
    assert again.to_dict() == data
    assert again.failed_batch_sizes == [16] and again.performance[0] == report.performance[0]
    assert data["Host Info"] == "AMD EPYC" and data["Accuracy"]["F1 Score"] == 87.5
