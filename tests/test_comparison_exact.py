"""compare's model and tables to the character: every cell, flag, warning and message follows from the inputs
built here, so a changed format string, ratio, direction or flag fails a test (mutation testing found these
rendered only in part)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.reporting.comparison import build_comparison, comparison_notes, comparison_tables
from core.reporting.report import RunReport


def report(label: str, performance: list[dict], **sections) -> RunReport:
    data = {
        "Model": "m",
        "Backend": "CPU",
        "Run": {"id": f"run-{label}", "status": "complete"},
        "Dataset": "open_squad",
        "Performance": performance,
        **sections,
    }
    return RunReport.from_dict(data, source=Path(f"{label}.json"))


def row(bs: int, qps: float, avg: float, **more) -> dict:
    return {"BS": bs, "QPS": qps, "AVG Latency": avg, "Status": "ok", **more}


def texts(table) -> list[list[str]]:
    return [[cell.text for cell in cells] for cells in table.rows]


def bads(table) -> list[list[bool]]:
    return [[cell.bad for cell in cells] for cells in table.rows]


def test_the_performance_table_cell_by_cell():
    a = report(
        "a",
        [
            row(1, 100.0, 10.0, **{"QPS Low 95%": 99.0, "QPS High 95%": 101.0, "Iterations": 50, "P99 Latency": 12.0}),
            row(2, 200.0, 10.0),
        ],
    )
    b = report(
        "b",
        [
            row(1, 50.0, 20.0, **{"QPS Low 95%": 49.0, "QPS High 95%": 51.0, "Iterations": 50, "P99 Latency": 30.0}),
            {"BS": 2, "Status": "failed", "Error": "out of memory"},
            row(4, 300.0, 13.0),
        ],
    )
    cmp = build_comparison([a, b], ["a", "b"], threshold=0.05)
    perf = comparison_tables(cmp)[0]
    assert perf.title == "Performance (latency in ms, memory in MB; ratio to the first report)"
    assert perf.headers == ["BS", "metric", "a", "b"] and perf.text_columns == 2
    qps_verdict = cmp.perf[0].verdicts[1].text()
    assert qps_verdict.startswith("slower (p = ")
    assert texts(perf) == [
        ["1", "QPS", "100.0 [99.00–101.0]", f"50.00 (0.50x) [49.00–51.00] {qps_verdict}"],
        ["1", "AVG Latency", "10.00", "20.00 (2.00x) untested (no samples)"],
        ["1", "P99 Latency", "~12.00 (unbacked)", "~30.00 (2.50x) (unbacked)"],
        ["2", "QPS", "200.0", "failed"],
        ["2", "AVG Latency", "10.00", "failed"],
        ["4", "QPS", "—", "300.0"],
        ["4", "AVG Latency", "—", "13.00"],
    ]
    assert bads(perf) == [
        [False, False, False, True],
        [False, False, False, True],  # AVG Latency has no test here: judged by the threshold alone
        [False, False, False, False],  # unbacked: never a regression
        [False, False, False, True],
        [False, False, False, True],
        [False, False, False, False],
        [False, False, False, False],
    ]
    assert [(r.report, r.bs, r.metric) for r in cmp.regressions] == [
        ("b", 1, "QPS"),
        ("b", 1, "AVG Latency"),
        ("b", 2, "Status"),
    ]
    qps, latency, status = cmp.regressions
    assert qps.message == f"b: batch size 1 QPS drop 50.0% (100.0 -> 50.00) beyond 5.0%; {qps_verdict}"
    assert (qps.baseline, qps.value, qps.change) == (100.0, 50.0, -0.5)
    assert latency.message.startswith("b: batch size 1 AVG Latency rise 100.0% (10.00 -> 20.00) beyond 5.0%")
    assert status.message == "b: batch size 2 failed (out of memory); the baseline ran"
    assert (status.baseline, status.value, status.change) == (None, None, None)
    assert cmp.perf[0].intervals == [(99.0, 101.0), (49.0, 51.0)]
    assert cmp.perf[2].unbacked == [True, True]
    assert cmp.perf[3].statuses == ["ok", "failed"]
    assert cmp.perf[5].ratios == [None, None]  # no baseline value: no ratio


def test_a_failure_without_an_error_says_so_and_a_failed_baseline_judges_nothing():
    ok, failed = [row(1, 10.0, 1.0)], [{"BS": 1, "Status": "failed"}]
    cmp = build_comparison([report("a", ok), report("b", failed)], ["a", "b"], threshold=0.05)
    assert [r.message for r in cmp.regressions] == ["b: batch size 1 failed (no error recorded); the baseline ran"]
    assert not build_comparison([report("a", failed), report("b", ok)], ["a", "b"], threshold=0.05).regressions
    assert not build_comparison([report("a", ok), report("b", failed)], ["a", "b"]).regressions


def test_the_warnings_name_each_difference_in_order():
    a = report("a", [row(1, 10.0, 1.0)])  # dataset open_squad
    b = report("b", [row(8, 10.0, 1.0)], Dataset="OPEN_SQUAD", Run={"id": "b", "status": "interrupted"})
    c = report("c", [row(1, 10.0, 1.0)], Model="other", Dataset="open_mnli")
    cmp = build_comparison([a, b, c], ["a", "b", "c"])
    assert cmp.warnings == [
        "model differs: a=m, b=m, c=other",
        "dataset differs: a=open_squad, b=OPEN_SQUAD, c=open_mnli",  # case alone is no difference (a, b)
        "b: run is interrupted; its numbers may be partial",
        "b shares no batch size with a ([8] vs [1]): values are shown side by side, without ratios",
        "batch size 1 is missing from b",
        "batch size 8 is missing from a, c",
    ]
    same = build_comparison([a, report("a2", [row(1, 11.0, 1.0)], Dataset="Open_Squad")], ["a", "a2"])
    assert same.warnings == []


def loadgen(result: str, qps: float, p99: float, target: float) -> list[dict]:
    return [{"Scenario": "Server", "Result": result, "QPS": qps, "P99 Latency": p99, "Target QPS": target}]


def test_the_loadgen_table_and_its_regressions():
    a = report("a", [], LoadGen=loadgen("VALID", 20.0, 50.0, 20.0))
    b = report("b", [], LoadGen=loadgen("INVALID", 10.0, 40.0, 10.0))
    cmp = build_comparison([a, b], ["a", "b"], threshold=0.05)
    table = comparison_tables(cmp)[1]
    assert table.title == "LoadGen scenarios (latency in ms; ratio to the first report)"
    assert table.headers == ["scenario", "metric", "a", "b"] and table.text_columns == 2
    assert texts(table) == [
        ["Server", "Result", "VALID", "INVALID"],
        ["Server", "QPS", "20.00", "10.00 (0.50x)"],
        ["Server", "P99 Latency", "50.00", "40.00 (0.80x)"],
        ["Server", "Target QPS", "20.00", "10.00 (0.50x)"],
    ]
    assert bads(table) == [
        [False, False, False, True],
        [False, False, False, True],
        [False, False, False, False],  # lower latency is better
        [False, False, False, False],  # a target is a setting, never a regression
    ]
    assert [(r.report, r.bs, r.metric, r.message) for r in cmp.regressions] == [
        ("b", 0, "LoadGen Server", "b: LoadGen Server is INVALID; the baseline was VALID"),
        ("b", 0, "LoadGen Server QPS", "b: LoadGen Server QPS drop 50.0% (20.00 -> 10.00) beyond 5.0%"),
    ]
    back = build_comparison([b, a], ["b", "a"], threshold=0.05)
    assert [r.metric for r in back.regressions] == ["LoadGen Server P99 Latency"]  # INVALID -> VALID is not one
    assert not build_comparison([a, b], ["a", "b"]).regressions
    assert [r.regressions for r in build_comparison([a, b], ["a", "b"]).loadgen] == [[False, False]] * 4


def test_a_loadgen_scenario_missing_from_one_report_shows_a_dash_and_is_not_a_regression():
    a = report("a", [], LoadGen=loadgen("VALID", 20.0, 50.0, 20.0))
    cmp = build_comparison([a, report("b", [])], ["a", "b"], threshold=0.05)
    assert texts(comparison_tables(cmp)[1])[0] == ["Server", "Result", "VALID", "—"]
    assert bads(comparison_tables(cmp)[1])[0] == [False, False, False, False]
    assert cmp.regressions == []


def test_the_number_tables_show_values_and_deltas():
    a = report("a", [row(1, 10.0, 1.0)], Accuracy={"Exact Match": 80.0, "F1 Score": 88.0, "Max Diff": 0.5})
    b = report("b", [row(1, 10.0, 1.0)], Accuracy={"Exact Match": 79.5, "Max Diff": 0.25})
    cmp = build_comparison([a, b], ["a", "b"])
    tables = {t.title: t for t in comparison_tables(cmp)}
    accuracy = tables["Accuracy (delta to the first report)"]
    assert accuracy.headers == ["metric", "a", "b"]
    assert texts(accuracy) == [["Exact Match", "80.00", "79.50 (-0.5)"], ["F1 Score", "88.00", "—"]]
    numeric = tables["Numeric diff vs reference (delta to the first report)"]
    assert texts(numeric) == [["Max Diff", "0.50", "0.25 (-0.25)"]]
    assert [m.deltas for m in cmp.accuracy] == [[0.0, -0.5], [0.0, None]]
    assert "Compile memory in MB (delta to the first report)" not in tables


@pytest.mark.parametrize("threshold, expected", [(None, []), (0.05, ["no regression beyond 5.0% against a"])])
def test_the_notes_after_the_tables(threshold, expected):
    a, b = report("a", [row(1, 10.0, 1.0)]), report("b", [row(1, 10.0, 1.0)])
    notes = comparison_notes(build_comparison([a, b], ["a", "b"], threshold))
    assert [text for kind, text in notes if kind == "" and not text.startswith("faster /")] == expected


def test_the_notes_list_warnings_then_regressions_then_the_test_legend():
    a = report("a", [row(1, 100.0, 10.0, **{"QPS Low 95%": 99.0, "QPS High 95%": 101.0})])
    b = report("b", [row(1, 50.0, 10.0, **{"QPS Low 95%": 49.0, "QPS High 95%": 51.0})], Model="n")
    cmp = build_comparison([a, b], ["a", "b"], threshold=0.05)
    notes = comparison_notes(cmp)
    assert notes[:2] == [("warning", "model differs: a=m, b=n"), ("regression", cmp.regressions[0].message)]
    assert notes[2][0] == "" and notes[2][1].startswith("faster / slower / within noise: two-sided tests at p < 0.01")
    assert len(notes) == 3


def test_to_json_names_each_report_by_label():
    a, b = report("a", [row(1, 10.0, 1.0)]), report("b", [row(1, 10.0, 1.0)])
    data = build_comparison([a, b], ["first", "second"]).to_json()
    assert [(r["label"], r["source"], r["run_id"], r["model"], r["run_status"]) for r in data["reports"]] == [
        ("first", "a.json", "run-a", "m", "complete"),
        ("second", "b.json", "run-b", "m", "complete"),
    ]
    assert data["labels"] == ["first", "second"] and data["threshold"] is None
    assert data["perf"][0]["values"] == [10.0, 10.0]


def test_to_json_carries_every_identity_field_of_each_report():
    full = report(
        "full",
        [row(1, 10.0, 1.0)],
        Backend="GPU",
        **{
            "Graph Compile": {"Engine": "torch-eager", "Compile Precision": "FP16"},
            "Host": {"cpu": "AMD EPYC (avx2)", "accelerator": "NVIDIA H200"},
            "Weights": {"kind": "synthetic"},
        },
    )
    full.started = "2026-12-01T10:00:00+00:00"
    bare = RunReport(model="m", backend="", precision="FP32", dataset=None, run_id="")
    first, second = build_comparison([full, bare], ["full", "bare"]).to_json()["reports"]
    assert first == {
        "label": "full",
        "source": "full.json",
        "format": full.format,
        "model": "m",
        "backend": "GPU",
        "engine": "torch-eager",
        "dataset": "open_squad",
        "precision": "FP16",
        "weights_kind": "synthetic",
        "host_cpu": "AMD EPYC (avx2)",
        "host_device": "NVIDIA H200",
        "run_id": "run-full",
        "run_status": "complete",
        "started": "2026-12-01T10:00:00+00:00",
    }
    assert first["format"] and {k: second[k] for k in ("source", "backend", "engine", "run_id", "host_device")} == {
        "source": None,
        "backend": None,
        "engine": None,
        "run_id": None,
        "host_device": None,
    }
