"""Several runs of one configuration as one side of a comparison: `compare A1,A2,A3 B1,B2,B3`.

One run cannot see how far a shared machine's speed moves between runs: benchmarks/fidelity.py found
identical runs up to 1.45x apart on a 2-core VM, so a within-run test must assume the worst and misses real
changes of that size. Several runs measure that noise instead: a pooled side's number per batch size is the
mean over the runs that measured it, its QPS interval is Student's t over the runs' QPS, and compare tests a
change on the runs' values (significance.runs_test) rather than on one run's blocks of calls. An LLM side
is pooled the same way per load point: every figure the runs' mean, the token throughput's interval over them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from core.common.errors import UserError
from core.common.statistics import mean_interval
from core.reporting.comparison import IDENTITY_FIELDS, same_value
from core.reporting.llm_rows import Distribution, LlmRow
from core.reporting.report import RunReport
from core.reporting.schema import PERF_KEYS, ROW_KEYS, PerfRow, as_number
from core.reporting.sections import Section

# Row fields a pooled row takes as the runs' mean; the others are set below or kept from the first run.
_SET_APART = ("iterations", "warmup_iterations", "qps_low", "qps_high", "p90_upper", "p99_upper")
_MEAN_KEYS = tuple(key for key in PERF_KEYS if key not in {ROW_KEYS[k] for k in _SET_APART})
_FIELD = {key: name for name, key in ROW_KEYS.items()}


def pool_runs(reports: Sequence[RunReport], label: str) -> RunReport:
    """One report standing for `reports`, runs of one configuration (else a UserError naming `label`)."""
    if len(reports) == 1:
        return reports[0]
    if len({r.is_llm for r in reports}) > 1:
        raise UserError(
            "the runs of one side mix LLM and other reports",
            field=label,
            fix="a comma joins runs of one configuration; compare different ones as separate arguments",
        )
    first = reports[0]
    for key, name in (*IDENTITY_FIELDS, ("engine", "engine"), ("backend", "backend")):
        values = [getattr(r, key) for r in reports]
        if any(not same_value(v, values[0]) for v in values[1:]):
            raise UserError(
                f"the runs of one side differ in {name} ({', '.join(str(v) for v in values)})",
                field=label,
                fix="a comma joins runs of one configuration; compare different ones as separate arguments",
            )
    notes = [f"the mean of {len(reports)} runs: {', '.join(r.run_id or '?' for r in reports)}"]
    if first.is_llm:
        rows = _pooled_llm_rows(reports, notes)
        return replace(
            first, llm_rows=rows, llm_samples={}, repeats=tuple(reports), read_notes=[*first.read_notes, *notes]
        )
    rows = []
    for bs in sorted({bs for r in reports for bs in r.perf_by_bs}):
        measured = [r.perf_by_bs[bs] for r in reports if bs in r.perf_by_bs and r.perf_by_bs[bs].ok]
        if len(measured) < len(reports):
            notes.append(f"batch size {bs}: {len(measured)} of {len(reports)} runs measured it")
        failed = next(r.perf_by_bs[bs] for r in reports if bs in r.perf_by_bs)
        rows.append(_pooled_row(measured) if measured else failed)
    return replace(first, performance=rows, samples={}, repeats=tuple(reports), read_notes=[*first.read_notes, *notes])


def _pooled_row(rows: Sequence[PerfRow]) -> PerfRow:
    """The runs' mean of every number; the fewest calls any run had (a tail percentile is backed only if
    every run's is); the QPS interval over the runs. A per-run upper bound does not pool: left out."""
    means = {}
    for key in _MEAN_KEYS:
        values = [v for v in (row.number(key) for row in rows) if v is not None]
        means[_FIELD[key]] = math.fsum(values) / len(values) if len(values) == len(rows) else None
    counts = [row.number(ROW_KEYS["iterations"]) for row in rows]
    qps = [row.number(ROW_KEYS["qps"]) for row in rows]
    low, high = (None, None)
    if len(rows) == 1:
        low, high = rows[0].qps_interval() or (None, None)
    elif None not in qps:
        low, high = mean_interval(qps)
    return replace(
        rows[0],
        **means,
        iterations=None if None in counts else int(min(counts)),
        qps_low=low,
        qps_high=high,
        p90_upper=None,
        p99_upper=None,
    )


def _pooled_llm_rows(reports: Sequence[RunReport], notes: list[str]) -> list[LlmRow]:
    """Per load point, the runs' mean (or the first failed row where none measured it)."""
    rows = []
    for point in sorted({row.point for r in reports for row in r.llm_rows}):
        found = [row for r in reports for row in r.llm_rows if row.point == point]
        measured = [row for row in found if row.ok]
        if len(measured) < len(reports):
            notes.append(f"load point {found[0].label}: {len(measured)} of {len(reports)} runs measured it")
        rows.append(_pooled_llm_row(measured) if measured else found[0])
    return rows


def _mean(values: Sequence[float | None]) -> float | None:
    return None if not values or None in values else math.fsum(values) / len(values)


def _pooled_section(sections: Sequence[Section | None]) -> Section | None:
    """A nested block (client, server, a distribution) as the runs' mean of each number; a distribution's
    count is the fewest any run had (a tail is backed only if every run's is), its per-run bounds left out."""
    if not sections or None in sections:
        return None
    kind = type(sections[0])
    means = {name: _mean([as_number(getattr(s, name)) for s in sections]) for name in kind.KEYS}
    if kind is Distribution:
        counts = [as_number(s.count) for s in sections]
        means.update(count=None if None in counts else int(min(counts)), p90_upper=None, p99_upper=None)
        means.update(tail_backing=None)
    return kind(**means)


def _pooled_llm_row(rows: Sequence[LlmRow]) -> LlmRow:
    """The runs' mean of every number; the token throughput's interval over the runs (Student's t)."""
    first = rows[0]
    values = {}
    for name in LlmRow.KEYS:
        if name in LlmRow.NESTED:
            values[name] = _pooled_section([getattr(row, name) for row in rows])
        elif isinstance(getattr(first, name), (int, float)) and name not in _LLM_POINT:
            values[name] = _mean([as_number(getattr(row, name)) for row in rows])
    throughput = [row.token_throughput for row in rows]
    low, high = first.token_throughput_interval() or (None, None)
    if len(rows) > 1 and None not in throughput:
        low, high = mean_interval(throughput)
    counts = [row.request_number for row in rows]
    values.update(
        request_number=None if None in counts else min(counts), token_throughput_low=low, token_throughput_high=high
    )
    return replace(first, **values)


_LLM_POINT = ("tp_size", "batch_size", "input_tokens", "output_tokens")
