"""The LLM gate: judged per prompt, its bound scaled by the reference with the candidate's weight rounding, so
sound rounding passes, broken candidates fail, and a failing candidate's error scaled up never passes. Then
the candidates of a tiny run: timed, gated, the fastest passing one chosen, the table in the report."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from core.common.errors import UserError
from core.measure.host import cpu_isa
from core.quality.llm_gate import DRIFT_FLOOR, INCONCLUSIVE_FACTOR, MIN_DECISIVE, judge, judge_prompt

POSITIONS, VOCAB = 24, 512


def logits(seed: int, peaked: bool = True) -> torch.Tensor:
    """[positions, vocab] logits; `peaked`: each position's top token clearly ahead (decisive)."""
    g = torch.Generator().manual_seed(seed)
    out = torch.randn(POSITIONS, VOCAB, generator=g)
    if peaked:
        out[torch.arange(POSITIONS), torch.randint(0, VOCAB, (POSITIONS,), generator=g)] += 6.0
    return out


def rounded(x: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """x with its mantissa cut to `bits` bits: rounding like BF16's."""
    return x.to(torch.bfloat16).float() if bits == 8 else x.half().float()


def noise(x: torch.Tensor, spread: float, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return x + spread * x.std() * torch.randn(x.shape, generator=g)


def scale_of(ref: torch.Tensor) -> torch.Tensor:
    """The reference with weight rounding: a small error of its own."""
    return noise(ref, 0.004, seed=99)


def worst_picks(x: torch.Tensor) -> torch.Tensor:
    """Every position's best and worst tokens swapped: plausible values, wrong answers."""
    out = x.clone()
    rows = torch.arange(x.shape[0])
    best, worst = x.argmax(-1), x.argmin(-1)
    out[rows, best], out[rows, worst] = x[rows, worst], x[rows, best]
    return out


SOUND = {
    "identical": lambda r: r.clone(),
    "bf16 rounding": rounded,
    "fp16 rounding": lambda r: rounded(r, 10),
    "2x the scale's error": lambda r: noise(r, 0.008, seed=5),
}
BROKEN = {
    "noise 0.3": lambda r: noise(r, 0.3),
    "noise 0.05": lambda r: noise(r, 0.05),
    "zeroed": torch.zeros_like,
    "stale by one position": lambda r: torch.roll(r, 1, 0),
    "vocabulary permuted": lambda r: r[:, torch.randperm(VOCAB, generator=torch.Generator().manual_seed(2))],
    "worst picks": worst_picks,
    "NaN": lambda r: torch.where(torch.arange(VOCAB) == 3, torch.nan, r),
}


@pytest.mark.parametrize("name", SOUND)
def test_sound_rounding_passes(name):
    refs = [logits(s) for s in range(3)]
    verdict = judge(refs, [SOUND[name](r) for r in refs], [scale_of(r) for r in refs])
    assert verdict.passed, verdict.why


@pytest.mark.parametrize("name", BROKEN)
def test_broken_candidates_fail(name):
    refs = [logits(s) for s in range(3)]
    verdict = judge(refs, [BROKEN[name](r) for r in refs], [scale_of(r) for r in refs])
    assert not verdict.passed and verdict.gate == "fail"


def test_one_broken_prompt_fails_the_candidate():
    refs = [logits(s) for s in range(4)]
    candidates = [r.clone() for r in refs]
    candidates[2] = torch.roll(refs[2], 1, 0)
    verdict = judge(refs, candidates, [scale_of(r) for r in refs])
    assert not verdict.passed
    assert [p.passed for p in verdict.prompts] == [True, True, False, True]
    assert verdict.why.startswith("prompt 2:")


def test_the_bound_scales_with_the_rounding_the_reference_shows():
    ref = logits(0)
    candidate = noise(ref, 0.03)
    assert not judge_prompt(ref, candidate, noise(ref, 0.004, seed=9)).passed  # BF16-sized rounding
    assert judge_prompt(ref, candidate, noise(ref, 0.02, seed=9)).passed  # a coarser recipe explains it


def test_too_few_decisive_positions_apply_the_tight_bound():
    ref = logits(0, peaked=False)
    top2 = ref.topk(2, dim=-1).indices
    rows = torch.arange(POSITIONS)
    ref[rows, top2[:, 1]] = ref[rows, top2[:, 0]] - 1e-4  # every position a near-tie: none decisive
    scale = noise(ref, 0.004, seed=9)
    verdict = judge_prompt(ref, ref.clone(), scale)
    assert verdict.decisive < MIN_DECISIVE and verdict.passed and "inconclusive" in verdict.why
    loose = judge_prompt(ref, noise(ref, 0.004 * (INCONCLUSIVE_FACTOR + 1)), scale)
    assert not loose.passed


def test_a_rounding_as_coarse_as_unrelated_outputs_still_fails_an_engine_computing_something_else():
    """4-bit weights on random weights: the rounded reference is ~0.5 of the std away, no position decisive, so
    the drift bound (2.5x) would pass unrelated logits; the candidate must stay near the rounded reference."""
    ref = logits(0, peaked=False)
    scale = noise(ref, 0.6, seed=9)
    unrelated = logits(7, peaked=False)  # the same spread, computed from nothing the reference holds
    wrong = judge_prompt(ref, unrelated, scale)
    assert wrong.decisive < MIN_DECISIVE and wrong.drift <= wrong.bound  # the drift bound alone passes it
    assert not wrong.passed and "unrelated outputs" in wrong.why
    sound = judge_prompt(ref, noise(scale, 0.05, seed=3), scale)  # the rounded model, activations rounded too
    assert sound.passed, sound.why
    assert sound.beyond < 0.1 * sound.unrelated < wrong.beyond


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 1000), spread=st.floats(0.02, 0.5), factor=st.floats(1.0, 20.0))
def test_a_failing_candidate_scaled_up_never_passes(seed, spread, factor):
    ref, scale = logits(seed), scale_of(logits(seed))
    error = noise(ref, spread, seed=seed + 1) - ref
    first = judge_prompt(ref, ref + error, scale)
    if not first.passed:
        assert not judge_prompt(ref, ref + factor * error, scale).passed


def test_the_floor_keeps_an_fp32_reference_judging_itself():
    ref = logits(0)
    verdict = judge([ref], [ref], [ref])
    assert verdict.passed and verdict.prompts[0].bound == DRIFT_FLOOR
    assert not judge([ref], [noise(ref, 0.01)], [ref]).passed


def test_candidates_follow_the_pinned_engine_and_precision(monkeypatch):
    from core.model.llm_rounding import WeightRounding
    from core.run import llm_select

    lean = {"INT4 weights, INT8 activations": WeightRounding("INT4", 5, 32), "FP32": WeightRounding("FP32", 32)}
    gguf = {"Q8_0 weights, INT8 activations": WeightRounding("Q8_0", 8.5, 32, gguf_type="Q8_0")}
    engines = [SimpleNamespace(NAME="ort", RECIPES=lean), SimpleNamespace(NAME="cpp", RECIPES=gguf)]
    monkeypatch.setattr(llm_select, "cpu_engines", lambda: engines)

    def labels(auto, engine=None, precision="auto", backend="CPU"):
        run = SimpleNamespace(
            workload=SimpleNamespace(engine=engine), precision=precision, spec=SimpleNamespace(name=backend)
        )
        return [c.label for c in llm_select.candidates(run, auto)]

    # One of each engine first (its leanest recipe), then the rest by bytes per weight, then transformers.
    every = ["ort INT4 weights, INT8 activations", "cpp Q8_0 weights, INT8 activations", "ort FP32"]
    assert labels("BF16") == [*every, "transformers BF16", "transformers FP32"]
    assert labels("FP32") == [*every, "transformers FP32"]
    assert labels("BF16", backend="GPU") == ["transformers BF16", "transformers FP32"]
    assert labels("BF16", precision="BF16") == ["transformers BF16"]
    assert labels("FP32", precision="FP32") == ["ort FP32", "transformers FP32"]
    assert labels("BF16", precision="INT4 weights") == ["ort INT4 weights, INT8 activations"]
    assert labels("BF16", precision="q8_0 weights, int8 activations") == ["cpp Q8_0 weights, INT8 activations"]
    assert labels("BF16", engine="transformers") == ["transformers BF16", "transformers FP32"]
    assert labels("BF16", engine="ort") == ["ort INT4 weights, INT8 activations", "ort FP32"]
    with pytest.raises(UserError, match="no ort candidate runs BF16"):
        labels("BF16", engine="ort", precision="BF16")
    with pytest.raises(UserError, match="on the GPU backend"):
        labels("BF16", engine="ort", backend="GPU")
    with pytest.raises(UserError, match="no auto candidate runs INT4 weights, FP32 activations"):
        labels("BF16", precision="INT4 weights, FP32 activations")


def test_llm_precision_names_weights_and_activations_apart():
    from core.config.llm_precision import file_name, parse

    assert parse("bf16").label == "BF16"
    assert parse("int4 Weights").label == "INT4 weights"
    assert parse("INT4 weights, INT8 activations").label == "INT4 weights, INT8 activations"
    assert parse("INT4 weights").matches(parse("INT4 weights, INT8 activations"))
    assert not parse("INT4 weights, FP32 activations").matches(parse("INT4 weights, INT8 activations"))
    assert not parse("INT8 weights").matches(parse("INT4 weights, INT8 activations"))
    assert file_name("INT4 weights, INT8 activations") == "int4w-int8a" and file_name("BF16") == "bf16"
    for bad in ("INT3 weights", "INT4 weights, INT2 activations", "fast", "weights"):
        with pytest.raises(ValueError, match="not an LLM precision"):
            parse(bad)


def test_engine_auto_on_a_tiny_llm_times_and_gates_candidates_and_rows_carry_roofs(tmp_path):
    from core.config.registry import load_task
    from core.perf_engine import main

    task = "tiny-llama-torch-fp32"
    workload = json.loads(Path(load_task(task).workload_file).read_text())
    workload["perf_config"].update(perf_time=0.3, batch_sizes=[1])
    path = tmp_path / f"{task}.json"
    path.write_text(json.dumps(workload))
    assert main(["--task", str(path), "--output-dir", str(tmp_path), "--output-tokens", "4"]) == 0
    written = next((tmp_path / "CPU" / task).glob("result-*.json"))
    data = json.loads(written.read_text())
    selection = data["Graph Compile"]["Engine Selection"]
    rows = {(row["Engine"], row["Precision"]): row for row in selection["Candidates"]}
    assert {("transformers", "FP32")} | ({("transformers", "BF16")} if cpu_isa().bf16 else set()) <= set(rows)
    assert len({engine for engine, _ in rows}) >= 3  # transformers and at least two converting engines
    int4 = rows.get(("onnxruntime-genai", "INT4 weights, INT8 activations"))
    if importlib.util.find_spec("onnxruntime_genai") is None:
        assert int4["Gate"] == "skipped" and "not installed" in int4["Why"]
    elif int4["Gate"] == "pass":  # its first recipe; the scale is the reference with INT4-rounded weights
        assert int4["Artifact MB"] > 0 and "INT4" in int4["Scale"]
        assert 0 < int4["Scale Drift"] < int4["Normalized Drift"] <= int4["Drift Bound"]
        assert int4["Beyond Scale"] <= 0.5 * int4["Unrelated Drift"]
        for precision in ("INT8 weights, INT8 activations", "FP32"):  # leaner passed: these cannot be faster
            assert rows["onnxruntime-genai", precision]["Gate"] == "skipped"
            assert "cannot be faster" in rows["onnxruntime-genai", precision]["Why"]
    else:  # timed slower than a candidate that passed: not gated
        assert int4["Gate"] == "dropped" and "cannot win" in int4["Why"]
    chosen = [row for row in rows.values() if row["Chosen"]]
    assert len(chosen) == 1 and chosen[0]["Gate"] == "pass"
    passed = [row for row in rows.values() if row["Gate"] == "pass"]
    assert chosen[0]["Decode Tokens/s"] == max(row["Decode Tokens/s"] for row in passed)
    assert data["Graph Compile"]["Compile Precision"] == chosen[0]["Precision"]
    assert data["Graph Compile"]["Engine"] == chosen[0]["Engine"]
    for row in passed:
        assert row["TTFT ms"] > 0 and row["Normalized Drift"] <= row["Drift Bound"]
    for row in rows.values():
        if row["Gate"] == "dropped":
            assert 1.25 * row["Decode Tokens/s"] <= chosen[0]["Decode Tokens/s"]
    roof = data["Performance"][0]["Roofline"]
    assert 0 < roof["Prefill Peak Share"] <= 1.1 and 0 < roof["Decode MBU"] <= 1.1
    assert "last-level cache" in roof["Note"]  # a tiny model's weights fit in any L3
