"""The timed loop and its statistics: warm up, then measure until enough iterations *and* time,
stopping at a time cap. All latency statistics are computed here and nowhere else."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

Clock = Callable[[], int]  # nanoseconds


class Meter(Protocol):
    """A reading taken over the timed window only, beside the clock (a device's event timer, its energy
    counter): `begin` as the window opens, `end` once its last call has returned (both outside any timed
    call), then `row_fields` gives the Performance row's fields (PerfRow's names) for that window, or for
    a batch size that failed (measurement None)."""

    def begin(self) -> None: ...

    def end(self) -> None: ...

    def row_fields(self, measurement: Measurement | None) -> dict[str, Any]: ...


@dataclass(frozen=True)
class MeasurePolicy:
    warmup_iterations: int = 3
    warmup_seconds: float = 5.0
    min_iterations: int = 100
    min_seconds: float = 2.0
    max_seconds: float = 15.0
    cap_reason: str = "time cap"  # the stop reason when max_seconds ends the window ("time budget" under one)

    @classmethod
    def from_workload(cls, workload) -> MeasurePolicy:
        return cls(
            warmup_iterations=workload.warmup_iterations,
            warmup_seconds=workload.warmup_seconds,
            min_iterations=workload.iterations,
            min_seconds=workload.min_seconds,
            max_seconds=workload.max_seconds,
        )


@dataclass(frozen=True)
class LatencyStats:
    """Latency percentiles and spread, in milliseconds."""

    count: int
    mean: float
    std: float
    min: float
    p50: float
    p90: float
    p99: float
    max: float
    p90_upper: float | None = None  # 95% upper bounds from order statistics; None: too few samples
    p99_upper: float | None = None

    @classmethod
    def from_ns(cls, samples_ns: list[int]) -> LatencyStats:
        from core.common.statistics import upper_bound

        ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        ordered = np.sort(ms)
        return cls(
            count=len(ms),
            mean=float(ms.mean()),
            std=float(ms.std(ddof=1)) if len(ms) > 1 else 0.0,
            min=float(ms.min()),
            p50=float(p50),
            p90=float(p90),
            p99=float(p99),
            max=float(ms.max()),
            p90_upper=upper_bound(ordered, 0.90),
            p99_upper=upper_bound(ordered, 0.99),
        )


@dataclass(frozen=True)
class Measurement:
    batch_size: int
    latency: LatencyStats
    measured_seconds: float
    warmup_iterations: int
    warmup_seconds: float
    stop_reason: str  # "enough iterations and time" | "time cap" | "time budget"
    clients: int = 1  # concurrent callers; latency counts every client's calls, QPS all of them over the window
    samples_ns: tuple[int, ...] = ()  # every timed call's latency, in the order the calls completed
    completions_ns: tuple[int, ...] = ()  # when each call completed, from the start of the timed window

    def qps_interval(self) -> tuple[float, float] | None:
        """95% interval of the QPS by batch means over the window, widened by the drift the blocks show
        (core.common.statistics.rate_interval)."""
        from core.common.statistics import rate_interval

        return rate_interval(self.completions_ns, self.batch_size, callers=self.clients)

    def drift(self) -> float | None:
        """How far the machine's speed moved during the window, relative (core.common.statistics.rate_drift)."""
        from core.common.statistics import rate_drift

        return rate_drift(self.completions_ns, self.batch_size, callers=self.clients)

    @property
    def qps(self) -> float:
        return self.batch_size * self.latency.count / self.measured_seconds if self.measured_seconds > 0 else math.nan

    @property
    def low_sample(self) -> bool:
        """Too few iterations for the tail percentiles to mean much."""
        return self.latency.count < 10

    def perf_row(self):
        """The report's row for this batch size (latencies in ms, 4 decimals)."""
        from core.reporting.schema import PerfRow

        lat = self.latency
        interval = self.qps_interval()
        drift = self.drift()
        return PerfRow(
            bs=self.batch_size,
            qps=round(self.qps, 4),
            avg_latency=round(lat.mean, 4),
            p99_latency=round(lat.p99, 4),
            p50_latency=round(lat.p50, 4),
            p90_latency=round(lat.p90, 4),
            min_latency=round(lat.min, 4),
            max_latency=round(lat.max, 4),
            std_latency=round(lat.std, 4),
            iterations=lat.count,
            measured_seconds=round(self.measured_seconds, 4),
            warmup_iterations=self.warmup_iterations,
            stop_reason=self.stop_reason,
            clients=self.clients if self.clients > 1 else None,
            warning=f"only {lat.count} timed iterations: percentiles are rough" if self.low_sample else None,
            p90_upper=None if lat.p90_upper is None else round(lat.p90_upper, 4),
            p99_upper=None if lat.p99_upper is None else round(lat.p99_upper, 4),
            tail_backing=tail_backing(lat.count),
            qps_low=None if interval is None else round(interval[0], 4),
            qps_high=None if interval is None else round(interval[1], 4),
            drift=None if drift is None else round(drift, 4),
        )


def tail_backing(count: int) -> str | None:
    """What a row's tail percentiles rest on, when a 95% bound needs more samples than it has."""
    from core.common.statistics import samples_needed

    short = [f"P{round(q * 100)} needs {samples_needed(q)}" for q in (0.90, 0.99) if count < samples_needed(q)]
    return f"{count} samples: {', '.join(short)} for a 95% upper bound" if short else None


def measure(
    run: Callable[[], object],
    policy: MeasurePolicy,
    batch_size: int,
    *,
    clock: Clock = time.perf_counter_ns,
    on_iteration: Callable[[float], None] | None = None,
    meters: Sequence[Meter] = (),
) -> Measurement:
    """Warm up, then time `run` per call.

    Warm-up: at least one call; stops after `warmup_iterations` calls or `warmup_seconds`, whichever first.
    Timed: stops once both `min_iterations` and `min_seconds` are reached, or at `max_seconds`
    (never before one timed call). `on_iteration` gets the elapsed timed seconds (for progress bars).
    """
    start = clock()
    warmups = 0
    while True:
        run()
        warmups += 1
        if warmups >= policy.warmup_iterations or (clock() - start) / 1e9 >= policy.warmup_seconds:
            break
    warmup_seconds = (clock() - start) / 1e9

    samples: list[int] = []
    completions: list[int] = []
    for meter in meters:
        meter.begin()
    begin = clock()
    while True:
        t0 = clock()
        run()
        t1 = clock()
        samples.append(t1 - t0)
        completions.append(t1 - begin)
        elapsed = (t1 - begin) / 1e9
        if on_iteration is not None:
            on_iteration(elapsed)
        if len(samples) >= policy.min_iterations and elapsed >= policy.min_seconds:
            reason = "enough iterations and time"
            break
        if elapsed >= policy.max_seconds:
            reason = policy.cap_reason
            break
    window_ns = clock() - begin  # read before any statistics are computed: they are not part of the window
    for meter in meters:
        meter.end()
    return Measurement(
        batch_size=batch_size,
        latency=LatencyStats.from_ns(samples),
        measured_seconds=window_ns / 1e9,
        warmup_iterations=warmups,
        warmup_seconds=warmup_seconds,
        stop_reason=reason,
        samples_ns=tuple(samples),
        completions_ns=tuple(completions),
    )


def measure_clients(
    calls: list[Callable[[], object]],
    policy: MeasurePolicy,
    batch_size: int,
    *,
    clock: Clock = time.perf_counter_ns,
    on_iteration: Callable[[float], None] | None = None,
    meters: Sequence[Meter] = (),
) -> Measurement:
    """ByteMLPerf's `clients`: one thread per call, all timed over one common window.

    Each client warms up under the policy's warm-up rule, then all start together. The stopping rule
    is measure()'s, on the calls of every client together, but never before every client has one timed
    call; the window closes when the last client's call in flight returns. QPS is every client's samples
    over that window (the clients' rates summed); the latency statistics pool every call of every client.
    The first client error is re-raised.
    """
    if len(calls) == 1:
        return measure(calls[0], policy, batch_size, clock=clock, on_iteration=on_iteration, meters=meters)
    ready = [threading.Event() for _ in calls]
    go, stop = threading.Event(), threading.Event()
    lock = threading.Lock()
    samples: list[int] = []
    completions: list[int] = []  # clock readings; made relative to the window's start at the end
    warmups: list[int] = [0] * len(calls)
    timed: list[int] = [0] * len(calls)  # each client's timed calls
    errors: list[BaseException] = []

    def client(i: int, call: Callable[[], object]) -> None:
        own: list[int] = []
        try:
            start = clock()
            while not stop.is_set():
                call()
                warmups[i] += 1
                if warmups[i] >= policy.warmup_iterations or (clock() - start) / 1e9 >= policy.warmup_seconds:
                    break
            ready[i].set()
            go.wait()
            while not stop.is_set():
                t0 = clock()
                call()
                t1 = clock()
                own.append(t1 - t0)
                with lock:
                    samples.append(own[-1])
                    completions.append(t1)
                    timed[i] += 1
        except BaseException as err:  # noqa: BLE001 - handed to the measuring thread, which re-raises it
            errors.append(err)
            stop.set()
        finally:
            ready[i].set()

    threads = [
        threading.Thread(target=client, args=(i, call), daemon=True, name=f"client-{i}") for i, call in enumerate(calls)
    ]
    warm_start = clock()
    for thread in threads:
        thread.start()
    reason = policy.cap_reason
    try:
        for event in ready:
            event.wait()
        for meter in meters:
            meter.begin()
        begin = clock()
        warmup_seconds = (begin - warm_start) / 1e9
        go.set()
        while not stop.is_set():
            stop.wait(0.005)
            elapsed = (clock() - begin) / 1e9
            with lock:
                count, every_client = len(samples), all(timed)
            if on_iteration is not None:
                on_iteration(elapsed)
            if not every_client:  # a window where a client never finished a call did not measure concurrency
                continue
            if count >= policy.min_iterations and elapsed >= policy.min_seconds:
                reason = "enough iterations and time"
                break
            if elapsed >= policy.max_seconds:
                break
    finally:
        stop.set()
        go.set()
        for thread in threads:
            thread.join()
    window_ns = clock() - begin  # the last call in flight has returned; read before any statistics
    for meter in meters:
        meter.end()
    if errors:
        raise errors[0]
    return Measurement(
        batch_size=batch_size,
        latency=LatencyStats.from_ns(samples),
        measured_seconds=window_ns / 1e9,
        warmup_iterations=sum(warmups),
        warmup_seconds=warmup_seconds,
        stop_reason=reason,
        clients=len(calls),
        samples_ns=tuple(samples),
        completions_ns=tuple(t - begin for t in completions),
    )
