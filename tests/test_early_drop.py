"""The early drop: only on at least MIN_DROP_CALLS calls, judged by the fastest calls, with its evidence in the row."""

from __future__ import annotations

import pytest

from core.measure.timing import MeasurePolicy
from core.quality import selection as tuning
from tests.test_cpu_autotune import FakeRuntime, fake_candidates, run_select


@pytest.fixture
def quick(monkeypatch, tmp_path):
    monkeypatch.setattr(
        tuning,
        "TUNING_POLICY",
        MeasurePolicy(warmup_iterations=1, warmup_seconds=0.1, min_iterations=5, min_seconds=0.0, max_seconds=0.5),
    )
    monkeypatch.setenv("PERFBENCH_HOME", str(tmp_path))


class ScheduledRuntime(FakeRuntime):
    """Sleeps the next delay of `details["delays"]` each call (the last one from then on)."""

    def predict(self, feeds):
        delays = self.compiled.details["delays"]
        self.compiled.details["delay"] = delays.pop(0) if len(delays) > 1 else delays[0]
        return super().predict(feeds)


def scheduled(specs: dict[str, list[float]]):
    candidates, compiled = fake_candidates({label: (0.0, False) for label in specs})
    for label, delays in specs.items():
        compiled[label].details["delays"] = list(delays)
    return candidates, compiled


def test_the_fastest_calls_figure_ignores_slow_calls():
    ms = 1_000_000
    assert tuning.fastest_calls_qps((200 * ms, 2 * ms, 2 * ms, 2 * ms, 2 * ms), 1) == pytest.approx(500)
    assert tuning.fastest_calls_qps((4 * ms, 2 * ms, 3 * ms), 3) == pytest.approx(3 * 3 / 0.009)
    assert tuning.fastest_calls_qps((), 1) == 0.0


def test_a_noisy_slow_first_call_cannot_cause_a_drop(quick):
    # warm-up fast, the first timed call 100x slow (a neighbour's burst), then as fast as the leader
    candidates, compiled = scheduled({"lead FP32": [0.002], "noisy BF16": [0.002, 0.2, 0.002]})
    selection = run_select(candidates, compiled, [], runtime=ScheduledRuntime)
    rows = {r.label: r for r in selection.section.candidates}
    noisy, lead = rows["noisy BF16"], rows["lead FP32"]
    assert noisy.qps * tuning.DROP_RATIO < lead.qps  # the mean would have dropped it
    assert noisy.gate == "pass" and noisy.drop_ratio is None and noisy.normalized_drift is not None
    assert noisy.fastest_calls_qps > lead.fastest_calls_qps / tuning.DROP_RATIO
    assert selection.section.partial is None


def test_a_neighbour_slowing_the_whole_window_cannot_cause_a_drop(quick):
    # every timed call of its window 10x slow (a neighbour ran throughout), as fast as the leader afterwards
    candidates, compiled = scheduled({"lead FP32": [0.002], "crowded BF16": [0.002] + [0.02] * 5 + [0.002]})
    selection = run_select(candidates, compiled, [], runtime=ScheduledRuntime)
    rows = {r.label: r for r in selection.section.candidates}
    crowded = rows["crowded BF16"]
    assert crowded.iterations == 5 and crowded.fastest_calls_qps * 2 * tuning.DROP_RATIO < rows["lead FP32"].qps
    assert crowded.gate == "pass" and crowded.drop_ratio < tuning.DROP_RATIO
    assert "timed in turns with lead FP32" in crowded.drop_check


def test_the_drop_needs_at_least_five_calls(quick, monkeypatch):
    monkeypatch.setattr(
        tuning,
        "TUNING_POLICY",
        MeasurePolicy(warmup_iterations=1, warmup_seconds=0.1, min_iterations=5, min_seconds=0.0, max_seconds=0.05),
    )
    candidates, compiled = fake_candidates({"fast FP32": (0.001, False), "slow BF16": (0.03, False)})
    rows = {r.label: r for r in run_select(candidates, compiled, []).section.candidates}
    slow = rows["slow BF16"]
    assert slow.iterations < tuning.MIN_DROP_CALLS and slow.fastest_calls_qps * 5 < rows["fast FP32"].fastest_calls_qps
    assert slow.gate == "pass" and slow.normalized_drift is not None  # judged by the gate, not dropped


def test_a_clearly_slower_candidate_is_dropped_with_its_evidence(quick):
    candidates, compiled = fake_candidates({"fast FP32": (0.002, False), "slow BF16": (0.02, False)})
    selection = run_select(candidates, compiled, [])
    slow = {r.label: r for r in selection.section.candidates}["slow BF16"]
    assert slow.gate == "dropped" and slow.iterations >= tuning.MIN_DROP_CALLS
    assert slow.drop_ratio > tuning.DROP_RATIO and slow.normalized_drift is None
    assert f"after {slow.iterations} calls" in slow.why and f"({slow.drop_ratio:g}x)" in slow.why
    assert "timed in turns with fast FP32" in slow.why and slow.drop_check in slow.why
    written = slow.to_dict()
    assert written["Fastest Calls QPS"] == slow.fastest_calls_qps and written["Drop Ratio"] == slow.drop_ratio
    assert written["Drop Check"] == slow.drop_check
    assert selection.section.partial == "1 dropped early"


class OpensOnce(FakeRuntime):
    """A runtime that cannot be opened a second time (no memory left for two): the leader's re-time fails."""

    def load(self, batch_size):
        if self.batch_size is None:  # this instance's first load (the gate's pass loads again)
            self.compiled.details["opened"] = self.compiled.details.get("opened", 0) + 1
            if self.compiled.details["opened"] > 1:
                raise MemoryError("no room for a second instance")
        super().load(batch_size)


def test_without_the_re_time_the_gate_judges_instead_of_a_drop(quick):
    candidates, compiled = fake_candidates({"fast FP32": (0.002, False), "slow BF16": (0.02, False)})
    slow = {r.label: r for r in run_select(candidates, compiled, [], runtime=OpensOnce).section.candidates}["slow BF16"]
    assert slow.gate == "pass" and slow.drop_ratio is None and "not re-timed beside fast FP32" in slow.drop_check
