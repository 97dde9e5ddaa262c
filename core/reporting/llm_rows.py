"""An LLM report's Performance row: llm_perf's keys (client, server, Token Throughput, Request Number, QPS)
and ours (TTFT, TPOT, ITL, E2E, queue and prefill time as distributions with their bounds).

Latencies in ms. In LLM rows `QPS` is requests per second, as in llm_perf. TTFT counts from the request's
arrival, so it includes the queue; `Queue Time` and `Prefill Time` split it. TPOT is llm_perf's
(E2E - TTFT) / (output tokens - 1) per request; ITL is every gap between consecutive tokens, a distribution
over tokens rather than requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from core.reporting.schema import as_number
from core.reporting.sections import Section

# The distributions a row holds, in display order.
DISTRIBUTIONS = {
    "ttft": "TTFT",
    "tpot": "TPOT",
    "itl": "ITL",
    "e2e": "E2E",
    "queue": "Queue Time",
    "prefill": "Prefill Time",
}
# Row figures compare judges, and which way is better.
JUDGED = {
    "TTFT.AVG": "lower",
    "TTFT.P99": "lower",
    "TPOT.AVG": "lower",
    "TPOT.P99": "lower",
    "Token Throughput": "higher",
}
# Where llm_perf's rows (no distributions) hold a judged figure.
CLIENT_FIGURES = {"TTFT.AVG": "client.First Token Latency(AVG)", "TPOT.AVG": "client.Per Token Latency(AVG)"}


@dataclass
class Distribution(Section):
    """Percentiles of one latency (ms), with 95% upper bounds where enough samples back them."""

    KEYS: ClassVar[dict[str, str]] = {
        "avg": "AVG",
        "p50": "P50",
        "p90": "P90",
        "p99": "P99",
        "min": "Min",
        "max": "Max",
        "p90_upper": "P90 Upper 95%",
        "p99_upper": "P99 Upper 95%",
        "count": "Count",
        "tail_backing": "Tail Backing",
    }
    avg: float | None = None
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    min: float | None = None
    max: float | None = None
    p90_upper: float | None = None
    p99_upper: float | None = None
    count: int | None = None
    tail_backing: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ClientSide(Section):
    """llm_perf's client block."""

    KEYS: ClassVar[dict[str, str]] = {
        "ttft_avg": "First Token Latency(AVG)",
        "ttft_p90": "First Token Latency(P90)",
        "tpot_avg": "Per Token Latency(AVG)",
        "tpot_p90": "Per Token Latency(P90)",
    }
    ttft_avg: float | None = None
    ttft_p90: float | None = None
    tpot_avg: float | None = None
    tpot_p90: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ServerSide(Section):
    """llm_perf's server block: waiting for and running the prefill ("context") and the decode steps."""

    KEYS: ClassVar[dict[str, str]] = {
        "context_wait_avg": "Context Wait Time(AVG)",
        "context_wait_p90": "Context Wait Time(P90)",
        "context_model_avg": "Context Model Time(AVG)",
        "context_model_p90": "Context Model Time(P90)",
        "decode_wait_avg": "Decode Wait Time(AVG)",
        "decode_wait_p90": "Decode Wait Time(P90)",
        "decode_model_avg": "Decode Model Time(AVG)",
        "decode_model_p90": "Decode Model Time(P90)",
    }
    context_wait_avg: float | None = None
    context_wait_p90: float | None = None
    context_model_avg: float | None = None
    context_model_p90: float | None = None
    decode_wait_avg: float | None = None
    decode_wait_p90: float | None = None
    decode_model_avg: float | None = None
    decode_model_p90: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class LlmRoofline(Section):
    """How close a load point's prefill came to the compute peak and its decode steps to the memory bandwidth.
    Prefill: the work of one request's prompt over its prefill time. Decode: the bytes one step reads (weights
    at the precision that ran, the KV cache at the mean context) over the mean step time, with the batch taken
    as the load point's concurrency."""

    KEYS: ClassVar[dict[str, str]] = {
        "prefill_gflop": "Prefill GFLOP",
        "prefill_gflops": "Prefill GFLOP/s",
        "compute_peak_gflops": "Compute Peak GFLOP/s",
        "prefill_peak_share": "Prefill Peak Share",
        "decode_step_ms": "Decode Step ms",
        "decode_context": "Decode Context",
        "decode_mb_per_step": "Decode MB/Step",
        "decode_gbs": "Decode GB/s",
        "bandwidth_gbs": "Bandwidth GB/s",
        "decode_mbu": "Decode MBU",
        "decode_ceiling_tokens_per_s": "Decode Ceiling Tokens/s",
        "note": "Note",
    }
    prefill_gflop: float | None = None
    prefill_gflops: float | None = None
    compute_peak_gflops: float | None = None
    prefill_peak_share: float | None = None  # MFU
    decode_step_ms: float | None = None
    decode_context: float | None = None
    decode_mb_per_step: float | None = None
    decode_gbs: float | None = None
    bandwidth_gbs: float | None = None
    decode_mbu: float | None = None
    decode_ceiling_tokens_per_s: float | None = None  # bandwidth / bytes per step x batch
    note: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class LlmRow(Section):
    """One load point: TP size, concurrency (llm_perf's batch size), input and output lengths."""

    KEYS: ClassVar[dict[str, str]] = {
        "tp_size": "TP Size",
        "batch_size": "Batch Size",
        "input_tokens": "Input Tokens",
        "output_tokens": "Output Tokens",
        "client": "client",
        "server": "server",
        "token_throughput": "Token Throughput",
        "request_number": "Request Number",
        "qps": "QPS",
        "status": "Status",
        "error": "Error",
        "token_throughput_low": "Token Throughput Low 95%",
        "token_throughput_high": "Token Throughput High 95%",
        "prefill_tokens_per_s": "Prefill Tokens/s",
        "decode_tokens_per_s": "Decode Tokens/s",
        **DISTRIBUTIONS,
        "measured_seconds": "Measured Seconds",
        "warmup_seconds": "Warmup Seconds",
        "stop_reason": "Stop Reason",
        "peak_rss_mb": "Peak RSS MB",
        "kv_cache_mb": "KV Cache MB",
        "roofline": "Roofline",
        "load_mode": "Load Mode",
        "concurrency": "Concurrency",
        "request_rate": "Request Rate",
        "burstiness": "Burstiness",
        "achieved_rate": "Achieved Rate",
        "goodput": "Goodput",
        "good_requests": "Good Requests",
        "slo_met": "SLO Met",
        "slo_upper_met": "SLO Upper Met",
        "joules_per_token": "Joules Per Token",
        "search": "Search",
    }
    NESTED: ClassVar[dict[str, type[Section]]] = {
        "client": ClientSide,
        "server": ServerSide,
        "roofline": LlmRoofline,
        **dict.fromkeys(DISTRIBUTIONS, Distribution),
    }
    tp_size: int | None = None
    batch_size: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    client: ClientSide | None = None
    server: ServerSide | None = None
    token_throughput: float | None = None  # completion tokens per second over the window
    request_number: int | None = None
    qps: float | None = None  # requests per second
    status: str = "ok"
    error: str | None = None
    token_throughput_low: float | None = None
    token_throughput_high: float | None = None
    prefill_tokens_per_s: float | None = None  # prompt tokens over the time spent prefilling
    decode_tokens_per_s: float | None = None  # per request: 1 / TPOT, averaged
    ttft: Distribution | None = None
    tpot: Distribution | None = None
    itl: Distribution | None = None
    e2e: Distribution | None = None
    queue: Distribution | None = None
    prefill: Distribution | None = None
    measured_seconds: float | None = None
    warmup_seconds: float | None = None
    stop_reason: str | None = None
    peak_rss_mb: float | None = None
    kv_cache_mb: float | None = None
    roofline: LlmRoofline | None = None
    # Serving load: closed loop (Concurrency = Batch Size, llm_perf's B) or open loop (Request Rate, with
    # Batch Size the requests in flight at most); Achieved Rate is requests sent per second as they arrived,
    # QPS requests completed per second, Goodput those that met every objective of the SLO.
    load_mode: str | None = None
    concurrency: int | None = None
    request_rate: float | None = None
    burstiness: float | None = None
    achieved_rate: float | None = None
    goodput: float | None = None
    good_requests: int | None = None
    slo_met: bool | None = None  # every objective's point estimate within its limit
    slo_upper_met: bool | None = None  # ... and its 95% upper bound (None: too few requests to bound it)
    joules_per_token: float | None = None  # the host's energy counter over the window, per output token
    search: str | None = None  # "find-max-rate probe" for a point the search added
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def point(self) -> tuple[int, int, int, int, float]:
        """What identifies the load point: (TP size, batch size, input tokens, output tokens, request rate; 0
        for a closed loop)."""
        return (
            self.tp_size or 1,
            self.batch_size or 0,
            self.input_tokens or 0,
            self.output_tokens or 0,
            self.request_rate or 0.0,
        )

    @property
    def key(self) -> str:
        """The load point's name in the kept samples: tp1-bs4-in128-out32 (open loop: ...-rate2.5)."""
        tp, bs, tokens_in, tokens_out, rate = self.point
        return f"tp{tp}-bs{bs}-in{tokens_in}-out{tokens_out}" + (f"-rate{rate:g}" if rate else "")

    @property
    def label(self) -> str:
        tp = f"tp {self.tp_size}, " if (self.tp_size or 1) > 1 else ""
        out = f", {self.output_tokens} out" if self.output_tokens is not None else ""  # llm_perf's rows do not say
        load = f"{self.request_rate:g} req/s" if self.request_rate else f"bs {self.batch_size}"
        return f"{tp}{load}, {self.input_tokens} in{out}"

    def number(self, key: str) -> float | None:
        """A figure by its report key, dotted for a distribution's ("TTFT.P99", "client.Per Token Latency(AVG)")."""
        head, _, tail = key.partition(".")
        by_key = {k: name for name, k in self.KEYS.items()}
        name = by_key.get(head)
        if name is None:
            return as_number(self.extra.get(key))
        value = getattr(self, name)
        if tail:
            return as_number(value.to_dict().get(tail)) if isinstance(value, Section) else None
        return None if isinstance(value, Section) else as_number(value)

    def token_throughput_interval(self) -> tuple[float, float] | None:
        low, high = as_number(self.token_throughput_low), as_number(self.token_throughput_high)
        return (low, high) if low is not None and high is not None else None

    def figure(self, key: str) -> float | None:
        """A judged figure: ours, else llm_perf's client block's (its rows have no distributions)."""
        value = self.number(key)
        return self.number(CLIENT_FIGURES[key]) if value is None and key in CLIENT_FIGURES else value

    def unbacked(self, key: str) -> bool:
        """Whether a tail percentile ("TTFT.P99") rests on fewer samples than its 95% upper bound needs:
        shown as such, never judged."""
        from core.common.statistics import samples_needed

        head, _, tail = key.partition(".")
        quantile = {"P90": 0.90, "P99": 0.99}.get(tail)
        count = self.number(f"{head}.Count")
        return quantile is not None and count is not None and count < samples_needed(quantile)


def is_llm_row(row: Any) -> bool:
    """Whether a Performance row is an LLM one (llm_perf's or ours), by its keys."""
    return isinstance(row, dict) and "Batch Size" in row and "Input Tokens" in row and "BS" not in row
