"""Latency objectives for an LLM load point: goodput, whether a point meets the SLO (with its evidence), and
the search for the highest request rate that does.

An SLO is limits in ms on percentiles of TTFT, TPOT and E2E ("ttft_p99": 2000). A request is good when each
of its own TTFT, TPOT and E2E is within the limit on that metric (vLLM's goodput); goodput is good requests
per second of the window, so it never exceeds the throughput. A load point meets the SLO when every named
percentile's point estimate is within its limit; beside that the evidence says whether the 95% upper bounds
are too, or that too few requests back them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from core.measure.llm_serving import Request, Served
from core.reporting.llm_rows import Distribution, LlmRow

METRICS = {"ttft": "TTFT", "tpot": "TPOT", "e2e": "E2E"}
PERCENTILES = ("p50", "p90", "p99")


def good(request: Request, limits: dict[str, float]) -> bool:
    """Whether one request is within every limit (each metric against its limit, whatever the percentile)."""
    values = {"ttft": request.ttft_ns / 1e6, "e2e": request.e2e_ns / 1e6}
    tpot = request.tpot_ns
    values["tpot"] = 0.0 if tpot is None else tpot / 1e6  # a one-token answer has no TPOT to miss
    return all(values[key.partition("_")[0]] <= limit for key, limit in limits.items())


def goodput(served: Served, limits: dict[str, float]) -> tuple[int, float]:
    """Good requests and their rate over the window."""
    count = sum(good(r, limits) for r in served.requests)
    return count, (count / served.seconds if served.seconds > 0 else math.nan)


def judge(row: LlmRow, limits: dict[str, float]) -> dict[str, Any]:
    """Each objective's point estimate, 95% upper bound and request count against its limit; `Met` when every
    point estimate is within, `Upper Met` when every bound is too (None: some bound lacks the requests)."""
    objectives = {}
    for key, limit in limits.items():
        metric, _, percentile = key.partition("_")
        dist: Distribution | None = getattr(row, metric)
        value = getattr(dist, percentile, None) if dist else None
        upper = getattr(dist, f"{percentile}_upper", None) if dist and percentile != "p50" else value
        objectives[f"{METRICS[metric]} {percentile.upper()}"] = {
            "Limit ms": limit,
            "Value ms": value,
            "Met": value is not None and value <= limit,
            "Upper 95% ms": upper,
            "Upper Met": None if upper is None else upper <= limit,
            "Count": dist.count if dist else 0,
        }
    uppers = [o["Upper Met"] for o in objectives.values()]
    return {
        "Met": row.ok and all(o["Met"] for o in objectives.values()),
        "Upper Met": None if None in uppers else all(uppers),
        "Objectives": objectives,
    }


def find_max_rate(
    probe: Callable[[float], LlmRow],
    limits: dict[str, float],
    start: float,
    tried: dict[float, LlmRow] | None = None,
    max_probes: int = 8,
    precision: float = 0.1,
) -> dict[str, Any]:
    """The highest rate whose point meets the SLO, searched by doubling or halving from `start` (or from the
    rates `tried` already) then bisecting (geometrically) until the passing and failing rates are within
    `precision` of each other or `max_probes` points ran. Assumes more load never lowers a latency."""
    rows = dict(tried or {})
    met = {rate: judge(row, limits)["Met"] for rate, row in rows.items()}
    probes = 0
    while probes < max_probes:
        lo = max((r for r, ok in met.items() if ok), default=None)
        hi = min((r for r, ok in met.items() if not ok and (lo is None or r > lo)), default=None)
        if lo is None and hi is None:
            rate = start
        elif hi is None:
            rate = lo * 2
        elif lo is None:
            rate = hi / 2
        elif hi / lo <= 1 + precision:
            break
        else:
            rate = math.sqrt(lo * hi)
        rate = float(f"{rate:.3g}")
        if rate in met:  # rounding met a rate already run: as close as this search gets
            break
        rows[rate] = probe(rate)
        met[rate] = judge(rows[rate], limits)["Met"]
        probes += 1
    lo = max((r for r, ok in met.items() if ok), default=None)
    hi = min((r for r, ok in met.items() if not ok and (lo is None or r > lo)), default=None)
    result: dict[str, Any] = {
        "Max Rate": lo,
        "Lowest Failing Rate": hi,
        "Probes": probes,
        "Rates Tried": sorted(met),
    }
    if lo is None:
        result["Note"] = f"no rate tried (down to {min(met)} requests/s) met the SLO"
    else:
        evidence = judge(rows[lo], limits)
        result["Upper Met"] = evidence["Upper Met"]
        result["Objectives"] = evidence["Objectives"]
        result["Requests"] = rows[lo].request_number
    return result
