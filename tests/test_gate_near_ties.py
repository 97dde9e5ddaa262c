"""The synthetic-weights gate does not judge top-1 agreement on rows the reference itself cannot decide
(near-ties), and still fails what is broken: permuted positions, a zeroed channel, noise at the logits'
scale, a stale batch, top picks moved far off."""

from __future__ import annotations

import numpy as np
import pytest

from core.quality.drift import agreement_statistics
from core.quality.gate import MIN_DECISIVE_ROWS, Gate
from datasets.base import Features
from tests.gate_helpers import flat_qa_logits, rounded_like

ROWS, SEQ = 48, 384


def gate(reference: np.ndarray, lengths: np.ndarray) -> Gate:
    features = Features(inputs={"input_ids": np.zeros((ROWS, SEQ), np.int64)}, lengths=lengths)
    return Gate(features, {"logits": reference}, "cpu fp32")


@pytest.mark.parametrize("precision", ["FP16", "BF16", "INT8"])
def test_rounding_on_flat_logits_passes_though_many_argmaxes_move(precision):
    reference, lengths = flat_qa_logits()
    candidate = rounded_like(reference, precision)
    verdict = gate(reference, lengths).judge({"logits": candidate})
    assert verdict.passed, verdict.why
    assert verdict.near_ties > 0 and verdict.decisive_agreement >= 0.95
    assert verdict.top1_agreement < 0.80 and verdict.normalized_drift < 0.05  # plain agreement fails them on ties


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


def test_top_swaps_fail_as_picks_far_from_the_best_and_say_so():
    """A third of the rows answer with a far-off position. Few values move, and on flat logits few rows are
    decisive; but a far-off pick is far from the reference's best whether its row is a near-tie or not."""
    reference, lengths = flat_qa_logits()
    verdict = gate(reference, lengths).judge({"logits": top_swapped(reference, lengths)})
    assert verdict.decisive_rows < MIN_DECISIVE_ROWS and verdict.normalized_drift < 0.05
    assert verdict.why == "32 of 96 picks far from the reference's best (> 20%)"


def test_too_few_decisive_rows_are_inconclusive_and_say_so():
    # Class logits whose top two are always within the tie tolerance: every row a near-tie.
    rng = np.random.default_rng(4)
    base = rng.normal(0, 1, (ROWS, 1))
    reference = np.concatenate([base, base + 1e-4, base - 3], axis=1)
    candidate = reference + rng.normal(0, 1e-3, reference.shape)
    features = Features(inputs={"x": np.zeros((ROWS, 4), np.int64)}, lengths=np.full(ROWS, 4))
    verdict = Gate(features, {"logits": reference}, "ref").judge({"logits": candidate})
    assert verdict.near_ties == ROWS and verdict.decisive_rows == 0
    assert verdict.passed and verdict.rule == "inconclusive"
    assert verdict.note == f"inconclusive (0 decisive rows, {ROWS} near-ties): drift alone"


def test_near_ties_are_counted_per_output_channel():
    reference, lengths = flat_qa_logits()
    (stats,) = agreement_statistics({"logits": reference}, {"logits": rounded_like(reference, "BF16")}, lengths)
    assert stats.near_ties + stats.decisive == stats.picks == ROWS * 2  # a start and an end pick per row
