"""Tail percentiles with their backing: the order-statistic bound against a direct binomial computation,
the sample counts a bound needs, and a compare that never judges an unbacked percentile."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.common.statistics import samples_needed, upper_bound
from core.measure.timing import LatencyStats, tail_backing
from core.reporting.comparison import build_comparison
from core.reporting.report import RunReport
from core.reporting.schema import PerfRow


def direct_bound_index(n: int, q: float, confidence: float = 0.95) -> int | None:
    """The 1-based order statistic that bounds the q-quantile from above at `confidence`, by brute force."""
    cdf = 0.0
    for k in range(1, n + 1):
        cdf += math.comb(n, k - 1) * q ** (k - 1) * (1 - q) ** (n - k + 1)  # P(X <= k - 1), term by term
        if cdf >= confidence:
            return k
    return None


@pytest.mark.parametrize("q", [0.90, 0.99])
@pytest.mark.parametrize("n", [10, 28, 29, 50, 100, 298, 299, 300, 500, 1000])
def test_the_bound_is_the_order_statistic_a_direct_binomial_computation_picks(n, q):
    samples = list(range(1, n + 1))  # the k-th smallest sample is k
    expected = direct_bound_index(n, q)
    assert upper_bound(samples, q) == (None if expected is None else float(expected))


def test_samples_needed_is_where_the_largest_sample_first_bounds_the_quantile():
    assert samples_needed(0.99) == 299 and samples_needed(0.90) == 29
    assert direct_bound_index(298, 0.99) is None and direct_bound_index(299, 0.99) == 299
    assert direct_bound_index(28, 0.90) is None and direct_bound_index(29, 0.90) == 29


def test_the_bound_covers_the_true_quantile_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    true_p99 = -math.log(0.01)  # exponential(1)
    covered = [upper_bound(np.sort(rng.exponential(size=600)), 0.99) >= true_p99 for _ in range(400)]
    assert 0.92 <= np.mean(covered) <= 0.99


def test_latency_stats_carry_the_bounds_and_say_when_there_are_too_few_samples():
    few = LatencyStats.from_ns([int(1e6 * (1 + i % 7)) for i in range(28)])
    assert few.p90_upper is None and few.p99_upper is None
    assert tail_backing(28) == "28 samples: P90 needs 29, P99 needs 299 for a 95% upper bound"
    many = LatencyStats.from_ns([int(1e6 * (1 + i)) for i in range(400)])
    assert many.p99 <= many.p99_upper <= many.max and many.p90 <= many.p90_upper
    assert tail_backing(400) is None


def report(p99: float, iterations: int) -> RunReport:
    row = PerfRow(
        bs=1, qps=100.0, avg_latency=10.0, p50_latency=10.0, p90_latency=11.0, p99_latency=p99, iterations=iterations
    )
    return RunReport(model="m", backend="CPU", precision="FP32", dataset=None, performance=[row])


@pytest.mark.parametrize("iterations, flagged", [(50, False), (298, False), (299, True), (5000, True)])
def test_compare_judges_a_p99_only_when_both_runs_back_it(iterations, flagged):
    cmp = build_comparison([report(12.0, iterations), report(24.0, iterations)], ["a", "b"], threshold=0.05)
    assert any(r.metric == "P99 Latency" for r in cmp.regressions) is flagged
    row = next(r for r in cmp.perf if r.metric == "P99 Latency")
    assert row.unbacked == [not flagged, not flagged]


# ---------------------------------------------------------------- the QPS interval, by hand
def test_rate_interval_on_a_hand_computed_case():
    from core.common.statistics import rate_interval

    s = 1_000_000_000
    completions = [t * s for t in (1, 2, 3, 4, 6, 8, 10, 12)]
    # 8 calls, one caller: 4 blocks of 2 calls ending at 2, 4, 8, 12 s: rates 1, 1, 0.5, 0.5 items/s. The
    # calls inside each block are alike (gaps 1, 1 | 1, 1 | 2, 2 | 2, 2): all the rates' variance is the
    # machine's drift, which is added whole to the batch-means variance of the mean.
    mean, variance = 0.75, 4 * 0.25**2 / 3
    half = 3.182446305284263 * math.sqrt(variance / 4 + variance)  # Student's t, 97.5%, 3 degrees of freedom
    low, high = rate_interval(completions, items_per_call=1)
    assert low == 0.0 and high == pytest.approx(mean + half)  # mean - half < 0: cut at zero
    # Twice the items per call, twice the rate; out of order completions are sorted first.
    low2, high2 = rate_interval(list(reversed(completions)), items_per_call=2)
    assert (low2, high2) == pytest.approx((2 * low, 2 * high))
    # Two callers: blocks of at least 4 calls, so 2 blocks (4 and 8 s long): rates 1 and 0.5.
    low3, high3 = rate_interval(completions, items_per_call=1, callers=2)
    variance = 0.125
    assert low3 == 0.0 and high3 == pytest.approx(0.75 + 12.706204736174703 * math.sqrt(variance / 2 + variance))
    assert rate_interval(completions, items_per_call=1, max_blocks=2) == pytest.approx((low3, high3))


def test_on_a_quiet_machine_the_interval_is_the_plain_batch_means_one():
    from scipy.stats import t

    from core.common.statistics import rate_interval

    rng = np.random.default_rng(1)
    gaps = rng.exponential(10_000_000, 2000)  # independent calls of 10 ms on average: no drift
    completions = np.cumsum(gaps).astype(int).tolist()
    ends = [completions[200 * (i + 1) - 1] for i in range(10)]
    rates = [200 * 1e9 / (end - start) for start, end in zip([0, *ends[:-1]], ends)]
    half = t.ppf(0.975, 9) * np.std(rates, ddof=1) / math.sqrt(10)
    assert rate_interval(completions, items_per_call=1) == pytest.approx((np.mean(rates) - half, np.mean(rates) + half))


def test_drift_variance_counts_only_scatter_an_f_test_finds():
    from scipy.stats import f

    from core.common.statistics import drift_variance

    assert drift_variance(0.02, 0.0, 10, 100) == 0.02  # nothing scatters inside the blocks
    assert drift_variance(0.0, 0.0, 10, 100) == 0.0
    critical = f.isf(0.05, 9, 90)  # 10 blocks, 100 calls: the ratio an F test needs at 95%
    assert drift_variance(0.01 * critical * 0.995, 0.01, 10, 100) == 0.0  # F(9, 110) would pass it
    assert drift_variance(0.01 * critical * 1.01, 0.01, 10, 100) == pytest.approx(0.01 * critical * 1.01 - 0.01)


def test_rate_interval_needs_two_blocks_of_two_calls_per_caller():
    from core.common.statistics import rate_interval

    assert rate_interval([1, 2, 3], items_per_call=1) is None  # one block of two calls
    assert rate_interval([1, 2, 3, 4], items_per_call=1) is not None
    assert rate_interval([1, 2, 3, 4, 5, 6, 7], items_per_call=1, callers=2) is None
    assert rate_interval([5, 5, 5, 5], items_per_call=1) is None  # no time passed: no rate to speak of


def test_samples_needed_and_the_bound_at_other_confidences():
    assert samples_needed(0.5) == 5 and samples_needed(0.99, confidence=0.99) == 459
    assert upper_bound(list(range(1, 5)), 0.5) is None
    assert upper_bound(list(range(1, 6)), 0.5) == 5.0 and upper_bound(list(range(1, 101)), 0.5) == 59.0
    assert upper_bound(list(range(1, 460)), 0.99, confidence=0.99) == 459.0


def test_the_bound_uses_the_confidence_it_is_given_for_the_sample_count_too():
    # 400 samples back a P99 at 95% (299 needed) but not at 99% (459 needed).
    assert upper_bound(list(range(1, 401)), 0.99) == float(direct_bound_index(400, 0.99))
    assert upper_bound(list(range(1, 401)), 0.99, confidence=0.99) is None


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_the_bound_at_the_smallest_backed_counts_for_the_median(n):
    # The median's bound at 95% is the largest sample from 5 samples on; below that there is none.
    assert upper_bound(list(range(1, n + 1)), 0.5) == (5.0 if n == 5 else None)


def test_rate_interval_cuts_at_most_ten_blocks_by_default():
    from core.common.statistics import rate_interval

    rng = np.random.default_rng(0)
    completions = np.cumsum(rng.integers(1_000_000, 3_000_000, 110)).tolist()  # 110 calls: 10 or 11 blocks
    ten = rate_interval(completions, items_per_call=1)
    assert ten == rate_interval(completions, items_per_call=1, max_blocks=10)
    assert ten != rate_interval(completions, items_per_call=1, max_blocks=11)


def test_the_drift_is_what_the_block_rates_scatter_beyond_their_own_gaps():
    from scipy.stats import t

    from core.common.statistics import rate_interval

    s = 1_000_000_000
    gaps = [10, 12, 10, 12, 20, 24, 20, 24]  # 4 blocks of 2 calls; the machine halves its speed midway
    completions = np.cumsum(np.array(gaps) * s).tolist()
    rates = np.array([2 / 22, 2 / 22, 2 / 44, 2 / 44])
    between = rates.var(ddof=1) / rates.mean() ** 2
    within = np.mean([np.var(pair, ddof=1) / (2 * np.mean(pair) ** 2) for pair in ([10, 12], [20, 24])])
    spread = math.sqrt(rates.var(ddof=1) / 4 + (between - within) * rates.mean() ** 2)  # F = 18: drift
    half = t.ppf(0.975, 3) * spread
    low, high = rate_interval(completions, items_per_call=1)
    assert (low, high) == pytest.approx((max(0.0, rates.mean() - half), rates.mean() + half), rel=1e-9)
