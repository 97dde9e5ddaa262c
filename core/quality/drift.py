"""Numeric drift between a reference run (CPU FP32) and a candidate backend, and arrays on disk.

The statistics follow ByteMLPerf's `draw_all_diff` (diff = reference - candidate; relative diff divides
by the reference, with 1 where the reference is exactly 0), with two changes: only valid positions are
compared (position < length for per-token outputs), and NaN/Inf are counted and left out instead of
being replaced by 0.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
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
    missing = sorted(set(reference) ^ set(candidate))
    if missing:
        raise ValueError(f"reference and candidate outputs differ in names: {missing}")
    token_names = set(per_token) if per_token is not None else None
    refs, cands, nonfinite = [], [], 0
    for name in reference:
        ref = np.asarray(reference[name])
        cand = np.asarray(candidate[name])
        if ref.shape[0] != cand.shape[0]:
            raise ValueError(f"output {name!r}: {ref.shape[0]} reference rows vs {cand.shape[0]} candidate rows")
        if _is_per_token(name, ref, cand, lengths, token_names):
            # Either side may have had its padding trimmed; valid positions lie in the common prefix.
            ref, cand = common_prefix(ref, cand)
            keep = token_mask(lengths, ref.shape)
            ref, cand = ref[keep], cand[keep]
        elif ref.shape != cand.shape:
            raise ValueError(f"output {name!r}: shape {ref.shape} vs {cand.shape}")
        ref = ref.astype(np.float64).ravel()
        cand = cand.astype(np.float64).ravel()
        finite = np.isfinite(ref) & np.isfinite(cand)
        nonfinite += int(finite.size - np.count_nonzero(finite))
        refs.append(ref[finite])
        cands.append(cand[finite])
    if not refs:
        return np.empty(0), np.empty(0), nonfinite
    return np.concatenate(refs), np.concatenate(cands), nonfinite


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


# A row is a near-tie when the reference's top two lie within TIE_MEDIANS x the median |reference - candidate|
# at that output. Two positions swap only when their gap is below the difference of their two errors, which
# for errors of spread s is N(0, 2 s^2): within 1.96 * sqrt(2) * s 95% of the time, and s is the median
# |error| / 0.6745 (a normal's). About 4.1 medians. The median, not a high percentile: a broken candidate's
# few large errors must not widen their own tolerance.
TIE_MEDIANS = 1.96 * 2**0.5 / 0.6745


def agreement_statistics(
    reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray], lengths: np.ndarray | None
) -> dict[str, Any]:
    """How closely a candidate follows the reference, in terms that do not depend on the logits' scale.

    "Normalized Drift": mean |reference - candidate| over valid positions divided by the reference's
    standard deviation there. "Top-1 Agreement": the share of rows whose argmax (over valid positions
    for per-token outputs, over classes otherwise) is the same, over every output.

    Flat logits (synthetic weights) put many rows' top two closer together than any precision's rounding:
    their argmax is noise. "Near Ties" counts rows whose reference top two lie within TIE_MEDIANS x the
    median difference actually observed at that output; "Decisive Agreement" is the
    agreement over the other rows ("Decisive Rows"), the ones the reference itself can tell apart.
    """
    ref, cand, nonfinite = _valid_pairs(reference, candidate, lengths, None)
    scale = float(ref.std()) if ref.size else 0.0
    drift = float(np.abs(ref - cand).mean()) / scale if ref.size and scale > 0 else (0.0 if ref.size else None)
    same = rows = ties = decisive = decisive_same = 0
    for name in reference:
        r, c = np.asarray(reference[name], dtype=np.float64), np.asarray(candidate[name], dtype=np.float64)
        if r.ndim < 2:
            continue
        c = np.where(np.isfinite(c), c, -np.inf)
        if _is_per_token(name, r, c, lengths, None):
            # A position per row and per trailing channel: stacked [N, L, 2] QA logits are a start and an
            # end position each, never one argmax over both.
            r, c = common_prefix(r, c)
            valid = token_mask(lengths, r.shape)
            tolerance = _tie_tolerance(r[valid], c[valid])
            r, c = np.where(valid, r, -np.inf), np.where(valid, c, -np.inf)
            r, c = r.reshape(len(r), r.shape[1], -1), c.reshape(len(c), c.shape[1], -1)
            picks_r, picks_c = r.argmax(1), c.argmax(1)
            gaps = _top_gap(np.moveaxis(r, 1, -1))
        else:
            tolerance = _tie_tolerance(r.ravel(), c.ravel())
            r, c = r.reshape(len(r), -1), c.reshape(len(c), -1)
            picks_r, picks_c = r.argmax(1), c.argmax(1)
            gaps = _top_gap(r)
        agree = picks_r == picks_c
        tied = gaps <= tolerance
        same += int(np.count_nonzero(agree))
        rows += picks_r.size
        ties += int(np.count_nonzero(tied))
        decisive += int(np.count_nonzero(~tied))
        decisive_same += int(np.count_nonzero(agree & ~tied))
    return {
        "Normalized Drift": drift,
        "Top-1 Agreement": same / rows if rows else None,
        "Near Ties": ties,
        "Decisive Rows": decisive,
        "Decisive Agreement": decisive_same / decisive if decisive else None,
        "Non-finite": nonfinite,
    }


def _tie_tolerance(ref: np.ndarray, cand: np.ndarray) -> float:
    """TIE_MEDIANS x the median |reference - candidate| at one output (finite pairs only)."""
    diff = np.abs(ref - cand)
    diff = diff[np.isfinite(diff)]
    return TIE_MEDIANS * float(np.median(diff)) if diff.size else 0.0


def _top_gap(values: np.ndarray) -> np.ndarray:
    """Per row (the last axis holds the choices), the reference's best minus its second best; inf with one choice."""
    finite = np.where(np.isfinite(values), values, -np.inf)
    if finite.shape[-1] < 2:
        return np.full(finite.shape[:-1], np.inf)
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
