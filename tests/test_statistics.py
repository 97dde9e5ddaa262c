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
