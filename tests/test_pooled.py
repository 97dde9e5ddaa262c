"""Several runs as one side of a comparison (`compare A1,A2,A3 B1,B2,B3`): the pooled rows, the test over
runs, its false-alarm rate where runs shift between each other, and the command around it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from core.common.errors import UserError
from core.common.statistics import mean_interval
from core.reporting.compare import main as compare_main
from core.reporting.comparison import build_comparison
from core.reporting.pooled import pool_runs
from core.reporting.report import RunReport
from core.reporting.schema import PerfRow
from core.reporting.significance import ALPHA, judge_change, runs_test
from core.reporting.writer import write_report
from tests.test_significance import latencies, run_report


def shifted_runs(rng, count: int, median_ms: float, shift: float, start: int = 0) -> list[RunReport]:
    """Runs steady inside their window whose level moves between runs by a lognormal factor of sd `shift`,
    as a shared machine's does between windows."""
    runs = []
    for i in range(count):
        level = median_ms * math.exp(rng.normal(0, shift))
        samples = latencies(rng, 200, median_ms=level, sigma=0.05)
        runs.append(run_report(samples, run_id=f"20261201T1000{start + i:02d}-r"))
    return runs


@pytest.mark.parametrize(
    "a, b",
    [
        ([100.0, 104.0, 97.0, 101.0], [90.0, 95.0, 93.0]),
        ([100.0, 104.0], [90.0, 95.0]),  # two runs a side are already several
        ([100.0, 100.0, 100.0], [90.0, 95.0, 93.0]),  # one side without spread: the other's still counts
    ],
)
def test_welch_over_runs_is_the_textbook_formula(a, b):
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    t = (np.mean(a) - np.mean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    from scipy.stats import t as student

    p, method = runs_test(a, b)
    assert p == pytest.approx(2 * student.sf(abs(t), df), rel=1e-12)
    assert method == f"Welch t on {len(a)} and {len(b)} runs"


def test_one_run_against_several_asks_whether_it_lies_where_another_of_them_would():
    from scipy.stats import t as student

    several = [100.0, 104.0, 97.0, 101.0, 99.0]
    spread = np.std(several, ddof=1) * math.sqrt(1 + 1 / 5)
    expected = 2 * student.sf(abs(88.0 - np.mean(several)) / spread, 4)
    for a, b in ((several, [88.0]), ([88.0], several)):  # either side may be the single run
        p, method = runs_test(a, b)
        assert p == pytest.approx(expected, rel=1e-12)
        assert method == "t on 1 run against the spread of 5 runs"


def test_one_pooled_side_tests_the_other_sides_single_run_against_its_runs():
    several = [100.0, 104.0, 97.0, 101.0, 99.0]
    single = PerfRow(bs=1, qps=80.0)
    pooled = PerfRow(bs=1, qps=float(np.mean(several)))
    expected = runs_test(several, [80.0])
    assert expected[0] < ALPHA
    for base, other, runs in ((pooled, single, {"base_runs": several}), (single, pooled, {"other_runs": several})):
        verdict = judge_change("QPS", base, other, None, None, higher_is_better=True, **runs)
        assert (verdict.p, verdict.method) == expected
        assert verdict.word == ("slower" if base is pooled else "faster")
    # a single run that did not measure the number leaves nothing to test against
    verdict = judge_change("QPS", PerfRow(bs=1), pooled, None, None, higher_is_better=True, other_runs=several)
    assert (verdict.word, verdict.p, verdict.method) == ("untested", None, "too few runs to decide")


def test_runs_without_spread_or_with_one_run_a_side():
    assert runs_test([5.0], [6.0]) == (None, "too few runs to decide")
    assert runs_test([], [6.0, 7.0]) == (None, "too few runs to decide")
    assert runs_test([5.0, 5.0], [5.0, 5.0])[0] == 1.0
    assert runs_test([5.0, 5.0], [6.0, 6.0])[0] == 0.0
    assert runs_test([5.0], [6.0, 6.0])[0] == 0.0
    assert runs_test([6.0], [6.0, 6.0])[0] == 1.0


def test_mean_interval_is_students_t_and_covers_the_mean_at_its_level():
    from scipy.stats import t as student

    assert mean_interval([1, 2]) == pytest.approx((0.0, 1.5 + student.ppf(0.975, 1) * math.sqrt(0.5) / math.sqrt(2)))
    values = [10.0, 12.0, 11.0, 13.0]
    half = student.ppf(0.975, 3) * np.std(values, ddof=1) / 2
    assert mean_interval(values) == pytest.approx((11.5 - half, 11.5 + half))
    assert mean_interval([1.0, 1.0, 400.0])[0] == 0.0  # a rate's interval stops at zero
    rng = np.random.default_rng(0)
    hits = sum(low <= 50 <= high for low, high in (mean_interval(rng.normal(50, 5, 5)) for _ in range(2000)))
    assert 0.93 <= hits / 2000 <= 0.97


def test_a_pooled_row_is_the_runs_mean_with_the_interval_over_runs():
    rng = np.random.default_rng(3)
    runs = shifted_runs(rng, 3, 10.0, 0.05)
    runs[1].performance[0].iterations = 150  # the run with the fewest calls sets how far a tail is backed
    pooled = pool_runs(runs, "a,b,c")
    row, rows = pooled.perf_by_bs[1], [r.perf_by_bs[1] for r in runs]
    assert row.qps == pytest.approx(np.mean([r.qps for r in rows]))
    assert row.p99_latency == pytest.approx(np.mean([r.p99_latency for r in rows]))
    assert row.min_latency == pytest.approx(np.mean([r.min_latency for r in rows]))
    assert row.qps_interval() == pytest.approx(mean_interval([r.qps for r in rows]))
    assert row.iterations == 150 and row.warmup_iterations == rows[0].warmup_iterations
    assert rows[0].p90_upper is not None and row.p90_upper is None and row.p99_upper is None
    assert pooled.repeats == tuple(runs) and pooled.samples == {}
    assert pooled.run_values(1, "QPS") == tuple(r.qps for r in rows)
    assert runs[0].run_values(1, "QPS") is None  # a single run's test is on its samples
    assert pooled.read_notes == ["the mean of 3 runs: 20261201T100000-r, 20261201T100001-r, 20261201T100002-r"]
    assert pool_runs(runs[:1], "a") is runs[0]
    runs[0].run_id, runs[2].performance[0].iterations = "", None  # a ByteMLPerf report has neither
    pooled = pool_runs(runs, "a,b,c")
    assert pooled.read_notes[0] == "the mean of 3 runs: ?, 20261201T100001-r, 20261201T100002-r"
    assert pooled.perf_by_bs[1].iterations is None


def test_a_batch_size_some_runs_missed_is_pooled_from_those_that_measured_it():
    rng = np.random.default_rng(5)
    runs = shifted_runs(rng, 3, 10.0, 0.05)
    runs[2].performance[0] = PerfRow(bs=1, status="failed", error="out of memory")
    runs[0].performance.append(PerfRow(bs=4, status="failed", error="out of memory"))
    pooled = pool_runs(runs, "x")
    assert pooled.perf_by_bs[1].qps == pytest.approx(np.mean([r.perf_by_bs[1].qps for r in runs[:2]]))
    assert pooled.run_values(1, "QPS") == tuple(r.perf_by_bs[1].qps for r in runs[:2])
    assert pooled.perf_by_bs[4].status == "failed" and pooled.perf_by_bs[4].error == "out of memory"
    runs[1].performance[0] = PerfRow(bs=1, status="failed", error="out of memory")
    lone = pool_runs(runs, "x").perf_by_bs[1]  # one run measured it: its own interval, not one over runs
    assert lone.qps == runs[0].perf_by_bs[1].qps and lone.qps_interval() == runs[0].perf_by_bs[1].qps_interval()
    assert "batch size 1: 2 of 3 runs measured it" in pooled.read_notes
    assert "batch size 4: 0 of 3 runs measured it" in pooled.read_notes


@pytest.mark.parametrize("key", ["model", "backend", "engine"])
def test_runs_of_different_configurations_do_not_pool(key):
    from core.reporting.sections import GraphCompile

    rng = np.random.default_rng(6)
    runs = shifted_runs(rng, 2, 10.0, 0.05)
    if key == "engine":
        runs[0].graph_compile, runs[1].graph_compile = (
            GraphCompile(engine="onnxruntime"),
            GraphCompile(engine="openvino"),
        )
        shown = "onnxruntime, openvino"
    else:
        setattr(runs[1], key, "other")
        shown = f"{getattr(runs[0], key)}, other"
    with pytest.raises(UserError) as err:
        pool_runs(runs, "a,b")
    assert str(err.value) == (
        f"a,b: the runs of one side differ in {key} ({shown}) (a comma joins runs of one configuration; "
        "compare different ones as separate arguments)"
    )


def test_runs_that_shift_between_windows_fool_one_run_a_side_but_not_several():
    # Each run steady inside its window, levels 10% apart from run to run: one run's blocks cannot see it.
    rng = np.random.default_rng(7)
    flagged_single, flagged_pooled, trials = 0, 0, 60
    for _ in range(trials):
        a, b = shifted_runs(rng, 5, 10.0, 0.10), shifted_runs(rng, 5, 10.0, 0.10, start=5)
        single = build_comparison([a[0], b[0]], ["a", "b"], 0.05).perf[0].verdicts[1]
        pooled = build_comparison([pool_runs(a, "a"), pool_runs(b, "b")], ["a", "b"], 0.05).perf[0].verdicts[1]
        assert pooled.method == "Welch t on 5 and 5 runs"
        flagged_single += single.significant
        flagged_pooled += pooled.significant
    assert flagged_single >= trials // 3  # the within-run test calls most of these shifts real
    assert flagged_pooled <= 3  # ~ALPHA * trials = 0.6 expected; 3 or fewer with probability > 99%


def test_several_runs_a_side_catch_a_20_percent_change_on_a_machine_drifting_5_percent():
    rng = np.random.default_rng(8)
    caught = 0
    for _ in range(20):
        a, b = shifted_runs(rng, 5, 10.0, 0.05), shifted_runs(rng, 5, 12.0, 0.05, start=5)
        cmp = build_comparison([pool_runs(a, "a"), pool_runs(b, "b")], ["a", "b"], 0.05)
        qps = next(row for row in cmp.perf if row.metric == "QPS")
        caught += qps.verdicts[1].word == "slower" and qps.regressions[1]
        assert qps.verdicts[1].p is not None
    assert caught >= 17  # about 19 expected: the drawn levels put some changes nearer 10%
    # Against the spread of 8 earlier runs, one new run 20% slower is flagged too (with 5 runs on 4 degrees
    # of freedom it would take more than 25% at this spread).
    history, new = shifted_runs(rng, 8, 10.0, 0.03), shifted_runs(rng, 1, 12.0, 0.0, start=9)[0]
    verdict = build_comparison([pool_runs(history, "a"), new], ["a", "b"], 0.05).perf[0].verdicts[1]
    assert verdict.word == "slower" and verdict.p < ALPHA


def write_runs(folder, runs: list[RunReport]) -> list[str]:
    for r in runs:
        r.status = "complete"
        write_report(r, folder)
    return [str(folder / f"CPU/m/runs/{r.run_id}.json") for r in runs]


def test_compare_cli_pools_comma_joined_runs(tmp_path, capsys):
    rng = np.random.default_rng(9)
    base = write_runs(tmp_path, shifted_runs(rng, 3, 10.0, 0.02))
    same = write_runs(tmp_path, shifted_runs(rng, 3, 10.0, 0.02, start=3))
    slow = write_runs(tmp_path, shifted_runs(rng, 3, 12.5, 0.02, start=6))
    args = [",".join(base), ",".join(same), "--threshold", "5%", "--format", "json"]
    assert compare_main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["labels"] == ["20261201T100000-r (mean of 3)", "20261201T100003-r (mean of 3)"]
    qps = next(r for r in out["perf"] if r["metric"] == "QPS")
    assert qps["verdicts"][1]["method"] == "Welch t on 3 and 3 runs"
    # Run ids work as well as paths, and a lone run against a pooled side is tested against its spread.
    ids = ",".join(p.rsplit("/", 1)[1].removesuffix(".json") for p in base)
    assert compare_main([ids, slow[0], "--threshold", "5%", "--reports-dir", str(tmp_path)]) == 1
    text = capsys.readouterr().out
    assert "(mean of 3)" in text and "slower (p = " in text and "the mean of 3 runs" in text
    assert compare_main([",".join(base), ",".join(slow), "--format", "html"]) == 0
    assert "mean of 3" in capsys.readouterr().out


@pytest.mark.parametrize("arg", [",", " , "])
def test_a_side_naming_no_report_is_a_one_line_error(tmp_path, capsys, arg):
    rng = np.random.default_rng(10)
    base = write_runs(tmp_path, shifted_runs(rng, 1, 10.0, 0.02))
    assert compare_main([base[0], arg]) == 2
    assert "names no report" in capsys.readouterr().err
