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
    """A confidence interval for a throughput (items per second) by batch means.

    The calls, in the order they completed, are cut into up to `max_blocks` consecutive blocks of equal
    count; each block's rate is its items over the time since the previous block ended. Consecutive blocks
    rather than resampled calls, because a shared machine's speed drifts over a window: calls next to each
    other are alike, and an interval that pretends they are independent is too narrow. Student's t over
    the block rates; None with fewer than 4 calls per caller. Each block holds at least two calls per
    concurrent caller: `callers` clients finish calls close together, and a block of two such calls would
    span almost no time and claim an absurd rate.
    """
    from scipy.stats import t

    completions_ns = sorted(completions_ns)  # concurrent clients record completions nearly, not exactly, in order
    n = len(completions_ns)
    blocks = min(max_blocks, n // (2 * callers))
    if blocks < 2:
        return None
    ends = [completions_ns[round(n * (i + 1) / blocks) - 1] for i in range(blocks)]
    counts = [round(n * (i + 1) / blocks) - round(n * i / blocks) for i in range(blocks)]
    starts = [0, *ends[:-1]]
    rates = [items_per_call * c * 1e9 / (end - start) for c, start, end in zip(counts, starts, ends) if end > start]
    if len(rates) < 2:
        return None
    mean = sum(rates) / len(rates)
    sd = math.sqrt(sum((r - mean) ** 2 for r in rates) / (len(rates) - 1))
    half = float(t.ppf((1 + confidence) / 2, len(rates) - 1)) * sd / math.sqrt(len(rates))
    return max(0.0, mean - half), mean + half
