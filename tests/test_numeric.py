"""Numeric drift: ByteMLPerf's statistics over valid positions only, NaN handling, histogram, storage."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.common.arrays import load_arrays, load_or_build, save_arrays
from core.quality.drift import agreement_statistics, compare_outputs, token_mask

REF = np.array([[1.0, 2.0, 999.0], [4.0, 0.0, -2.0]], dtype=np.float32)
CAND = np.array([[1.5, 2.0, -5.0], [3.0, 0.5, -2.0]], dtype=np.float32)
LENGTHS = np.array([2, 3])


def test_hand_computed_over_valid_positions():
    result = compare_outputs({"start": REF}, {"start": CAND}, LENGTHS)
    # valid pairs: (1, 1.5) (2, 2) | (4, 3) (0, 0.5) (-2, -2); |diff| = .5 0 1 .5 0
    assert result["Compared Values"] == 5 and result["Non-finite"] == 0
    assert result["Mean Diff"] == pytest.approx(0.4)
    assert result["Std Diff"] == pytest.approx(math.sqrt(0.14))
    assert result["Max Diff"] == pytest.approx(1.0)
    # relative: .5/1, 0/2, 1/4, .5/1 (reference 0 divides by 1), 0/2
    assert result["Max Rel-Diff"] == pytest.approx(0.5)
    assert result["Mean Rel-Diff"] == pytest.approx(0.25)


def test_classification_outputs_are_not_masked_and_trimmed_outputs_align():
    logits_ref = np.array([[1.0, -1.0, 0.0], [2.0, 2.0, 2.0]])
    logits_cand = logits_ref + np.array([[0.0, 0.0, 3.0], [0.0, 0.0, 0.0]])
    lengths = np.array([20, 30])  # sequence lengths do not apply to [N, classes]
    result = compare_outputs({"logits": logits_ref}, {"logits": logits_cand}, lengths)
    assert result["Compared Values"] == 6 and result["Max Diff"] == 3.0
    # the candidate's padding was trimmed to the longest feature: same valid values compared
    trimmed = compare_outputs({"start": REF}, {"start": CAND[:, :3]}, LENGTHS, per_token=["start"])
    assert trimmed["Mean Diff"] == pytest.approx(0.4)


def test_non_finite_counted_and_excluded():
    cand = CAND.copy()
    cand[0, 0] = np.nan  # valid position: counted, left out
    cand[0, 2] = np.inf  # padding: ignored entirely
    result = compare_outputs({"start": REF}, {"start": cand}, LENGTHS)
    assert result["Non-finite"] == 1 and result["Compared Values"] == 4
    assert result["Mean Diff"] == pytest.approx(1.5 / 4)
    nothing = compare_outputs({"x": np.array([[np.nan]])}, {"x": np.array([[1.0]])}, None)
    assert nothing["Compared Values"] == 0 and nothing["Mean Diff"] is None


def test_histogram_written(tmp_path):
    result = compare_outputs({"start": REF}, {"start": CAND}, LENGTHS, histogram=tmp_path / "d" / "diff.png")
    png = tmp_path / "d" / "diff.png"
    assert result["Diff Dist"] == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_reference_round_trip_without_pickle(tmp_path):
    outputs = {"start_logits": REF, "out.1/x": CAND}
    built, hit = load_or_build(tmp_path / "ref.npz", lambda: outputs, {"model": "m", "precision": "fp32"})
    assert not hit and list(built) == list(outputs)
    loaded, hit = load_or_build(tmp_path / "ref.npz", lambda: pytest.fail("a cache hit must not rebuild"), {})
    assert hit and list(loaded) == list(outputs)
    assert load_arrays(tmp_path / "ref.npz")[1]["model"] == "m"
    np.testing.assert_array_equal(loaded["out.1/x"], CAND)
    with pytest.raises(ValueError, match="pickle"):
        save_arrays(tmp_path / "obj.npz", {"o": np.array([{"a": 1}], dtype=object)}, {})
    save_arrays(tmp_path / "plain.npz", {"a": np.arange(3)}, {"k": 1})
    arrays, meta = load_arrays(tmp_path / "plain.npz")
    assert meta == {"k": 1} and arrays["a"].tolist() == [0, 1, 2]


def stacked_logits(lengths, width=8, seed=0):
    """[N, L, 2] start/end logits whose padding holds the largest values: a mask that misses them picks them."""
    ref = np.random.default_rng(seed).normal(size=(len(lengths), width, 2))
    for row, length in enumerate(lengths):
        ref[row, length:] = 100.0
    return ref


def test_stacked_start_end_logits_are_masked_and_judged_per_channel():
    lengths = np.array([5, 8, 3])
    ref = stacked_logits(lengths)
    cand = ref.copy()
    end = int(ref[0, :5, 1].argmax())  # row 0's end position moves to another valid position
    cand[0, (end + 1) % 5, 1] = ref[0, end, 1] + 1.0
    (stats,) = agreement_statistics({"logits": ref}, {"logits": cand}, lengths)
    # Six picks (3 rows x start, end); one differs. A flattened argmax would count rows, not picks.
    assert (stats.picks, stats.agree) == (6, 5)
    valid = np.concatenate([ref[row, :n].ravel() for row, n in enumerate(lengths)])
    expected_drift = np.abs(ref - cand).sum() / valid.size / valid.std()  # padding (100s) never counts
    assert stats.drift == pytest.approx(expected_drift)


def test_stacked_logits_identical_agree_fully():
    lengths = np.array([2, 8])
    ref = stacked_logits(lengths, seed=1)
    (stats,) = agreement_statistics({"logits": ref}, {"logits": ref.copy()}, lengths)
    assert (stats.values, stats.nonfinite, stats.drift, stats.worst_row_drift) == (20, 0, 0.0, 0.0)  # 2x(2+8)
    assert (stats.picks, stats.agree, stats.far_picks) == (4, 4, 0)
    assert stats.near_ties + stats.decisive == 4 and stats.decisive_agree == stats.decisive


def test_token_mask_covers_trailing_axes():
    mask = token_mask(np.array([1, 3]), (2, 4, 2))
    assert mask.shape == (2, 4, 2)
    assert mask[:, :, 0].tolist() == [[True, False, False, False], [True, True, True, False]]
    assert (mask[..., 0] == mask[..., 1]).all()
