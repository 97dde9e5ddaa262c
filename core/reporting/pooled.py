"""Several runs of one configuration as one side of a comparison: `compare A1,A2,A3 B1,B2,B3`.

One run cannot see how far a shared machine's speed moves between runs: benchmarks/fidelity.py found
identical runs up to 1.45x apart on a 2-core VM, so a within-run test must assume the worst and misses real
changes of that size. Several runs measure that noise instead: a pooled side's number per batch size is the
mean over the runs that measured it, its QPS interval is Student's t over the runs' QPS, and compare tests a
change on the runs' values (significance.runs_test) rather than on one run's blocks of calls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from core.common.errors import UserError
from core.common.statistics import mean_interval
from core.reporting.comparison import IDENTITY_FIELDS, same_value
from core.reporting.report import RunReport
from core.reporting.schema import PERF_KEYS, ROW_KEYS, PerfRow

# Row fields a pooled row takes as the runs' mean; the others are set below or kept from the first run.
_SET_APART = ("iterations", "warmup_iterations", "qps_low", "qps_high", "p90_upper", "p99_upper")
_MEAN_KEYS = tuple(key for key in PERF_KEYS if key not in {ROW_KEYS[k] for k in _SET_APART})
_FIELD = {key: name for name, key in ROW_KEYS.items()}


def pool_runs(reports: Sequence[RunReport], label: str) -> RunReport:
    """One report standing for `reports`, runs of one configuration (else a UserError naming `label`)."""
    if len(reports) == 1:
        return reports[0]
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
