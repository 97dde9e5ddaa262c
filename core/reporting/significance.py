"""Whether a change between two runs is more than noise: a test per compared number, on the kept samples.

With both runs' per-call latencies (kept beside each run, `runs/<id>-samples/latency.npz`):
- QPS, AVG and P50 Latency: the Mann-Whitney U rank test on the calls' latencies (two-sided). It asks
  whether calls of one run tend to take longer than calls of the other, whatever their distribution
  (latencies are skewed and heavy-tailed, so a t-test's normality would be a fiction); a run's QPS is its
  calls' rate, so the same test speaks for it.
- P90 and P99: a quantile test (Mood's, at the percentile): the calls of both runs are pooled, each run's
  calls at or above the pooled percentile counted, and the 2x2 table tested with Fisher's exact test. A shift of
  the tail alone moves it where a rank test, dominated by the body, would not.
Without samples (a ByteMLPerf report, or a run whose samples were deleted), from what the rows say:
- AVG Latency: Welch's t-test from each row's mean, standard deviation and count.
- QPS: the two 95% intervals, read as normal intervals (half-width / 1.96; their true t quantile is
  larger, so the standard errors come out larger and the test errs towards "within noise").
- Anything else: "untested"; compare then judges by the threshold alone and says so.

The calls of one run are not independent (a shared machine drifts), so a p-value says a difference is
larger than the scatter of calls within the runs; whether it is larger than the scatter between repeated
runs is what benchmarks/fidelity.py measures. A change is reported as significant at ALPHA.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.reporting.schema import QPS, ROW_KEYS, PerfRow

# One compare tests up to five numbers per batch size over several batch sizes: 1% per test keeps the
# chance of any false "slower" in a typical 30-row comparison near a quarter rather than four in five.
ALPHA = 0.01
RANK_TESTED = (QPS, ROW_KEYS["avg_latency"], ROW_KEYS["p50_latency"])
QUANTILE_TESTED = {ROW_KEYS["p90_latency"]: 0.90, ROW_KEYS["p99_latency"]: 0.99}


@dataclass(frozen=True)
class Verdict:
    """A compared number's change against the baseline, as a test on the runs' samples judged it."""

    word: str  # "within noise" | "faster" | "slower" | "untested"
    p: float | None = None  # the test's two-sided p-value; None when untested
    method: str = ""  # what the p-value comes from

    @property
    def significant(self) -> bool:
        return self.p is not None and self.p < ALPHA

    @property
    def tested(self) -> bool:
        return self.p is not None

    def text(self) -> str:
        """'slower (p = 0.0031)', 'within noise (p = 0.41)', 'untested (no samples)'."""
        if self.p is None:
            return f"untested ({self.method})" if self.method else "untested"
        return f"{self.word} (p = {_p_text(self.p)})"


def _p_text(p: float) -> str:
    return "<1e-300" if p < 1e-300 else f"{p:.2g}"


def judge_change(
    metric: str,
    base: PerfRow,
    other: PerfRow,
    base_samples: Sequence[int] | None,
    other_samples: Sequence[int] | None,
    *,
    higher_is_better: bool,
) -> Verdict:
    """Whether `other`'s value of `metric` differs from `base`'s beyond noise, and which way."""
    p, method = _p_value(metric, base, other, base_samples, other_samples)
    if p is None:
        return Verdict("untested", None, method)
    a, b = base.number(metric), other.number(metric)
    if p >= ALPHA or a is None or b is None or a == b:
        return Verdict("within noise", p, method)
    better = (b > a) == higher_is_better
    return Verdict("faster" if better else "slower", p, method)


def _p_value(
    metric: str,
    base: PerfRow,
    other: PerfRow,
    base_samples: Sequence[int] | None,
    other_samples: Sequence[int] | None,
) -> tuple[float | None, str]:
    have_samples = base_samples is not None and other_samples is not None
    if have_samples and min(len(base_samples), len(other_samples)) >= 2:
        a, b = np.asarray(base_samples, dtype=np.float64), np.asarray(other_samples, dtype=np.float64)
        if metric in RANK_TESTED:
            return rank_test(a, b), f"Mann-Whitney U on {len(a)} and {len(b)} calls"
        if metric in QUANTILE_TESTED:
            return quantile_test(a, b, QUANTILE_TESTED[metric]), f"quantile test on {len(a)} and {len(b)} calls"
    if metric == ROW_KEYS["avg_latency"]:
        p = welch_from_rows(base, other)
        if p is not None:
            return p, "Welch t from the rows' mean, spread and count"
    if metric == QPS:
        p = interval_test(base.qps, base.qps_interval(), other.qps, other.qps_interval())
        if p is not None:
            return p, "the rows' 95% QPS intervals"
    return None, "no samples" if not have_samples else "too few samples"


def rank_test(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Mann-Whitney U p-value (asymptotic with the tie correction: runs hold hundreds of calls)."""
    from scipy.stats import mannwhitneyu

    if np.all(a == a[0]) and np.all(b == a[0]):
        return 1.0  # identical constant samples: no evidence of a difference (scipy would divide by zero)
    return float(mannwhitneyu(a, b, alternative="two-sided", method="asymptotic").pvalue)


def quantile_test(a: np.ndarray, b: np.ndarray, q: float) -> float:
    """Two-sided p-value that the q-quantiles of a and b differ: Fisher's exact test on how many calls of
    each lie at or above the pooled q-quantile (at or above: a tail of equal values sits on the cut)."""
    from scipy.stats import fisher_exact

    cut = float(np.quantile(np.concatenate([a, b]), q))
    above_a, above_b = int((a >= cut).sum()), int((b >= cut).sum())
    table = [[above_a, len(a) - above_a], [above_b, len(b) - above_b]]
    return float(fisher_exact(table, alternative="two-sided").pvalue)


def welch_from_rows(base: PerfRow, other: PerfRow) -> float | None:
    """Welch's t-test on the mean latency from each row's mean, standard deviation and iteration count."""
    from scipy.stats import ttest_ind_from_stats

    stats = []
    for row in (base, other):
        mean, std, count = (row.number(ROW_KEYS[k]) for k in ("avg_latency", "std_latency", "iterations"))
        if mean is None or std is None or count is None or count < 2:
            return None
        stats.append((mean, std, int(count)))
    (m1, s1, n1), (m2, s2, n2) = stats
    if s1 == 0 and s2 == 0:
        return 1.0 if m1 == m2 else 0.0
    return float(ttest_ind_from_stats(m1, s1, n1, m2, s2, n2, equal_var=False).pvalue)


def interval_test(
    a: float | None, a_interval: tuple[float, float] | None, b: float | None, b_interval: tuple[float, float] | None
) -> float | None:
    """Two-sided p-value for a difference of two rates from their 95% intervals (read as normal ones)."""
    from scipy.stats import norm

    if a is None or b is None or a_interval is None or b_interval is None:
        return None
    se = [(high - low) / 2 / 1.96 for low, high in (a_interval, b_interval)]
    spread = math.hypot(*se)
    if spread == 0:
        return 1.0 if a == b else 0.0
    return float(2 * norm.sf(abs(a - b) / spread))
