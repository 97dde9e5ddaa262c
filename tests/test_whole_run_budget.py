"""A whole-run budget (issue 43): ten minutes by default for a workload that sets no durations, `--time-budget
MINUTES` or `off`; the estimate after the first candidate shares it among tuning, accuracy and measuring; no
reference output computed twice; the accuracy stage reuses the gate's comparison; candidates that cannot win
are not compiled."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from backends.base import Candidate
from core.common.errors import UserError
from core.config import registry
from core.config.overrides import apply_overrides
from core.config.schema import Workload
from core.quality import reference
from core.reporting.report import RunReport
from core.reporting.sections import CandidateRow
from core.run import plan
from core.run.runner import RunOptions, run_task
from datasets.base import Features

VAE_LIKE = {"model": "vae", "test_numeric": True, "clients": 3, "iterations": 100, "batch_sizes": [4, 8, 16, 24]}


# ---------------------------------------------------------------- which budget applies
def test_the_default_budget_applies_only_where_the_workload_sets_no_durations():
    assert plan.run_budget(Workload(**VAE_LIKE)).seconds == plan.DEFAULT_BUDGET_MINUTES * 60
    honoured = plan.run_budget(Workload(**VAE_LIKE, min_seconds=10, min_duration_s=60))
    assert not honoured and honoured.honoured == ("min_duration_s", "min_seconds")
    assert plan.run_budget(Workload(**VAE_LIKE, time_budget_minutes=2.5)).seconds == 150
    assert plan.run_budget(Workload(**VAE_LIKE, min_seconds=10, time_budget_minutes=2)).seconds == 120
    assert not plan.run_budget(Workload(**VAE_LIKE, time_budget_minutes="off"))


def test_time_budget_off_on_the_command_line_and_in_a_file(tmp_path):
    from core.perf_engine import build_parser

    assert build_parser().parse_args(["--task", "t", "--time-budget", "off"]).time_budget_minutes == "off"
    assert build_parser().parse_args(["--task", "t", "--time-budget", "7"]).time_budget_minutes == 7.0
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["--task", "t", "--time-budget", "-1"])
    assert exit_.value.code == 2
    task = registry.load_task("tiny-bert-squad")
    off = apply_overrides(task, RunOptions(hardware_type="CPU", time_budget_minutes="off").overrides())
    assert off.workload.time_budget_minutes == "off" and not plan.run_budget(off.workload)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"model": "tiny-bert-squad", "time_budget_minutes": "of"}))
    with pytest.raises(UserError, match="time_budget_minutes"):
        registry.load_task(str(path))


# ---------------------------------------------------------------- fitting the stages into the budget
@given(
    budget=st.floats(60, 3600),
    elapsed=st.floats(0, 600),
    tuning=st.floats(0, 3000),
    accuracy=st.floats(0, 600),
    measuring=st.floats(0, 3000),
)
def test_the_shares_fit_the_budget_and_never_exceed_what_a_stage_needs(budget, elapsed, tuning, accuracy, measuring):
    stages = {plan.TUNING: tuning, plan.ACCURACY: accuracy, plan.MEASURING: measuring}
    shares = plan.fit(budget, elapsed, stages)
    assert shares[plan.ACCURACY] == accuracy  # not cut
    assert shares[plan.TUNING] <= tuning and shares[plan.MEASURING] <= measuring
    assert shares[plan.MEASURING] >= min(measuring, budget * plan.MEASURING_FLOOR)
    if budget - elapsed - accuracy >= min(measuring, budget * plan.MEASURING_FLOOR):  # else the floor overruns it
        assert elapsed + sum(shares.values()) <= budget + 1e-6


# ---------------------------------------------------------------- the estimate after the first candidate
def fake_run(workload: Workload, *, features: int = 16, synthetic: bool = True, elapsed: float = 60.0):
    started = (datetime.now(timezone.utc) - timedelta(seconds=elapsed)).isoformat(timespec="seconds")
    loaded = Features(inputs={"x": np.zeros((features, 4), np.float32)}, lengths=np.full(features, 4))
    return SimpleNamespace(
        workload=workload,
        model=SimpleNamespace(model="fake-model", dataset_name=None),
        source=SimpleNamespace(synthetic=synthetic),
        loader=SimpleNamespace(load=lambda: loaded),
        report=RunReport(model="fake-model", backend="CPU", precision="FP32", dataset="fake_dataset", started=started),
        batch_sizes=list(workload.batch_sizes),
    )


def first_row(qps: float, compile_seconds: float = 20.0) -> CandidateRow:
    return CandidateRow(
        engine="openvino", precision="INT8", qps=qps, gate="pass", compile_seconds=compile_seconds, cache="miss"
    )


def candidate(label: str) -> Candidate:
    engine, precision = label.split()
    return Candidate(engine, precision, SimpleNamespace())


def test_a_heavy_run_says_its_estimate_and_fits_the_default_budget(monkeypatch, tmp_path):
    monkeypatch.setenv("PERFBENCH_HOME", str(tmp_path))
    said: list[str] = []
    monkeypatch.setattr(plan.console, "info", said.append)
    now = [1000.0]
    monkeypatch.setattr(plan.time, "monotonic", lambda: now[0])
    run = fake_run(Workload(**VAE_LIKE))
    guide = plan.TuningPlan(run, 4)
    guide.gate_made(8, 30.0)  # the gate's reference: 3.75 s an input
    rows = [first_row(qps=0.28)]  # the decoder on a host at its FP32 roof: 14 s a call at batch size 4
    assert guide(candidate("openvino FP32"), rows, [120.0] * 3) is None  # tuning's share holds one more
    (line,) = [line for line in said if line.startswith("whole run: ")]
    assert "over the default 10 min budget" in line and "tuning gets" in line and "measuring gets" in line
    section = run.report.sections[plan.BUDGET_SECTION]
    estimate, shares = section["Estimate"], section["Shares"]
    # accuracy: the 8 inputs the gate did not compare, run and referenced once each
    assert estimate["Accuracy Seconds"] == pytest.approx(8 / 0.28 + 8 * 3.75, abs=0.1)
    assert estimate["Tuning Seconds"] == 360 and estimate["Total Seconds"] > 600
    assert estimate["Elapsed Seconds"] + sum(shares.values()) <= 600 + 0.5
    now[0] += shares["Tuning Seconds"]  # its share spent: the next candidate is skipped, and says why
    why = guide(candidate("onnxruntime FP32"), rows, [120.0] * 2)
    assert why.startswith("the default 10 min budget (--time-budget MINUTES or off) leaves tuning ~")
    assert len([line for line in said if line.startswith("whole run: ")]) == 1  # said once


def test_without_a_budget_the_estimate_says_how_long_the_workloads_own_durations_take(monkeypatch, tmp_path):
    monkeypatch.setenv("PERFBENCH_HOME", str(tmp_path))
    said: list[str] = []
    monkeypatch.setattr(plan.console, "info", said.append)
    for workload, expected in [
        (Workload(**VAE_LIKE, min_seconds=10, max_seconds=120), "the workload's own max_seconds, min_seconds"),
        (Workload(**VAE_LIKE, time_budget_minutes="off"), "from openvino INT8's 0.28 QPS)"),
    ]:
        said.clear()
        run = fake_run(workload)
        guide = plan.TuningPlan(run, 4)
        assert guide(candidate("openvino FP32"), [first_row(qps=0.28)], [120.0] * 3) is None
        (line,) = said
        assert expected in line and "over" not in line and "Shares" not in run.report.sections[plan.BUDGET_SECTION]


def test_a_batch_size_the_budget_cuts_is_still_estimated_at_its_shortest(tmp_path, monkeypatch):
    monkeypatch.setenv("PERFBENCH_HOME", str(tmp_path))
    run = fake_run(Workload(**VAE_LIKE, time_budget_minutes=1), elapsed=60)  # the budget is spent
    call = 4 * 3 / 0.28  # batch size 4, three clients sharing the host
    cut = plan.performance_estimates(run, 1 / 0.28, batch_sizes=[4])
    # one warm-up call, one timed call per client, and the calls in flight when the window closes
    assert cut[plan.batch_stage(4)] == pytest.approx(3 * call)
    assert plan.measuring_budget(run) == pytest.approx(60 * plan.MEASURING_FLOOR)


# ---------------------------------------------------------------- candidates that cannot win
def test_a_candidate_whose_compile_outlasts_what_it_could_save_is_skipped(monkeypatch, tmp_path):
    monkeypatch.setenv("PERFBENCH_HOME", str(tmp_path))
    monkeypatch.setattr(plan.console, "info", lambda line: None)
    # windows held by min_seconds: a faster engine saves only the accuracy pass and the windows' extra calls
    run = fake_run(Workload(model="m", test_numeric=True, min_seconds=2.0, max_seconds=5.0, iterations=10))
    guide = plan.TuningPlan(run, 1)
    rows = [first_row(qps=50.0, compile_seconds=40.0)]  # openvino INT8, its calibration included
    could_save = guide.could_save(1 / 50.0)
    assert 0 < could_save < 40.0
    why = guide(candidate("onnxruntime INT8"), rows + [first_row(50.0, 45.0)], [45.0] * 2)
    assert why is None  # another engine's compile says nothing of this one's
    why = guide(candidate("openvino INT8"), rows, [45.0] * 2)
    assert why.startswith("cannot win: compiling it is expected to take ~40 s (openvino's cheapest INT8 compile in")
    assert guide(candidate("openvino FP32"), rows, [45.0] * 2) is None  # no calibration: INT8's compile says nothing
    cached = CandidateRow(engine="openvino", precision="BF16", qps=40.0, gate="pass", compile_seconds=0.2, cache="hit")
    assert guide(candidate("openvino FP32"), rows + [cached], [45.0] * 2) is None  # a cache hit is no compile's cost
    # a slow leader: the same compile is worth it, since a faster engine could save minutes
    slow = [first_row(qps=0.5, compile_seconds=40.0)]
    assert guide.could_save(2.0) > 40.0 and guide(candidate("openvino INT8"), slow, [45.0] * 2) is None


# ---------------------------------------------------------------- reference outputs once per input
def test_reference_outputs_are_computed_once_per_input(monkeypatch, tmp_path):
    monkeypatch.setenv("PERFBENCH_HOME", str(tmp_path))
    computed: list[int] = []

    def compute(model, source, features, sample_feeds, engine):
        computed.append(len(features))
        return {"y": features.inputs["x"].sum(axis=1, keepdims=True) * 2.0}

    monkeypatch.setattr(reference, "_compute", compute)
    rng = np.random.default_rng(0)
    features = Features(inputs={"x": rng.normal(size=(16, 3)).astype(np.float32)}, lengths=np.full(16, 3))
    model, source = SimpleNamespace(model="m"), SimpleNamespace(kind="torch", digest="d" * 40)
    gate = reference.reference_outputs(model, source, reference.take(features, slice(0, 6)), None)
    whole = reference.reference_outputs(model, source, features, None)
    assert computed == [6, 10]  # the gate's six are read back
    expected = features.inputs["x"].sum(axis=1, keepdims=True) * 2.0
    np.testing.assert_allclose(whole["y"], expected)
    np.testing.assert_allclose(gate["y"], expected[:6])
    shuffled = reference.take(features, np.arange(16)[::-1])
    np.testing.assert_allclose(reference.reference_outputs(model, source, shuffled, None)["y"], expected[::-1])
    assert computed == [6, 10]
    for sidecar in (tmp_path / "reference").rglob("*.json"):  # damaged files are computed again, not trusted
        sidecar.write_text("{")
    reference.reference_outputs(model, source, features, None)
    assert computed == [6, 10, 16]


# ---------------------------------------------------------------- a whole run: the gate's comparison reused
def test_the_accuracy_stage_compares_only_what_the_gate_did_not(monkeypatch, tmp_path, capsys):
    from core.measure.host import FLAGS_ENV
    from core.quality import gate

    monkeypatch.setenv("PERFBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(FLAGS_ENV, "fpu sse2 avx avx2 fma avx512f avx512bw avx512vl avx512_vnni avx512_bf16")
    monkeypatch.setattr(gate, "gate_features", lambda synthetic, seconds: (6, "6: a test's sample"))
    workload = registry.load_task("tiny-sd-unet").workload_file.read_text()
    path = tmp_path / "numeric-only.yaml"  # tuning and the numeric check are what this test is about
    path.write_text(workload.replace("test_perf: true", "test_perf: false"))
    options = RunOptions(hardware_type="CPU", output_dir=tmp_path, engine="onnxruntime", batch_sizes=[2])
    report = run_task(registry.load_task(str(path)), options)
    out = capsys.readouterr().out
    assert "reference outputs for 6 of 6 inputs" in out and "reference outputs for 10 of 10 inputs" in out
    assert out.count("reference outputs for") == 2  # each generated input once
    assert "the engine selection's gate already compared the first 6 of these 16 generated inputs" in out
    assert out.index("whole run: ") < out.index("onnxruntime FP32: ")  # said before the second candidate
    data = json.loads(report.written.read_text())
    assert data["Accuracy"]["Mean Diff"] is not None
    assert any("gate already compared" in note for note in data["Run"]["notes"])
    budget = data[plan.BUDGET_SECTION]
    assert budget["Budget"].startswith("no default budget: the workload sets")
    assert {"Accuracy", "Tuning", "Total"} <= set(budget["Actual Seconds"])


def test_the_rest_of_tuning_is_estimated_per_kind_so_an_int8_calibration_is_not_charged_to_float_compiles():
    from core.quality.compile_cost import expected_costs

    int8, fp32, bf16 = candidate("openvino INT8"), candidate("onnxruntime FP32"), candidate("openvino BF16")
    tried = [(int8, 200.0, 150.0)]  # calibration made most of it: timing and the gate took 50 s
    assert expected_costs([candidate("onnxruntime INT8"), fp32, bf16], tried) == [200.0, 50.0, 50.0]
    tried.append((fp32, 40.0, 2.0))  # once a float candidate is timed, floats go by it
    assert expected_costs([bf16, candidate("onnxruntime INT8")], tried) == [40.0, 200.0]
    assert expected_costs([bf16], []) == [0.0]


def test_the_estimate_leaves_out_the_candidates_the_tuning_budget_will_skip():
    """The VAE decoder's case: 200 s in with a 300 s tuning budget, nothing passed; the next INT8 candidate
    starts (the budget is not spent), then past it no INT8 one while a float one is later, the first float one
    runs and is taken to pass, and nothing after it starts."""
    from core.quality.selection import likely_costs

    left = [candidate(label) for label in ("onnxruntime INT8", "openvino BF16", "pytorch BF16", "openvino FP32")]
    costs = [190.0, 18.0, 18.0, 18.0]
    assert likely_costs(left, costs, 200.0, 300.0, None) == [190.0, 18.0, 0.0, 0.0]
    late = [candidate("onnxruntime INT8"), *left[1:]]
    assert likely_costs(late, costs, 310.0, 300.0, None) == [0.0, 18.0, 0.0, 0.0]  # no INT8 with floats later
    assert likely_costs(left, costs, 310.0, 300.0, "a row") == [0.0] * 4  # one passed: nothing starts
    assert likely_costs(left, costs, 310.0, None, None) == costs  # no tuning budget: every one runs
