"""The significance tests at their edges, value by value: the verdict's words and p-value text, alpha itself,
one block, one value against many, zero spread, one-sided samples and constant samples (mutation testing
found these untested while the statistical behaviour in tests/test_significance.py held)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import mannwhitneyu, norm, ttest_ind_from_stats

from core.reporting import significance
from core.reporting.schema import PerfRow
from core.reporting.significance import (
    ALPHA,
    NO_SAMPLES,
    Verdict,
    beyond_drift,
    block_values,
    interval_test,
    judge_change,
    rank_test,
    rank_test_can_reject,
    speed_drift,
    welch_from_rows,
)

MS_ = 1_000_000
SLOW = [20_000_000 + i for i in range(50)]  # 50 calls of ~20 ms, in ns: 10 blocks of 5
FAST = [10_000_000 + i for i in range(50)]


def test_a_verdict_reads_as_its_word_and_p_value():
    assert Verdict("untested").text() == "untested"
    assert Verdict("untested", None, NO_SAMPLES).text() == "untested (no samples)"
    assert Verdict("slower", 0.0031, "m").text() == "slower (p = 0.0031)"
    assert Verdict("within noise", 0.4123, "m").text() == "within noise (p = 0.41)"
    assert Verdict("faster", 1e-300, "m").text() == "faster (p = 1e-300)"
    assert Verdict("faster", 1e-301, "m").text() == "faster (p = <1e-300)"
    assert Verdict("faster", 0.0, "m").text() == "faster (p = <1e-300)"


def test_judge_change_returns_the_whole_verdict():
    base, other = PerfRow(bs=1, qps=100.0), PerfRow(bs=1, qps=50.0)
    assert judge_change("QPS", base, other, None, None, higher_is_better=True) == Verdict("untested", None, NO_SAMPLES)
    slower = judge_change("QPS", base, other, FAST, SLOW, higher_is_better=True)
    fast_blocks, slow_blocks = block_values(FAST, "mean", 1), block_values(SLOW, "mean", 1)
    rank_p = mannwhitneyu(fast_blocks, slow_blocks).pvalue
    drift_p = beyond_drift(fast_blocks, slow_blocks, speed_drift(FAST), speed_drift(SLOW))
    p = max(rank_p, drift_p)
    assert p == rank_p > drift_p  # calls 1 ns apart: no drift, and the levels are far apart
    method = "Mann-Whitney U on 10 and 10 blocks of calls, and the change against the drift"
    assert slower == Verdict("slower", p, method)
    assert judge_change("QPS", other, base, SLOW, FAST, higher_is_better=True).word == "faster"
    # Significant blocks but equal (or missing) row values: nothing to call faster or slower.
    same = judge_change("QPS", base, PerfRow(bs=1, qps=100.0), FAST, SLOW, higher_is_better=True)
    assert same == Verdict("within noise", p, method)
    for a, b in ((PerfRow(bs=1), base), (base, PerfRow(bs=1))):
        assert judge_change("QPS", a, b, FAST, SLOW, higher_is_better=True).word == "within noise"


@pytest.mark.parametrize("p, word", [(ALPHA, "within noise"), (math.nextafter(ALPHA, 0), "slower")])
def test_alpha_itself_is_within_noise(monkeypatch, p, word):
    monkeypatch.setattr(significance, "_p_value", lambda *args: (p, "m"))
    base, other = PerfRow(bs=1, avg_latency=10.0), PerfRow(bs=1, avg_latency=11.0)
    verdict = judge_change("AVG Latency", base, other, None, None, higher_is_better=False)
    assert verdict == Verdict(word, p, "m")


def test_each_fallback_names_its_method():
    rows = [
        PerfRow(bs=1, qps=100.0, qps_low=99.0, qps_high=101.0, avg_latency=10.0, std_latency=1.0, iterations=9),
        PerfRow(bs=1, qps=90.0, qps_low=89.0, qps_high=91.0, avg_latency=11.0, std_latency=1.0, iterations=9),
    ]
    welch = judge_change("AVG Latency", *rows, None, None, higher_is_better=False)
    assert welch.method == "Welch t from the rows' mean, spread and count" and welch.p == welch_from_rows(*rows)
    qps = judge_change("QPS", *rows, None, None, higher_is_better=True)
    assert qps.method == "the rows' 95% QPS intervals"
    assert qps.p == interval_test(100.0, (99.0, 101.0), 90.0, (89.0, 91.0))
    few = judge_change("P99 Latency", *rows, FAST, SLOW, higher_is_better=False)
    assert few == Verdict("untested", None, "too few calls to decide")
    # Samples on one side only are no samples: the rows decide (a ByteMLPerf baseline against one of ours).
    assert judge_change("P50 Latency", *rows, FAST, None, higher_is_better=False) == Verdict(
        "untested", None, NO_SAMPLES
    )
    assert judge_change("QPS", *rows, None, SLOW, higher_is_better=True).method == "the rows' 95% QPS intervals"


def test_one_block_is_a_block():
    assert block_values(list(range(15)), 90, 10).tolist() == [np.percentile(np.arange(15), 90)]
    assert block_values([7], "mean", 1).tolist() == [7.0]
    assert block_values(list(range(9)), 90, 10).size == 0


@pytest.mark.parametrize("n, m, can", [(1, 199, False), (1, 200, True), (199, 1, False), (200, 1, True)])
def test_one_value_against_many_can_reach_alpha_only_past_200(n, m, can):
    # 2 / C(1 + m, 1) = 2 / (m + 1): exactly ALPHA at m = 199, which cannot reject (p < ALPHA is needed).
    assert rank_test_can_reject(n, m) is can


def test_constant_samples():
    assert rank_test(np.array([5.0]), np.array([5.0])) == 1.0
    assert rank_test(np.full(6, 5.0), np.full(6, 5.0)) == 1.0
    for a, b in ((np.full(5, 5.0), np.full(5, 6.0)), (np.full(6, 5.0), np.arange(6.0, 12.0))):
        assert rank_test(a, b) == float(mannwhitneyu(a, b, alternative="two-sided").pvalue) < ALPHA
        assert rank_test(b, a) == rank_test(a, b)


def rows(std1: float, std2: float, mean2: float = 10.0, count: int = 20) -> tuple[PerfRow, PerfRow]:
    return (
        PerfRow(bs=1, avg_latency=10.0, std_latency=std1, iterations=count),
        PerfRow(bs=1, avg_latency=mean2, std_latency=std2, iterations=count),
    )


def test_welch_at_zero_spread_and_two_calls():
    assert welch_from_rows(*rows(0.0, 0.0)) == 1.0
    assert welch_from_rows(*rows(0.0, 0.0, mean2=10.5)) == 0.0
    for s1, s2 in ((0.0, 1.0), (1.0, 0.0), (1.0, 1.0)):
        expected = ttest_ind_from_stats(10.0, s1, 20, 10.5, s2, 20, equal_var=False).pvalue
        assert welch_from_rows(*rows(s1, s2, mean2=10.5)) == pytest.approx(expected, rel=1e-12)
        assert 0.0 < expected < 1.0
    two = ttest_ind_from_stats(10.0, 1.0, 2, 12.0, 1.0, 2, equal_var=False).pvalue
    assert welch_from_rows(*rows(1.0, 1.0, mean2=12.0, count=2)) == pytest.approx(two, rel=1e-12)
    assert welch_from_rows(*rows(1.0, 1.0, count=1)) is None
    assert welch_from_rows(PerfRow(bs=1, avg_latency=10.0, std_latency=1.0), rows(1.0, 1.0)[1]) is None


def test_interval_test_at_zero_and_unit_spread():
    assert interval_test(5.0, (5.0, 5.0), 5.0, (5.0, 5.0)) == 1.0
    assert interval_test(5.0, (5.0, 5.0), 6.0, (6.0, 6.0)) == 0.0
    # A half-width of 1.96 is a standard error of 1: with the other's 0, the spread is exactly 1.
    assert interval_test(0.0, (-1.96, 1.96), 2.5, (2.5, 2.5)) == pytest.approx(2 * norm.sf(2.5), rel=1e-12)
    assert interval_test(None, (1.0, 2.0), 12.0, (11.0, 13.0)) is None
    assert interval_test(1.5, (1.0, 2.0), None, (11.0, 13.0)) is None


def test_speed_drift_is_the_block_means_scatter_beyond_the_calls_own():
    # Calls constant inside each block, the machine 30% slower for the second half: all scatter is drift.
    shift = [10 * MS_] * 50 + [13 * MS_] * 50
    assert speed_drift(shift) == pytest.approx(2.5 / 11.5**2, rel=1e-12)  # var(10 x5, 13 x5) = 2.5 ms^2
    # The same means from calls that scatter as much as the means do: no drift left.
    rng = np.random.default_rng(0)
    assert speed_drift(list(rng.normal(10 * MS_, 1 * MS_, 100_000))) < 1e-5
    assert speed_drift([10 * MS_, 11 * MS_, 12 * MS_]) == 0.0  # under two blocks of two calls: none to tell
    assert speed_drift([10 * MS_, 10 * MS_, 13 * MS_, 13 * MS_]) == pytest.approx(4.5 / 11.5**2)  # two blocks
    # Blocks of two calls 2 ms apart, the machine slower by a third for the second half: the block means'
    # variance less what the calls inside the blocks explain (var 2 ms^2 / 2 calls), over the squared mean.
    pairs = [10, 12] * 5 + [14, 16] * 5
    means = np.array([11.0] * 5 + [15.0] * 5)
    expected = (means.var(ddof=1) - 2.0 / 2) / means.mean() ** 2
    assert speed_drift([v * MS_ for v in pairs]) == pytest.approx(expected, rel=1e-9)


def test_beyond_drift_is_the_change_over_standard_errors_and_drift():
    from scipy.stats import t

    a, b = np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0])
    variance = 1 / 3 + 1 / 3 + 0.01 * 2.0**2 + 0.02 * 5.0**2
    assert beyond_drift(a, b, 0.01, 0.02) == pytest.approx(2 * t.sf(3 / math.sqrt(variance), 4), rel=1e-12)
    assert beyond_drift(np.full(3, 2.0), np.full(3, 2.0), 0.0, 0.0) == 1.0
    assert beyond_drift(np.full(3, 2.0), np.full(3, 3.0), 0.0, 0.0) == 0.0
