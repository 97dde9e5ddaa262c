"""Compare reports side by side: `python -m core.compare A B [C ...] [--threshold 5%]`.

A, B, ... are report files or run ids (kept under <reports-dir>/**/runs/). The first report is the
baseline: every other value is shown with its ratio to it. With --threshold, a QPS drop or a latency
rise beyond it (or a batch size that failed where the baseline ran) is a regression and the exit code
is 1. Bad input exits 2 with one line.

The table model here (TextTable) is shared by the summary and the HTML pages.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from core.atomic import atomic_write_text
from core.errors import EXIT_USAGE, UserError
from core.report_io import (LATENCY_KEYS, LOADGEN_KEYS, MEMORY_KEYS, QPS, normalize_report, read_report_file,
                            resolve_report_path)

EXIT_REGRESSION = 1
FORMATS = ("table", "markdown", "json", "html")
# What a mismatch warning checks, as (normalized key, what users call it).
IDENTITY_FIELDS = (("model", "model"), ("dataset", "dataset"), ("precision", "precision"),
                   ("weights_kind", "weights"), ("host_cpu", "host cpu"), ("data_percent", "data percent"))


# ---------------------------------------------------------------- table model shared by every renderer
@dataclass
class Cell:
    text: str
    bad: bool = False      # a regression or failure: red in the terminal, marked in HTML/markdown
    strong: bool = False   # the best value in its column


@dataclass
class TextTable:
    title: str
    headers: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    text_columns: int = 1  # leading columns that hold words (left-aligned); the rest hold numbers


def fmt(value: float | None) -> str:
    """Numbers at a precision people can read; None as an em dash."""
    if value is None:
        return "—"
    size = abs(value)
    if size >= 1000:
        return f"{value:,.0f}"
    if size >= 100:
        return f"{value:.1f}"
    if size >= 0.01 or size == 0:
        return f"{value:.2f}"
    return f"{value:.3g}"


def rich_table(table: TextTable):
    from rich.table import Table
    from rich.text import Text

    out = Table(title=table.title, title_justify="left", show_lines=False)
    for i, header in enumerate(table.headers):
        if i < table.text_columns:
            out.add_column(header, justify="left", overflow="fold")
        else:
            # Numbers are never cut ("11212.…"): on a narrow terminal the words wrap instead.
            widest = max((len(row[i].text) for row in table.rows if i < len(row)), default=0)
            out.add_column(header, justify="right", no_wrap=True, min_width=max(widest, 1))
    for row in table.rows:
        out.add_row(*(Text(c.text, style=("bold red" if c.bad else "bold green" if c.strong else "")) for c in row))
    return out


TEXT_COLUMN_MIN = 6  # words wrap down to this many characters a line


def _narrowest_width(table: TextTable) -> int:
    """The narrowest a table can print with every number whole: numeric columns at their widest cell,
    text columns folded, plus rich's padding (2 a column) and borders (columns + 1)."""
    widths = []
    for i, header in enumerate(table.headers):
        widest = max([len(row[i].text) for row in table.rows if i < len(row)] + [1])
        widths.append(min(widest, TEXT_COLUMN_MIN) if i < table.text_columns else widest)
    return sum(widths) + 2 * len(widths) + len(widths) + 1


def markdown_table(table: TextTable) -> str:
    def cell(c: Cell) -> str:
        text = c.text.replace("|", "\\|").replace("\n", " ")
        return f"**{text}** ⚠" if c.bad else f"**{text}**" if c.strong else text

    lines = [f"### {table.title}", "", "| " + " | ".join(h.replace("|", "\\|") for h in table.headers) + " |",
             "|" + "|".join("---" if i < table.text_columns else "---:" for i in range(len(table.headers))) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines) + "\n"


def render_text(tables: Sequence[TextTable], notes: Sequence[tuple[str, str]], fmt_name: str,
                color: bool) -> str:
    """Tables plus (style, line) notes as terminal text (rich) or markdown."""
    if fmt_name == "markdown":
        parts = [markdown_table(t) for t in tables]
        parts += ["\n".join(f"- {'**' + style + '**: ' if style else ''}{line}" for style, line in notes) + "\n"] \
            if notes else []
        return "\n".join(parts)
    from rich.console import Console
    from rich.text import Text

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=color, width=160 if not color else None, highlight=False)
    # Wider than the terminal rather than cut: a truncated number ("11212.…") is a wrong number.
    console.width = max([console.width, *(_narrowest_width(t) for t in tables)])
    for t in tables:
        console.print(rich_table(t))
    for style, line in notes:
        tag = {"warning": "yellow", "regression": "bold red"}.get(style, "")
        console.print(Text(f"{style}: " if style else "", style=tag) + Text(line))
    return buffer.getvalue()


# ---------------------------------------------------------------- the comparison itself
@dataclass
class PerfRow:
    bs: int
    metric: str
    values: list[float | None]
    ratios: list[float | None]       # value / baseline value; None where either is missing
    statuses: list[str | None]       # "ok", "failed", or None where the report lacks this batch size
    regressions: list[bool]


@dataclass
class LoadGenRow:
    scenario: str
    metric: str                      # a LOADGEN_KEYS number, or "Result" (VALID/INVALID as LoadGen judged)
    values: list[Any]
    ratios: list[float | None]
    regressions: list[bool]


@dataclass
class MetricRow:
    metric: str
    values: list[float | None]
    deltas: list[float | None]       # value - baseline value


@dataclass
class Regression:
    report: str
    bs: int
    metric: str
    baseline: float | None
    value: float | None
    change: float | None             # relative: -0.1 is 10% lower than the baseline
    message: str


@dataclass
class Comparison:
    labels: list[str]
    reports: list[dict[str, Any]]    # normalized (core.report_io.normalize_report)
    threshold: float | None
    batch_sizes: list[int]
    perf: list[PerfRow]
    accuracy: list[MetricRow]
    numeric: list[MetricRow]
    compile_memory: list[MetricRow]
    warnings: list[str]
    regressions: list[Regression]
    loadgen: list[LoadGenRow] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        keys = ("source", "format", "model", "backend", "engine", "dataset", "precision", "weights_kind",
                "host_cpu", "run_id", "run_status", "started")
        data = asdict(self)
        data["reports"] = [{"label": label, **{k: r.get(k) for k in keys}}
                           for label, r in zip(self.labels, self.reports)]
        return data


def _same(a: Any, b: Any) -> bool:
    return (a.lower() == b.lower()) if isinstance(a, str) and isinstance(b, str) else a == b


def _warnings(labels: Sequence[str], reports: Sequence[dict]) -> list[str]:
    warnings = []
    for key, name in IDENTITY_FIELDS:
        values = [r[key] for r in reports]
        if any(not _same(v, values[0]) for v in values[1:]):
            shown = ", ".join(f"{label}={fmt(v) if isinstance(v, float) else v or 'unknown'}"
                              for label, v in zip(labels, values))
            warnings.append(f"{name} differs: {shown}")
    for label, r in zip(labels, reports):
        if r["run_status"] and r["run_status"] != "complete":
            warnings.append(f"{label}: run is {r['run_status']}; its numbers may be partial")
        if r["weights_kind"] == "synthetic" and r["accuracy"]:
            warnings.append(f"{label}: synthetic weights, its accuracy numbers are meaningless")
    for label, r in zip(labels, reports):
        warnings += [f"{label}: {note}" for note in r.get("notes", ())]
    base = reports[0]
    for label, r in zip(labels[1:], reports[1:]):
        # Vendor reports often hold one tuned batch size: still worth seeing side by side, without ratios.
        if base["perf"] and r["perf"] and not set(base["perf"]) & set(r["perf"]):
            warnings.append(f"{label} shares no batch size with {labels[0]} ({sorted(r['perf'])} vs "
                            f"{sorted(base['perf'])}): values are shown side by side, without ratios")
    all_bs = sorted({bs for r in reports for bs in r["perf"]})
    for bs in all_bs:
        missing = [label for label, r in zip(labels, reports) if bs not in r["perf"]]
        if missing:
            warnings.append(f"batch size {bs} is missing from {', '.join(missing)}")
    return warnings


def _metric_rows(reports: Sequence[dict], section: str) -> list[MetricRow]:
    names = list(dict.fromkeys(name for r in reports for name in r[section]))
    rows = []
    for name in names:
        values = [r[section].get(name) for r in reports]
        base = values[0]
        rows.append(MetricRow(name, values, [None if base is None or v is None else v - base for v in values]))
    return rows


def build_comparison(reports: Sequence[dict], labels: Sequence[str],
                     threshold: float | None = None) -> Comparison:
    """Compare normalized reports against the first, over the union of their batch sizes (gaps shown as such)."""
    batch_sizes = sorted({bs for r in reports for bs in r["perf"]})
    perf: list[PerfRow] = []
    regressions: list[Regression] = []
    for bs in batch_sizes:
        rows = [r["perf"].get(bs) for r in reports]
        statuses = [row["Status"] if row else None for row in rows]
        if threshold is not None and statuses[0] == "ok":
            for label, row in zip(labels[1:], rows[1:]):
                if row and row["Status"] != "ok":
                    regressions.append(Regression(label, bs, "Status", None, None, None,
                                                  f"{label}: batch size {bs} {row['Status']} "
                                                  f"({row['Error'] or 'no error recorded'}); the baseline ran"))
        for metric in (QPS, *LATENCY_KEYS, *MEMORY_KEYS):
            values = [row[metric] if row else None for row in rows]
            if all(v is None for v in values):
                continue
            # Memory is shown, not judged: allocator and arena behaviour make it too noisy to gate on.
            judged = None if metric in MEMORY_KEYS else threshold
            ratios, flags = _judge(values, labels, judged, higher_is_better=metric == QPS, bs=bs,
                                   what=f"batch size {bs} {metric}", metric=metric, regressions=regressions)
            perf.append(PerfRow(bs, metric, values, ratios, statuses, flags))
    loadgen = _loadgen_rows(reports, labels, threshold, regressions)
    return Comparison(list(labels), list(reports), threshold, batch_sizes, perf,
                      _metric_rows(reports, "accuracy"), _metric_rows(reports, "numeric"),
                      _metric_rows(reports, "compile_memory"), _warnings(labels, reports), regressions, loadgen)


def _judge(values: list, labels: Sequence[str], threshold: float | None, *, higher_is_better: bool, bs: int,
           what: str, metric: str, regressions: list[Regression]) -> tuple[list, list[bool]]:
    """Ratios to the first report, and which changes go beyond the threshold the wrong way (each recorded)."""
    ratios = [None if values[0] in (None, 0) or v is None else v / values[0] for v in values]
    flags = [False] * len(values)
    for i in range(1, len(values)):
        if threshold is None or ratios[i] is None:
            continue
        change = ratios[i] - 1
        if (change < -threshold) if higher_is_better else (change > threshold):
            flags[i] = True
            regressions.append(Regression(labels[i], bs, metric, values[0], values[i], change,
                                          f"{labels[i]}: {what} {'drop' if change < 0 else 'rise'} {abs(change):.1%} "
                                          f"({fmt(values[0])} -> {fmt(values[i])}) beyond {threshold:.1%}"))
    return ratios, flags


# Lower is better for these LoadGen numbers; higher for QPS and Peak QPS. Targets are settings, never regressions.
LOADGEN_LOWER_BETTER = ("P50 Latency", "P90 Latency", "P99 Latency")


def _loadgen_rows(reports: Sequence[dict], labels: Sequence[str], threshold: float | None,
                  regressions: list[Regression]) -> list[LoadGenRow]:
    """LoadGen scenarios side by side; with a threshold, VALID -> INVALID and QPS/latency changes beyond it regress."""
    rows: list[LoadGenRow] = []
    for scenario in dict.fromkeys(s for r in reports for s in r["loadgen"]):
        entries = [r["loadgen"].get(scenario) for r in reports]
        results = [e["Result"] if e else None for e in entries]
        flags = [threshold is not None and i > 0 and results[0] == "VALID" and v not in (None, "VALID")
                 for i, v in enumerate(results)]
        for i, flagged in enumerate(flags):
            if flagged:
                regressions.append(Regression(labels[i], 0, f"LoadGen {scenario}", None, None, None,
                                              f"{labels[i]}: LoadGen {scenario} is {results[i]}; the baseline was VALID"))
        rows.append(LoadGenRow(scenario, "Result", results, [None] * len(results), flags))
        for metric in LOADGEN_KEYS:
            values = [e[metric] if e else None for e in entries]
            if all(v is None for v in values):
                continue
            ratios, flags = _judge(values, labels, None if metric.startswith("Target") else threshold,
                                   higher_is_better=metric not in LOADGEN_LOWER_BETTER, bs=0,
                                   what=f"LoadGen {scenario} {metric}", metric=f"LoadGen {scenario} {metric}",
                                   regressions=regressions)
            rows.append(LoadGenRow(scenario, metric, values, ratios, flags))
    return rows


def comparison_tables(cmp: Comparison) -> list[TextTable]:
    """Performance (value and ratio to the baseline), accuracy and numeric-diff (value and delta)."""
    perf = TextTable("Performance (latency in ms, memory in MB; ratio to the first report)", ["BS", "metric", *cmp.labels],
                     text_columns=2)
    for row in cmp.perf:
        cells = [Cell(str(row.bs)), Cell(row.metric)]
        for i, (value, ratio, status) in enumerate(zip(row.values, row.ratios, row.statuses)):
            if status not in (None, "ok"):
                cells.append(Cell(status, bad=True))
                continue
            text = fmt(value) + (f" ({ratio:.2f}x)" if i and ratio is not None else "")
            cells.append(Cell(text, bad=row.regressions[i]))
        perf.rows.append(cells)
    tables = [perf]
    if cmp.loadgen:
        loadgen = TextTable("LoadGen scenarios (latency in ms; ratio to the first report)",
                            ["scenario", "metric", *cmp.labels], text_columns=2)
        for row in cmp.loadgen:
            cells = [Cell(row.scenario), Cell(row.metric)]
            for i, (value, ratio) in enumerate(zip(row.values, row.ratios)):
                text = str(value or "—") if row.metric == "Result" else (
                    fmt(value) + (f" ({ratio:.2f}x)" if i and ratio is not None else ""))
                cells.append(Cell(text, bad=row.regressions[i] or (row.metric == "Result" and value not in (None, "VALID"))))
            loadgen.rows.append(cells)
        tables.append(loadgen)
    for title, rows in (("Accuracy (delta to the first report)", cmp.accuracy),
                        ("Numeric diff vs reference (delta to the first report)", cmp.numeric),
                        ("Compile memory in MB (delta to the first report)", cmp.compile_memory)):
        if rows:
            table = TextTable(title, ["metric", *cmp.labels])
            for row in rows:
                table.rows.append([Cell(row.metric)] + [
                    Cell(fmt(v) + (f" ({d:+.3g})" if i and d is not None else ""))
                    for i, (v, d) in enumerate(zip(row.values, row.deltas))])
            tables.append(table)
    return tables


def comparison_notes(cmp: Comparison) -> list[tuple[str, str]]:
    notes = [("warning", w) for w in cmp.warnings] + [("regression", r.message) for r in cmp.regressions]
    if cmp.threshold is not None and not cmp.regressions:
        notes.append(("", f"no regression beyond {cmp.threshold:.1%} against {cmp.labels[0]}"))
    return notes


# ---------------------------------------------------------------- command line
def parse_threshold(text: str) -> float:
    """'5%' or '5' mean five percent; returned as a fraction."""
    try:
        value = float(text.strip().rstrip("%"))
    except ValueError:
        value = -1.0
    if not 0 <= value < 100:
        raise UserError(f"{text!r} is not a percentage in [0, 100)", field="--threshold", fix="e.g. --threshold 5%")
    return value / 100


def unique_labels(reports: Sequence[dict], args: Sequence[str]) -> list[str]:
    """Run ids where known, else <HW>/<model>/<file> or the argument; repeated labels get #2, #3."""
    labels: list[str] = []
    for r, arg in zip(reports, args):
        label = r["run_id"] or ("/".join(Path(r["source"]).parts[-3:]) if r["source"] else arg)
        n, candidate = 1, label
        while candidate in labels:
            n += 1
            candidate = f"{label}#{n}"
        labels.append(candidate)
    return labels


def load_for_compare(args: Sequence[str], reports_dir: Path) -> tuple[list[dict], list[dict]]:
    """(raw, normalized) reports for paths or run ids."""
    raw, normalized = [], []
    for arg in args:
        path = resolve_report_path(arg, reports_dir)
        data = read_report_file(path)
        raw.append(data)
        normalized.append(normalize_report(data, source=path))
    return raw, normalized


def render(cmp: Comparison, raw: Sequence[dict], fmt_name: str, color: bool) -> str:
    if fmt_name == "json":
        return json.dumps(cmp.to_json(), indent=2) + "\n"
    if fmt_name == "html":
        from core.html_report import render_compare_html

        base_dirs = [Path(r["source"]).parent if r["source"] else None for r in cmp.reports]
        return render_compare_html(raw, labels=cmp.labels, threshold=cmp.threshold, base_dirs=base_dirs)
    return render_text(comparison_tables(cmp), comparison_notes(cmp), fmt_name, color)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core.compare", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reports", nargs="+", metavar="REPORT",
                        help="report files or run ids; the first is the baseline (at least two)")
    parser.add_argument("--threshold", type=str, default=None,
                        help="mark QPS drops / latency rises beyond this (e.g. 5%%) and exit 1 if any")
    parser.add_argument("--format", choices=FORMATS, default="table")
    parser.add_argument("--output", type=Path, default=None, help="write here instead of standard output")
    parser.add_argument("--reports-dir", type=Path, default=Path("reports"), help="where run ids are looked up")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if len(args.reports) < 2:
            raise UserError("give at least two reports to compare", field="REPORT",
                            fix="python -m core.compare BASELINE OTHER [...]")
        threshold = parse_threshold(args.threshold) if args.threshold is not None else None
        raw, normalized = load_for_compare(args.reports, args.reports_dir)
        cmp = build_comparison(normalized, unique_labels(normalized, args.reports), threshold)
        text = render(cmp, raw, args.format, color=args.output is None and sys.stdout.isatty())
        if args.output is None:
            sys.stdout.write(text)
        else:
            try:
                atomic_write_text(args.output, text)
            except OSError as err:
                raise UserError(f"cannot write: {err.strerror}", file=args.output, field="--output") from err
    except UserError as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_REGRESSION if cmp.regressions else 0


if __name__ == "__main__":
    sys.exit(main())
