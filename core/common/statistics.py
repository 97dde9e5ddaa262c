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
    from scipy.stats import binom

    n = len(sorted_samples)
    if n < samples_needed(q, confidence):
        return None
    # Smallest k (1-based) with P(Binomial(n, q) <= k - 1) >= confidence.
    k = int(binom.ppf(confidence, n, q)) + 1
    while k > 1 and binom.cdf(k - 2, n, q) >= confidence:  # ppf is a float search: step back where it overshot
        k -= 1
    while binom.cdf(k - 1, n, q) < confidence:
        k += 1
    return float(sorted_samples[min(k, n) - 1])
