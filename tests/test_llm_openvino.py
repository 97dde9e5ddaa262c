"""The GGUF writer and the OpenVINO engine on a tiny Llama built here: the file reads back with the gguf package
as written (llama.cpp's Q/K permutation, types, made vocabulary); OpenVINO's logits from the converted IR match
the transformers module at FP32 (plain rope, and llama3 rope scaling with tied embeddings), its greedy tokens
through prefill and decode are the module's, and Q8_0/Q4_0 match the module with the same rounding applied."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("gguf")
pytest.importorskip("openvino_genai")

from backends.CPU import llm_openvino  # noqa: E402
from core.model.llm_gguf import FILE, cached_gguf, write_gguf  # noqa: E402
from core.model.llm_rounding import rounded  # noqa: E402
from tests.llm_fakes import tiny_llama as seeded_llama  # noqa: E402

VOCAB = 512
LLAMA3_ROPE = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 64,  # small, so the scaled frequencies matter within a short prompt
}


def tiny_llama(llama3: bool = False):
    """tiny-llama's shapes, seeded; weights scaled up so attention is far from uniform and rope errors show."""
    extra = {"tie_word_embeddings": True, "rope_theta": 500000.0, "rope_scaling": LLAMA3_ROPE} if llama3 else {}
    module = seeded_llama(seed=3, vocab_size=VOCAB, **extra)
    with torch.no_grad():
        for param in module.parameters():
            if param.ndim == 2:
                param.mul_(5.0)
    return module


@pytest.fixture(scope="module")
def module():
    return tiny_llama()


IDS = [int(i) for i in np.random.default_rng(0).integers(0, VOCAB, size=40)]


def reference(module, ids=IDS) -> torch.Tensor:
    with torch.no_grad():
        return module(torch.tensor([ids])).logits[0]


def drift(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor) -> float:
    return float((a - b).abs().max() / scale.std())


@pytest.mark.parametrize("tensor_type", ["F32", "F16", "Q8_0", "Q4_0"])
def test_gguf_reads_back_as_written(module, tmp_path, tensor_type):
    import gguf

    facts = write_gguf(module, tmp_path / FILE, tensor_type)
    reader = gguf.GGUFReader(tmp_path / FILE)
    tensors = {t.name: t for t in reader.tensors}
    layer_names = (
        "attn_norm",
        "attn_q",
        "attn_k",
        "attn_v",
        "attn_output",
        "ffn_norm",
        "ffn_gate",
        "ffn_up",
        "ffn_down",
    )
    expected = {"token_embd.weight", "output_norm.weight", "output.weight"}
    expected |= {f"blk.{i}.{n}.weight" for i in range(2) for n in layer_names}
    assert set(tensors) == expected
    state = module.state_dict()
    for name, hf in (
        ("blk.1.attn_q.weight", "model.layers.1.self_attn.q_proj.weight"),
        ("output.weight", "lm_head.weight"),
    ):
        tensor = tensors[name]
        assert tensor.tensor_type.name == tensor_type
        assert list(reversed(tensor.shape.tolist())) == list(state[hf].shape)  # GGUF lists dimensions fastest first
    assert tensors["blk.0.ffn_norm.weight"].tensor_type.name == "F32"
    # The stored values are the quantizer's output for llama.cpp's permuted Q (halves interleaved into pairs).
    q = state["model.layers.0.self_attn.q_proj.weight"].numpy()
    heads = module.config.num_attention_heads
    permuted = q.reshape(heads, 2, -1, q.shape[1]).swapaxes(1, 2).reshape(q.shape)
    qtype = gguf.GGMLQuantizationType[tensor_type]
    stored = gguf.quants.dequantize(tensors["blk.0.attn_q.weight"].data, qtype).reshape(q.shape)
    want = gguf.quants.dequantize(gguf.quants.quantize(permuted, qtype), qtype).reshape(q.shape)
    assert np.array_equal(stored, want)
    assert not np.allclose(stored, q, atol=0.05)  # the permutation is not the identity
    tokens = reader.fields["tokenizer.ggml.tokens"]
    assert len(tokens.data) == VOCAB and facts["file_bytes"] == (tmp_path / FILE).stat().st_size
    assert "made" in facts["vocabulary"]
    bos = int(reader.fields["tokenizer.ggml.bos_token_id"].parts[-1][0])
    assert 256 < bos < VOCAB


def test_cached_gguf_is_reused_and_keyed_by_type(module, tmp_path):
    first = cached_gguf(module, "digest", tmp_path, "Q8_0")
    again = cached_gguf(module, "digest", tmp_path, "Q8_0")
    other = cached_gguf(module, "digest", tmp_path, "Q4_0")
    assert not first.hit and again.hit and again.path == first.path and other.path != first.path
    assert (first.path / FILE).stat().st_size > (other.path / FILE).stat().st_size


def engine_of(module, tmp_path, label: str, slots: int = 1):
    cached = llm_openvino.convert(module, f"tiny-{id(module)}", tmp_path / "openvino", label)
    return llm_openvino.load(cached.path, module.config).engine(slots, 64)


@pytest.mark.parametrize("llama3", [False, True], ids=["rope", "llama3-rope-tied"])
def test_fp32_logits_and_greedy_tokens_match_transformers(tmp_path, llama3):
    module = tiny_llama(llama3)
    engine = engine_of(module, tmp_path, "FP32", slots=2)
    want = reference(module)
    assert drift(engine.logits(IDS), want, want) < 1e-3
    prompt, steps = IDS[:12], 8
    with torch.no_grad():
        greedy = module.generate(torch.tensor([prompt]), max_new_tokens=steps, min_new_tokens=steps, do_sample=False)
    engine.prefill(1, IDS[20:30])  # another request in flight keeps its own cache
    tokens = [engine.prefill(0, prompt)]
    for _ in range(steps - 1):
        tokens += engine.decode([0, 1], [tokens[-1], 7])[:1]
    assert tokens == greedy[0, len(prompt) :].tolist()
    assert engine.cache_bytes == 2 * 2 * 2 * 2 * 16 * 64 * 4  # slots x K/V x layers x kv heads x head dim x len x FP32


@pytest.mark.parametrize("weights", ["Q8_0", "Q4_0"])
def test_quantized_weights_are_the_rounded_module(module, tmp_path, weights):
    fp32 = reference(module)
    with rounded(module, llm_openvino.RECIPES[f"{weights} weights, FP32 activations"]):
        scale = reference(module)
    exact = engine_of(module, tmp_path, f"{weights} weights, FP32 activations").logits(IDS)
    assert drift(scale, fp32, fp32) > 1e-2  # the rounding is visible
    assert drift(exact, scale, fp32) < 1e-4  # and is all the engine does to the weights
    # The INT8-activation recipe really quantizes activations: further from the rounded module, yet close.
    dynamic = engine_of(module, tmp_path, f"{weights} weights, INT8 activations").logits(IDS)
    assert 10 * drift(exact, scale, fp32) < drift(dynamic, scale, fp32) < 0.5


def test_recipes_name_what_the_plugin_runs(module, tmp_path):
    cached = llm_openvino.convert(module, "tiny-settings", tmp_path / "openvino", "Q4_0 weights, INT8 activations")
    settings = llm_openvino.load(cached.path, module.config).settings
    assert settings["DYNAMIC_QUANTIZATION_GROUP_SIZE"] == "32"
    assert "f32" in settings["INFERENCE_PRECISION_HINT"] and "f32" in settings["KV_CACHE_PRECISION"]
    assert settings["INFERENCE_NUM_THREADS"] == str(torch.get_num_threads())
    assert (cached.path / llm_openvino.IR).is_file() and cached.meta["Vocabulary"].startswith("made")


def test_the_openvino_engine_is_profiled_by_its_performance_counters(module, tmp_path):
    from core.run.llm import Point
    from core.run.llm_profile import profile_phases

    cached = llm_openvino.convert(module, "tiny-profile", tmp_path / "openvino", "FP32")
    loaded = llm_openvino.load(cached.path, module.config)
    phases = profile_phases(loaded, Point(1, 2, 12, 3), None, None, tmp_path / "profile", name="openvino")
    for phase, calls in (("Prefill", 3), ("Decode", 1)):  # decode: within the point's 2 steps, after a warm-up
        section = phases[phase]
        assert section["Engine"] == "openvino" and section["Calls"] == calls, section
        types = {row["Type"]: row for row in section["Types"]}
        assert types["MatMul/linear"]["Share"] > 0  # FullyConnected nodes, named in our vocabulary
        assert "FullyConnected" in types["MatMul/linear"]["Engine Ops"]
        assert section["Profiler"].startswith("OpenVINO performance counters")
    assert loaded.engine(1, 32).ran is None  # serving records nothing
