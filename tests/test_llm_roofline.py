"""The LLM roofline: work per phase counted against hand counts (Llama, Mixtral), and the row's figures."""

from __future__ import annotations

import pytest

from core.model.llm_work import count
from core.reporting.llm_rows import Distribution, LlmRow, ServerSide
from core.run.llm_roofline import LlmRoof, cache_bytes, line

H, FF, HEADS, KV, V, LAYERS = 64, 96, 4, 2, 256, 2  # a tiny decoder
D = H // HEADS


def tiny(model_type: str, **extra):
    from transformers import AutoConfig

    return AutoConfig.for_model(
        model_type,
        hidden_size=H,
        intermediate_size=FF,
        num_attention_heads=HEADS,
        num_key_value_heads=KV,
        num_hidden_layers=LAYERS,
        vocab_size=V,
        max_position_embeddings=128,
        **extra,
    )


ATTENTION = H * H + 2 * H * KV * D + H * H  # q, k, v, o projections
MLP = 3 * H * FF  # gate, up, down
NORMS = 2 * H  # two RMS norms a layer


def test_llama_counts_match_a_hand_count():
    work = count(tiny("llama", tie_word_embeddings=False))
    assert work.dense == LAYERS * (ATTENTION + MLP)
    assert work.lm_head == V * H and work.embedding == V * H
    assert work.other == LAYERS * NORMS + H  # the final norm too
    assert work.experts == 0 and work.routed_share == 1.0
    n = 16
    attention = LAYERS * 2 * 2 * HEADS * D * n * (n + 1) / 2  # QK^T and AV over the causal pairs
    # The embedding is a lookup; the LM head runs for the last position only.
    assert work.prefill_flops(n) == 2 * LAYERS * (ATTENTION + MLP) * n + 2 * V * H + attention
    assert work.prefill_flops(n, logit_positions=n) - work.prefill_flops(n) == 2 * V * H * (n - 1)
    context, batch = 40, 3
    kv = batch * 2 * LAYERS * KV * D * context * 2
    weights = LAYERS * (ATTENTION + MLP + NORMS) + H + V * H
    assert work.decode_bytes(batch, context, 2, 2) == (weights + batch * H) * 2 + kv


def test_a_tied_lm_head_is_one_matrix_counted_once():
    work = count(tiny("llama", tie_word_embeddings=True))
    assert work.lm_head == V * H and work.embedding == 0
    untied = count(tiny("llama", tie_word_embeddings=False))
    assert untied.parameters - work.parameters == V * H


def test_mixtral_counts_only_the_routed_experts():
    experts, routed = 4, 2
    work = count(tiny("mixtral", num_local_experts=experts, num_experts_per_tok=routed, tie_word_embeddings=False))
    router = H * experts
    assert work.dense == LAYERS * (ATTENTION + router)
    assert work.experts == LAYERS * experts * MLP
    assert (work.experts_total, work.experts_routed) == (experts, routed)
    n = 8
    attention = LAYERS * 2 * 2 * HEADS * D * n * (n + 1) / 2
    per_token = LAYERS * (ATTENTION + router + routed * MLP)
    assert work.prefill_flops(n) == pytest.approx(2 * per_token * n + 2 * V * H + attention)
    # One token reads the experts it routes to; a batch reads the experts any of its tokens routes to.
    one = work.decode_bytes(1, 0, 1, 1) - (work.dense + work.lm_head + work.other + H)
    assert one == pytest.approx(LAYERS * routed * MLP)
    assert work.expert_share(4) == pytest.approx(1 - (1 - routed / experts) ** 4)
    assert work.expert_share(1) < work.expert_share(4) < 1.0


def row(**fields) -> LlmRow:
    base = dict(tp_size=1, batch_size=2, input_tokens=16, output_tokens=9)
    return LlmRow(**{**base, **fields})


def test_row_figures_are_work_over_time_against_the_peaks():
    work = count(tiny("llama", tie_word_embeddings=False))
    roof = LlmRoof(work, "BF16", compute_gflops=100.0, bandwidth_gbs=20.0)
    measured = row(prefill=Distribution(avg=2.0), server=ServerSide(decode_model_avg=16.0))
    out = roof.of(measured)
    gflop = work.prefill_flops(16) / 1e9
    assert out.prefill_gflops == pytest.approx(gflop / 2e-3, rel=1e-3)
    assert out.prefill_peak_share == pytest.approx(gflop / 2e-3 / 100.0, abs=1e-4)
    moved = work.decode_bytes(2, 16 + 9 / 2, 2, 2)
    assert out.decode_step_ms == 2.0  # 16 ms over 8 decode steps
    assert out.decode_gbs == pytest.approx(moved / 2e-3 / 1e9, rel=1e-3)
    assert out.decode_mbu == pytest.approx(out.decode_gbs / 20.0, abs=1e-4)
    assert out.decode_ceiling_tokens_per_s == pytest.approx(20e9 / moved * 2, rel=1e-3)
    assert "prefill" in line(out) and "MBU" in line(out)
    # Through the report and back.
    again = LlmRow.from_dict(measured.__class__(**{**measured.__dict__, "roofline": out}).to_dict())
    assert again.roofline.decode_mbu == out.decode_mbu
    assert again.number("Roofline.Prefill Peak Share") == out.prefill_peak_share


def test_an_engine_decoding_one_request_at_a_time_reads_the_weights_once_a_request():
    work = count(tiny("llama"))
    measured = row(batch_size=4, server=ServerSide(decode_model_avg=8.0))
    batched = LlmRoof(work, "FP32", 100.0, 20.0).of(measured)
    serial = LlmRoof(work, "FP32", 100.0, 20.0, batched=False).of(measured)
    assert serial.decode_mb_per_step == pytest.approx(4 * work.decode_bytes(1, 16 + 4.5, 4, 4) / 1e6, rel=1e-3)
    assert serial.decode_mb_per_step > batched.decode_mb_per_step
    assert serial.decode_ceiling_tokens_per_s < batched.decode_ceiling_tokens_per_s


def test_a_share_above_one_measures_the_peaks_again_once():
    work = count(tiny("llama"))
    measured = row(prefill=Distribution(avg=1.0), server=ServerSide(decode_model_avg=8.0))
    calls = []

    def remeasure():
        calls.append(1)
        return 1e6, 1e6

    roof = LlmRoof(work, "FP32", compute_gflops=1e-3, bandwidth_gbs=1e-3, remeasure=remeasure)
    out = roof.of(measured)
    assert calls == [1] and out.prefill_peak_share <= 1.0 and out.decode_mbu <= 1.0 and out.note is None
    stuck = LlmRoof(work, "FP32", 1e-3, 1e-3, remeasure=lambda: (1e-3, 1e-3))
    out = stuck.of(measured)
    assert out.prefill_peak_share > 1.0 and "above 1.0" in out.note and stuck.remeasure is None


def test_a_failed_row_or_missing_peaks_give_no_share():
    work = count(tiny("llama"))
    assert LlmRoof(work, "FP32", 100.0, 20.0).of(row(status="failed")) is None
    out = LlmRoof(work, "FP32", None, None).of(row(prefill=Distribution(avg=1.0)))
    assert out.prefill_gflops > 0 and out.prefill_peak_share is None and out.decode_mbu is None


def test_cache_sizes_as_sysfs_writes_them():
    assert cache_bytes("32768K") == 32 << 20
    assert cache_bytes("1M") == 1 << 20
    assert cache_bytes(None) is None and cache_bytes("big") is None
