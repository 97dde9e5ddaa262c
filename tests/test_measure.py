"""The timed loop's stopping rules, driven by a fake clock so no test depends on machine speed."""

from __future__ import annotations

import threading

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


# --- the row as written, to the digit; the policy from a workload; clients over real threads ----------------------


def test_the_row_holds_every_figure_rounded_to_four_decimals():
    from core.measure.timing import Measurement, tail_backing
    from core.reporting.schema import PerfRow

    samples = tuple(1_000_000 + 123_457 * (i % 7) for i in range(40))  # 1.0 .. 1.740742 ms
    completions = tuple(int(sum(samples[: i + 1])) for i in range(40))
    result = Measurement(
        batch_size=2,
        latency=LatencyStats.from_ns(list(samples)),
        measured_seconds=completions[-1] / 1e9,
        warmup_iterations=3,
        warmup_seconds=0.5,
        stop_reason="time cap",
        clients=1,
        samples_ns=samples,
        completions_ns=completions,
    )
    lat, low_high = result.latency, result.qps_interval()
    assert low_high is not None and low_high[0] < result.qps < low_high[1]
    assert result.perf_row() == PerfRow(
        bs=2,
        qps=round(2 * 40 / result.measured_seconds, 4),
        avg_latency=round(lat.mean, 4),
        p99_latency=round(lat.p99, 4),
        p50_latency=round(lat.p50, 4),
        p90_latency=round(lat.p90, 4),
        min_latency=1.0,
        max_latency=1.7407,
        std_latency=round(lat.std, 4),
        iterations=40,
        measured_seconds=round(result.measured_seconds, 4),
        warmup_iterations=3,
        stop_reason="time cap",
        clients=None,  # one client: ByteMLPerf's rows carry no Clients key
        warning=None,
        p90_upper=round(lat.p90_upper, 4),
        p99_upper=None,
        tail_backing=tail_backing(40),
        qps_low=round(low_high[0], 4),
        qps_high=round(low_high[1], 4),
        drift=0.0,  # blocks alike: the machine held its speed
    )
    assert tail_backing(40) == "40 samples: P99 needs 299 for a 95% upper bound"
    assert tail_backing(299) is None
    assert round(lat.mean, 4) != lat.mean  # the rounding is visible: the test can tell 4 digits from others
    few = LatencyStats.from_ns([2_000_000])
    assert few.std == 0.0 and few.count == 1 and few.p50 == 2.0 and few.min == few.max == 2.0
    two = LatencyStats.from_ns([1_000_000, 3_000_000])
    assert two.std == pytest.approx(2**0.5) and two.mean == 2.0  # ddof=1: the sample's spread


def test_the_policy_is_the_workloads():
    from core.config.schema import Workload

    workload = Workload(
        model="m", warmup_iterations=7, warmup_seconds=1.5, iterations=42, min_seconds=0.25, max_seconds=9.0
    )
    assert MeasurePolicy.from_workload(workload) == MeasurePolicy(
        warmup_iterations=7, warmup_seconds=1.5, min_iterations=42, min_seconds=0.25, max_seconds=9.0
    )


class Recorder:
    """A meter and an on_iteration callback that record what the loop told them."""

    def __init__(self):
        self.events, self.elapsed = [], []

    def begin(self):
        self.events.append("begin")

    def end(self):
        self.events.append("end")

    def row_fields(self, measurement):
        return {}


def test_one_client_is_the_plain_loop_with_its_clock_callback_and_meters():
    from core.measure.timing import measure_clients

    clock, recorder = FakeClock(10), Recorder()
    policy = MeasurePolicy(warmup_iterations=2, warmup_seconds=5, min_iterations=5, min_seconds=0, max_seconds=10)
    result = measure_clients(
        [clock.run], policy, 3, clock=clock, on_iteration=recorder.elapsed.append, meters=[recorder]
    )
    assert result.batch_size == 3 and result.latency.count == 5 and result.warmup_iterations == 2
    assert result.latency.mean == pytest.approx(10.0) and result.measured_seconds == pytest.approx(0.05)
    assert recorder.elapsed == pytest.approx([0.01, 0.02, 0.03, 0.04, 0.05]) and recorder.events == ["begin", "end"]


def test_clients_share_one_window_and_every_figure_is_in_its_unit():
    import time

    from core.measure.timing import measure_clients

    def sleeper():
        time.sleep(0.01)

    recorder = Recorder()
    policy = MeasurePolicy(warmup_iterations=2, warmup_seconds=5, min_iterations=20, min_seconds=0.2, max_seconds=5)
    started = time.perf_counter()
    result = measure_clients([sleeper, sleeper], policy, 4, on_iteration=recorder.elapsed.append, meters=[recorder])
    took = time.perf_counter() - started
    assert result.clients == 2 and result.batch_size == 4 and result.stop_reason == "enough iterations and time"
    assert result.warmup_iterations == 4  # two each, then all start together
    assert 0.015 < result.warmup_seconds < took and 0.2 <= result.measured_seconds < took
    assert result.latency.count >= 20 and len(result.samples_ns) == result.latency.count
    assert all(9_000_000 <= s < 500_000_000 for s in result.samples_ns)  # ns, each call's own time
    completions = result.completions_ns
    assert len(completions) == result.latency.count and all(0 < c <= result.measured_seconds * 1e9 for c in completions)
    assert result.qps == pytest.approx(4 * result.latency.count / result.measured_seconds)
    assert recorder.events == ["begin", "end"] and recorder.elapsed and all(e >= 0 for e in recorder.elapsed)
    assert {t.name for t in threading.enumerate()}.isdisjoint({"client-0", "client-1"})  # joined


def test_a_clients_error_ends_the_window_and_is_raised():
    from core.measure.timing import measure_clients

    def fine():
        pass

    def broken():
        raise ValueError("engine lost the device")

    policy = MeasurePolicy(warmup_iterations=1, warmup_seconds=1, min_iterations=10**9, min_seconds=0, max_seconds=5)
    with pytest.raises(ValueError, match="engine lost the device"):
        measure_clients([fine, broken], policy, 1)


def test_a_long_row_of_several_clients_and_a_short_one_without_an_interval():
    from core.measure.timing import Measurement

    samples = tuple(1_234_567 + 98_765 * ((i * 37) % 101) for i in range(300))  # irregular, min 1.234567 ms
    completions = tuple(int(sum(samples[: i + 1]) / 3) for i in range(300))
    long = Measurement(
        batch_size=1,
        latency=LatencyStats.from_ns(list(samples)),
        measured_seconds=completions[-1] / 1e9 + 0.0000123,
        warmup_iterations=6,
        warmup_seconds=0.1,
        stop_reason="enough iterations and time",
        clients=3,
        samples_ns=samples,
        completions_ns=completions,
    ).perf_row()
    lat = LatencyStats.from_ns(list(samples))
    assert long.clients == 3 and long.min_latency == 1.2346 and long.tail_backing is None
    assert long.p99_upper == round(lat.p99_upper, 4) and long.p99_upper != lat.p99_upper
    assert long.measured_seconds == round(completions[-1] / 1e9 + 0.0000123, 4)
    two = Measurement(1, LatencyStats.from_ns([1_000_000] * 4), 0.004, 1, 0.0, "time cap", clients=2).perf_row()
    assert two.clients == 2
    short = Measurement(
        1,
        LatencyStats.from_ns([1_000_000] * 3),
        0.003,
        1,
        0.0,
        "time cap",
        samples_ns=(1,) * 3,
        completions_ns=(1, 2, 3),
    ).perf_row()
    assert short.qps_low is None and short.qps_high is None  # three calls give no interval
    assert LatencyStats.from_ns([3, 5]).mean == pytest.approx(4e-6)  # integer ns to float ms, not integer division
