"""Candidates that cannot win: an engine whose compile alone is expected to take longer than the most any
candidate could save over the rest of the run is not compiled.

The expected compile is the cheapest compile of the same engine and kind of precision earlier in this run that
missed the artifact cache (INT8 apart: its calibration runs the model, a float compile does not). Earlier runs
on this host are not used: a compile they recorded has usually left its artifact in the cache, so it would
predict a full compile where only a load follows.
"""

from __future__ import annotations

from backends.base import Candidate
from core.reporting.sections import CandidateRow


def _calibrated(precision: str | None) -> bool:
    return precision == "INT8"


def expected_compile(candidate: Candidate, rows: list[CandidateRow]) -> tuple[float, str] | None:
    """Seconds compiling `candidate` is expected to take, and where that comes from; None: nothing to go by."""
    same = [
        row.compile_seconds
        for row in rows
        if row.engine == candidate.engine
        and _calibrated(row.precision) == _calibrated(candidate.precision)
        and row.cache == "miss"
        and row.compile_seconds is not None
    ]
    if not same:
        return None
    kind = "INT8" if _calibrated(candidate.precision) else "float"
    return min(same), f"{candidate.engine}'s cheapest {kind} compile in this run"


def expected_costs(remaining: list[Candidate], tried: list[tuple[Candidate, float, float | None]]) -> list[float]:
    """Seconds each of `remaining` is expected to take, from `tried` (candidate, seconds it took, its compile
    seconds): the mean of those of its kind (INT8 or float) where one was tried; else what tried candidates
    spent beyond compiling (timing and the gate) plus the cheapest compile of its kind seen, none when none
    was: an INT8 calibration says nothing of a float compile, which is seconds where calibration is minutes."""
    if not tried:
        return [0.0 for _ in remaining]
    beyond = sum(spent - (compiled or 0.0) for _, spent, compiled in tried) / len(tried)
    out = []
    for candidate in remaining:
        kind = _calibrated(candidate.precision)
        same = [spent for c, spent, _ in tried if _calibrated(c.precision) == kind]
        out.append(sum(same) / len(same) if same else max(0.0, beyond))
    return out


def cannot_win(candidate: Candidate, rows: list[CandidateRow], could_save: float) -> str | None:
    """Why `candidate` is not worth compiling, or None: its compile alone outlasts `could_save`, the seconds an
    instantly fast candidate would save over the rest of the run."""
    expected = expected_compile(candidate, rows)
    if expected is None or expected[0] <= could_save:
        return None
    seconds, source = expected
    return (
        f"cannot win: compiling it is expected to take ~{_seconds(seconds)} ({source}), more than the "
        f"~{_seconds(could_save)} even an instant candidate would save over the measured window"
    )


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value >= 10 else f"{value:.1f} s"
