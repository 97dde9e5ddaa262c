"""Numeric drift between a reference run (CPU FP32) and a candidate backend, and arrays on disk.

The statistics follow ByteMLPerf's `draw_all_diff` (diff = reference - candidate; relative diff divides
by the reference, with 1 where the reference is exactly 0), with two changes: only valid positions are
compared (position < length for per-token outputs), and NaN/Inf are counted and left out instead of
being replaced by 0.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.common.atomic import atomic_writer

log = logging.getLogger(__name__)

_META_SUFFIX = ".json"


def _valid_pairs(
    reference: Mapping[str, np.ndarray],
    candidate: Mapping[str, np.ndarray],
    lengths: np.ndarray | None,
    per_token: Iterable[str] | None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Flattened (reference, candidate) values at valid positions, and the count of non-finite pairs."""
    token_names = set(per_token) if per_token is not None else None
    refs, cands, nonfinite = [], [], 0
    for name in _same_names(reference, candidate):
        ref, cand, valid, _ = _valid_output(name, reference[name], candidate[name], lengths, token_names)
        ref, cand = ref[valid], cand[valid]
        finite = np.isfinite(ref) & np.isfinite(cand)
        nonfinite += int(finite.size - np.count_nonzero(finite))
        refs.append(ref[finite])
        cands.append(cand[finite])
    if not refs:
        return np.empty(0), np.empty(0), nonfinite
    return np.concatenate(refs), np.concatenate(cands), nonfinite


def _same_names(reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray]) -> list[str]:
    missing = sorted(set(reference) ^ set(candidate))
    if missing:
        raise ValueError(f"reference and candidate outputs differ in names: {missing}")
    return list(reference)


def _valid_output(
    name: str, ref: np.ndarray, cand: np.ndarray, lengths: np.ndarray | None, token_names: set[str] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """One output's (reference, candidate) as float64 of one shape, the mask of its valid positions, and
    whether it is per-token (a sequence axis after the rows)."""
    ref = np.asarray(ref, dtype=np.float64)
    cand = np.asarray(cand, dtype=np.float64)
    if ref.shape[0] != cand.shape[0]:
        raise ValueError(f"output {name!r}: {ref.shape[0]} reference rows vs {cand.shape[0]} candidate rows")
    if _is_per_token(name, ref, cand, lengths, token_names):
        # Either side may have had its padding trimmed; valid positions lie in the common prefix.
        ref, cand = common_prefix(ref, cand)
        return ref, cand, token_mask(lengths, ref.shape), True
    if ref.shape != cand.shape:
        raise ValueError(f"output {name!r}: shape {ref.shape} vs {cand.shape}")
    return ref, cand, np.ones(ref.shape, dtype=bool), False


def common_prefix(ref: np.ndarray, cand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-token outputs cut to their common sequence length (either side may have had padding trimmed)."""
    width = min(ref.shape[1], cand.shape[1])
    return ref[:, :width], cand[:, :width]


def token_mask(lengths: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """True at the valid positions (position < length) of a per-token output of `shape` [N, L, ...]:
    the one mask every per-token statistic uses, whatever the output's trailing axes."""
    keep = np.arange(shape[1])[None, :] < np.asarray(lengths)[:, None]
    return np.broadcast_to(keep.reshape(keep.shape + (1,) * (len(shape) - 2)), shape)


def _is_per_token(name, ref, cand, lengths, token_names) -> bool:
    if lengths is None or ref.ndim < 2:
        return False
    if token_names is not None:
        return name in token_names
    # A per-token output has a sequence axis long enough for every feature; [N, classes] does not.
    return min(ref.shape[1], cand.shape[1]) >= int(np.max(lengths, initial=0)) > 1


def compare_outputs(
    reference: Mapping[str, np.ndarray],
    candidate: Mapping[str, np.ndarray],
    lengths: np.ndarray | None,
    *,
    per_token: Iterable[str] | None = None,
    histogram: Path | None = None,
) -> dict[str, Any]:
    """ByteMLPerf's drift keys over valid positions, plus "Compared Values" and "Non-finite".

    per_token names the outputs with a sequence axis (default: those whose second axis covers every
    length). With `histogram`, the diff distribution is drawn there and "Diff Dist" holds its path.
    """
    ref, cand, nonfinite = _valid_pairs(reference, candidate, lengths, per_token)
    result: dict[str, Any] = {"Compared Values": int(ref.size), "Non-finite": nonfinite}
    if ref.size == 0:
        result.update(dict.fromkeys(("Mean Diff", "Std Diff", "Max Diff", "Max Rel-Diff", "Mean Rel-Diff")))
        return result
    diff = ref - cand
    abs_diff = np.abs(diff)
    rel = np.abs(diff / np.where(ref == 0, 1.0, ref))
    result.update(
        {
            "Mean Diff": float(abs_diff.mean()),
            "Std Diff": float(abs_diff.std()),
            "Max Diff": float(abs_diff.max()),
            "Max Rel-Diff": float(rel.max()),
            "Mean Rel-Diff": float(rel.mean()),
        }
    )
    if histogram is not None:
        result["Diff Dist"] = str(save_diff_histogram(diff, histogram))
    return result


# The drift rounding alone gives: bf16 candidates measured 0.01-0.03 on ALBERT and DeBERTa; broken candidates
# drift 0.2 and more. Errors of that mean |error| (normal errors: a spread of SOUND_DRIFT x sqrt(pi / 2)) swap two
# positions whose gap is within 1.96 x sqrt(2) of that spread 95% of the time: TIE_SPREAD (~0.174) of the
# reference's standard deviation. Fixed by the reference alone, so a candidate's error never widens it.
SOUND_DRIFT = 0.05
TIE_SPREAD = 1.96 * 2**0.5 * SOUND_DRIFT * (np.pi / 2) ** 0.5


@dataclass
class OutputAgreement:
    """How closely one output of a candidate follows the reference's (see agreement_statistics)."""

    name: str
    values: int  # valid values compared (both sides finite)
    nonfinite: int
    drift: float | None  # mean |reference - candidate| over the valid values / the reference's std there
    worst_row_drift: float | None  # the same over one row's valid values, for the worst row
    picks: int = 0  # rows x trailing channels: a start and an end pick per QA row
    agree: int = 0  # picks equal to the reference's
    near_ties: int = 0  # picks whose reference top two lie within the tie tolerance
    decisive: int = 0
    decisive_agree: int = 0
    far_picks: int = 0  # picks the reference scores more than the tie tolerance below its best

    @property
    def decisive_agreement(self) -> float | None:
        return self.decisive_agree / self.decisive if self.decisive else None


def agreement_statistics(
    reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray], lengths: np.ndarray | None
) -> list[OutputAgreement]:
    """How closely a candidate follows the reference, output by output, in terms free of the logits' scale.

    Drift is the mean |reference - candidate| over valid positions divided by the reference's standard
    deviation there. Picks are the argmax over valid positions per row and trailing channel (per-token
    outputs: stacked [N, L, 2] QA logits are a start and an end pick each) or over classes. Flat logits
    (synthetic weights) put many rows' top two closer together than any precision's rounding: a pick is a
    near-tie when the reference's top two lie within TIE_SPREAD x the reference's std, decisive otherwise.
    A far pick is one the reference scores more than that below its best: on a decisive row, every
    disagreement. Both are fixed by the reference, so scaling a candidate's error up never removes one.
    """
    return [
        _output_agreement(name, *_valid_output(name, reference[name], candidate[name], lengths, None))
        for name in _same_names(reference, candidate)
    ]


def _output_agreement(
    name: str, ref: np.ndarray, cand: np.ndarray, valid: np.ndarray, per_token: bool
) -> OutputAgreement:
    finite = np.isfinite(ref) & np.isfinite(cand)
    used = valid & finite
    count = int(np.count_nonzero(used))
    nonfinite = int(np.count_nonzero(valid & ~finite))
    if not count:
        return OutputAgreement(name, 0, nonfinite, None, None)
    scale = float(ref[used].std())
    error = np.abs(np.where(used, ref, 0.0) - np.where(used, cand, 0.0))
    rows = len(ref)
    row_values = np.count_nonzero(used.reshape(rows, -1), axis=1)
    row_error = error.reshape(rows, -1).sum(axis=1) / np.maximum(row_values, 1)
    stats = OutputAgreement(
        name, count, nonfinite, _normalized(error.sum() / count, scale), _normalized(row_error.max(), scale)
    )
    # [rows, channels, choices]: a per-token output picks a position per trailing channel, another a class.
    if per_token:
        r = np.moveaxis(np.where(valid & np.isfinite(ref), ref, -np.inf).reshape(rows, ref.shape[1], -1), 1, -1)
        c = np.moveaxis(np.where(valid & np.isfinite(cand), cand, -np.inf).reshape(rows, ref.shape[1], -1), 1, -1)
    elif ref.ndim >= 2:
        r = np.where(np.isfinite(ref), ref, -np.inf).reshape(rows, 1, -1)
        c = np.where(np.isfinite(cand), cand, -np.inf).reshape(rows, 1, -1)
    else:
        return stats
    if r.shape[-1] < 2:  # one choice: nothing to pick
        return stats
    picks_r, picks_c = r.argmax(-1), c.argmax(-1)
    best = np.take_along_axis(r, picks_r[..., None], -1)[..., 0]
    at_pick = np.take_along_axis(r, picks_c[..., None], -1)[..., 0]
    tolerance = TIE_SPREAD * scale
    agree = picks_r == picks_c
    tied = _top_gap(r) <= tolerance
    stats.picks = int(agree.size)
    stats.agree = int(np.count_nonzero(agree))
    stats.near_ties = int(np.count_nonzero(tied))
    stats.decisive = stats.picks - stats.near_ties
    stats.decisive_agree = int(np.count_nonzero(agree & ~tied))
    stats.far_picks = int(np.count_nonzero(~(at_pick >= best - tolerance)))
    return stats


def _normalized(error: float, scale: float) -> float:
    """A mean |error| in units of the reference's std; a constant reference allows no error at all."""
    if scale > 0:
        return float(error) / scale
    return 0.0 if error == 0 else float("inf")


def _top_gap(values: np.ndarray) -> np.ndarray:
    """Per row (the last axis holds two or more choices), the best minus the second best; inf with one valid."""
    finite = np.where(np.isfinite(values), values, -np.inf)
    top2 = -np.partition(-finite, 1, axis=-1)[..., :2]
    gap = top2[..., 0] - top2[..., 1]
    return np.where(np.isfinite(gap), gap, np.inf)


def save_diff_histogram(diffs: np.ndarray, path: Path) -> Path:
    """Draw the distribution of (reference - candidate) as a PNG with a log count axis."""
    # A bare Figure renders with Agg by itself: no pyplot, no global backend switch.
    from matplotlib.figure import Figure

    values = np.asarray(diffs, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    if values.size:
        ax.hist(values, bins=min(300, max(10, values.size // 10)), log=True, color="tab:blue", alpha=0.8)
    ax.set_xlabel("reference - candidate")
    ax.set_ylabel("count (log)")
    ax.set_title(f"Output difference distribution ({values.size} values)")
    fig.tight_layout()
    with atomic_writer(path) as handle:  # a full disk must not leave a zero-byte PNG behind
        fig.savefig(handle, dpi=120, format="png")
    return path
