"""An LLM run's rows as one table: the end-of-run console table and the run page's Performance table."""

from __future__ import annotations

from collections.abc import Sequence

from core.common import console
from core.reporting.llm_rows import LlmRow
from core.reporting.tables import Cell, TextTable, fmt, print_table

# Column -> the row's figure (llm_rows.LlmRow.figure keys); a P99 on too few samples is marked "~".
LATENCY_COLUMNS = {
    "TTFT ms": "TTFT.AVG",
    "TTFT P99": "TTFT.P99",
    "TPOT ms": "TPOT.AVG",
    "TPOT P99": "TPOT.P99",
    "ITL P99": "ITL.P99",
}


def llm_table(title: str, rows: Sequence[LlmRow]) -> TextTable:
    """Per load point: TTFT and TPOT (avg, P99), ITL P99, token throughput with its 95% interval, requests
    and why the window stopped; every number whole, whatever the width of the terminal."""
    tp = any((row.tp_size or 1) > 1 for row in rows)
    table = TextTable(
        title,
        [*(["TP"] if tp else []), "BS", "in", "out", "status", *LATENCY_COLUMNS, "tokens/s [95%]", "requests", "stop"],
        text_columns=0,  # the load point's numbers stay whole on a narrow terminal
    )
    for row in rows:
        point = [Cell(_count(n)) for n in ((row.tp_size,) if tp else ()) + row.point[1:3] + (row.output_tokens,)]
        if not row.ok:
            dashes = [Cell("—") for _ in range(len(LATENCY_COLUMNS) + 3)]
            table.rows.append([*point, Cell(f"{row.status}: {row.error or 'no error recorded'}", bad=True), *dashes])
            continue
        latencies = [_latency(row, key) for key in LATENCY_COLUMNS.values()]
        interval = row.token_throughput_interval()
        throughput = fmt(row.token_throughput) + (f" [{fmt(interval[0])}–{fmt(interval[1])}]" if interval else "")
        table.rows.append(
            [
                *point,
                Cell(row.status),
                *latencies,
                Cell(throughput),
                Cell(_count(row.request_number)),
                Cell(row.stop_reason or "—"),
            ]
        )
    return table


def _count(value: int | None) -> str:
    return "—" if value is None else str(value)


def _latency(row: LlmRow, key: str) -> Cell:
    value = row.figure(key)
    return Cell(f"~{fmt(value)}" if value is not None and row.unbacked(key) else fmt(value))


def tail_note(rows: Sequence[LlmRow]) -> str | None:
    """What '~' means, with the counts behind it, where a row shows one."""
    backing = sorted(
        {
            dist.tail_backing
            for row in rows
            for dist in (row.ttft, row.tpot, row.itl)
            if dist is not None and dist.tail_backing and dist.p99_upper is None
        }
    )
    if not backing:
        return None
    return "~: a tail percentile on fewer samples than a 95% upper bound needs (" + "; ".join(backing) + ")"


def print_llm_table(title: str, rows: Sequence[LlmRow]) -> None:
    """The end-of-run table on the console, and what its "~" marks mean."""
    print_table(console.console, llm_table(title, rows))
    note = tail_note(rows)
    if note:
        console.info(note)
