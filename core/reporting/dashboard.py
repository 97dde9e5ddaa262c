"""One self-contained page over every report under a folder: the leaderboard, each model's QPS (an LLM's
token throughput) over time per host, regressions between consecutive runs (compare's rule), LoadGen
verdicts, and a link to each run's own page. No network: CSS inline, plots as PNG data, the same
Content-Security-Policy as the run pages.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from core.reporting.comparison import build_comparison
from core.reporting.html_report import PLOT_COLORS, Plots, escape, img_html, legend, page_html, plain, table_html
from core.reporting.leaderboard import (
    Entry,
    ModelGroup,
    accuracy_text,
    leaderboard_tables,
    llm_accuracy_text,
    loadgen_text,
)
from core.reporting.tables import Cell, TextTable, fmt

DEFAULT_THRESHOLD = 0.05


def series_key(entry: Entry) -> tuple[str, str, str, str]:
    """Runs that form one history: same hardware type, host, engine and precision."""
    return (
        entry.hardware or "—",
        entry.host or "unknown host",
        entry.engine or entry.backend or "—",
        entry.precision or "—",
    )


def _when(entry: Entry) -> datetime | None:
    try:
        return datetime.fromisoformat(entry.date or "")
    except ValueError:
        return None


def histories(group: ModelGroup) -> dict[tuple[str, str, str, str], list[Entry]]:
    """Each history's runs, oldest first (runs without a readable date are left out of the time axis)."""
    found: dict[tuple[str, str, str, str], list[Entry]] = {}
    for entry in group.entries:
        if _when(entry) is not None:
            found.setdefault(series_key(entry), []).append(entry)
    for runs in found.values():
        runs.sort(key=lambda e: (_when(e).timestamp(), e.run_id or ""))
    return found


def regressions(group: ModelGroup, threshold: float) -> list[tuple[Entry, Entry, list[str]]]:
    """(earlier run, later run, compare's findings) for each consecutive pair of a history that regressed."""
    found = []
    for runs in histories(group).values():
        for before, after in zip(runs, runs[1:]):
            if before.report is None or after.report is None:
                continue
            label = after.run_id or "later"
            cmp = build_comparison([before.report, after.report], [before.run_id or "earlier", label], threshold)
            if cmp.regressions:
                found.append((before, after, [r.message.removeprefix(f"{label}: ") for r in cmp.regressions]))
    return found


def _qps_over_time(plots: Plots, group: ModelGroup) -> str:
    """QPS per batch size over time (an LLM model's: token throughput per load point), one line per host."""
    names = list(dict.fromkeys(name for e in group.entries for name in e.series))
    lines = [
        (key, name, [(_when(e), e.series[name]) for e in runs if name in e.series])
        for key, runs in histories(group).items()
        for name in names
    ]
    lines = [(key, name, points) for key, name, points in lines if points]
    if not lines:
        return ""
    what, unit = ("token throughput", "tokens/s") if group.is_llm else ("QPS", "samples/s")

    def draw(ax):
        for i, (key, name, points) in enumerate(lines):
            hardware, host, engine, precision = key
            xs, ys = zip(*points)
            ax.plot(
                xs,
                ys,
                marker="o",
                color=PLOT_COLORS[i % len(PLOT_COLORS)],
                label=plain(f"{hardware} {host} {engine} {precision} {name}"),
            )
        ax.set_ylabel(f"{what} ({unit})")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        time_axis(ax, [x for _, _, points in lines for x, _ in points])
        legend(ax)
        point = "load point" if group.is_llm else "batch size"
        ax.set_title(plain(f"{group.model}: {what} over time, one line per host and {point}"))

    return img_html(plots.render(draw, size=(9, 4.6)), f"{group.model}: {what} over time")


def time_axis(ax, times: list[datetime | None]) -> None:
    """Dates on the x axis; a single point in time shows its own day (matplotlib would span years around it)."""
    known = {t for t in times if t is not None}
    if len(known) == 1:
        from datetime import timedelta

        from matplotlib.dates import DateFormatter

        (when,) = known
        ax.set_xlim(when - timedelta(hours=12), when + timedelta(hours=12))
        ax.set_xticks([when])
        ax.xaxis.set_major_formatter(DateFormatter("%Y-%m-%d %H:%M"))
    ax.tick_params(axis="x", labelrotation=30)


def _runs_table(group: ModelGroup, links: dict[str, str]) -> str:
    best = "best tokens/s" if group.is_llm else "best QPS"
    table = TextTable(
        f"{group.model}: every run",
        ["date", "hardware", "host", "engine/precision", "weights", "LoadGen", "accuracy", best, "page"],
        text_columns=7,
    )
    for entry in sorted(group.entries, key=lambda e: e.date or "", reverse=True):
        table.rows.append(
            [
                Cell(entry.date or "—"),
                Cell(entry.hardware or "—"),
                Cell(entry.host or "—"),
                Cell(f"{entry.engine or entry.backend or '—'} {entry.precision or ''}".strip()),
                Cell(entry.weights_kind or "—", bad=entry.weights_kind == "synthetic"),
                Cell(loadgen_text(entry.loadgen), bad=any(v.result == "INVALID" for v in entry.loadgen.values())),
                Cell(
                    llm_accuracy_text(entry.report)
                    if group.is_llm
                    else accuracy_text(entry.accuracy, entry.report.published_differences if entry.report else None)
                ),
                Cell(fmt(entry.best_qps) if entry.qps else fmt(entry.best_tokens) if entry.tokens else "—"),
                Cell(entry.run_id or Path(entry.source).name, href=links.get(entry.source)),
            ]
        )
    return table_html(table)


def run_page_links(groups: Sequence[ModelGroup], out: Path) -> dict[str, str]:
    """source report -> its HTML page (the JSON itself where it has none, as ByteMLPerf's reports), relative
    to the dashboard's folder."""
    links = {}
    for group in groups:
        for entry in group.entries:
            source = Path(entry.source)
            page = source.with_suffix(".html")
            target = page if page.is_file() else source
            links[entry.source] = Path(os.path.relpath(target.resolve(), out.parent.resolve())).as_posix()
    return links


def render_dashboard(
    groups: Sequence[ModelGroup],
    warnings: Sequence[str],
    out: Path,
    *,
    root: Path,
    threshold: float = DEFAULT_THRESHOLD,
) -> str:
    plots = Plots()
    links = run_page_links(groups, out)
    body = [
        f"<h1>perfbench dashboard: {escape(root)}</h1>",
        f"<p>{sum(len(g.entries) for g in groups)} runs of {len(groups)} models. Regressions are compare's rule "
        f"between consecutive runs of one host, engine and precision: beyond {threshold:.0%}.</p>",
    ]
    found = [(group, r) for group in groups for r in regressions(group, threshold)]
    if found:
        items = "".join(
            f'<li class="bad"><b>{escape(g.model)}</b> {escape(after.hardware or "")} {escape(after.host or "")}: '
            f"{escape(before.date)} → {escape(after.date)} ({escape(after.run_id or after.source)}): "
            f"{escape('; '.join(messages))}</li>"
            for g, (before, after, messages) in found
        )
        body.append(f"<h2>Regressions</h2><ul>{items}</ul>")
    else:
        body.append("<h2>Regressions</h2><p>None between consecutive runs.</p>")
    body.append("<h2>Leaderboard</h2>" + "".join(table_html(t) for t in leaderboard_tables(groups)))
    for group in groups:
        body += [f"<h2>{escape(group.model)}</h2>", _qps_over_time(plots, group), _runs_table(group, links)]
    if warnings:
        body.append("<h2>Skipped files</h2><ul>" + "".join(f"<li>{escape(w)}</li>" for w in warnings) + "</ul>")
    return page_html("perfbench dashboard", "".join(body))
