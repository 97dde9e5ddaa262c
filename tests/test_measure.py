"""The timed loop's stopping rules, driven by a fake clock so no test depends on machine speed."""

from __future__ import annotations

import pytest

from core.measure.timing import LatencyStats, MeasurePolicy, measure


class FakeClock:
    """Each call of the measured function advances time by `step_ms`."""

    def __init__(self, step_ms: float):
        self.now = 0
        self.step = int(step_ms * 1e6)
        self.calls = 0

    def __call__(self) -> int:
        return self.now

    def run(self) -> None:
        self.calls += 1
        self.now += self.step


def run_policy(step_ms: float, **policy) -> tuple:
    clock = FakeClock(step_ms)
    result = measure(clock.run, MeasurePolicy(**policy), batch_size=4, clock=clock)
    return result, clock


def test_stops_when_both_iterations_and_time_are_reached():
    # 10 ms a call: 100 iterations take 1 s, but min_seconds asks for 2 s -> 200 iterations.
    result, _ = run_policy(10, warmup_iterations=3, warmup_seconds=5, min_iterations=100, min_seconds=2, max_seconds=15)
    assert result.latency.count == 200
    assert result.stop_reason == "enough iterations and time"
    assert result.warmup_iterations == 3


def test_iterations_dominate_when_calls_are_slow():
    result, _ = run_policy(50, warmup_iterations=1, min_iterations=100, min_seconds=0.1, max_seconds=60)
    assert result.latency.count == 100


def test_time_cap_ends_slow_batches():
    # 4 s a call, 15 s cap: stops after the 4th call (16 s), long before 100 iterations.
    result, clock = run_policy(
        4000, warmup_iterations=3, warmup_seconds=5, min_iterations=100, min_seconds=2, max_seconds=15
    )
    assert result.latency.count == 4
    assert result.stop_reason == "time cap"
    assert result.warmup_iterations == 2  # warm-up stopped by its own 5 s cap after two 4 s calls
    assert result.low_sample
    assert result.perf_row().warning and "Warning" in result.perf_row().to_dict()


def test_at_least_one_warmup_and_one_timed_call():
    result, clock = run_policy(
        100_000, warmup_iterations=5, warmup_seconds=0.001, min_iterations=10, min_seconds=0, max_seconds=0.001
    )
    assert result.warmup_iterations == 1
    assert result.latency.count == 1
    assert clock.calls == 2


def test_qps_and_row_units():
    result, _ = run_policy(20, warmup_iterations=1, min_iterations=50, min_seconds=0, max_seconds=10)
    row = result.perf_row().to_dict()
    assert row["BS"] == 4
    assert row["AVG Latency"] == pytest.approx(20.0)  # milliseconds
    assert row["QPS"] == pytest.approx(4 / 0.020, rel=1e-6)
    assert row["Iterations"] == 50 and row["Status"] == "ok"


def test_latency_statistics():
    samples_ms = list(range(1, 101))  # 1..100 ms
    stats = LatencyStats.from_ns([int(ms * 1e6) for ms in samples_ms])
    assert stats.count == 100
    assert stats.mean == pytest.approx(50.5)
    assert stats.p50 == pytest.approx(50.5)
    assert stats.p90 == pytest.approx(90.1)
    assert stats.p99 == pytest.approx(99.01)
    assert stats.min == 1 and stats.max == 100
    assert stats.std == pytest.approx(29.011, rel=1e-4)
