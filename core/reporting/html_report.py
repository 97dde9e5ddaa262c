"""Self-contained HTML pages for one run or a comparison of runs.

One file, no network: CSS inline, plots as base64 PNGs from matplotlib's Agg canvas (imported
lazily, no pyplot state), and a Content-Security-Policy that forbids every outside resource. Every
string from a report is escaped: reports are untrusted input.
"""

from __future__ import annotations

import base64
import html
import io
import json
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.common.atomic import atomic_write_text
from core.common.paths import REPO_ROOT
from core.reporting.comparison import Comparison, build_comparison, comparison_notes, comparison_tables
from core.reporting.llm_profile import PHASES, agreement_table, is_llm_profile, phases, timed_note, types_table
from core.reporting.llm_rows import LlmRow
from core.reporting.llm_tables import llm_table
from core.reporting.report import RunReport
from core.reporting.schema import LATENCY_KEYS, PERF_KEYS, QPS, ROW_KEYS, as_number, as_text
from core.reporting.sections import GraphCompile, LoadGenResult
from core.reporting.tables import Cell, TextTable, fmt

MAX_EMBED_BYTES = 8 << 20
COUNT_KEYS = (ROW_KEYS["iterations"], ROW_KEYS["warmup_iterations"])
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Only inline styles and data: images may load; scripts and everything else are refused.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0}th,td{border:1px solid #ddd;padding:.25em .6em}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.bad{background:#fde2e2;color:#a00;font-weight:bold}td.best{font-weight:bold;color:#060}
.banner{padding:.8em 1em;margin:1em 0;border-radius:4px;font-weight:bold}
.synthetic{background:#b00020;color:#fff;font-size:1.2em}.warn{background:#fff4ce;border:1px solid #e0c060}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{color:#555}
code{white-space:pre-wrap;word-break:break-all}
.scroll{max-width:100%;overflow-x:auto}li.bad{color:#a00}
"""
PLOT_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def escape(value: Any) -> str:
    return html.escape(str(value), quote=True)


# ---------------------------------------------------------------- building blocks
def table_html(table: TextTable) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in table.headers)
    body = []
    for row in table.rows:
        cells = []
        for i, cell in enumerate(row):
            classes = [
                c for c, on in (("num", i >= table.text_columns), ("bad", cell.bad), ("best", cell.strong)) if on
            ]
            mark = " ⚠" if cell.bad else ""
            text = f'<a href="{escape(cell.href)}">{escape(cell.text)}</a>' if cell.href else escape(cell.text)
            cells.append(f'<td class="{" ".join(classes)}">{text}{mark}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    # A wide table scrolls inside its own box; the page never gets wider than the window.
    return (
        f'<h3>{escape(table.title)}</h3><div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _value_html(value: Any) -> str:
    if isinstance(value, float):
        return escape(f"{value:.6g}")  # a score with 16 digits claims a precision nobody measured
    if isinstance(value, (dict, list)):
        return f"<code>{escape(json.dumps(value, indent=1, ensure_ascii=False, default=str))}</code>"
    return escape("—" if value is None else value)


def _kv_table(title: str, section: Any) -> str:
    """A key/value table for one report section; nested values shown as JSON text, empty ones left out."""
    if not isinstance(section, dict):
        return ""
    shown = {k: v for k, v in section.items() if v is not None and v != [] and v != {} and v != ""}
    if not shown:
        return ""
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{_value_html(v)}</td></tr>" for k, v in shown.items())
    return f'<h3>{escape(title)}</h3><div class="scroll"><table>{rows}</table></div>'


def _relative_paths(value: Any, roots: Sequence[Path]) -> Any:
    """Absolute paths inside the report's folder or the repository shown relative to it, everywhere in a section."""
    if isinstance(value, dict):
        return {k: _relative_paths(v, roots) for k, v in value.items()}
    if isinstance(value, list):
        return [_relative_paths(v, roots) for v in value]
    if isinstance(value, str) and value.startswith("/"):
        for root in roots:
            try:
                return str(Path(value).relative_to(root.resolve())) or "."
            except ValueError:
                continue
    return value


def command_line(command: Any, base_dir: Path | None) -> str | None:
    """The run's command as a shell line, paths inside the repository or the report's folder made relative."""
    if not isinstance(command, list) or not command:
        return None
    roots = [root for root in (base_dir, REPO_ROOT) if root is not None]

    def shown(part: str) -> str:
        path = Path(part)
        if path.is_absolute():
            for root in roots:
                try:
                    return str(path.relative_to(root.resolve())) or "."
                except ValueError:
                    continue
        return part

    parts = [shown(str(part)) for part in command]
    first = Path(str(command[0]))
    if first.suffix == ".py" and first.parent.name == "core":  # `python -m core.X` records core/X.py
        parts[0:1] = ["python", "-m", f"core.{first.stem}"]
    return shlex.join(parts)


def img_html(png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img class="plot" alt="{escape(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def page_html(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>\n"
    )


def find_diff_png(diff_dist: str | None, base_dir: Path | None) -> bytes | None:
    """The bytes of `Accuracy.Diff Dist` if it names an existing PNG (next to the report, or repo-relative)."""
    if not diff_dist:
        return None
    name = Path(diff_dist)
    candidates = [name] if name.is_absolute() else []
    if base_dir is not None:
        candidates += [base_dir / name, base_dir / name.name]
    if not name.is_absolute():
        parts = name.parts[1:] if name.parts[:1] == ("general_perf",) else name.parts
        candidates += [REPO_ROOT.joinpath(*parts)] if parts else []
    for path in candidates:
        try:
            if path.is_file() and path.stat().st_size <= MAX_EMBED_BYTES:
                data = path.read_bytes()
                if data.startswith(PNG_MAGIC):  # a report may name any file: embed real PNGs only
                    return data
        except OSError:
            continue
    return None


# ---------------------------------------------------------------- plots
def plain(text: str) -> str:
    """A report string as matplotlib draws it literally: `$` would start math text, `_` hides a legend entry."""
    return text.replace("$", r"\$").lstrip("_") or "?"


class Plots:
    """matplotlib's Agg canvas, imported on first use; no pyplot, so no global figure state."""

    def __init__(self) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self._figure, self._canvas = Figure, FigureCanvasAgg

    def render(self, draw, size=(7.5, 4.2)) -> bytes:
        fig = self._figure(figsize=size, dpi=100, layout="constrained")
        self._canvas(fig)
        draw(fig.add_subplot())
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", metadata={"Software": None})
        return buffer.getvalue()


def legend(ax, **options) -> None:
    """A legend, when there is something to label (a report without rows has nothing)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize="small", **options)


def _series(report: RunReport, key: str) -> tuple[list[int], list[float]]:
    points = [(bs, row.number(key)) for bs, row in report.perf_by_bs.items() if row.number(key) is not None]
    return [p[0] for p in points], [p[1] for p in points]


def _bs_axis(ax, reports: Sequence[RunReport]) -> None:
    sizes = sorted({bs for r in reports for bs in r.perf_by_bs})
    if sizes and max(sizes) / min(sizes) >= 8:
        ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.set_xlabel("batch size")
    ax.grid(True, alpha=0.3)


def _qps_plot(plots: Plots, reports: Sequence[RunReport], labels: Sequence[str]) -> str:
    def draw(ax):
        for i, (r, label) in enumerate(zip(reports, labels)):
            xs, ys = _series(r, QPS)
            ax.plot(xs, ys, marker="o", color=PLOT_COLORS[i % len(PLOT_COLORS)], label=plain(label))
        _bs_axis(ax, reports)
        ax.set_ylabel("QPS (samples/s)")
        top = max((v for r in reports for v in _series(r, QPS)[1]), default=0)
        ax.set_ylim(0, top * 1.12 or 1)  # from zero, with room above the highest point
        legend(ax)
        ax.set_title("Throughput vs batch size")

    return img_html(plots.render(draw), "QPS vs batch size")


def _latency_plot(plots: Plots, reports: Sequence[RunReport], labels: Sequence[str]) -> str:
    styles = {
        "AVG Latency": ("x", ":"),
        "P50 Latency": ("o", "-"),
        "P90 Latency": ("s", "--"),
        "P99 Latency": ("^", "-."),
    }

    def draw(ax):
        for i, (r, label) in enumerate(zip(reports, labels)):
            color = PLOT_COLORS[i % len(PLOT_COLORS)]
            for key in LATENCY_KEYS:
                xs, ys = _series(r, key)
                if xs:
                    marker, line = styles[key]
                    name = key.replace(" Latency", "")
                    ax.plot(
                        xs,
                        ys,
                        marker=marker,
                        linestyle=line,
                        color=color,
                        label=plain(f"{label} {name}") if len(reports) > 1 else name,
                    )
            lows, highs = _series(r, "Min Latency"), _series(r, "Max Latency")
            if len(reports) == 1 and lows[0] and lows[0] == highs[0]:
                ax.fill_between(lows[0], lows[1], highs[1], color=color, alpha=0.12, label="min–max")
        _bs_axis(ax, reports)
        ax.set_yscale("log")
        ax.set_ylabel("latency per batch (ms)")
        legend(ax, ncol=2)
        ax.set_title("Latency percentiles per batch size")

    return img_html(plots.render(draw), "Latency percentiles per batch size")


def _histogram_plot(plots: Plots, hist: dict[str, list[float]], label: str) -> str:
    def draw(ax):
        edges, counts = hist["edges"], hist["counts"]
        widths = [b - a for a, b in zip(edges, edges[1:])]
        ax.bar(edges[:-1], counts, width=widths, align="edge", color=PLOT_COLORS[0], edgecolor="white")
        ax.set_xlabel("|output - reference|")
        ax.set_ylabel("count")
        ax.set_title(plain(f"Numeric diff distribution: {label}"))

    return img_html(plots.render(draw), f"Numeric diff histogram: {label}")


def _bars_plot(
    plots: Plots, reports: Sequence[RunReport], labels: Sequence[str], section: str, title: str, log: bool
) -> str:
    """Bars of one of RunReport's number views (quality, numeric) side by side."""
    views = [getattr(r, section) for r in reports]
    names = list(dict.fromkeys(n for view in views for n in view))
    if not names:
        return ""

    def draw(ax):
        width = 0.8 / len(reports)
        for i, (view, label) in enumerate(zip(views, labels)):
            xs = [j + i * width for j, n in enumerate(names) if view.get(n) is not None]
            ys = [view[n] for n in names if view.get(n) is not None]
            ax.bar(xs, ys, width=width, color=PLOT_COLORS[i % len(PLOT_COLORS)], label=plain(label))
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(names))], [plain(n) for n in names])
        if log:
            ax.set_yscale("log")
        legend(ax)
        ax.set_title(title)

    return img_html(plots.render(draw), title)


def _diff_figure(plots: Plots, report: RunReport, label: str, base_dir: Path | None) -> str:
    drift = report.accuracy.drift if report.accuracy else None
    if drift is None:
        return ""
    diff_dist = as_text(drift.diff_dist)
    png = find_diff_png(diff_dist, base_dir)
    if png is not None:
        return img_html(png, f"Numeric diff distribution: {label} ({diff_dist})")
    if drift.histogram():
        return _histogram_plot(plots, drift.histogram(), label)
    if diff_dist:
        return f"<p>Numeric diff plot {escape(diff_dist)} for {escape(label)} was not found.</p>"
    return ""


# ---------------------------------------------------------------- pages
def _banners(report: RunReport, label: str) -> str:
    out = []
    if report.weights_kind == "synthetic":
        # Our runs' note already is the warning; say it once. Other notes get the standard sentence first.
        note = as_text(report.weights.note) or ""
        if "synthetic weights" not in note.lower():
            note = (
                "SYNTHETIC WEIGHTS (random, not trained): timings are real; accuracy and numeric results "
                "are meaningless." + (f" {note}" if note else "")
            )
        out.append(f'<div class="banner synthetic">⚠ {escape(label)}: {escape(note)}</div>')
    if report.status and report.status != "complete":
        out.append(
            f'<div class="banner warn">{escape(label)}: run status is {escape(report.status)}; '
            "results may be partial.</div>"
        )
    return "".join(out)


def _perf_table(report: RunReport) -> TextTable:
    rows = report.perf_by_bs
    keys = [k for k in PERF_KEYS if any(row.number(k) is not None for row in rows.values())]
    table = TextTable("Performance (latency in ms)", ["BS", "status", *keys, "error"], text_columns=2)
    for bs, row in rows.items():
        failed = not row.ok
        numbers = {k: row.number(k) for k in keys}
        table.rows.append(
            [
                Cell(str(bs)),
                Cell(row.status, bad=failed),
                *(Cell(_shown(row, k, v)) for k, v in numbers.items()),
                Cell(as_text(row.error) or "", bad=failed),
            ]
        )
    return table


def _shown(row, key: str, value: float | None) -> str:
    """A row's number as the page shows it: counts whole, an unbacked tail percentile marked as such."""
    text = fmt(value) if key not in COUNT_KEYS or value is None else f"{value:.0f}"
    return f"~{text} (unbacked)" if value is not None and row.unbacked(key) else text


def _loadgen_table(report: RunReport) -> str:
    """One row per LoadGen scenario: LoadGen's verdict, its numbers, and where its own summary log is."""
    entries = report.loadgen_by_scenario
    if not entries:
        return ""
    keys = [k for k in LoadGenResult.NUMBERS if any(e.number(k) is not None for e in entries.values())]
    table = TextTable("LoadGen scenarios (latency in ms)", ["scenario", "result", *keys, "log summary"], text_columns=2)
    for scenario, entry in entries.items():
        invalid = entry.result != "VALID"
        error = as_text(entry.error)
        table.rows.append(
            [
                Cell(scenario),
                Cell(as_text(entry.result) or "—", bad=invalid),
                *(Cell(fmt(entry.number(k))) for k in keys),
                Cell(as_text(entry.log_summary) or error or "—", bad=bool(error)),
            ]
        )
    return "<h2>LoadGen scenarios</h2>" + table_html(table)


SELECTION_COLUMNS = (
    "QPS",
    "P50 Latency",
    "Normalized Drift",
    "Top-1 Agreement",
    "Near Ties",
    "Decisive Agreement",
    "Compile Seconds",
)


def _selection_table(graph_compile: GraphCompile | None) -> str:
    """Graph Compile's engine selection: every candidate, its speed, its drift and the gate's verdict."""
    selection = graph_compile.engine_selection if graph_compile else None
    if selection is None or not selection.candidates:
        return ""
    table = TextTable(
        f"Engine selection: {as_text(selection.chosen) or '—'} ({as_text(selection.decision) or ''})",
        ["engine", "precision", "gate", "why", *SELECTION_COLUMNS],
        text_columns=4,
    )
    for row in selection.candidates:
        table.rows.append(
            [
                Cell(as_text(row.engine) or "", strong=bool(row.chosen)),
                Cell(as_text(row.precision) or ""),
                Cell(as_text(row.gate) or "", bad=not row.passed),
                Cell(as_text(row.why) or ""),
                *(Cell(fmt(row.number(k))) for k in SELECTION_COLUMNS),
            ]
        )
    return f"<p>{escape(as_text(selection.reason) or '')}</p>" + table_html(table)


def _roofline_plot(plots: Plots, report: RunReport) -> str:
    """Achieved GFLOP/s per batch size against both roofs: the measured compute peak and bandwidth x intensity."""
    points = [
        (bs, row.number("Arithmetic Intensity"), row.number("Achieved GFLOP/s"))
        for bs, row in report.perf_by_bs.items()
        if row.number("Arithmetic Intensity") and row.number("Achieved GFLOP/s")
    ]
    peak = report.host.peak if report.host and isinstance(report.host.peak, dict) else {}
    compute = peak.get(report.precision_ran or "") if report.precision_ran else None
    compute = as_number(compute.get("GFLOP/s")) if isinstance(compute, dict) else None
    memory = as_number(peak["Memory"].get("GB/s")) if isinstance(peak.get("Memory"), dict) else None
    if not points or not (compute or memory):
        return ""

    def draw(ax):
        xs = [x for _, x, _ in points]
        # The ridge: where the memory roof meets the compute roof. Both roofs are drawn up to and from it.
        ridge = compute / memory if compute and memory else None
        low = min(min(xs), ridge or min(xs)) / 4
        high = max(max(xs), ridge or max(xs)) * 4
        if memory:
            end = ridge or high
            ax.plot([low, end], [memory * low, memory * end], color=PLOT_COLORS[1], label=f"memory {memory:g} GB/s")
        if compute:
            start = ridge or low
            label = plain(f"{report.precision_ran} peak {compute:g} GFLOP/s")
            ax.plot([start, high], [compute, compute], color=PLOT_COLORS[2], label=label)
        ax.scatter(xs, [y for _, _, y in points], color=PLOT_COLORS[0], zorder=3, label="achieved")
        for bs, x, y in points:
            ax.annotate(f"bs {bs}", (x, y), textcoords="offset points", xytext=(4, -10), fontsize="small")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("arithmetic intensity (FLOP per byte: weights and inputs once a call)")
        ax.set_ylabel("GFLOP/s")
        ax.grid(True, which="both", alpha=0.3)
        legend(ax)
        ax.set_title("Roofline: achieved against the measured roofs")

    return img_html(plots.render(draw), "Roofline")


def _llm_roofline(plots: Plots, report: RunReport) -> str:
    """Per load point, prefill's achieved GFLOP/s against the compute roof and decode's GB/s against the memory
    bandwidth: a table of both, and bars of their shares with the roof at 1.0 (the achieved figures on the bars).
    A row's note (the weights fit in the last-level cache: the DRAM roof does not bind) is a warning above them."""
    rows = [row for row in report.llm_rows if row.ok and row.roofline is not None]
    if not rows:
        return ""
    table = TextTable(
        "Roofline per phase",
        ["load point", "prefill GFLOP/s", "compute roof", "prefill share", "decode GB/s", "bandwidth", "MBU"]
        + ["ceiling tokens/s"],
    )
    # A report is untrusted: every figure through as_number (None where it is not one).
    figures = [(row.label, {k: as_number(v) for k, v in row.roofline.to_dict().items()}) for row in rows]
    for label, roof in figures:
        table.rows.append(
            [
                Cell(label),
                Cell(fmt(roof.get("Prefill GFLOP/s"))),
                Cell(fmt(roof.get("Compute Peak GFLOP/s"))),
                _share_cell(roof.get("Prefill Peak Share")),
                Cell(fmt(roof.get("Decode GB/s"))),
                Cell(fmt(roof.get("Bandwidth GB/s"))),
                _share_cell(roof.get("Decode MBU")),
                Cell(fmt(roof.get("Decode Ceiling Tokens/s"))),
            ]
        )
    notes = sorted({as_text(row.roofline.note) for row in rows if as_text(row.roofline.note)})
    warnings = "".join(f'<div class="banner warn">⚠ {escape(note)}</div>' for note in notes)
    # (label, prefill share, its label, decode MBU, its label) per row; a phase: (share index, label index, name)
    bars = [
        (label, roof.get("Prefill Peak Share"), _of(roof.get("Prefill GFLOP/s"), roof.get("Compute Peak GFLOP/s")))
        + (roof.get("Decode MBU"), _of(roof.get("Decode GB/s"), roof.get("Bandwidth GB/s"), "GB/s"))
        for label, roof in figures
    ]
    phases_drawn = ((1, 2, "prefill: GFLOP/s over the compute roof"), (3, 4, "decode: GB/s over the bandwidth (MBU)"))
    plot = ""
    if any(b[1] is not None or b[3] is not None for b in bars):

        def draw(ax):
            width = 0.38
            for offset, (share, text, name) in enumerate(phases_drawn):
                shown = [(i, b) for i, b in enumerate(bars) if b[share] is not None]
                drawn = ax.bar(
                    [i + (offset - 0.5) * width for i, _ in shown],
                    [b[share] for _, b in shown],
                    width=width,
                    color=PLOT_COLORS[offset],
                    label=name,
                )
                ax.bar_label(drawn, labels=[b[text] for _, b in shown], fontsize="small", padding=2)
            ax.axhline(1.0, color="#555", linestyle="--", label="the roof (measured peak)")
            ax.set_xticks(range(len(bars)), [plain(b[0]) for b in bars])
            ax.set_xlim(-0.7, len(bars) - 0.3)
            top = max([1.0] + [b[i] for b in bars for i in (1, 3) if b[i] is not None])
            ax.set_ylim(0, top * 1.2)
            ax.set_ylabel("share of the roof")
            ax.grid(True, axis="y", alpha=0.3)
            legend(ax)
            ax.set_title("LLM roofline: prefill against the compute roof, decode against the bandwidth")

        caveat = " (the weights fit in the last-level cache: see the warning above)" if notes else ""
        plot = img_html(plots.render(draw), "LLM roofline per load point" + caveat)
    return "<h2>Roofline per phase</h2>" + warnings + table_html(table) + plot


def _of(achieved: float | None, roof: float | None, unit: str = "GFLOP/s") -> str:
    """A bar's achieved figure and its roof: 1.64 of 65.4 GFLOP/s."""
    return f"{fmt(achieved)} of {fmt(roof)} {unit}" if roof else f"{fmt(achieved)} {unit}"


def _share_cell(share: float | None) -> Cell:
    """A share of a roof; above 1 marked (the row's note says why)."""
    return Cell("—" if share is None else f"{share:.1%}", bad=share is not None and share > 1.0)


def _profile_tables(profile: Any) -> str:
    """The Profile section: time by operator type, then the top nodes; an LLM run's per phase, first held against
    its timed run."""
    if not isinstance(profile, dict):
        return ""
    if is_llm_profile(profile):
        found = phases(profile)
        out = [
            "<h2>Where the time went</h2>",
            _kv_table("Profile", {k: v for k, v in profile.items() if k not in PHASES}),
        ]
        if found:
            out += [table_html(agreement_table(profile)), f"<p>{escape(timed_note(profile))}</p>"]
            out.append(table_html(types_table(profile)))
        for phase in PHASES:
            out += _operator_tables(profile.get(phase), f"{phase} profile")
        return "".join(out)
    return "<h2>Where the time went</h2>" + "".join(_operator_tables(profile, "Profile"))


def _operator_tables(profile: Any, title: str) -> list[str]:
    """One profile's facts, its time by operator type and its top nodes."""
    if not isinstance(profile, dict):
        return []
    head = {k: v for k, v in profile.items() if k not in ("Types", "Top Nodes")}
    out = [_kv_table(title, head)]
    for key, columns in (
        ("Types", ("Type", "ms per Call", "Share", "Ops per Call", "GFLOP/s", "Engine Ops")),
        ("Top Nodes", ("Node", "Op", "Type", "ms per Call", "Share")),
    ):
        rows = profile.get(key)
        if not isinstance(rows, list) or not rows:
            continue
        prefix = "" if title == "Profile" else f"{title}: "
        table = TextTable(f"{prefix}{key} (shares of the profiled call)", list(columns), text_columns=1)
        for row in rows:
            if isinstance(row, dict):
                table.rows.append([Cell(_profile_cell(name, row.get(name))) for name in columns])
        out.append(table_html(table))
    return out


def _profile_cell(name: str, value: Any) -> str:
    number = as_number(value) if not isinstance(value, str) else None
    if name == "Share" and number is not None:
        return f"{number:.1%}"
    return fmt(number) if number is not None else (as_text(value) or "—")


def _llm_lines(reports: Sequence[RunReport], labels: Sequence[str]) -> list[tuple[str, list[LlmRow]]]:
    """Each report's ok rows, one line per TP size and input length, in batch-size order."""
    lines = []
    for r, label in zip(reports, labels):
        groups: dict[tuple[int, int], list[LlmRow]] = {}
        for row in sorted((row for row in r.llm_rows if row.ok), key=lambda row: row.point):
            groups.setdefault((row.point[0], row.point[2]), []).append(row)
        for (tp, tokens_in), rows in groups.items():
            name = f"{tokens_in} in" + (f", tp {tp}" if tp > 1 else "")
            lines.append((f"{label} {name}" if len(reports) > 1 else name, rows))
    return lines


def _llm_latency_plot(plots: Plots, reports: Sequence[RunReport], labels: Sequence[str], what: str) -> str:
    """TTFT or TPOT (avg solid, P99 dashed) against batch size, one line per input length."""
    lines = _llm_lines(reports, labels)

    def draw(ax):
        for i, (name, rows) in enumerate(lines):
            color = PLOT_COLORS[i % len(PLOT_COLORS)]
            for stat, style in (("AVG", "-"), ("P99", "--")):
                points = [(row.batch_size, row.figure(f"{what}.{stat}")) for row in rows]
                points = [(x, y) for x, y in points if y is not None]
                if points:
                    xs, ys = zip(*points)
                    ax.plot(xs, ys, marker="o", linestyle=style, color=color, label=plain(f"{name} {stat}"))
        sizes = sorted({row.batch_size for _, rows in lines for row in rows})
        if sizes and max(sizes) / min(sizes) >= 8:
            ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.set_xlabel("batch size (concurrent requests)")
        ax.set_ylabel(f"{what} (ms)")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        legend(ax, ncol=2)
        ax.set_title(f"{what} against batch size, one line per input length")

    return img_html(plots.render(draw), f"{what} against batch size")


def _llm_throughput_plot(plots: Plots, reports: Sequence[RunReport], labels: Sequence[str]) -> str:
    """Token throughput against TPOT: what a batch size buys in throughput and costs each request."""
    lines = _llm_lines(reports, labels)

    series = []
    for name, rows in lines:
        points = [(row.figure("TPOT.AVG"), row.token_throughput, row.batch_size) for row in rows]
        series.append((name, [p for p in points if p[0] is not None and p[1] is not None]))

    def draw(ax):
        for i, (name, points) in enumerate(series):
            if not points:
                continue
            xs, ys, _ = zip(*points)
            ax.plot(xs, ys, marker="o", color=PLOT_COLORS[i % len(PLOT_COLORS)], label=plain(name))
            for x, y, bs in points:
                ax.annotate(f"bs {bs}", (x, y), textcoords="offset points", xytext=(4, -10), fontsize="small")
        ax.set_xlabel("TPOT, average (ms per output token)")
        ax.set_ylabel("token throughput (tokens/s)")
        # From zero, with room beyond the furthest point for its label.
        ax.set_xlim(0, max((x for _, points in series for x, _, _ in points), default=0) * 1.15 or 1)
        ax.set_ylim(0, max((y for _, points in series for _, y, _ in points), default=0) * 1.12 or 1)
        ax.grid(True, alpha=0.3)
        legend(ax)
        ax.set_title("Token throughput against TPOT")

    return img_html(plots.render(draw), "Token throughput against TPOT")


def _llm_load_plot(plots: Plots, reports: Sequence[RunReport], labels: Sequence[str], what: str) -> str:
    """An open-loop sweep: TTFT or TPOT P99 against the requests per second served, with the SLO's limit."""
    series = []
    for r, label in zip(reports, labels):
        rows = sorted((row for row in r.llm_rows if row.ok and row.request_rate), key=lambda row: row.point)
        points = [(row.qps, row.figure(f"{what}.P99"), row.request_rate) for row in rows]
        limit = as_number((r.sections.get("Serving", {}).get("SLO") or {}).get(f"{what.lower()}_p99"))
        series.append((label, [p for p in points if p[0] is not None and p[1] is not None], limit))
    if not any(points for _, points, _ in series):
        return ""

    def draw(ax):
        for i, (label, points, limit) in enumerate(series):
            color = PLOT_COLORS[i % len(PLOT_COLORS)]
            if points:
                xs, ys, _ = zip(*points)
                ax.plot(xs, ys, marker="o", color=color, label=plain(label))
                for x, y, rate in points:
                    ax.annotate(f"{rate:g}/s", (x, y), textcoords="offset points", xytext=(4, -10), fontsize="small")
            if limit is not None:
                ax.axhline(limit, color=color, linestyle="--", label=plain(f"{label} SLO {what} P99 {limit:g} ms"))
        ax.set_xlabel("throughput (requests/s completed; labels: the offered rate)")
        ax.set_ylabel(f"{what} P99 (ms)")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        legend(ax)
        ax.set_title(f"{what} P99 against throughput over the rate sweep")

    return img_html(plots.render(draw), f"{what} P99 against throughput")


def _llm_plots(plots: Plots, reports: Sequence[RunReport], labels: Sequence[str]) -> str:
    return (
        _llm_latency_plot(plots, reports, labels, "TTFT")
        + _llm_latency_plot(plots, reports, labels, "TPOT")
        + _llm_throughput_plot(plots, reports, labels)
        + _llm_load_plot(plots, reports, labels, "TTFT")
        + _llm_load_plot(plots, reports, labels, "TPOT")
    )


LLM_NOTE = (
    "Latency in ms. TTFT counts from the request's arrival (queue and prefill); TPOT is llm_perf's (E2E - TTFT) "
    "/ (output tokens - 1) per request; ITL is every gap between tokens. In LLM rows QPS means requests per "
    "second, as in llm_perf."
)


def _llm_performance(report: RunReport) -> str:
    return f"<p>{escape(LLM_NOTE)}</p>" + table_html(llm_table("Performance per load point", report.llm_rows))


def _plots_section(plots: Plots, reports: Sequence[RunReport], labels: Sequence[str]) -> str:
    if any(r.llm_rows for r in reports):
        return _llm_plots(plots, reports, labels)
    if not any(r.performance for r in reports):
        return "<p>No performance rows in this report.</p>"
    return _qps_plot(plots, reports, labels) + _latency_plot(plots, reports, labels)


def render_run_html(report: dict, *, base_dir: Path | None = None) -> str:
    """One run's page. base_dir: where `Accuracy.Diff Dist` is looked up (the report's folder)."""
    typed = RunReport.from_dict(report)
    label = typed.run_id or typed.model or "report"
    plots = Plots()
    run = report.get("Run") if isinstance(report.get("Run"), dict) else {}
    report = _relative_paths(report, [root for root in (base_dir, REPO_ROOT) if root is not None])
    summary = {
        "Model": typed.model,
        "Backend": typed.backend,
        "Engine": typed.engine,
        "Dataset": typed.dataset,
        "Precision that ran": typed.precision_ran,
        "Weights": typed.weights_kind,
        "Report format": typed.schema or "ByteMLPerf",
        **{
            # ByteMLPerf names the file by the model's precision unless one was pinned: say which is which.
            ("Report named for precision" if k == "precision" else f"Run {k}"): v
            for k, v in run.items()
            if k != "command"
        },
        "Run command": command_line(run.get("command"), base_dir),
    }
    accuracy = report.get("Accuracy") if isinstance(report.get("Accuracy"), dict) else {}
    provenance = {
        "Weights": report.get("Weights"),
        "Dataset Provenance": accuracy.get("Dataset Provenance"),
        "Host": report.get("Host"),
        "Host Info": report.get("Host Info"),
        "Software": report.get("Software"),
    }
    # What a reader looks for first (the numbers) comes first; the full configuration closes the page.
    body = [
        f"<h1>perfbench report: {escape(typed.model or 'unnamed model')}</h1>",
        _banners(typed, label),
        _kv_table("Run", summary),
        "<h2>Performance</h2>",
        table_html(_perf_table(typed))
        if typed.performance
        else _llm_performance(typed)
        if typed.llm_rows
        else "<p>No performance rows.</p>",
        _plots_section(plots, [typed], [label]),
        _roofline_plot(plots, typed),
        _llm_roofline(plots, typed),
        _kv_table("Work per sample", report.get("Work")),
        _profile_tables(report.get("Profile")),
        _loadgen_table(typed),
        _kv_table("LoadGen Accuracy", report.get("LoadGen Accuracy")),
        _kv_table("Compile memory (MB)", typed.compile_memory),
        _selection_table(typed.graph_compile),
        "<h2>Accuracy and numeric diff</h2>",
        _kv_table("Accuracy", {k: v for k, v in accuracy.items() if k != "Dataset Provenance"})
        or "<p>No accuracy section.</p>",
        _diff_figure(plots, typed, label, base_dir),
        _kv_table("Dataset Throughput", report.get("Dataset Throughput")),
        "<h2>Provenance</h2>",
        *(_kv_table(k, v if isinstance(v, dict) else {k: v}) for k, v in provenance.items() if v),
        "<h2>Configuration</h2>",
        _kv_table("Graph Compile", report.get("Graph Compile")),
        _kv_table("Config", report.get("Config")),
    ]
    return page_html(f"perfbench: {typed.model or 'report'}", "".join(body))


def write_run_html(report: dict, path: Path, *, base_dir: Path | None = None) -> Path:
    """Write render_run_html atomically; Diff Dist is looked up next to `path` unless base_dir says otherwise."""
    path = Path(path)
    return atomic_write_text(path, render_run_html(report, base_dir=base_dir or path.parent))


def render_compare_html(
    reports: Sequence[dict],
    labels: Sequence[str] | None = None,
    *,
    threshold: float | None = None,
    base_dirs: Sequence[Path | None] | None = None,
) -> str:
    """Several reports as written, on the same plots, with the comparison tables, warnings and regressions."""
    norms = [RunReport.from_dict(r) for r in reports]
    labels = list(labels) if labels else [n.run_id or f"report {i + 1}" for i, n in enumerate(norms)]
    return comparison_html(build_comparison(norms, labels, threshold), base_dirs)


def comparison_html(cmp: Comparison, base_dirs: Sequence[Path | None] | None = None) -> str:
    """A comparison's page: its sides on the same plots, its tables, warnings and regressions."""
    norms, labels = cmp.reports, cmp.labels
    base_dirs = list(base_dirs) if base_dirs else [None] * len(norms)
    plots = Plots()
    notes = "".join(
        f'<li class="{escape(kind)}"><b>{escape(kind)}</b> {escape(line)}</li>' if kind else f"<li>{escape(line)}</li>"
        for kind, line in comparison_notes(cmp)
    )
    runs = TextTable(
        "Runs", ["label", "model", "backend", "engine", "precision", "weights", "host cpu", "device", "started"]
    )
    for label, n in zip(labels, norms):
        runs.rows.append(
            [
                Cell(label),
                *(
                    Cell(getattr(n, k) or "—")
                    for k in (
                        "model",
                        "backend",
                        "engine",
                        "precision_ran",
                        "weights_kind",
                        "host_cpu",
                        "host_device",
                        "started",
                    )
                ),
            ]
        )
    body = [
        f"<h1>perfbench comparison: {escape(' vs '.join(labels))}</h1>",
        *(_banners(n, label) for n, label in zip(norms, labels)),
        table_html(runs),
        f"<ul>{notes}</ul>" if notes else "",
        "<h2>Tables</h2>",
        *(table_html(t) for t in comparison_tables(cmp)),
        "<h2>Plots</h2>",
        _plots_section(plots, norms, labels),
        _bars_plot(plots, norms, labels, "quality", "Accuracy", log=False),
        _bars_plot(plots, norms, labels, "numeric", "Numeric diff vs reference", log=True),
        *(_diff_figure(plots, n, label, d) for n, label, d in zip(norms, labels, base_dirs)),
    ]
    return page_html("perfbench comparison", "".join(body))
