"""A run that says how long it will take: the estimate from the stop rules, a time budget shared among batch
sizes (`Stop Reason: time budget`), every client's first timed call, and the run's one progress estimate."""

from __future__ import annotations

import json
import threading

import pytest

from core.config import registry
from core.measure.estimate import batch_estimate, budget_policy, call_seconds, warmup_estimate, window_estimate
from core.measure.timing import MeasurePolicy, measure, measure_clients
from core.run.progress import RunProgress, duration
from core.run.runner import RunOptions, run_task

POLICY = MeasurePolicy(warmup_iterations=3, warmup_seconds=5.0, min_iterations=100, min_seconds=2.0, max_seconds=15.0)


class FakeClock:
    """Time moves only when a measured call runs: each call takes `step` seconds (thread-safe)."""

    def __init__(self, step: float):
        self.now, self.step = 0, int(step * 1e9)
        self.lock = threading.Lock()

    def __call__(self) -> int:
        return self.now

    def call(self) -> None:
        with self.lock:
            self.now += self.step


# ---------------------------------------------------------------- the estimate follows the stop rules
@pytest.mark.parametrize(
    "seconds_per_call, expected",
    [
        (0.001, 0.003 + 2.0),  # fast: 3 warm-up calls, then min_seconds rules the window
        (0.05, 0.15 + 5.0),  # 100 calls take 5 s: the iterations rule
        (1.0, 3.0 + 15.0),  # slow: the 15 s cap
        (10.0, 10.0 + 20.0),  # slower than the warm-up time: one warm-up call; the window ends past the cap
        (0.7, 2.1 + 15.4),  # the cap is checked after each call: 22 calls of 0.7 s
    ],
)
def test_the_estimate_is_what_measure_does_on_a_steady_call(seconds_per_call, expected):
    assert batch_estimate(seconds_per_call, 1, 1, POLICY) == pytest.approx(expected)
    clock = FakeClock(seconds_per_call)
    result = measure(clock.call, POLICY, batch_size=1, clock=clock)
    assert result.warmup_seconds + result.measured_seconds == pytest.approx(expected)


def test_clients_share_the_rate_and_without_a_rate_the_caps_bound_it():
    # 2 clients at 10 ms per item: each call takes 20 ms at bs 1; 100 calls of both together take 1 s.
    assert call_seconds(0.01, 1, 2) == pytest.approx(0.02)
    assert warmup_estimate(0.02, POLICY) == pytest.approx(0.06)
    assert window_estimate(0.01, 1, 2, POLICY) == pytest.approx(2.0 + 0.02)  # and the calls in flight return
    assert batch_estimate(None, 8, 1, POLICY) == POLICY.warmup_seconds + POLICY.max_seconds


def test_a_budget_shares_what_is_left_equally_and_never_raises_the_cap():
    roomy = budget_policy(
        POLICY, remaining_seconds=600, batch_sizes_left=3, seconds_per_item=0.01, batch_size=1, clients=1
    )
    assert roomy is POLICY
    tight = budget_policy(
        POLICY, remaining_seconds=12, batch_sizes_left=3, seconds_per_item=0.01, batch_size=1, clients=1
    )
    assert tight.max_seconds == pytest.approx(4 - 0.03) and tight.cap_reason == "time budget"
    assert tight.min_seconds == POLICY.min_seconds  # the budget, not "enough time", ends such a window
    spent = budget_policy(
        POLICY, remaining_seconds=-5, batch_sizes_left=2, seconds_per_item=None, batch_size=1, clients=1
    )
    assert spent.max_seconds == 0.0


def test_a_window_cut_by_the_budget_says_so_and_still_has_a_timed_call():
    clock = FakeClock(0.5)
    cut = budget_policy(POLICY, remaining_seconds=3, batch_sizes_left=2, seconds_per_item=0.5, batch_size=1, clients=1)
    result = measure(clock.call, cut, batch_size=1, clock=clock)
    assert result.stop_reason == "time budget" and result.latency.count >= 1
    assert result.measured_seconds <= cut.max_seconds + 0.5
    zero = budget_policy(POLICY, remaining_seconds=0, batch_sizes_left=1, seconds_per_item=0.5, batch_size=1, clients=1)
    assert measure(clock.call, zero, batch_size=1, clock=clock).latency.count == 1


def test_with_clients_the_cap_waits_for_every_clients_first_timed_call():
    clock = FakeClock(0.001)
    fast_calls, released = [0], threading.Event()
    timed_started = threading.Event()

    def fast() -> None:
        clock.call()
        fast_calls[0] += 1
        if fast_calls[0] >= 200:
            released.set()

    slow_calls = [0]

    def slow() -> None:
        slow_calls[0] += 1
        if slow_calls[0] == 2:  # its first timed call (after one warm-up call) waits for the fast client
            timed_started.set()
            released.wait(timeout=5)

    policy = MeasurePolicy(warmup_iterations=1, warmup_seconds=1, min_iterations=1, min_seconds=0, max_seconds=0.0)
    result = measure_clients([fast, slow], policy, batch_size=1, clock=clock)
    assert released.is_set(), "the window closed before the slow client's first timed call returned"
    assert slow_calls[0] >= 2 and result.latency.count >= 200


def test_the_window_ends_at_the_cap_once_every_client_has_a_call():
    clock = FakeClock(0.01)
    policy = MeasurePolicy(warmup_iterations=1, warmup_seconds=1, min_iterations=10**9, min_seconds=0, max_seconds=0.5)
    result = measure_clients([clock.call, clock.call], policy, batch_size=2, clock=clock)
    assert result.stop_reason == "time cap" and result.clients == 2
    assert result.measured_seconds >= 0.5  # the fake clock races on between the loop's checks: no upper bound


# ---------------------------------------------------------------- the run's progress estimate
def test_progress_counts_down_the_current_stage_and_drops_it_once_done():
    now = [0.0]
    progress = RunProgress({"accuracy": 10.0, "batch size 1": 20.0}, clock=lambda: now[0])
    assert progress.left() == 30.0
    with progress.stage("accuracy"):
        now[0] = 4.0
        assert progress.left() == pytest.approx(26.0)
        now[0] = 15.0  # longer than estimated: that stage has nothing left, not a negative time
        assert progress.left() == pytest.approx(20.0)
    progress.reestimate("batch size 1", 8.0)
    assert progress.left() == 8.0 and duration(8.0) == "~8 s" and duration(600) == "~10.0 min"


def test_a_run_with_a_budget_says_its_estimate_first_and_cuts_its_windows(tmp_path, capsys):
    workload = registry.load_task("tiny-bert-squad").workload_file.read_text()
    workload = workload.replace("min_seconds: 0.05", "min_seconds: 30").replace("max_seconds: 1.0", "max_seconds: 60")
    path = tmp_path / "long.yaml"
    path.write_text(workload)
    options = RunOptions(
        hardware_type="CPU", output_dir=tmp_path, engine="onnxruntime", precision="FP32", time_budget_minutes=0.05
    )
    report = run_task(registry.load_task(str(path)), options)
    out = capsys.readouterr().out
    # nothing timed before: the budget bounds the caps; it covers the whole run, so setup and compile count
    assert "estimated time left: at most " in out and "the 0.05 min budget: measuring gets " in out
    rows = json.loads(report.written.read_text())["Performance"]
    assert [row["Stop Reason"] for row in rows] == ["time budget", "time budget"]
    assert sum(row["Measured Seconds"] for row in rows) <= 3.0 + 0.5  # 3 s of budget, each window's last call
    assert json.loads(report.written.read_text())["Config"]["overrides"]["time_budget_minutes"] == 0.05
