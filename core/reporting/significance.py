"""Whether a change between two runs is more than noise: a test per compared number, on the kept samples.

The calls of one run are not independent: a shared machine's speed drifts, so neighbouring calls are alike,
and a test over thousands of single calls finds "significant" differences between two runs of one build
(benchmarks/fidelity.py showed it: identical runs flagged on most rows). So, like the QPS interval, the
tests work on consecutive blocks: each run's calls, in the order they completed, are cut into up to
MAX_BLOCKS blocks of equal count, each block reduced to one value, and the two runs' block values compared
with the Mann-Whitney U rank test (two-sided; no normality assumed, latencies are skewed):
- QPS and AVG Latency: each block's mean latency (a run's QPS is its calls' rate);
- P50, P90, P99 Latency: each block's percentile, from blocks of at least 1, 10 and 100 calls.
A rank test alone finds a shift of the machine's speed between two runs "significant": every block of the
slower run ranks below every block of the other. So a change must also be larger than the runs' drift
allows (speed_drift: how much block means scatter beyond what the calls' own scatter explains, a
random-effects estimate that is about 0 on a quiet machine; beyond_drift: the change against that drift
and the blocks' standard errors), and the p-value reported is the larger of the two tests'.
A test that cannot reach ALPHA with the blocks there are (4 against 4 at best gives p = 0.029) is
"untested (too few calls to decide)": like an unbacked percentile, never a regression.
Without samples (a ByteMLPerf report, or a run whose samples were deleted), from what the rows say:
- AVG Latency: Welch's t-test from each row's mean, standard deviation and count;
- QPS: the two 95% intervals, read as normal intervals (half-width / 1.96; their true t quantile is
  larger, so the standard errors come out larger and the test errs towards "within noise");
- anything else: "untested (no samples)", which compare judges by the threshold alone, as it always has.
A p-value then says a difference is larger than the drift between blocks within the runs; how that holds
between repeated runs on a given machine is what benchmarks/fidelity.py measures.
An LLM load point is tested the same way on its kept per-request samples (TTFT, TPOT: blocks of requests
in completion order) and on the gaps between consecutive tokens for its token throughput; without samples
its token throughput is tested from the rows' 95% intervals.
A side that pools several runs (reporting.pooled, `compare A1,A2,A3 B1,B2,B3`) is tested on its runs'
values instead (runs_test): their spread is the run-to-run noise, measured, so no drift need be assumed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.common.statistics import drift_variance
from core.reporting.llm_rows import LlmRow
from core.reporting.schema import QPS, ROW_KEYS, PerfRow

# One compare tests up to five numbers per batch size over several batch sizes: 1% per test keeps the
# chance of any false "slower" in a typical 30-row comparison near a quarter rather than four in five.
ALPHA = 0.01
MAX_BLOCKS = 10
NO_SAMPLES = "no samples"
# Metric -> (what a block is reduced to: "mean" or a percentile, the fewest calls a block needs for it).
BLOCK_STATISTIC: dict[str, tuple[str | int, int]] = {
    QPS: ("mean", 1),
    ROW_KEYS["avg_latency"]: ("mean", 1),
    ROW_KEYS["p50_latency"]: (50, 1),
    ROW_KEYS["p90_latency"]: (90, 10),
    ROW_KEYS["p99_latency"]: (99, 100),
}


@dataclass(frozen=True)
class Verdict:
    """A compared number's change against the baseline, as a test on the runs' samples judged it."""

    word: str  # "within noise" | "faster" | "slower" | "untested"
    p: float | None = None  # the test's two-sided p-value; None when untested
    method: str = ""  # what the p-value comes from, or why there is none

    @property
    def significant(self) -> bool:
        return self.p is not None and self.p < ALPHA

    @property
    def tested(self) -> bool:
        return self.p is not None

    @property
    def can_regress(self) -> bool:
        """Whether a change beyond compare's threshold is a regression: when tested slower, or when the
        reports hold no samples to test on (ByteMLPerf's); never when the samples there are cannot decide."""
        return self.word == "slower" or self.method == NO_SAMPLES

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
    base_runs: Sequence[float] | None = None,
    other_runs: Sequence[float] | None = None,
) -> Verdict:
    """Whether `other`'s value of `metric` differs from `base`'s beyond noise, and which way. `*_runs`: the
    values of the runs a side pools (pooled.run_values), where it pools several; then the test is on runs."""
    if base_runs is not None or other_runs is not None:
        p, method = runs_test(_one_run(base_runs, base.number(metric)), _one_run(other_runs, other.number(metric)))
    else:
        p, method = _p_value(metric, base, other, base_samples, other_samples)
    return _verdict(p, method, base.number(metric), other.number(metric), higher_is_better)


def _verdict(p: float | None, method: str, a: float | None, b: float | None, higher_is_better: bool) -> Verdict:
    """The word for a change from `a` to `b` tested at p."""
    if p is None:
        return Verdict("untested", None, method)
    if p >= ALPHA or a is None or b is None or a == b:
        return Verdict("within noise", p, method)
    better = (b > a) == higher_is_better
    return Verdict("faster" if better else "slower", p, method)


# An LLM row's judged figure -> (the kept samples it is tested on, the block statistic, the fewest values a
# block needs, what the values are). Token Throughput is tested on the gaps between consecutive tokens of
# all requests: their mean is the inverse of the rate.
LLM_BLOCK_STATISTIC: dict[str, tuple[str, str | int, int, str]] = {
    "TTFT.AVG": ("ttft_ns", "mean", 1, "requests"),
    "TTFT.P99": ("ttft_ns", 99, 100, "requests"),
    "TPOT.AVG": ("tpot_ns", "mean", 1, "requests"),
    "TPOT.P99": ("tpot_ns", 99, 100, "requests"),
    "Token Throughput": ("token_gaps", "mean", 1, "tokens"),
}


def judge_llm_change(
    metric: str,
    base: LlmRow,
    other: LlmRow,
    base_samples: dict[str, Sequence[int]] | None,
    other_samples: dict[str, Sequence[int]] | None,
    *,
    higher_is_better: bool,
    base_runs: Sequence[float] | None = None,
    other_runs: Sequence[float] | None = None,
) -> Verdict:
    """Whether an LLM load point's `metric` (llm_rows.JUDGED) moved beyond noise, tested as QPS and latency
    are: over the runs where a side pools several, else on blocks of the runs' kept per-request samples (or
    token gaps), else on the rows' token throughput intervals, else untested."""
    a, b = base.figure(metric), other.figure(metric)
    if base_runs is not None or other_runs is not None:
        p, method = runs_test(_one_run(base_runs, a), _one_run(other_runs, b))
        return _verdict(p, method, a, b, higher_is_better)
    have_samples = base_samples is not None and other_samples is not None
    if have_samples and metric in LLM_BLOCK_STATISTIC:
        figure, statistic, min_values, what = LLM_BLOCK_STATISTIC[metric]
        tested = blocks_test(
            _llm_values(base_samples, figure), _llm_values(other_samples, figure), statistic, min_values, what
        )
        if tested is not None:
            return _verdict(*tested, a, b, higher_is_better)
    if metric == "Token Throughput":
        p = interval_test(a, base.token_throughput_interval(), b, other.token_throughput_interval())
        if p is not None:
            return _verdict(p, "the rows' 95% token throughput intervals", a, b, higher_is_better)
    return Verdict("untested", None, "too few requests to decide" if have_samples else NO_SAMPLES)


def _llm_values(samples: dict[str, Sequence[int]], figure: str) -> Sequence[int]:
    if figure == "token_gaps":
        return np.diff(np.asarray(samples.get("token_ns", ()), dtype=np.int64), prepend=0).tolist()
    return samples.get(figure, ())


def _p_value(
    metric: str,
    base: PerfRow,
    other: PerfRow,
    base_samples: Sequence[int] | None,
    other_samples: Sequence[int] | None,
) -> tuple[float | None, str]:
    have_samples = base_samples is not None and other_samples is not None
    if have_samples and metric in BLOCK_STATISTIC:
        tested = blocks_test(base_samples, other_samples, *BLOCK_STATISTIC[metric])
        if tested is not None:
            return tested
    if metric == ROW_KEYS["avg_latency"]:
        p = welch_from_rows(base, other)
        if p is not None:
            return p, "Welch t from the rows' mean, spread and count"
    if metric == QPS:
        p = interval_test(base.qps, base.qps_interval(), other.qps, other.qps_interval())
        if p is not None:
            return p, "the rows' 95% QPS intervals"
    return None, "too few calls to decide" if have_samples else NO_SAMPLES


def blocks_test(
    base_samples: Sequence[int],
    other_samples: Sequence[int],
    statistic: str | int,
    min_values: int,
    what: str = "calls",
) -> tuple[float, str] | None:
    """(p, method) of the block test on two runs' samples, or None where their blocks cannot reach ALPHA."""
    a, b = block_values(base_samples, statistic, min_values), block_values(other_samples, statistic, min_values)
    if not rank_test_can_reject(len(a), len(b)):
        return None
    # Both must reject (an intersection-union test, so the larger p): blocks that rank apart, and
    # levels further apart than the machine's drift within the runs explains.
    drift = speed_drift(base_samples), speed_drift(other_samples)
    p = max(rank_test(a, b), beyond_drift(a, b, *drift))
    return p, f"Mann-Whitney U on {len(a)} and {len(b)} blocks of {what}, and the change against the drift"


def _one_run(runs: Sequence[float] | None, value: float | None) -> Sequence[float]:
    """A side's run values: those it pools, or its one run's value."""
    if runs is not None:
        return runs
    return () if value is None else (value,)


def runs_test(a: Sequence[float], b: Sequence[float]) -> tuple[float | None, str]:
    """Two-sided p-value that two sides' runs differ in level, from each run's value of a number: their
    spread is the run-to-run noise, measured rather than assumed from one run's blocks.
    - several runs on both sides: Welch's t-test (no equal spread assumed);
    - one run against several: whether it lies outside where another run of the several would, i.e.
      t = (x - mean) / (s * sqrt(1 + 1/n)) on n - 1 degrees of freedom (it is taken to scatter as they do).
    One run on each side has no run-to-run spread to test against: untested."""
    from scipy.stats import t, ttest_ind

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if min(len(a), len(b)) < 1 or max(len(a), len(b)) < 2:
        return None, "too few runs to decide"
    if len(a) >= 2 and len(b) >= 2:
        method = f"Welch t on {len(a)} and {len(b)} runs"
        if a.var() == 0 and b.var() == 0:
            return (1.0 if a.mean() == b.mean() else 0.0), method
        return float(ttest_ind(a, b, equal_var=False).pvalue), method
    one, several = (a, b) if len(a) == 1 else (b, a)
    method = f"t on 1 run against the spread of {len(several)} runs"
    spread = float(several.std(ddof=1)) * math.sqrt(1 + 1 / len(several))
    gap = abs(float(one[0]) - float(several.mean()))
    if spread == 0:
        return (1.0 if gap == 0 else 0.0), method
    return float(2 * t.sf(gap / spread, len(several) - 1)), method


def block_values(samples: Sequence[int], statistic: str | int, min_calls: int) -> np.ndarray:
    """The calls cut into up to MAX_BLOCKS consecutive blocks of at least `min_calls` each, each block
    reduced to its mean or its `statistic`-th percentile."""
    values = np.asarray(samples, dtype=np.float64)
    blocks = min(MAX_BLOCKS, len(values) // min_calls)
    if blocks < 1:
        return np.empty(0)
    parts = np.array_split(values, blocks)
    if statistic == "mean":
        return np.array([part.mean() for part in parts])
    return np.array([np.percentile(part, statistic) for part in parts])


def rank_test_can_reject(n: int, m: int) -> bool:
    """Whether two-sided Mann-Whitney U on n and m values can reach ALPHA at all: its smallest p-value,
    at complete separation, is 2 / C(n + m, n)."""
    return n >= 1 and m >= 1 and 2 / math.comb(n + m, n) < ALPHA


def rank_test(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Mann-Whitney U p-value (scipy's choice: exact for few values without ties, else asymptotic)."""
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(a, b, alternative="two-sided", method="auto").pvalue)


def speed_drift(samples: Sequence[int]) -> float:
    """How much the machine's speed moved between blocks of one run beyond what the calls' own scatter
    explains, as a variance relative to the squared mean latency (statistics.drift_variance: 0 on a quiet
    machine)."""
    values = np.asarray(samples, dtype=np.float64)
    blocks = min(MAX_BLOCKS, len(values) // 2)  # two calls a block at least: a block's own scatter is needed
    if blocks < 2:
        return 0.0
    parts = np.array_split(values, blocks)
    means = np.array([part.mean() for part in parts])
    scatter = float(np.mean([part.var(ddof=1) / len(part) for part in parts]))
    level = float(means.mean()) ** 2
    return drift_variance(float(means.var(ddof=1)) / level, scatter / level, len(parts), len(values))


def beyond_drift(a: np.ndarray, b: np.ndarray, drift_a: float, drift_b: float) -> float:
    """Two-sided p-value that two runs' levels differ by more than their blocks' scatter and the machine's
    drift allow: the difference of the block means over sqrt(se_a^2 + se_b^2 + drift_a*a^2 + drift_b*b^2),
    on Student's t with n + m - 2 degrees of freedom. The drift terms assume the worst for a shared machine:
    that a whole run can sit at one speed, as far off as a block of it (benchmarks/fidelity.py measures
    how far identical runs lie apart)."""
    from scipy.stats import t

    level_a, level_b = float(a.mean()), float(b.mean())
    variance = a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b) + drift_a * level_a**2 + drift_b * level_b**2
    if variance == 0:
        return 1.0 if level_a == level_b else 0.0
    return float(2 * t.sf(abs(level_a - level_b) / math.sqrt(variance), len(a) + len(b) - 2))


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
