"""The gate's scale model: the FP32 reference with an engine's weight rounding, applied and undone exactly."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from core.model.llm_rounding import WeightRounding, round_tensor, rounded  # noqa: E402
from tests.llm_fakes import tiny_llama  # noqa: E402

INT4 = WeightRounding("INT4", 5, block=32)
INT8 = WeightRounding("INT8", 9, block=32)
Q4_0 = WeightRounding("Q4_0", 4.5, 32, gguf_type="Q4_0", embeddings=True)
Q8_0 = WeightRounding("Q8_0", 8.5, 32, gguf_type="Q8_0", embeddings=True)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), rows=st.integers(1, 6), blocks=st.integers(1, 4), spread=st.floats(1e-3, 1e3))
def test_int_blocks_round_to_nearest_on_a_grid_of_their_own_scale(seed, rows, blocks, spread):
    weight = torch.randn(rows, 32 * blocks, generator=torch.Generator().manual_seed(seed)) * spread
    for rounding, levels in ((INT4, 16), (INT8, 256)):
        back = round_tensor(weight, rounding)
        for row in range(rows):
            for block in range(blocks):
                values = weight[row, 32 * block : 32 * (block + 1)]
                stored = back[row, 32 * block : 32 * (block + 1)]
                extreme = values[values.abs().argmax()]
                scale = (extreme / -(levels // 2)).abs()
                assert stored.unique().numel() <= levels
                error = (stored - values).abs()
                # Codes run -levels/2 .. levels/2 - 1 with the extreme at -levels/2: values of the other sign
                # beyond the top code clip (by at most one step); the rest round to nearest.
                inside = (values / scale).abs() <= levels // 2 - 0.5
                assert error[inside].amax() <= scale / 2 * (1 + 1e-5) + 1e-12
                assert error.max() <= scale * (1 + 1e-5) + 1e-12
                assert torch.isclose(stored[values.abs().argmax()], extreme, rtol=1e-5)  # the extreme is exact
        assert torch.equal(round_tensor(back, rounding), back)  # rounding what is stored changes nothing


def test_gguf_types_round_like_the_gguf_package_and_keep_their_block_structure():
    weight = torch.randn(4, 64, generator=torch.Generator().manual_seed(0))
    q8, q4 = round_tensor(weight, Q8_0), round_tensor(weight, Q4_0)
    assert 0 < (q8 - weight).abs().mean() < (q4 - weight).abs().mean() < 0.2 * weight.abs().mean()
    assert torch.equal(round_tensor(q8, Q8_0), q8)
    # Q4_0 and onnxruntime's symmetric INT4 blocks share one rule (the signed extreme maps to -8).
    assert torch.allclose(q4, round_tensor(weight, INT4), atol=1e-2 * weight.abs().max())


def _tiny_llama(tied: bool):
    return tiny_llama(vocab_size=96, tie_word_embeddings=tied)


@pytest.mark.parametrize("tied", [True, False])
def test_rounded_gives_the_stored_weights_and_restores_every_bit(tied):
    model = _tiny_llama(tied)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    ids = torch.arange(12).unsqueeze(0)
    with torch.no_grad():
        exact = model(ids).logits
        with rounded(model, INT4):
            int4 = model(ids).logits
            layer = model.model.layers[0].mlp.down_proj.weight
            assert torch.equal(layer, round_tensor(before["model.layers.0.mlp.down_proj.weight"], INT4))
            # onnxruntime-genai keeps the embedding table exact even where the head shares it
            assert torch.equal(model.model.embed_tokens.weight, before["model.embed_tokens.weight"])
        after = model(ids).logits
    assert not torch.equal(exact, int4) and torch.equal(exact, after)
    for name, param in model.named_parameters():
        assert torch.equal(param, before[name]), name


def test_a_tied_head_is_rounded_while_it_runs_when_the_table_stays_exact():
    model = _tiny_llama(tied=True)
    hidden = torch.randn(1, 3, 64)
    head = model.get_output_embeddings()
    with torch.no_grad():
        with rounded(model, INT4):
            inside = head(hidden)
        expected = hidden @ round_tensor(head.weight, INT4).T
    assert torch.allclose(inside, expected, atol=1e-5)


def test_gguf_formats_round_the_embedding_table_too():
    model = _tiny_llama(tied=False)
    table = model.model.embed_tokens.weight.detach().clone()
    with rounded(model, Q8_0):
        assert torch.equal(model.model.embed_tokens.weight, round_tensor(table, Q8_0))
    assert torch.equal(model.model.embed_tokens.weight, table)
