"""Terminal output: one rich console, progress bars, banners and the summary table."""

from __future__ import annotations

from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)


# Messages carry untrusted text (file names, engine errors): printed literally, never as markup.


def info(message: str) -> None:
    console.print(escape(message))


def warn(message: str) -> None:
    console.print(f"[bold yellow]warning:[/] {escape(message)}")


def banner(message: str) -> None:
    """A loud, boxed notice, e.g. for synthetic weights."""
    console.print(Panel(escape(message), style="bold red", expand=False))


@contextmanager
def progress(description: str, total: float | None = None):
    """A progress bar; `advance(completed)` sets the position. Quiet when output is not a terminal."""
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    with bar:
        task = bar.add_task(description, total=total)
        yield lambda completed: bar.update(task, completed=completed)


@contextmanager
def status(message: str):
    """A spinner for steps without a known length (export, fusion); silent when not a terminal."""
    if console.is_terminal:
        with console.status(message):
            yield
    else:
        console.print(message)
        yield


def performance_table(title: str, rows: list) -> Table:
    """The end-of-run table of PerfRows (core.reporting.schema)."""
    table = Table(title=title)
    for column in ("BS", "QPS", "AVG ms", "P50 ms", "P90 ms", "P99 ms", "Std ms", "Iters", "RSS MB", "Status"):
        table.add_column(column, justify="right")
    for row in rows:
        if row.ok:
            table.add_row(
                str(row.bs),
                *(
                    f"{value:.2f}"
                    for value in (
                        row.qps,
                        row.avg_latency,
                        row.p50_latency,
                        row.p90_latency,
                        row.p99_latency,
                        row.std_latency,
                    )
                ),
                str(row.iterations),
                f"{row.peak_rss_mb:.0f}" if row.peak_rss_mb is not None else "-",
                "ok" if row.warning is None else "few iters",
            )
        else:
            table.add_row(str(row.bs), "-", "-", "-", "-", "-", "-", "-", "-", f"[red]{row.status}[/]")
    return table
