"""A compare that knows noise: the tests behind "within noise" / "faster" / "slower (p = …)", the false-alarm
rate on runs drawn from one distribution, runs 20% apart flagged, and the kept samples read back beside a report."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from core.measure.timing import LatencyStats, Measurement
from core.reporting.compare import main as compare_main
from core.reporting.comparison import build_comparison
from core.reporting.report import RunReport
from core.reporting.report_io import read_report, samples_file
from core.reporting.schema import PerfRow
from core.reporting.significance import (
    ALPHA,
    block_values,
    interval_test,
    judge_change,
    rank_test,
    rank_test_can_reject,
    welch_from_rows,
)
from core.reporting.writer import write_report

MS = 1_000_000


def latencies(rng: np.random.Generator, n: int, median_ms: float = 10.0, sigma: float = 0.2) -> list[int]:
    """Skewed, heavy-tailed latencies as calls have them (lognormal), in ns."""
    return [int(v) for v in rng.lognormal(math.log(median_ms * MS), sigma, n)]


def run_report(samples_ns: list[int], run_id: str = "20261201T000000-aaaaaa", bs: int = 1) -> RunReport:
    """A report with one row built by the measuring code from `samples_ns` (single client, back to back)."""
    completions = tuple(int(v) for v in np.cumsum(samples_ns))
    measurement = Measurement(
        batch_size=bs,
        latency=LatencyStats.from_ns(samples_ns),
        measured_seconds=completions[-1] / 1e9,
        warmup_iterations=3,
        warmup_seconds=0.1,
        stop_reason="enough iterations and time",
        samples_ns=tuple(samples_ns),
        completions_ns=completions,
    )
    report = RunReport(model="m", backend="CPU", precision="FP32", dataset=None, run_id=run_id)
    report.performance.append(measurement.perf_row())
    report.samples[bs] = tuple(samples_ns)
    return report


def compared(a: RunReport, b: RunReport, threshold: float | None = 0.05):
    cmp = build_comparison([a, b], ["a", "b"], threshold)
    return cmp, {row.metric: row.verdicts[1] for row in cmp.perf if row.verdicts}


# ---------------------------------------------------------------- the tests themselves
def test_rank_test_matches_a_direct_normal_approximation_of_u():
    rng = np.random.default_rng(1)
    a, b = rng.normal(10, 1, 60), rng.normal(10.6, 1, 80)  # continuous: no ties
    u = sum((x > y) + 0.5 * (x == y) for x in a for y in b)
    mean, sd = len(a) * len(b) / 2, math.sqrt(len(a) * len(b) * (len(a) + len(b) + 1) / 12)
    z = (abs(u - mean) - 0.5) / sd  # continuity-corrected, as scipy's asymptotic method
    assert rank_test(a, b) == pytest.approx(math.erfc(z / math.sqrt(2)), rel=1e-9)


def test_blocks_are_consecutive_calls_reduced_to_one_value_each():
    calls = list(range(1, 21))  # 20 calls: 10 blocks of 2
    assert block_values(calls, "mean", 1).tolist() == [1.5 + 2 * i for i in range(10)]
    assert block_values(calls, 50, 1).tolist() == [1.5 + 2 * i for i in range(10)]
    assert len(block_values(calls, 90, 10)) == 2  # a P90 block needs 10 calls
    assert block_values(calls, 99, 100).size == 0
    assert block_values(list(range(1000)), 99, 100)[0] == pytest.approx(np.percentile(np.arange(100), 99))


@pytest.mark.parametrize("n, m, can", [(4, 4, False), (5, 5, True), (3, 10, True), (2, 10, False), (10, 10, True)])
def test_a_rank_test_that_could_never_reach_alpha_is_not_run(n, m, can):
    # The smallest two-sided p of Mann-Whitney U is 2 / C(n + m, n): 4 vs 4 gives 0.029, 5 vs 5 gives 0.0079.
    assert rank_test_can_reject(n, m) is can
    if can:
        assert rank_test(np.arange(n, dtype=float), np.arange(n, n + m, dtype=float)) < ALPHA


def test_few_calls_of_a_tail_percentile_are_untested_not_within_noise():
    rng = np.random.default_rng(9)
    base, slow = run_report(latencies(rng, 400)), run_report(latencies(rng, 400, median_ms=20.0))
    cmp, verdicts = compared(base, slow)
    # 400 calls make 4 blocks of 100: too few for a P99 test that can decide; P90 has 10 blocks of 40.
    assert not verdicts["P99 Latency"].tested and "too few calls" in verdicts["P99 Latency"].text()
    assert verdicts["P90 Latency"].word == "slower"
    # Its P99 doubled, far beyond the threshold, but samples that cannot decide never make a regression.
    assert "P99 Latency" not in {r.metric for r in cmp.regressions} and "P90 Latency" in {
        r.metric for r in cmp.regressions
    }


def test_welch_from_rows_is_the_textbook_formula():
    rows = [
        PerfRow(bs=1, avg_latency=10.0, std_latency=2.0, iterations=50),
        PerfRow(bs=1, avg_latency=11.0, std_latency=3.0, iterations=40),
    ]
    se = math.sqrt(2.0**2 / 50 + 3.0**2 / 40)
    df = se**4 / ((2.0**2 / 50) ** 2 / 49 + (3.0**2 / 40) ** 2 / 39)
    from scipy.stats import t

    assert welch_from_rows(*rows) == pytest.approx(2 * t.sf(1.0 / se, df), rel=1e-9)
    assert welch_from_rows(rows[0], PerfRow(bs=1, avg_latency=11.0)) is None  # no spread, no test


def test_interval_test_reads_the_intervals_as_normal_ones():
    # Half-widths 1.96 -> standard errors 1: a difference of 2 is z = 2 / sqrt(2).
    p = interval_test(10.0, (8.04, 11.96), 12.0, (10.04, 13.96))
    assert p == pytest.approx(math.erfc(2 / math.sqrt(2) / math.sqrt(2)), rel=1e-9)
    assert interval_test(10.0, (9.9, 10.1), 12.0, (11.9, 12.1)) < 1e-10
    assert interval_test(10.0, None, 12.0, (11.9, 12.1)) is None


# ---------------------------------------------------------------- false alarms and real changes
def test_runs_from_one_distribution_are_within_noise_at_the_expected_rate():
    rng = np.random.default_rng(7)
    seeds, avg_alarms, any_alarms, regressions = 300, 0, 0, 0
    for _ in range(seeds):
        cmp, verdicts = compared(run_report(latencies(rng, 300)), run_report(latencies(rng, 300)))
        avg_alarms += verdicts["AVG Latency"].significant
        any_alarms += any(v.significant for v in verdicts.values())
        regressions += bool(cmp.regressions)
    # One test at ALPHA = 1%: 3 false alarms expected in 300; 10 or more happen with probability below 0.1%.
    assert avg_alarms < 10
    # Five tests per comparison (QPS and AVG share one): at most 4 independent ones, 12 expected.
    assert any_alarms < 20
    # A regression needs a significant change *and* one beyond the 5% threshold: rarer still.
    assert regressions <= any_alarms and regressions < 10


def test_runs_20_percent_apart_are_flagged_slower_on_every_backed_number():
    rng = np.random.default_rng(3)
    base, slow = run_report(latencies(rng, 1500)), run_report(latencies(rng, 1500, median_ms=12.0))
    cmp, verdicts = compared(base, slow)
    for metric in ("QPS", "AVG Latency", "P50 Latency", "P90 Latency", "P99 Latency"):
        assert verdicts[metric].word == "slower" and verdicts[metric].p < ALPHA, metric
    assert {r.metric for r in cmp.regressions} == {"QPS", "AVG Latency", "P50 Latency", "P90 Latency", "P99 Latency"}
    _, reverse = compared(slow, base)
    assert all(v.word == "faster" for v in reverse.values())


def test_a_change_beyond_the_threshold_within_noise_is_no_regression():
    rng = np.random.default_rng(5)
    # Eight calls each with a wide spread: an 8% difference of means is well within what such runs scatter.
    base, other = run_report(latencies(rng, 8, sigma=0.5)), run_report(latencies(rng, 8, sigma=0.5))
    base.performance[0].avg_latency, other.performance[0].avg_latency = 10.0, 10.8
    _, verdicts = compared(base, other)
    assert verdicts["AVG Latency"].word == "within noise"
    cmp, _ = compared(base, other)
    assert not [r for r in cmp.regressions if r.metric == "AVG Latency"]


def test_a_tail_only_slowdown_is_caught_by_the_tail_not_by_the_median():
    rng = np.random.default_rng(11)
    base = latencies(rng, 2000, sigma=0.05)
    tail = latencies(rng, 2000, sigma=0.05)
    tail[::40] = [v * 3 for v in tail[::40]]  # 2.5% of calls three times slower
    _, verdicts = compared(run_report(base), run_report(tail))
    assert verdicts["P99 Latency"].word == "slower"
    assert verdicts["P50 Latency"].word == "within noise"


def test_without_samples_latency_uses_the_rows_spread_and_the_rest_is_untested():
    rows = [
        PerfRow(bs=1, qps=100.0, avg_latency=10.0, std_latency=0.5, p50_latency=10.0, iterations=200),
        PerfRow(bs=1, qps=80.0, avg_latency=12.5, std_latency=0.5, p50_latency=12.5, iterations=200),
    ]
    assert judge_change("AVG Latency", *rows, None, None, higher_is_better=False).word == "slower"
    p50 = judge_change("P50 Latency", *rows, None, None, higher_is_better=False)
    assert not p50.tested and p50.text() == "untested (no samples)"
    reports = [RunReport(model="m", backend="CPU", precision="FP32", dataset=None, performance=[r]) for r in rows]
    cmp = build_comparison(reports, ["a", "b"], threshold=0.05)
    # Untested numbers beyond the threshold are still regressions (ByteMLPerf's reports carry no samples).
    assert {r.metric for r in cmp.regressions} == {"QPS", "AVG Latency", "P50 Latency"}


# ---------------------------------------------------------------- samples kept and read back
def test_samples_written_beside_the_run_are_read_back_with_it(tmp_path):
    rng = np.random.default_rng(2)
    report = run_report(latencies(rng, 50), run_id="20261201T101010-abcdef")
    report.status = "complete"
    latest = write_report(report, tmp_path)
    for path in (latest, tmp_path / "CPU/m/runs/20261201T101010-abcdef.json"):
        _, back = read_report(path)
        assert back.samples == report.samples and not back.read_notes
        assert samples_file(back) == tmp_path / "CPU/m/runs/20261201T101010-abcdef-samples/latency.npz"


def test_samples_that_do_not_match_the_rows_are_ignored_with_a_note(tmp_path):
    rng = np.random.default_rng(2)
    report = run_report(latencies(rng, 50), run_id="20261201T101010-abcdef")
    report.samples[1] = report.samples[1][:-1]  # one call short of the row's 50 iterations
    _, back = read_report(write_report(report, tmp_path))
    assert back.samples == {} and "do not match" in back.read_notes[0]


def test_a_run_id_from_a_file_never_becomes_a_path(tmp_path):
    report = RunReport(model="m", backend="CPU", precision="FP32", dataset=None, run_id="../../etc/x")
    report.source = tmp_path / "result-fp32.json"
    assert samples_file(report) is None


def test_compare_cli_tests_on_kept_samples_and_exits_by_them(tmp_path, capsys):
    rng = np.random.default_rng(4)
    paths = []
    for i, median in enumerate((10.0, 10.0, 12.0)):
        report = run_report(latencies(rng, 300, median_ms=median), run_id=f"20261201T10101{i}-abcde{i}")
        report.status = "complete"
        write_report(report, tmp_path)
        paths.append(tmp_path / f"CPU/m/runs/{report.run_id}.json")
    assert compare_main([str(paths[0]), str(paths[1]), "--threshold", "5%", "--format", "json"]) == 0
    same = json.loads(capsys.readouterr().out)
    qps = next(r for r in same["perf"] if r["metric"] == "QPS")
    assert qps["verdicts"][1]["word"] == "within noise" and "Mann-Whitney" in qps["verdicts"][1]["method"]
    assert compare_main([str(paths[0]), str(paths[2]), "--threshold", "5%"]) == 1
    out = capsys.readouterr().out
    assert "slower (p = " in out and "regression" in out


def test_a_change_within_the_drift_the_runs_show_is_within_noise_though_the_blocks_rank_apart():
    rng = np.random.default_rng(12)
    # The base run's machine slows from 10 to 13 ms a call over its window (a neighbour's load coming in);
    # the other run sits at 13.5 ms throughout: every block of it ranks above every block of the base.
    base = [v for level in np.linspace(10.0, 13.0, 10) for v in latencies(rng, 100, median_ms=level, sigma=0.05)]
    other = latencies(rng, 1000, median_ms=13.5, sigma=0.05)
    a, b = block_values(base, "mean", 1), block_values(other, "mean", 1)
    assert rank_test(a, b) < 1e-3
    cmp, verdicts = compared(run_report(base), run_report(other))
    assert verdicts["AVG Latency"].word == "within noise" and verdicts["AVG Latency"].p > ALPHA
    assert not [r for r in cmp.regressions if r.metric in ("QPS", "AVG Latency")]
    # The same 17% change on a machine that held its speed in both runs is a change.
    steady = latencies(rng, 1000, median_ms=11.5, sigma=0.05)
    _, verdicts = compared(run_report(steady), run_report(other))
    assert verdicts["AVG Latency"].word == "slower" and verdicts["QPS"].word == "slower"
