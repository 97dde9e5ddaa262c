"""llama.cpp as an LLM engine: the GGUF written from the run's weights answers like the transformers module (at
F32 within reordered sums; at Q8_0/Q4_0 like the module carrying the same weight rounding), decode steps batched
across slots equal each slot run alone, and an absent llama-cpp-python is named with how to install it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from backends.CPU import llm_llamacpp
from backends.CPU.llm_llamacpp import RECIPES, convert, load
from tests.llm_fakes import tiny_llama

needs_llama_cpp = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None,
    reason="llama-cpp-python is not installed (the optional extra: pip install -e .[llamacpp])",
)
Q8_0, Q4_0 = "Q8_0 weights, INT8 activations", "Q4_0 weights, INT8 activations"


def test_missing_names_the_package_the_extra_and_the_build(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llama_cpp" else real(name, *a))
    why = llm_llamacpp.missing()
    assert why is not None and "llama-cpp-python is not installed" in why
    assert "pip install -e .[llamacpp]" in why and "source build" in why
    monkeypatch.undo()
    assert (llm_llamacpp.missing() is None) == (real("llama_cpp") is not None)


def test_recipes_store_what_their_labels_say():
    gguf = pytest.importorskip("gguf")
    for label, rounding in RECIPES.items():
        block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[rounding.gguf_type]]
        assert rounding.bits == 8 * size / block, label  # the decode roof's bytes are the file's
        assert rounding.embeddings and rounding.lm_head  # the writer stores both at the matrices' type
        quantized = rounding.gguf_type != "F32"
        assert label.startswith(f"{rounding.gguf_type} weights, INT8 activations") == quantized, label
        assert (label == "FP32") != quantized
    with pytest.raises(ValueError, match="no recipe"):
        convert(None, "x", None, "INT4 weights, FP32 activations")


def _tiny_llama(tied: bool):
    """Vocabulary 512; tied with llama3 rope scaling (Llama-3.2-1B's kind) or untied plain rope."""
    rope, positions = {"rope_type": "default", "rope_theta": 10000.0}, 256
    if tied:
        positions = 131072
        rope = {
            "rope_type": "llama3",
            "rope_theta": 500000.0,
            "factor": 32.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        }
    return tiny_llama(vocab_size=512, max_position_embeddings=positions, tie_word_embeddings=tied, rope_parameters=rope)


def _ids(count: int, seed: int) -> list[int]:
    import torch

    return torch.randint(0, 512, (count,), generator=torch.Generator().manual_seed(seed)).tolist()


def _reference(module, ids: list[int]):
    import torch

    with torch.no_grad():
        return module(torch.tensor([ids])).logits[0]


def _engine(module, tmp_path, precision: str, slots: int = 1, max_len: int = 64):
    cached = convert(module, "tiny-llama-seed-0", tmp_path / "llama.cpp", precision)
    return cached, load(cached.path, module.config).engine(slots, max_len)


def _generate(engine, slot: int, prompt: list[int], steps: int) -> list[int]:
    out = [engine.prefill(slot, prompt)]
    while len(out) < steps:
        out.append(engine.decode([slot], [out[-1]])[0])
    return out


@needs_llama_cpp
@pytest.mark.parametrize("tied", [True, False], ids=["tied-llama3-rope", "untied"])
def test_fp32_logits_and_greedy_tokens_match_the_module(tmp_path, tied):
    import torch

    module = _tiny_llama(tied)
    prompt = _ids(20, seed=1)
    cached, engine = _engine(module, tmp_path, "FP32")
    assert not cached.hit and cached.meta["tensor_type"] == "F32"
    # Greedy generation through the cache equals the module's own argmax, step by step.
    tokens = _generate(engine, 0, prompt, 12)
    expected, ids = [], list(prompt)
    for _ in range(12):
        expected.append(int(_reference(module, ids)[-1].argmax()))
        ids.append(expected[-1])
    assert tokens == expected
    # Teacher-forced logits over the prompt and the generated steps: reordered FP32 sums only.
    reference = _reference(module, ids)
    got = engine.logits(ids)
    assert got.shape == reference.shape and got.dtype == torch.float32
    assert (got - reference).abs().max() / reference.std() < 1e-4
    assert convert(module, "tiny-llama-seed-0", tmp_path / "llama.cpp", "FP32").hit


@needs_llama_cpp
def test_decode_batched_across_slots_equals_each_slot_alone(tmp_path):
    module = _tiny_llama(tied=False)
    prompts = [_ids(9, seed=2), _ids(17, seed=3), _ids(5, seed=4)]
    cached, alone = _engine(module, tmp_path, Q8_0)
    expected = [_generate(alone, 0, prompt, 8) for prompt in prompts]
    model = load(cached.path, module.config)
    assert model.batched_decode
    engine = model.engine(3, 64)
    assert engine.cache_bytes >= 3 * 64 * model.kv_bytes_per_position
    outs = {slot: [engine.prefill(slot, prompts[slot])] for slot in (0, 2)}
    for step in range(7):
        if step == 3:  # a request joins mid-flight; a finished slot's cache is reused
            outs[1] = [engine.prefill(1, prompts[1])]
        active = [s for s in outs if len(outs[s]) < 8]
        for slot, token in zip(active, engine.decode(active, [outs[s][-1] for s in active])):
            outs[slot].append(token)
    engine.release(0)
    outs[0] = _generate(engine, 0, prompts[0], 8)  # a released slot starts clean
    assert outs[1][:5] == expected[1][:5]
    assert [outs[0], outs[2]] == [expected[0], expected[2]]


@needs_llama_cpp
@pytest.mark.parametrize("label", [Q8_0, Q4_0])
def test_quantized_logits_match_the_module_with_the_same_weight_rounding(tmp_path, label):
    from core.model.llm_rounding import rounded

    module = _tiny_llama(tied=True)
    ids = _ids(32, seed=5)
    _, engine = _engine(module, tmp_path, label)
    got = engine.logits(ids)
    reference = _reference(module, ids)
    with rounded(module, RECIPES[label]):
        scale_model = _reference(module, ids)
    std = reference.std()
    drift = float((got - scale_model).abs().mean() / std)
    unexplained = float((got - reference).abs().mean() / std)
    rounding = float((scale_model - reference).abs().mean() / std)
    # What is left once the weights carry the file's rounding is the INT8 activations' and the F16 attention's
    # error (measured 0.005 on both): small, below what the FP32 module leaves unexplained, and for Q4_0 (4-bit
    # weights, 8-bit activations; rounding measured 0.12) far below the weights' own.
    assert drift < 0.02 and drift < unexplained, (drift, rounding, unexplained)
    if label == Q4_0:
        assert drift < 0.2 * rounding, (drift, rounding)


@needs_llama_cpp
def test_llama_cpp_speaks_through_our_log_not_the_console(tmp_path, capfd, caplog):
    import logging

    module = _tiny_llama(tied=False)
    with caplog.at_level(logging.DEBUG, logger="backends.CPU.llm_llamacpp"):
        _engine(module, tmp_path, Q8_0, slots=3)  # llama.cpp logs its load and its context sizes
    assert "llama" not in capfd.readouterr().err  # nothing printed past our console
    assert any(record.levelno == logging.DEBUG for record in caplog.records)


@needs_llama_cpp
@pytest.mark.parametrize("label", [Q4_0, "FP32"])
def test_the_llama_cpp_engine_is_profiled_node_by_node_and_serves_as_before(tmp_path, label):
    import json

    from core.run.llm import Point
    from core.run.llm_profile import profile_phases

    module = _tiny_llama(tied=False)
    cached, engine = _engine(module, tmp_path, label, slots=2)
    loaded = load(cached.path, module.config)
    phases = profile_phases(loaded, Point(1, 2, 12, 3), None, None, tmp_path / "profile", name="llama.cpp")
    for phase, calls in (("Prefill", 3), ("Decode", 1)):  # decode: within the point's 2 steps, after a warm-up
        section = phases[phase]
        assert section["Engine"] == "llama.cpp" and section["Calls"] == calls, section
        assert section["Profiler"].startswith("ggml eval callback")
        types = {row["Type"]: row for row in section["Types"]}
        assert types["MatMul/linear"]["Share"] > 0 and "MUL_MAT" in types["MatMul/linear"]["Engine Ops"]
        # FP32 runs attention as kq/kqv products; the quantized recipes as flash attention: attention either way
        assert types["attention"]["Share"] > 0, types
        assert sum(row["Share"] for row in types.values()) == pytest.approx(1.0, abs=0.01)
        trace = json.loads(Path(section["Trace"]).read_text(encoding="utf-8"))["traceEvents"]
        assert {event["args"]["call"] for event in trace} == set(range(calls))
        assert not {"VIEW", "RESHAPE", "PERMUTE", "TRANSPOSE"} & {event["cat"] for event in trace}
    # The serving engine has no callback and answers what the profiled one answered before its timer ran.
    prompt = _ids(12, seed=3)
    profiled = loaded.profiling_engine(1, 32)
    assert _generate(engine, 0, prompt, 4) == _generate(profiled, 0, prompt, 4)
    assert engine.timer is None and profiled.timer.events is None
