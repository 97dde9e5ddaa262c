"""How far a measured tail percentile can be trusted: distribution-free bounds from order statistics.

The true q-quantile lies below the k-th smallest of n samples with probability P(Binomial(n, q) <= k - 1),
whatever the latency distribution. The upper bound at confidence c is the smallest such order statistic
with that probability at least c; with fewer than log(1 - c) / log(q) samples even the largest sample is
not one (P99 at 95%: 299 samples), and the percentile is reported as unbacked.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

CONFIDENCE = 0.95


def samples_needed(q: float, confidence: float = CONFIDENCE) -> int:
    """The fewest samples for which the largest one bounds the q-quantile from above at `confidence`."""
    return math.ceil(math.log(1 - confidence) / math.log(q))


def upper_bound(sorted_samples: Sequence[float], q: float, confidence: float = CONFIDENCE) -> float | None:
    """An upper confidence bound on the q-quantile from sorted samples, or None when there are too few."""
    import numpy as np
    from scipy.stats import binom

    n = len(sorted_samples)
    if n < samples_needed(q, confidence):
        return None
    # The smallest k (1-based) with P(Binomial(n, q) <= k - 1) >= confidence, looked up in the cdf itself
    # (binom.ppf inverts it by a float search that can land one off).
    k = int(np.searchsorted(binom.cdf(np.arange(n), n, q), confidence)) + 1
    return float(sorted_samples[min(k, n) - 1])


def rate_interval(
    completions_ns: Sequence[int],
    items_per_call: int,
    confidence: float = CONFIDENCE,
    max_blocks: int = 10,
    callers: int = 1,
) -> tuple[float, float] | None:
    """A confidence interval for a throughput (items per second) by batch means, widened by the machine's drift.

    The calls, in the order they completed, are cut into up to `max_blocks` consecutive blocks of equal
    count; each block's rate is its items over the time since the previous block ended. Consecutive blocks
    rather than resampled calls, because a shared machine's speed drifts over a window: calls next to each
    other are alike, and an interval that pretends they are independent is too narrow. Student's t over
    the block rates, with the drift the blocks show added as one more variance term: how much the block
    rates scatter beyond what the gaps between completions inside each block explain (drift_variance; 0 on
    a quiet machine), taken as able to move the whole window that far, as it does between runs on a shared
    VM (benchmarks/fidelity.py). None with fewer than 4 calls per caller. Each block holds at least two
    calls per concurrent caller: `callers` clients finish calls close together, and a block of two such
    calls would span almost no time and claim an absurd rate.
    """
    from scipy.stats import t

    blocks = _block_rates(completions_ns, items_per_call, max_blocks, callers)
    if blocks is None:
        return None
    rates, mean, variance, drift = blocks
    spread = math.sqrt(variance / len(rates) + drift * mean**2)
    half = float(t.ppf((1 + confidence) / 2, len(rates) - 1)) * spread
    return max(0.0, mean - half), mean + half


def rate_drift(
    completions_ns: Sequence[int], items_per_call: int, max_blocks: int = 10, callers: int = 1
) -> float | None:
    """How far the machine's speed moved during the window: the standard deviation the drift adds to a
    block's rate, relative to the mean rate (0 on a quiet machine; 0.1: blocks scattered ±10% beyond what
    their own calls explain). None with too few calls to cut blocks."""
    blocks = _block_rates(completions_ns, items_per_call, max_blocks, callers)
    return None if blocks is None else math.sqrt(blocks[3])


def _block_rates(completions_ns, items_per_call: int, max_blocks: int, callers: int):
    """(block rates, their mean, their variance, the drift's relative variance), or None (too few calls)."""
    import numpy as np

    # Concurrent clients record completions nearly, not exactly, in order.
    completions = np.sort(np.asarray(completions_ns, dtype=np.float64))
    n = len(completions)
    blocks = min(max_blocks, n // (2 * callers))
    if blocks < 2:
        return None
    bounds = [round(n * i / blocks) for i in range(blocks + 1)]
    gaps = np.diff(completions, prepend=0.0)  # each completion's distance from the one before
    rates, scatter = [], []
    for lo, hi in zip(bounds, bounds[1:]):
        block = gaps[lo:hi]
        if block.sum() > 0:
            rates.append(items_per_call * (hi - lo) * 1e9 / block.sum())
            # The block rate's relative variance from its own gaps alone: var(gap) / (count * mean gap^2).
            scatter.append(block.var(ddof=1) / (len(block) * block.mean() ** 2))
    if len(rates) < 2:
        return None
    rates = np.array(rates)
    mean, variance = float(rates.mean()), float(rates.var(ddof=1))
    return rates, mean, variance, drift_variance(variance / mean**2, float(np.mean(scatter)), len(rates), n)


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Student's t confidence interval for the mean of independent values (at least two), e.g. repeated
    runs' QPS: their scatter is the run-to-run noise itself."""
    import numpy as np
    from scipy.stats import t

    data = np.asarray(values, dtype=np.float64)
    mean = float(data.mean())
    half = float(t.ppf((1 + confidence) / 2, len(data) - 1)) * float(data.std(ddof=1)) / math.sqrt(len(data))
    return max(0.0, mean - half), mean + half


def drift_variance(between: float, within: float, blocks: int, calls: int) -> float:
    """How much of the variance of block values (`between`) the machine's drift adds to what the calls
    inside each block explain (`within`: the variance a block value has from its own calls' scatter alone),
    where an F test over `blocks` blocks of `calls` calls in all finds such a part at 95%; else 0 (a quiet
    machine keeps the plain batch-means interval). One-way random-effects analysis of variance."""
    from scipy.stats import f

    if within <= 0:
        return max(0.0, between)  # calls alike inside each block: all the scatter is between blocks
    if f.sf(between / within, blocks - 1, calls - blocks) >= 1 - CONFIDENCE:
        return 0.0
    return between - within
