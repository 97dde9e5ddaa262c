"""The synthetic-weights gate leaves out rows the reference itself cannot decide (near-ties), and still fails
what is broken: permuted positions, a zeroed channel, noise at the logits' scale, a stale batch."""

from __future__ import annotations

import numpy as np
import pytest

from core.quality.drift import agreement_statistics
from core.quality.gate import MIN_DECISIVE_ROWS, Gate
from datasets.base import Features

ROWS, SEQ = 48, 384


def flat_qa_logits(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """[48, 384, 2] start/end logits as seeded random weights give them: every position scores by its token
    alone (30 tokens a row), so a row's best token recurs and its top two are closer than any rounding.
    Every other row has one position standing out by a clear margin: a decision the reference can make."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(120, 260, ROWS)
    token_scores = rng.normal(0.0, 1.0, (ROWS, 30, 2))
    tokens = rng.integers(0, 30, (ROWS, SEQ))
    logits = np.take_along_axis(token_scores, tokens[..., None], axis=1) + rng.normal(0, 1e-4, (ROWS, SEQ, 2))
    for row in range(0, ROWS, 2):
        logits[row, rng.integers(0, lengths[row]), :] += 1.0
    return logits, lengths


def gate(reference: np.ndarray, lengths: np.ndarray) -> Gate:
    features = Features(inputs={"input_ids": np.zeros((ROWS, SEQ), np.int64)}, lengths=lengths)
    return Gate(features, {"logits": reference}, "cpu fp32")


def rounded_like(reference: np.ndarray, precision: str, seed: int = 1) -> np.ndarray:
    """The reference as a lower precision computes it: the rounding of its format (FP16, BF16), or INT8's
    quantization noise (about 2.5% of the spread, the drift int8 candidates show on ALBERT)."""
    import torch

    if precision == "FP16":
        return reference.astype(np.float16).astype(np.float64)
    if precision == "BF16":  # bf16's 8-bit mantissa, and the error a bf16 matmul chain adds (~1% of the spread)
        noisy = reference + np.random.default_rng(seed).normal(0, 0.01 * reference.std(), reference.shape)
        return torch.from_numpy(noisy).to(torch.bfloat16).double().numpy()
    return reference + np.random.default_rng(seed).normal(0, 0.025 * reference.std(), reference.shape)


@pytest.mark.parametrize("precision", ["FP16", "BF16", "INT8"])
def test_rounding_on_flat_logits_passes_though_many_argmaxes_move(precision):
    reference, lengths = flat_qa_logits()
    candidate = rounded_like(reference, precision)
    verdict = gate(reference, lengths).judge({"logits": candidate})
    assert verdict.passed, verdict.why
    assert verdict.near_ties > 0 and verdict.decisive_agreement >= 0.95
    assert verdict.top1_agreement < 0.80 and verdict.normalized_drift < 0.05  # the old rule failed them on ties


def permuted(reference: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(2)
    candidate = reference.copy()
    for row, length in enumerate(lengths):
        candidate[row, :length] = reference[row, rng.permutation(length)]
    return candidate


def zeroed_channel(reference: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    candidate = reference.copy()
    candidate[..., 1] = 0.0  # the end logits lost
    return candidate


def noisy(reference: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    return reference + np.random.default_rng(3).normal(0, reference.std(), reference.shape)


def stale(reference: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    return np.roll(reference, 8, axis=0)  # the outputs of the batch before


def top_swapped(reference: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """A third of the rows answer with a far-off position: few values move, so only agreement can see it."""
    candidate = reference.copy()
    for row in range(0, ROWS, 3):
        for channel in range(2):
            valid = candidate[row, : lengths[row], channel]
            best, worst = int(valid.argmax()), int(valid.argmin())
            valid[[best, worst]] = valid[[worst, best]]
    return candidate


@pytest.mark.parametrize("broken", [permuted, zeroed_channel, noisy, stale, top_swapped])
def test_what_is_broken_still_fails(broken):
    reference, lengths = flat_qa_logits()
    verdict = gate(reference, lengths).judge({"logits": broken(reference, lengths)})
    assert not verdict.passed and verdict.why


def test_top_swaps_fail_by_decisive_agreement_and_say_so():
    reference, lengths = flat_qa_logits()
    verdict = gate(reference, lengths).judge({"logits": top_swapped(reference, lengths)})
    assert verdict.decisive_rows >= MIN_DECISIVE_ROWS and verdict.decisive_agreement < 0.80
    assert "decisive rows" in verdict.why and "near-ties left out" in verdict.why


def test_too_few_decisive_rows_fall_back_to_the_drift_rule_and_say_so():
    # Class logits whose top two are always within the candidate's typical error: every row a near-tie.
    rng = np.random.default_rng(4)
    base = rng.normal(0, 1, (ROWS, 1))
    reference = np.concatenate([base, base + 1e-4, base - 3], axis=1)
    candidate = reference + rng.normal(0, 1e-3, reference.shape)
    features = Features(inputs={"x": np.zeros((ROWS, 4), np.int64)}, lengths=np.full(ROWS, 4))
    verdict = Gate(features, {"logits": reference}, "ref").judge({"logits": candidate})
    assert verdict.near_ties == ROWS and verdict.decisive_rows == 0
    assert verdict.passed and "agreement not judged, drift alone" in verdict.note


def test_near_ties_are_counted_per_output_channel():
    reference, lengths = flat_qa_logits()
    stats = agreement_statistics({"logits": reference}, {"logits": rounded_like(reference, "BF16")}, lengths)
    assert stats["Near Ties"] + stats["Decisive Rows"] == ROWS * 2  # a start and an end pick per row
