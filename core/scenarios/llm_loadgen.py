"""MLPerf LoadGen's LLM scenarios (Server, Offline) over the same server loop as every LLM load point.

LoadGen decides when queries arrive (Server: Poisson at its target QPS; Offline: all at once) and judges the
run; its queries are the server's arrivals (core.measure.llm_serving.serve with this module's source), each
first token is reported with `FirstTokenComplete` and each answer with `QuerySamplesComplete` and its token
count, so LoadGen measures TTFT and TPOT itself (`use_token_latencies`) against the run's SLO. Its logs are
kept beside the report as the encoder scenarios keep theirs.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.measure.llm_serving import Load, Request, Served, serve
from core.reporting.sections import LoadGenResult

LLM_SCENARIOS = ("Server", "Offline")


class LoadGenArrivals:
    """LoadGen's queries as arrivals: `issue_queries` (LoadGen's thread) queues each with the time it was
    issued; the server's thread takes them (as llm_serving.Arrivals: due, done, wait) and hands first tokens
    and answers back."""

    def __init__(self, lg, prompts: Sequence[tuple[int, ...]], max_tokens: int, clock=time.perf_counter_ns):
        self.lg, self.prompts, self.max_tokens, self.clock = lg, prompts, max_tokens, clock
        self.queue: deque[tuple[int, int, int]] = deque()  # (issued ns, query id, sample index)
        self.ready = threading.Condition()
        self.closed = False
        self.stop_reason = "LoadGen"
        self.keep: dict[int, np.ndarray] = {}  # response buffers live until LoadGen has read them

    def issue_queries(self, query_samples) -> None:
        now = self.clock()
        with self.ready:
            self.queue.extend((now, s.id, s.index) for s in query_samples)
            self.ready.notify_all()

    def flush_queries(self) -> None:
        pass

    def close(self) -> None:
        with self.ready:
            self.closed = True
            self.ready.notify_all()

    def due(self, now: int) -> list[Request]:
        with self.ready:
            taken = [self.queue.popleft() for _ in range(len(self.queue))]
        return [
            Request(index, self.prompts[index], arrival=at, max_tokens=self.max_tokens, tag=query)
            for at, query, index in taken
        ]

    def done(self) -> bool:
        with self.ready:
            return self.closed and not self.queue

    def wait(self, clock, sleep) -> None:
        with self.ready:
            if not self.queue and not self.closed:
                self.ready.wait(timeout=0.05)

    def _response(self, request: Request, tokens: list[int], count: bool):
        data = np.asarray(tokens, dtype=np.int32)
        self.keep[request.tag] = data
        address, size = data.__array_interface__["data"][0], data.nbytes
        if count:
            return self.lg.QuerySampleResponse(request.tag, address, size, len(tokens))
        return self.lg.QuerySampleResponse(request.tag, address, size)

    def first_token(self, request: Request) -> None:
        self.lg.FirstTokenComplete([self._response(request, request.tokens[:1], count=False)])

    def completed(self, request: Request) -> None:
        self.lg.QuerySamplesComplete([self._response(request, request.tokens, count=True)])
        self.keep.pop(request.tag, None)


@dataclass(frozen=True)
class LlmLoadGenSettings:
    scenario: str  # Server or Offline
    target_qps: float  # Server: LoadGen's arrival rate; Offline: the expected rate (sizes the query count)
    ttft_ms: float
    tpot_ms: float
    min_duration_s: float
    min_query_count: int


def run_llm_scenario(
    engine, load: Load, prompts: Sequence[tuple[int, ...]], settings: LlmLoadGenSettings, outdir: Path, folder: Path
) -> tuple[LoadGenResult, Served]:
    """One LoadGen run over `engine`: LoadGen's verdict (TTFT and TPOT P99 as LoadGen measured them, its logs)
    and the requests as our server timed them."""
    import mlperf_loadgen as lg

    source = LoadGenArrivals(lg, prompts, load.output_tokens)
    outcome: dict[str, object] = {}

    def server() -> None:
        try:
            outcome["served"] = serve(engine, load, None, arrivals=lambda *_: source)
        except Exception as err:  # noqa: BLE001 - LoadGen waits for every query: keep answering, report after
            outcome["error"] = f"{type(err).__name__}: {str(err)[:300]}"
            while not source.done():  # answer the rest empty so StartTest returns
                for request in source.due(source.clock()):
                    request.tokens = [0]
                    source.first_token(request)
                    source.completed(request)
                source.wait(None, None)

    outdir.mkdir(parents=True, exist_ok=True)
    log_settings = lg.LogSettings()
    log_settings.log_output.outdir = str(outdir)
    log_settings.log_output.copy_summary_to_stdout = False
    log_settings.enable_trace = False
    sut = lg.ConstructSUT(source.issue_queries, source.flush_queries)
    qsl = lg.ConstructQSL(len(prompts), len(prompts), lambda _: None, lambda _: None)  # prompts are in memory
    thread = threading.Thread(target=server, name="llm-server", daemon=True)
    # LoadGen's issuing thread waits for the GIL while the server runs Python: hand it over sooner than the
    # default 5 ms, or LoadGen's TTFT carries that wait as well.
    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    thread.start()
    try:
        lg.StartTestWithLogSettings(sut, qsl, _test_settings(lg, settings), log_settings)
    finally:
        source.close()
        thread.join()
        sys.setswitchinterval(switch)
        lg.DestroyQSL(qsl)
        lg.DestroySUT(sut)
    entry = summarize(settings, outdir / "mlperf_log_detail.txt")
    entry.log_summary = (outdir / "mlperf_log_summary.txt").relative_to(folder).as_posix()
    entry.log_detail = (outdir / "mlperf_log_detail.txt").relative_to(folder).as_posix()
    if "error" in outcome:
        entry.status, entry.result, entry.error = "failed", "INVALID", str(outcome["error"])
    return entry, outcome.get("served")


def _test_settings(lg, settings: LlmLoadGenSettings):
    test = lg.TestSettings()
    test.scenario = getattr(lg.TestScenario, settings.scenario)
    test.mode = lg.TestMode.PerformanceOnly
    test.use_token_latencies = True
    test.ttft_latency = int(settings.ttft_ms * 1e6)
    test.tpot_latency = int(settings.tpot_ms * 1e6)
    test.min_duration_ms = int(settings.min_duration_s * 1000)
    test.min_query_count = settings.min_query_count
    test.server_target_qps = settings.target_qps
    test.server_target_latency_percentile = 0.99
    test.server_target_latency_ns = int((settings.ttft_ms + settings.tpot_ms * 1000) * 1e6)  # token limits rule
    test.offline_expected_qps = settings.target_qps
    return test


def summarize(settings: LlmLoadGenSettings, detail: Path) -> LoadGenResult:
    """LoadGen's verdict and token latencies from its detail log (keys of LoadGen's results.cc)."""
    from core.scenarios.loadgen import read_detail_log

    values, _ = read_detail_log(detail)

    def ms(key: str) -> float | None:
        value = values.get(key)
        return round(value / 1e6, 4) if isinstance(value, (int, float)) else None

    def number(key: str) -> float | None:
        value = values.get(key)
        return round(float(value), 4) if isinstance(value, (int, float)) else None

    server = settings.scenario == "Server"
    entry = LoadGenResult(
        scenario=settings.scenario,
        result=str(values.get("result_validity", "INVALID")),
        qps=number("result_completed_samples_per_sec" if server else "result_samples_per_second"),
        p50_latency=ms("result_50.00_percentile_latency_ns"),
        p90_latency=ms("result_90.00_percentile_latency_ns"),
        p99_latency=ms("result_99.00_percentile_latency_ns"),
        target_qps=settings.target_qps if server else None,
        queries=values.get("result_query_count"),
        mode="PerformanceOnly",
    )
    entry.extra = {
        "TTFT P99": ms("result_first_token_99.00_percentile_latency_ns"),
        "TPOT P99": ms("result_time_per_output_token_99.00_percentile_ns"),
        "TTFT Limit": settings.ttft_ms,
        "TPOT Limit": settings.tpot_ms,
        "Tokens/s": number("result_completed_tokens_per_second" if server else "result_tokens_per_second"),
        "Min Duration s": settings.min_duration_s,
        "Min Queries": settings.min_query_count,
    }
    if not server:  # Offline is one query of every sample
        entry.extra["Samples"] = values.get("effective_min_sample_count")
    checks = {
        "min duration": values.get("result_min_duration_met"),
        "min queries": values.get("result_min_queries_met"),
        "latency bound": values.get("result_perf_constraints_met"),
        "early stopping": values.get("early_stopping_met"),
    }
    unmet = [name for name, met in checks.items() if met is False]
    if entry.result != "VALID" and unmet:
        entry.unmet = unmet
    return entry
