"""A load point's requests turned into the report's LLM row: per-request TTFT, TPOT, E2E, queue and prefill
time, every inter-token gap, the token throughput with its 95% interval, and llm_perf's client/server
figures from the same numbers."""

from __future__ import annotations

import numpy as np

from core.measure.llm_serving import Served
from core.reporting.llm_rows import ClientSide, Distribution, LlmRow, ServerSide


def distribution(values_ms: list[float]) -> Distribution | None:
    from core.measure.timing import LatencyStats, tail_backing

    if not values_ms:
        return None
    stats = LatencyStats.from_ns([round(v * 1e6) for v in values_ms])
    r = lambda v: None if v is None else round(v, 4)
    return Distribution(
        avg=r(stats.mean),
        p50=r(stats.p50),
        p90=r(stats.p90),
        p99=r(stats.p99),
        min=r(stats.min),
        max=r(stats.max),
        p90_upper=r(stats.p90_upper),
        p99_upper=r(stats.p99_upper),
        count=stats.count,
        tail_backing=tail_backing(stats.count),
    )


def _ms(values_ns) -> list[float]:
    return [v / 1e6 for v in values_ns]


def _avg_p90(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return round(float(np.mean(values)), 4), round(float(np.percentile(values, 90)), 4)


def llm_row(served: Served, tp_size: int = 1, slo: dict[str, float] | None = None) -> LlmRow:
    """The row of one load point (latencies in ms); with `slo`, its goodput and whether it met the SLO."""
    from core.common.statistics import rate_interval

    load, requests = served.load, served.requests
    row = LlmRow(
        tp_size=tp_size,
        batch_size=load.concurrency,
        input_tokens=load.input_tokens,
        output_tokens=load.output_tokens,
        stop_reason=served.stop_reason,
        measured_seconds=round(served.seconds, 4),
    )
    if load.open_loop:
        shape = "Poisson" if load.burstiness == 1 else f"gamma, burstiness {load.burstiness:g}"
        row.load_mode = f"open loop ({shape})"
        row.request_rate, row.burstiness = load.rate, load.burstiness
    else:
        row.load_mode, row.concurrency = "closed loop", load.concurrency
    if not requests:
        row.status, row.error = "failed", "no request completed in the window"
        return row
    ttft = _ms(r.ttft_ns for r in requests)
    tpot = _ms(r.tpot_ns for r in requests if r.tpot_ns is not None)
    queue = _ms(r.prefill_start - r.arrival for r in requests)
    prefill = _ms(r.prefill_end - r.prefill_start for r in requests)
    decode_wait = _ms(r.decode_wait_ns for r in requests)
    decode_model = _ms(r.decode_model_ns for r in requests)
    row.ttft, row.tpot, row.queue, row.prefill = (distribution(v) for v in (ttft, tpot, queue, prefill))
    row.itl = distribution(_ms(gap for r in requests for gap in r.itl_ns))
    row.e2e = distribution(_ms(r.e2e_ns for r in requests))
    row.client = ClientSide(*_avg_p90(ttft), *_avg_p90(tpot))
    row.server = ServerSide(*_avg_p90(queue), *_avg_p90(prefill), *_avg_p90(decode_wait), *_avg_p90(decode_model))
    tokens = sum(len(r.tokens) for r in requests)
    seconds = served.seconds
    row.request_number = len(requests)
    row.token_throughput = round(tokens / seconds, 4)
    row.qps = round(len(requests) / seconds, 6)
    row.prefill_tokens_per_s = round(sum(len(r.prompt) for r in requests) / (sum(prefill) / 1e3), 4)
    row.decode_tokens_per_s = round(float(np.mean([1e3 / t for t in tpot])), 4) if tpot else None
    completions = sorted(t - served.start_ns for r in requests for t in r.token_times)
    interval = rate_interval(completions, 1, callers=load.concurrency)
    if interval is not None:
        row.token_throughput_low, row.token_throughput_high = (round(v, 4) for v in interval)
    arrivals = sorted(r.arrival for r in requests)
    if len(arrivals) > 1 and arrivals[-1] > arrivals[0]:  # n - 1 gaps: the arrival process's own rate
        row.achieved_rate = round((len(arrivals) - 1) / ((arrivals[-1] - arrivals[0]) / 1e9), 6)
    if slo:
        from core.measure.llm_slo import goodput, judge

        row.good_requests, rate = goodput(served, slo)
        row.goodput = round(rate, 6)
        verdict = judge(row, slo)
        row.slo_met, row.slo_upper_met = verdict["Met"], verdict["Upper Met"]
    if served.joules is not None and tokens:
        row.joules_per_token = round(served.joules / tokens, 6)
    return row
