"""LLM reports read back and compared: llm_perf's format and ours through RunReport.from_dict, the kept
per-request samples beside a run, compare's noise-aware verdicts on TTFT, TPOT and token throughput, the run
page's table and plots, and the leaderboard and dashboard listing LLM runs."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from core.common.statistics import mean_interval
from core.measure.llm_serving import Load, Request, Served
from core.measure.llm_stats import llm_row
from core.reporting.compare import main as compare_main
from core.reporting.comparison import build_comparison
from core.reporting.dashboard import render_dashboard
from core.reporting.html_report import comparison_html, render_run_html
from core.reporting.leaderboard import collect, leaderboard_tables
from core.reporting.llm_tables import llm_table
from core.reporting.pooled import pool_runs
from core.reporting.report import RunReport
from core.reporting.report_io import LLM_SAMPLES, read_report, samples_file
from core.reporting.sections import Accuracy
from core.reporting.summary import main as summary_main
from core.reporting.writer import write_report

MS = 1_000_000

LLM_PERF_REPORT = {  # only llm_perf's keys, as its reporter writes them
    "Model": "chatglm2-torch-fp16-6b",
    "Backend": "GPU",
    "Host Info": "Intel(R) Xeon(R) Platinum 8260 CPU @ 2.40GHz",
    "Version": "1.0.0",
    "Execution Date": "2024-03-01 10:00:00",
    "Accuracy": {
        "PPL": [3.1, 2.9],
        "Token Diff": {"Max Difference": [0.1, 0.2]},
        "Logits Diff": {
            "Max Difference": 0.5,
            "Mean Squared Error": 0.001,
            "Mean Absolute Error": 0.02,
            "Cosine Similarity": 0.9999,
        },
    },
    "Performance": [
        {
            "TP Size": 1,
            "Batch Size": bs,
            "Input Tokens": 256,
            "client": {
                "First Token Latency(AVG)": 50.0 * bs,
                "First Token Latency(P90)": 55.0 * bs,
                "Per Token Latency(AVG)": 20.0 + bs,
                "Per Token Latency(P90)": 22.0 + bs,
            },
            "server": {
                "Context Wait Time(AVG)": 1.0,
                "Context Wait Time(P90)": 1.2,
                "Context Model Time(AVG)": 45.0,
                "Context Model Time(P90)": 48.0,
                "Decode Wait Time(AVG)": 0.5,
                "Decode Wait Time(P90)": 0.6,
                "Decode Model Time(AVG)": 19.0,
                "Decode Model Time(P90)": 21.0,
            },
            "Token Throughput": 45.0 * bs,
            "Request Number": 12 * bs,
            "QPS": 0.19 * bs,
        }
        for bs in (1, 4)
    ],
}


def served(seed: int, *, tpot_ms: float = 10.0, ttft_ms: float = 20.0, requests: int = 40, bs: int = 2) -> Served:
    """A load point's requests with lognormal TTFTs and token gaps (ns), as the server records them."""
    rng = np.random.default_rng(seed)
    out, now, done = 8, 0, []
    for i in range(requests):
        arrival = now
        prefill_end = arrival + int(rng.lognormal(math.log(ttft_ms * MS), 0.2))
        times = [prefill_end]
        for _ in range(out - 1):
            times.append(times[-1] + int(rng.lognormal(math.log(tpot_ms * MS), 0.2)))
        done.append(
            Request(i % bs, tuple(range(16)), arrival, arrival + MS // 10, prefill_end, times, list(range(out)))
        )
        now = times[-1]
    return Served(Load(bs, 16, out, now / 1e9), done, 0, now, "perf_time")


def llm_report(run_id: str, *points: Served, started: str = "2026-12-01T10:00:00+00:00") -> RunReport:
    """Our LLM report of `points`, with the per-request samples the writer keeps beside it."""
    report = RunReport(
        model="tiny-llama", backend="CPU", precision="FP32", dataset=None, run_id=run_id, started=started
    )
    report.sections["Kind"] = "llm"
    report.status = "complete"
    for point in points:
        row = llm_row(point)
        report.llm_rows.append(row)
        report.llm_samples[row.key] = point.samples()
    return report


def kept(tmp_path, report: RunReport):
    """Write `report` as a run writes it, and read it back as compare does."""
    return read_report(write_report(report, tmp_path))[1]


# ---------------------------------------------------------------- reading back
def test_llm_perf_report_reads_back_with_its_figures():
    report = RunReport.from_dict(json.loads(json.dumps(LLM_PERF_REPORT)))
    assert report.is_llm and report.format == "bytemlperf" and report.performance == []
    assert [row.point[:3] for row in report.llm_rows] == [(1, 1, 256), (1, 4, 256)]
    row = report.llm_rows[1]
    # No distributions in llm_perf's rows: the judged averages come from its client block.
    assert row.figure("TTFT.AVG") == 200.0 and row.figure("TPOT.AVG") == 24.0 and row.figure("TTFT.P99") is None
    assert (row.token_throughput, row.request_number, row.qps) == (180.0, 48, 0.76)
    assert row.number("server.Decode Model Time(AVG)") == 19.0
    assert report.execution_date == "2024-03-01T10:00:00" and report.host_info.startswith("Intel")
    assert report.accuracy.to_dict()["Logits Diff"]["Cosine Similarity"] == 0.9999
    # ... and written again, llm_perf's keys keep their values.
    again = RunReport.from_dict(report.to_dict())
    written = report.to_dict()["Performance"][1]
    for key in ("client", "server", "Token Throughput", "Request Number", "QPS", "TP Size", "Input Tokens"):
        assert written[key] == LLM_PERF_REPORT["Performance"][1][key]
    assert [r.figure("TPOT.AVG") for r in again.llm_rows] == [21.0, 24.0]


def test_our_report_and_its_samples_read_back(tmp_path):
    report = llm_report("20261201T100000-aaaaaa", served(1), served(2, bs=4))
    back = kept(tmp_path, report)
    assert back.is_llm and back.format == "perfbench"
    assert [r.to_dict() for r in back.llm_rows] == [r.to_dict() for r in report.llm_rows]
    assert back.llm_samples == {key: dict(value) for key, value in report.llm_samples.items()}
    assert samples_file(back, LLM_SAMPLES).name == "llm.npz" and samples_file(back, LLM_SAMPLES).is_file()
    # llm_perf's keys are a subset of ours, with the same values
    row = back.llm_rows[0]
    assert row.to_dict()["client"]["Per Token Latency(AVG)"] == pytest.approx(row.figure("TPOT.AVG"), rel=1e-3)
    # The latest result finds the kept run's samples too.
    latest = read_report(tmp_path / "CPU" / "tiny-llama" / "result-fp32.json")[1]
    assert latest.llm_samples.keys() == back.llm_samples.keys()


def test_samples_that_do_not_match_their_row_are_noted_and_ignored(tmp_path):
    path = write_report(llm_report("20261201T100000-aaaaaa", served(1)), tmp_path)
    data = json.loads(path.read_text())
    data["Performance"][0]["Request Number"] = 39
    path.write_text(json.dumps(data))
    back = read_report(path)[1]
    assert back.llm_samples == {}
    assert any("do not match" in note for note in back.read_notes)


# ---------------------------------------------------------------- compare
def verdicts(cmp) -> dict[tuple[str, str], str | None]:
    return {(row.point, row.metric): row.verdicts[1].word if row.verdicts[1] else None for row in cmp.perf}


def test_a_clearly_slower_tpot_is_judged_slower_and_regresses(tmp_path):
    base = kept(tmp_path / "a", llm_report("20261201T100000-aaaaaa", served(1)))
    slow = kept(tmp_path / "b", llm_report("20261201T110000-bbbbbb", served(2, tpot_ms=15.0)))
    cmp = build_comparison([base, slow], ["a", "b"], 0.05)
    found = verdicts(cmp)
    point = "bs 2, 16 in, 8 out"
    assert found[(point, "TPOT.AVG")] == "slower"
    assert found[(point, "Token Throughput")] == "slower"
    assert found[(point, "TTFT.AVG")] == "within noise"  # TTFTs drawn alike
    assert found[(point, "TPOT.P99")] is None  # 40 requests do not back a P99: shown, never judged
    assert found[(point, "Request Number")] is None  # shown beside them, never judged
    assert next(row for row in cmp.perf if row.metric == "TPOT.P99").unbacked == [True, True]
    assert {r.metric for r in cmp.regressions} == {"TPOT.AVG", "Token Throughput"}
    # ... and the other way round it is faster, not a regression.
    back = verdicts(build_comparison([slow, base], ["b", "a"], 0.05))
    assert back[(point, "TPOT.AVG")] == "faster"


def test_identical_sides_are_within_noise(tmp_path):
    a = kept(tmp_path / "a", llm_report("20261201T100000-aaaaaa", served(1)))
    b = kept(tmp_path / "b", llm_report("20261201T110000-bbbbbb", served(1)))
    cmp = build_comparison([a, b], ["a", "b"], 0.05)
    judged = {key: word for key, word in verdicts(cmp).items() if word is not None}
    assert sorted(metric for _, metric in judged) == ["TPOT.AVG", "TTFT.AVG", "Token Throughput"]
    assert set(judged.values()) == {"within noise"}
    assert cmp.regressions == []


def test_compare_cli_exits_by_the_threshold_and_refuses_mixing(tmp_path, capsys):
    a = write_report(llm_report("20261201T100000-aaaaaa", served(1)), tmp_path / "a")
    b = write_report(llm_report("20261201T110000-bbbbbb", served(2, tpot_ms=15.0)), tmp_path / "b")
    assert compare_main([str(a), str(b), "--threshold", "5%"]) == 1
    assert "TPOT.AVG rise" in capsys.readouterr().out
    assert compare_main([str(a), str(a), "--threshold", "5%"]) == 0
    capsys.readouterr()
    general = tmp_path / "general.json"
    general.write_text(json.dumps({"Model": "m", "Performance": [{"BS": 1, "QPS": 10.0, "AVG Latency": 100.0}]}))
    assert compare_main([str(a), str(general)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "LLM report" in error
    assert compare_main([f"{a},{general}", str(b)]) == 2
    assert "mix LLM and other reports" in capsys.readouterr().err


def test_several_runs_a_side_are_pooled_and_tested_over_the_runs(tmp_path):
    sides = [
        [llm_report(f"20261201T1{side}000{i}-aaaaaa", served(10 * side + i, tpot_ms=tpot)) for i in range(3)]
        for side, tpot in ((1, 10.0), (2, 13.0))
    ]
    base, other = (pool_runs(runs, f"side {i}") for i, runs in enumerate(sides))
    row = base.llm_rows[0]
    runs_tpot = [r.llm_rows[0].figure("TPOT.AVG") for r in sides[0]]
    assert row.figure("TPOT.AVG") == pytest.approx(np.mean(runs_tpot))
    assert row.token_throughput_interval() == pytest.approx(
        mean_interval([r.llm_rows[0].token_throughput for r in sides[0]])
    )
    assert row.tpot.count == 40 and row.unbacked("TPOT.P99")
    cmp = build_comparison([base, other], ["a", "b"], 0.05)
    tpot = next(r for r in cmp.perf if r.metric == "TPOT.AVG").verdicts[1]
    assert (tpot.word, tpot.method) == ("slower", "Welch t on 3 and 3 runs")
    assert "TPOT.AVG" in {r.metric for r in cmp.regressions}


def test_llm_perf_reports_without_samples_are_judged_by_the_threshold(tmp_path):
    slower = json.loads(json.dumps(LLM_PERF_REPORT))
    for row in slower["Performance"]:
        row["client"]["Per Token Latency(AVG)"] *= 1.3
    base, other = RunReport.from_dict(LLM_PERF_REPORT), RunReport.from_dict(slower)
    cmp = build_comparison([base, other], ["theirs", "slower"], 0.05)
    tpot = [row for row in cmp.perf if row.metric == "TPOT.AVG"]
    assert [row.verdicts[1].text() for row in tpot] == ["untested (no samples)"] * 2
    assert [r.metric for r in cmp.regressions] == ["TPOT.AVG", "TPOT.AVG"]


# ---------------------------------------------------------------- tables and pages
def test_llm_table_lists_each_point_and_marks_failures_and_thin_tails():
    report = llm_report("20261201T100000-aaaaaa", served(1), served(2, bs=4))
    report.llm_rows[1].status, report.llm_rows[1].error = "failed", "out of memory"
    table = llm_table("t", report.llm_rows)
    ok, failed = table.rows
    column = dict(zip(table.headers, ok))
    assert column["BS"].text == "2" and column["requests"].text == "40" and column["stop"].text == "perf_time"
    assert column["TPOT ms"].text == f"{report.llm_rows[0].tpot.avg:.2f}"
    assert column["TTFT P99"].text.startswith("~")  # 40 requests: an unbacked P99
    assert re.fullmatch(r"[\d.]+ \[[\d.]+–[\d.]+\]", column["tokens/s [95%]"].text)
    assert failed[3].bad and "out of memory" in failed[3].text


def test_run_page_shows_the_llm_table_and_plots():
    report = llm_report("20261201T100000-aaaaaa", served(1), served(2, bs=4))
    page = render_run_html(report.to_dict())
    alts = re.findall(r'<img class="plot" alt="([^"]+)"', page)
    assert alts == ["TTFT against batch size", "TPOT against batch size", "Token throughput against TPOT"]
    assert "Performance per load point" in page and "QPS means requests per second" in page
    theirs = render_run_html(LLM_PERF_REPORT)
    assert len(re.findall(r'<img class="plot"', theirs)) == 3
    general = render_run_html({"Model": "m", "Performance": [{"BS": 1, "QPS": 10.0, "AVG Latency": 100.0}]})
    assert "TTFT" not in general and "QPS vs batch size" in general


def test_comparison_page_draws_both_sides():
    a = llm_report("20261201T100000-aaaaaa", served(1))
    b = llm_report("20261201T110000-bbbbbb", served(2, tpot_ms=15.0))
    page = comparison_html(build_comparison([a, b], ["a", "b"], None))
    assert len(re.findall(r'<img class="plot"', page)) == 3 and "TPOT.AVG" in page


# ---------------------------------------------------------------- summary and dashboard
def test_summary_and_dashboard_list_llm_runs_beside_general_ones(tmp_path, capsys):
    for run_id, started, tpot in (
        ("20261201T100000-aaaaaa", "2026-12-01T10:00:00+00:00", 10.0),
        ("20261202T100000-bbbbbb", "2026-12-02T10:00:00+00:00", 15.0),
    ):
        report = llm_report(run_id, served(1, tpot_ms=tpot), started=started)
        report.accuracy = Accuracy.from_dict({"Logits Diff": {"Cosine Similarity": 0.9999865}, "Greedy Agreement": 1.0})
        write_report(report, tmp_path)
    general = tmp_path / "CPU" / "m" / "result-fp32.json"
    general.parent.mkdir(parents=True)
    general.write_text(json.dumps({"Model": "m", "Performance": [{"BS": 1, "QPS": 10.0, "AVG Latency": 100.0}]}))
    groups, warnings = collect(tmp_path, include_runs=True)
    by_model = {g.model: g for g in groups}
    llm = by_model["tiny-llama"]
    assert llm.is_llm and llm.points == ["bs 2, 16 in, 8 out"] and not by_model["m"].is_llm
    assert [e.run_id for e in llm.entries] == ["20261201T100000-aaaaaa", "20261202T100000-bbbbbb"]  # fastest first
    tables = {t.title: t for t in leaderboard_tables(groups)}
    first = tables["tiny-llama: token throughput and TPOT per load point"].rows[0]
    assert first[5].strong and re.fullmatch(r"[\d.]+ tok/s, TPOT [\d.]+ ms", first[5].text)
    assert first[6].text == "cosine 0.999987 / Greedy Agreement 1.00"
    assert "m: QPS per batch size" in tables
    assert summary_main([str(tmp_path), "--all", "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert "tok/s, TPOT" in out and "| 10.00 |" in out
    assert summary_main([str(tmp_path), "--format", "json"]) == 0
    listed = {m["model"]: m for m in json.loads(capsys.readouterr().out)["models"]}
    tokens = listed["tiny-llama"]["entries"][0]["tokens"]["bs 2, 16 in, 8 out"]
    assert tokens["Token Throughput"] == llm.entries[1].tokens["bs 2, 16 in, 8 out"][0]  # the latest run only
    page = render_dashboard(groups, warnings, tmp_path / "dash.html", root=tmp_path, threshold=0.05)
    assert "tiny-llama: token throughput over time" in page
    assert "TPOT.AVG rise" in page  # the later run's slower TPOT, by compare's rule


def test_two_sweeps_say_which_side_carries_more_load_within_the_slo():
    def sweep(run_id: str, met_up_to: float) -> RunReport:
        report = llm_report(run_id, *(served(seed) for seed in range(3)))
        for rate, row in zip((1.0, 2.0, 4.0), report.llm_rows):
            row.request_rate = row.achieved_rate = rate
            row.input_tokens = int(rate * 10)  # each rate its own load point
            row.slo_met = rate <= met_up_to
            row.slo_upper_met = row.slo_met
        return report

    cmp = build_comparison([sweep("a", 2.0), sweep("b", 4.0)], ["A", "B"])
    assert cmp.capacity[0].startswith("A: within the SLO, 2 req/s") and cmp.capacity[1].startswith(
        "B: within the SLO, 4"
    )
    assert cmp.capacity[-1] == "within the SLO: B carries the most load"
    cmp = build_comparison([sweep("a", 0.5), sweep("b", 0.5)], ["A", "B"])
    assert "no load point met the SLO" in cmp.capacity[0] and cmp.capacity[-1] == "within the SLO: no side carries more"
    plain = build_comparison([llm_report("c", served(1)), llm_report("d", served(2))], ["C", "D"])
    assert plain.capacity == []  # no SLO judged: nothing to say
