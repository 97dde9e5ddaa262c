"""Compare, operator by operator: where two runs' profiles (report section `Profile`) differ, in the one
vocabulary every engine's profile is written in, so onnxruntime lines up with OpenVINO and a CPU with a GPU.

Each type's time per call on every side, its ratio to the first, and the share of the total change it
explains ("attention: +41 ms, 78% of the slowdown"). Profiles at different batch sizes are compared per
sample, and the table says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core.reporting.report import RunReport
from core.reporting.schema import as_number
from core.reporting.tables import Cell, TextTable, fmt


@dataclass
class OperatorRow:
    type: str
    values: list[float | None]  # ms per call (or per sample, see `unit`) on each side
    ratios: list[float | None]
    explains: list[float | None]  # this type's change / the total change against the first side


@dataclass
class OperatorComparison:
    unit: str  # "ms per call" or "ms per sample"
    rows: list[OperatorRow]
    totals: list[float]
    note: str | None = None


def type_times(profile: dict) -> dict[str, float]:
    """Type -> ms per call from a report's Profile section (untrusted: anything malformed is skipped)."""
    found: dict[str, float] = {}
    types = profile.get("Types") if isinstance(profile, dict) else None
    for row in types if isinstance(types, list) else []:
        if isinstance(row, dict) and isinstance(row.get("Type"), str):
            value = as_number(row.get("ms per Call"))
            if value is not None:
                found[row["Type"]] = value
    return found


def profiles(reports: Sequence[RunReport]) -> list[dict]:
    found = [r.sections.get("Profile") for r in reports]
    return [p for p in found if isinstance(p, dict) and type_times(p)]


def compare_operators(reports: Sequence[RunReport]) -> OperatorComparison | None:
    """The operator table when every report has a profile with times, else None."""
    found = profiles(reports)
    if len(found) != len(reports) or len(reports) < 2:
        return None
    sizes = [as_number(p.get("Batch Size")) or 1.0 for p in found]
    per_sample = len(set(sizes)) > 1
    scale = [1 / size if per_sample else 1.0 for size in sizes]
    times = [{kind: ms * s for kind, ms in type_times(p).items()} for p, s in zip(found, scale)]
    totals = [sum(t.values()) for t in times]
    kinds = sorted({kind for t in times for kind in t}, key=lambda kind: -max(t.get(kind, 0.0) for t in times))
    rows = []
    for kind in kinds:
        values = [t.get(kind) for t in times]
        base = values[0] or 0.0
        ratios = [None if not base or v is None else v / base for v in values]
        explains: list[float | None] = [None]
        for v, total in zip(values[1:], totals[1:]):
            change = total - totals[0]
            explains.append(((v or 0.0) - base) / change if change else None)
        rows.append(OperatorRow(kind, values, ratios, explains))
    note = f"profiled at batch sizes {', '.join(fmt(s) for s in sizes)}: compared per sample" if per_sample else None
    return OperatorComparison("ms per sample" if per_sample else "ms per call", rows, totals, note)


def operator_table(cmp: OperatorComparison, labels: Sequence[str]) -> TextTable:
    table = TextTable(
        f"Where the time went ({cmp.unit}; ratio to the first report; share of the total change it explains)",
        ["operator type", *labels],
    )
    for row in cmp.rows:
        cells = [Cell(row.type)]
        for i, (value, ratio, explains) in enumerate(zip(row.values, row.ratios, row.explains)):
            if value is None:
                cells.append(Cell("—"))
                continue
            text = fmt(value)
            if i and ratio is not None:
                text += f" ({ratio:.2f}x)"
            if i and explains is not None:
                change = "slowdown" if cmp.totals[i] > cmp.totals[0] else "speed-up"
                text += f", {value - (row.values[0] or 0.0):+.3g} ms: {explains:.0%} of the {change}"
            cells.append(Cell(text))
        table.rows.append(cells)
    table.rows.append([Cell("total profiled")] + [Cell(fmt(total)) for total in cmp.totals])
    return table
