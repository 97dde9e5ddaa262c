"""The caches are keyed by everything that made them: the engine decision and the peaks."""

from __future__ import annotations

import importlib.util
import shutil
import sys
import time

import pytest

from core.measure import peak
from core.measure.timing import MeasurePolicy
from core.quality import selection as tuning
from tests.test_cpu_autotune import fake_candidates, run_select


@pytest.fixture
def home(monkeypatch, tmp_path):
    monkeypatch.setattr(
        tuning,
        "TUNING_POLICY",
        MeasurePolicy(warmup_iterations=1, warmup_seconds=0.1, min_iterations=5, min_seconds=0.0, max_seconds=0.5),
    )
    monkeypatch.setenv("PERFBENCH_HOME", str(tmp_path / "home"))
    return tmp_path


# --- the engine decision ---------------------------------------------------------------------------


def test_a_cached_decision_is_taken_again_after_the_gates_code_changes(home, monkeypatch):
    code = home / "quality"
    shutil.copytree(tuning.DECISION_CODE, code, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(tuning, "DECISION_CODE", code)  # the copy stands for the package's sources
    candidates, compiled = fake_candidates({"a FP32": (0.0, False), "b BF16": (0.0, False)})
    gates: list = []
    first = run_select(candidates, compiled, gates)
    again = run_select(candidates, compiled, gates)
    assert len(gates) == 1 and again.section.decision == f"cached from {first.section.decided}"
    for name in ("gate.py", "drift.py", "selection.py"):
        with open(code / name, "a", encoding="utf-8") as source:
            source.write(f"\n# {name}: a changed rule\n")
        changed = run_select(candidates, compiled, gates)
        assert changed.section.decision == "tuned in this run" and changed.section.code != first.section.code
    assert len(gates) == 4
    assert run_select(candidates, compiled, gates).section.decision.startswith("cached from")


def test_a_budget_cut_decision_is_reused_only_under_the_same_budget(home):
    candidates, compiled = fake_candidates({"a FP32": (0.01, False), "b BF16": (0.0, False), "c INT8": (0.0, False)})
    gates: list = []
    cut = run_select(candidates, compiled, gates, budget_seconds=1e-6)
    assert cut.section.partial == "2 skipped" and cut.section.budget_seconds == 1e-6 and cut.candidate.label == "a FP32"
    same = run_select(candidates, compiled, gates, budget_seconds=1e-6)
    assert len(gates) == 1 and same.section.decision.startswith("cached from") and same.section.partial
    larger = run_select(candidates, compiled, gates, budget_seconds=1e6)  # would have tried more: tunes again
    assert len(gates) == 2 and larger.section.decision == "tuned in this run" and larger.section.partial is None
    assert larger.candidate.label != "a FP32"
    # a complete decision tried everything: any run may take it, with or without a budget
    for budget in (None, 1e-6):
        reused = run_select(candidates, compiled, gates, budget_seconds=budget)
        assert reused.section.decision.startswith("cached from") and reused.candidate.label == larger.candidate.label
    assert len(gates) == 2


def test_a_budget_cut_decision_is_not_reused_by_an_unbudgeted_run(home):
    candidates, compiled = fake_candidates({"a FP32": (0.01, False), "b BF16": (0.0, False)})
    gates: list = []
    run_select(candidates, compiled, gates, budget_seconds=1e-6)
    full = run_select(candidates, compiled, gates)
    assert len(gates) == 2 and full.section.decision == "tuned in this run"
    assert [row.gate for row in full.section.candidates] == ["pass", "pass"] and full.candidate.label == "b BF16"


def test_a_decision_after_an_early_drop_is_partial_and_kept_to_its_budget(home):
    candidates, compiled = fake_candidates({"fast FP32": (0.002, False), "slow BF16": (0.02, False)})
    gates: list = []
    dropped = run_select(candidates, compiled, gates, budget_seconds=600)
    assert dropped.section.partial == "1 dropped early" and dropped.section.budget_seconds == 600
    assert run_select(candidates, compiled, gates).section.decision == "tuned in this run"
    assert run_select(candidates, compiled, gates, budget_seconds=600).section.decision.startswith("cached")
    assert len(gates) == 2


# --- the peaks -------------------------------------------------------------------------------------


def sleeping_probe(delays: list[float], library: str = "fake matmul, 1 threads"):
    """A probe of 1 GFLOP a call that takes delays[0] seconds (change the list to change its speed)."""
    return peak.PeakProbe(library, "FP32", 1e9, lambda: time.sleep(delays[0]))


def test_a_failed_peak_probe_is_not_cached(home):
    attempts: list[int] = []

    def run():
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("transient: out of memory")

    probe = peak.PeakProbe("fake matmul", "FP32", 1e9, run)
    failed = peak.gemm_peak({"engine": "x"}, lambda: probe, seconds=0.01)
    assert failed["GFLOP/s"] is None and "transient" in failed["Reason"] and failed["Cached"] is False
    measured = peak.gemm_peak({"engine": "x"}, lambda: probe, seconds=0.01)
    assert measured["GFLOP/s"] > 0 and measured["Cached"] is False
    cached = peak.gemm_peak({"engine": "x"}, lambda: probe, seconds=0.01)
    assert cached["Cached"] is True and cached["Measured"] == measured["Measured"]
    # a probe that cannot be built is not stored either
    stored = sorted((home / "home" / "peak").glob("*.json"))
    broken = peak.gemm_peak({"engine": "y"}, lambda: (_ for _ in ()).throw(RuntimeError("no int8 here")))
    assert broken["GFLOP/s"] is None and sorted((home / "home" / "peak").glob("*.json")) == stored


def test_a_faster_peak_replaces_a_slower_one_and_never_the_reverse(home):
    delays = [0.02]
    slow = peak.gemm_peak({"engine": "x"}, lambda: sleeping_probe(delays), seconds=0.05)
    delays[0] = 0.004
    faster = peak.gemm_peak({"engine": "x"}, lambda: sleeping_probe(delays), seconds=0.05, refresh=True)
    assert faster["Cached"] is False and faster["GFLOP/s"] > 2 * slow["GFLOP/s"]
    delays[0] = 0.02
    kept = peak.gemm_peak({"engine": "x"}, lambda: sleeping_probe(delays), seconds=0.05, refresh=True)
    assert kept["Cached"] is True and kept["GFLOP/s"] == faster["GFLOP/s"] and kept["Measured"] == faster["Measured"]
    assert peak.gemm_peak({"engine": "x"}, lambda: sleeping_probe(delays))["GFLOP/s"] == faster["GFLOP/s"]


def test_the_peak_is_keyed_by_the_probes_code_precision_and_threads(home):
    module = home / "probe_module.py"
    module.write_text(
        "from core.measure.peak import PeakProbe\n\n"
        "def make(threads=1):\n"
        "    return PeakProbe(f'fake matmul, {threads} threads', 'FP32', 1e9, lambda: None)\n"
    )

    def load():
        spec = importlib.util.spec_from_file_location("probe_module", module)
        loaded = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(loaded)
        return loaded

    def figure(threads=1, precision="FP32"):
        return peak.gemm_peak({"engine": "x", "precision": precision}, lambda: load().make(threads), seconds=0.01)

    assert figure()["Cached"] is False and figure()["Cached"] is True
    assert figure(threads=2)["Cached"] is False and figure(precision="BF16")["Cached"] is False
    module.write_text(module.read_text() + "# the probe changed\n")
    assert figure()["Cached"] is False
    sys.modules.pop("probe_module", None)


def test_the_triad_is_keyed_by_its_thread_count(home, monkeypatch):
    import torch

    seen: list[int] = []

    def fake_triad(seconds):
        seen.append(torch.get_num_threads())
        return {"GB/s": 10.0 * seen[-1], "Method": f"fake triad, {seen[-1]} threads"}

    monkeypatch.setattr(peak, "triad_bandwidth", fake_triad)
    before = torch.get_num_threads()
    one = peak.bandwidth_peak(1)
    two = peak.bandwidth_peak(2)
    assert (one["Cached"], two["Cached"]) == (False, False) and seen == [1, 2]
    assert peak.bandwidth_peak(1) == {**one, "Cached": True} and seen == [1, 2]
    assert torch.get_num_threads() == before  # the probe's thread count does not outlive it
