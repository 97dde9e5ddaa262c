"""Engine and precision selection: ISA detection, candidates per host, the accuracy gate, the decision cache."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

import backends
from backends.base import Candidate, CompiledModel, CompileRequest, RuntimeBackend
from core.common.errors import UserError
from core.common.paths import state_dir
from core.config import registry
from core.measure.host import FLAGS_ENV, CpuIsa
from core.measure.timing import MeasurePolicy
from core.model.source import resolve_source
from core.quality import gate as accuracy_gate
from core.quality import selection as tuning
from datasets.base import Features

AVX2 = "fpu sse2 avx avx2 fma"
AVX512 = AVX2 + " avx512f avx512bw avx512vl avx512_vnni avx512_bf16"
AMX = AVX512 + " amx_tile amx_bf16 amx_int8"


@pytest.mark.parametrize(
    ("flags", "name", "bf16", "int8"),
    [
        (AVX2, "AVX2", False, False),
        (AVX2 + " avx_vnni", "AVX2", False, True),
        (AVX512, "AVX-512", True, True),
        (AVX2 + " avx512f", "AVX-512", False, False),
        (AMX, "AMX", True, True),
    ],
)
def test_isa_from_a_flags_string(flags, name, bf16, int8):
    isa = CpuIsa.from_flags(flags)
    assert (isa.name, isa.bf16, isa.int8) == (name, bf16, int8)
    entry = isa.report_entry()
    assert entry["isa"] == name and "fpu" not in entry["flags"] and set(entry["flags"]) <= set(flags.split())


def request_for(task_name: str, precision: str) -> CompileRequest:
    task = registry.load_task(task_name)
    return CompileRequest(
        model=task.model,
        source=resolve_source(task.model, model_file=task.model_file),
        precision=precision,
        batch_sizes=[1],
        cache_dir=state_dir(),
        sample_feeds=None,
    )


def labels(engine: str, precision: str, flags: str, monkeypatch) -> list[str]:
    monkeypatch.setenv(FLAGS_ENV, flags)
    spec = backends.load_backend("CPU")
    compiler = spec.compile_backend(spec.make_config(engine, {}, source="test"))
    return [c.label for c in compiler.candidates(request_for("tiny-bert-squad", precision))]


def test_candidates_follow_the_host_likely_fastest_first(monkeypatch):
    assert labels("auto", "auto", AVX2, monkeypatch) == ["openvino FP32", "onnxruntime FP32", "pytorch FP32"]
    assert labels("auto", "auto", AMX, monkeypatch) == [
        "openvino INT8",
        "onnxruntime INT8",
        "openvino BF16",
        "pytorch BF16",
        "openvino FP32",
        "onnxruntime FP32",
        "pytorch FP32",
    ]
    assert labels("openvino", "auto", AVX512, monkeypatch) == ["openvino INT8", "openvino BF16", "openvino FP32"]
    assert labels("auto", "FP32", AMX, monkeypatch) == ["openvino FP32", "onnxruntime FP32", "pytorch FP32"]
    assert labels("pytorch", "BF16", AMX, monkeypatch) == ["pytorch BF16"]
    # INT8 without VNNI still runs when pinned (AVX2 has int8 kernels); auto just does not try it.
    assert labels("onnxruntime", "INT8", AVX2, monkeypatch) == ["onnxruntime INT8"]


def test_pinned_bf16_without_the_isa_is_refused(monkeypatch):
    with pytest.raises(UserError, match="no native bf16"):
        labels("auto", "BF16", AVX2, monkeypatch)
    with pytest.raises(UserError, match="precision INT8 is not supported by the CPU pytorch engine"):
        labels("pytorch", "INT8", AMX, monkeypatch)


def test_cli_refuses_bf16_on_an_avx2_host_with_one_line(monkeypatch, capsys, tmp_path):
    from core import perf_engine

    monkeypatch.setenv(FLAGS_ENV, AVX2)
    code = perf_engine.main(["--task", "tiny-bert-squad", "--precision", "bf16", "--output-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "no native bf16" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 3  # one logical line, maybe wrapped
    assert not list(tmp_path.rglob("*.json"))


# --- select(): fake engines with known speed and known answers -------------------------------------

SEQ = 16


def true_outputs(feeds):
    ids = feeds["ids"].astype(np.float32)
    return {"start": np.sin(ids), "end": np.cos(ids)}


class FakeRuntime(RuntimeBackend):
    """Answers like the reference (optionally corrupted) after sleeping `delay` seconds a call."""

    def load(self, batch_size):
        self.batch_size = batch_size

    def predict(self, feeds):
        time.sleep(self.compiled.details["delay"])
        out = true_outputs(feeds)
        if self.compiled.details["corrupt"]:
            rng = np.random.default_rng(0)
            out = {k: v + rng.normal(0, 1.0, v.shape).astype(np.float32) for k, v in out.items()}
        return out


def fake_candidates(specs: dict[str, tuple[float, bool]]) -> tuple[list[Candidate], dict]:
    from pydantic import BaseModel

    class Config(BaseModel):
        engine: str

    compiled = {}
    candidates = []
    for label, (delay, corrupt) in specs.items():
        engine, precision = label.split()
        compiled[label] = CompiledModel(
            engine=engine,
            precision=precision,
            artifact=None,
            input_names=["ids"],
            output_names=["start", "end"],
            compile_seconds=0.0,
            cache_hit=False,
            details={"delay": delay, "corrupt": corrupt},
        )
        candidates.append(Candidate(engine, precision, Config(engine=engine)))
    return candidates, compiled


@pytest.fixture
def fast_tuning(monkeypatch, tmp_path):
    monkeypatch.setattr(
        tuning,
        "TUNING_POLICY",
        MeasurePolicy(warmup_iterations=1, warmup_seconds=0.1, min_iterations=5, min_seconds=0.0, max_seconds=0.5),
    )
    monkeypatch.setenv("PERFBENCH_HOME", str(tmp_path))


def run_select(candidates, compiled, gates: list, compiles: list | None = None, budget_seconds=None, runtime=None):
    rng = np.random.default_rng(1)
    lengths = rng.integers(4, SEQ, size=12)
    ids = np.where(np.arange(SEQ)[None, :] < lengths[:, None], rng.integers(1, 100, size=(12, SEQ)), 0)
    features = Features(inputs={"ids": ids}, lengths=lengths)

    def make_gate(seconds_per_sample):
        gates.append(seconds_per_sample)
        return accuracy_gate.make_gate(
            features, true_outputs(features.inputs), "fake reference", evaluate=None, synthetic=True
        )

    return tuning.select(
        candidates,
        model="fake",
        compile_candidate=lambda c: (compiles.append(c.label) if compiles is not None else None) or compiled[c.label],
        make_runtime=lambda comp, config: (runtime or FakeRuntime)(comp, config),
        batch_size=1,
        feeds={"ids": ids[:1]},
        make_gate=make_gate,
        cache_payload={"source": "s"},
        budget_seconds=budget_seconds,
    )


def test_the_gate_rejects_a_fast_corrupted_candidate(fast_tuning):
    candidates, compiled = fake_candidates(
        {"fast INT8": (0.0, True), "slow FP32": (0.01, False), "slower BF16": (0.03, False)}
    )
    selection = run_select(candidates, compiled, [])
    rows = {r.label: r for r in selection.section.candidates}
    assert selection.candidate.label == "slow FP32"
    assert rows["fast INT8"].gate == "fail" and rows["fast INT8"].qps > rows["slow FP32"].qps
    assert "drift" in rows["fast INT8"].why and rows["slow FP32"].chosen and not rows["fast INT8"].chosen
    assert rows["slower BF16"].gate == "dropped" and rows["slow FP32"].normalized_drift == 0
    assert rows["slower BF16"].why.startswith("slower than slow FP32 after ")
    assert rows["slower BF16"].normalized_drift is None  # dropped before its gate sample ran
    assert "the only candidate that passed the accuracy gate (3 tried)" in selection.section.reason


def test_each_candidate_is_compiled_once_and_the_winner_is_not_compiled_again(fast_tuning):
    candidates, compiled = fake_candidates(
        {"slow FP32": (0.02, False), "fast BF16": (0.0, False), "mid INT8": (0.01, False)}
    )
    compiles: list = []
    selection = run_select(candidates, compiled, [], compiles)
    assert compiles == ["slow FP32", "fast BF16", "mid INT8"]  # torch.compile and CUDA graphs cost minutes on a GPU
    assert selection.candidate.label == "fast BF16" and selection.compiled is compiled["fast BF16"]
    cached = run_select(candidates, compiled, [], compiles)  # a cached decision compiles the chosen one only
    assert compiles[3:] == ["fast BF16"] and cached.compiled is compiled["fast BF16"]


def test_no_passing_candidate_is_one_line_error(fast_tuning):
    candidates, compiled = fake_candidates({"a FP32": (0.0, True), "b INT8": (0.0, True)})
    with pytest.raises(UserError, match="no candidate passed the accuracy gate"):
        run_select(candidates, compiled, [])


def test_a_failing_candidate_is_recorded_and_skipped(fast_tuning):
    candidates, compiled = fake_candidates({"good FP32": (0.0, False), "broken INT8": (0.0, False)})
    compiled["broken INT8"].details["delay"] = "not a number"  # time.sleep raises TypeError
    selection = run_select(candidates, compiled, [])
    rows = {r.engine: r for r in selection.section.candidates}
    assert selection.candidate.label == "good FP32"
    assert rows["broken"].gate == "error" and "TypeError" in rows["broken"].why


def test_decision_cache_hit_and_invalidation(fast_tuning, monkeypatch):
    import core.measure.host

    candidates, compiled = fake_candidates({"a FP32": (0.0, False), "b BF16": (0.005, False)})
    gates: list = []
    first = run_select(candidates, compiled, gates)
    again = run_select(candidates, compiled, gates)
    assert len(gates) == 1 and again.candidate.label == first.candidate.label
    assert again.section.decision.startswith("cached") and first.section.decision == "tuned in this run"
    # Another library version, another host: tune again.
    real_versions = core.measure.host.software_versions
    monkeypatch.setattr(core.measure.host, "software_versions", lambda: {**real_versions(), "openvino": "0.0-other"})
    run_select(candidates, compiled, gates)
    assert len(gates) == 2
    monkeypatch.setenv(FLAGS_ENV, AMX + " other_flag avx512_fp16")
    run_select(candidates, compiled, gates)
    assert len(gates) == 3
    # A damaged decision file is noticed and replaced.
    for path in (state_dir() / "tuning" / "fake").glob("*.json"):
        data = json.loads(path.read_text())
        data["decision"]["Chosen"] = "b BF16" if data["decision"]["Chosen"] == "a FP32" else "a FP32"
        path.write_text(json.dumps(data))
    run_select(candidates, compiled, gates)
    assert len(gates) == 4


def test_metric_gate_applies_mlperf_99_percent_rule():
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 3, size=200)
    features = Features(inputs={"ids": np.zeros((200, 4), dtype=np.int64)}, lengths=np.full(200, 4))
    reference = {"logits": np.eye(3, dtype=np.float32)[gold] * 5}

    def evaluate(outputs):
        return {"Accuracy": 100.0 * float(np.mean(outputs["logits"].argmax(1) == gold)), "Examples": len(gold)}

    gate = accuracy_gate.make_gate(features, reference, "ref", evaluate=evaluate, synthetic=False)
    assert gate.by_metric and gate.reference_metrics == {"Accuracy": 100.0}  # counts are not metrics
    noisy = {"logits": reference["logits"] + rng.normal(0, 0.1, reference["logits"].shape).astype(np.float32)}
    assert gate.judge(noisy).passed
    flipped = {"logits": reference["logits"].copy()}
    flipped["logits"][:3] = np.roll(flipped["logits"][:3], 1, axis=1)  # 3 of 200 answers change: 98.5%
    verdict = gate.judge(flipped)
    assert verdict.gate == "fail" and "Accuracy 98.5" in verdict.why
    # Synthetic weights: the metric means nothing, the drift rule applies instead.
    assert not accuracy_gate.make_gate(features, reference, "ref", evaluate=evaluate, synthetic=True).by_metric


def test_the_gate_of_a_model_without_a_dataset_uses_generated_inputs():
    from core.run.compile import gate_loader
    from core.run.context import make_loader, model_inputs

    task = registry.load_task("tiny-bert-squad")
    model = task.model.model_copy(update={"dataset_name": None})
    task = type(task)(
        task.workload.model_copy(update={"test_numeric": True}), task.workload_file, model, task.model_file
    )
    inputs = model_inputs(task, resolve_source(model, model_file=task.model_file))
    numeric_loader = make_loader(task, inputs, dataset="fake_dataset")
    assert len(numeric_loader.load()) > accuracy_gate.GATE_MAX_FEATURES  # more than the gate's limit: no re-sampling
    assert gate_loader(task, inputs, numeric_loader, accuracy_gate.GATE_MAX_FEATURES) is numeric_loader
    generated = gate_loader(task, inputs, None, accuracy_gate.GATE_MAX_FEATURES)
    assert generated.name == "fake_dataset" and len(generated.load()) > 0


def test_dropping_slow_candidates_early_chooses_what_full_timing_chooses(fast_tuning, monkeypatch):
    specs = {"a INT8": (0.004, False), "b BF16": (0.002, False), "c FP32": (0.02, False), "d FP32": (0.03, False)}
    candidates, compiled = fake_candidates(specs)
    gates: list = []
    early = run_select(candidates, compiled, gates)
    rows = {r.label: r for r in early.section.candidates}
    assert [rows[label].gate for label in specs] == ["pass", "pass", "dropped", "dropped"]
    assert "slower than b BF16" in rows["c FP32"].why
    monkeypatch.setattr(tuning, "DROP_RATIO", float("inf"))  # full timing and a gate for every candidate
    monkeypatch.setenv("PERFBENCH_HOME", str(state_dir() / "full"))
    full = run_select(candidates, compiled, gates)
    assert full.candidate.label == early.candidate.label == "b BF16"
    assert all(r.gate == "pass" for r in full.section.candidates)
    # the gate was sized once per tuning, from the first candidate's seconds per sample
    assert len(gates) == 2 and all(0 < seconds < 0.1 for seconds in gates)


def test_the_estimate_is_said_after_the_first_candidate(fast_tuning, monkeypatch):
    said: list[str] = []
    monkeypatch.setattr(tuning.console, "info", said.append)
    candidates, compiled = fake_candidates({"a FP32": (0.0, False), "b BF16": (0.0, False), "c INT8": (0.0, False)})
    run_select(candidates, compiled, [])
    first = next(i for i, line in enumerate(said) if line.startswith("  a FP32:"))
    assert said[first + 1].startswith("tuning: ~") and said[first + 1].endswith("left for 2 more candidates")
    assert not any(line.startswith("  b BF16:") for line in said[: first + 1])


def test_a_tuning_budget_skips_the_rest_once_one_passed(fast_tuning):
    candidates, compiled = fake_candidates({"a FP32": (0.01, False), "b BF16": (0.0, False), "c INT8": (0.0, False)})
    selection = run_select(candidates, compiled, [], budget_seconds=1e-6)
    rows = {r.label: r for r in selection.section.candidates}
    assert rows["a FP32"].gate == "pass" and selection.candidate.label == "a FP32"
    assert rows["b BF16"].gate == rows["c INT8"].gate == "skipped" and "tuning budget" in rows["b BF16"].why
    # nothing passed yet: the budget does not stop the search
    candidates, compiled = fake_candidates({"x FP32": (0.0, True), "y FP32": (0.0, False)})
    assert run_select(candidates, compiled, [], budget_seconds=1e-6).candidate.label == "y FP32"
    # ... but with time spent and none passed, no more INT8 calibrations: the float candidates come next
    specs = {"p INT8": (0.0, True), "q INT8": (0.0, False), "r BF16": (0.0, True), "s FP32": (0.0, False)}
    candidates, compiled = fake_candidates(specs)
    compiles = []
    selection = run_select(candidates, compiled, [], compiles, budget_seconds=1e-6)
    rows = {r.label: r for r in selection.section.candidates}
    assert compiles == ["r BF16", "s FP32"] and selection.candidate.label == "s FP32"
    assert rows["p INT8"].gate == rows["q INT8"].gate == "skipped" and "none passed: float next" in rows["q INT8"].why


@pytest.mark.parametrize(
    "seconds, count", [(0.001, accuracy_gate.GATE_MAX_FEATURES), (5.0, accuracy_gate.GATE_MIN_FEATURES), (0.5, 40)]
)
def test_the_synthetic_gate_sample_fits_its_time(seconds, count):
    assert accuracy_gate.gate_features(True, seconds)[0] == count
    assert accuracy_gate.gate_features(False, seconds)[0] == accuracy_gate.GATE_MAX_FEATURES_METRIC
