"""Terminal output: one rich console, progress bars, banners and the summary table."""

from __future__ import annotations

from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)
_said: set[str] = set()  # warnings and banners already shown in this process
_run_bar_active = False  # while the run's own bar shows (core.run.progress), stage bars stay quiet


# Messages carry untrusted text (file names, engine errors): printed literally, never as markup.


def info(message: str) -> None:
    # Unwrapped when not a terminal: a log keeps each message on one line, paths whole.
    console.print(escape(message), soft_wrap=not console.is_terminal)


def path_line(label: str, path: object) -> None:
    """A message naming a file: the path on a line of its own, never wrapped, so it can be copied."""
    console.print(escape(f"{label}:"))
    console.print(escape(f"  {path}"), soft_wrap=True)


def warn(message: str) -> None:
    """A warning, said once per run however often it happens."""
    if message in _said:
        return
    _said.add(message)
    console.print(f"[bold yellow]warning:[/] {escape(message)}", soft_wrap=not console.is_terminal)


def banner(message: str) -> None:
    """A loud, boxed notice, e.g. for synthetic weights (once per message)."""
    if message in _said:
        return
    _said.add(message)
    console.print(Panel(escape(message), style="bold red", expand=False))


def _bar(*extra: TextColumn) -> Progress:
    """Description, bar, percentage and time elapsed (then `extra`); off when output is not a terminal."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        *extra,
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


@contextmanager
def progress(description: str, total: float | None = None):
    """A progress bar; `advance(completed)` sets the position. Quiet when output is not a terminal, and
    while the run's own bar is showing (a terminal has room for one live display)."""
    if _run_bar_active:
        yield lambda completed: None
        return
    bar = _bar()
    with bar:
        task = bar.add_task(description, total=total)
        yield lambda completed: bar.update(task, completed=completed)


@contextmanager
def run_bar():
    """The run's one bar over all its stages: yields `update(description, done_seconds, total_seconds, left)`.
    Quiet when output is not a terminal; other bars stay quiet while it shows."""
    global _run_bar_active
    bar = _bar(TextColumn("{task.fields[left]}"))
    with bar:
        task = bar.add_task("", total=1.0, left="")
        _run_bar_active = True
        try:
            yield lambda description, done, total, left: bar.update(
                task, description=description, completed=done, total=max(total, 1e-9), left=left
            )
        finally:
            _run_bar_active = False


@contextmanager
def status(message: str):
    """A spinner for steps without a known length (export, fusion); a plain line when not a terminal or
    while the run's bar shows."""
    if console.is_terminal and not _run_bar_active:
        with console.status(message):
            yield
    else:
        console.print(message)
        yield
