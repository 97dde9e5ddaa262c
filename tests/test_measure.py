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


def test_the_window_closes_before_statistics_are_computed_and_the_qps_interval_brackets_a_steady_rate(monkeypatch):
    """Computing percentiles and bounds (scipy's first import takes a second) is not part of the timed window."""
    clock = FakeClock(10.0)  # every call takes 10 ms: 400 samples/s at batch 4
    real = LatencyStats.from_ns

    def slow_statistics(samples):
        clock.now += int(5e9)  # five seconds of statistics, on the same clock
        return real(samples)

    monkeypatch.setattr(LatencyStats, "from_ns", staticmethod(slow_statistics))
    policy = MeasurePolicy(warmup_iterations=1, warmup_seconds=1, min_iterations=50, min_seconds=0, max_seconds=10)
    result = measure(clock.run, policy, batch_size=4, clock=clock)
    assert result.latency.count == 50 and result.measured_seconds == pytest.approx(0.5)
    assert result.qps == pytest.approx(400.0)
    low, high = result.qps_interval()
    assert low <= 400.0 <= high and high - low < 1e-6  # a steady rate: every block agrees


def test_the_qps_interval_widens_with_a_drifting_rate_and_needs_four_calls():
    from core.common.statistics import rate_interval

    steady = [int(10e6 * (i + 1)) for i in range(40)]
    drifting, now = [], 0
    for i in range(40):  # the machine slows down through the window: 10 ms calls become 30 ms
        now += int((10 + 20 * i / 39) * 1e6)
        drifting.append(now)
    low, high = rate_interval(steady, 1)
    assert low == pytest.approx(100.0) and high == pytest.approx(100.0)
    low, high = rate_interval(drifting, 1)
    overall = 40 / (drifting[-1] / 1e9)
    assert low < overall < high and high - low > 10
    assert rate_interval(steady[:3], 1) is None and rate_interval(steady[:4], 1) is not None
    # Three clients finishing calls nearly together: six calls are too few blocks, twelve are enough.
    bursts = sorted(int(1e9 * (i // 3 + 1)) + 1000 * (i % 3) for i in range(12))
    assert rate_interval(bursts[:6], 1, callers=3) is None
    low, high = rate_interval(bursts, 1, callers=3)
    assert 2.5 < low <= high < 3.5  # three calls a second, not the millions a 2-call block of a burst claims
