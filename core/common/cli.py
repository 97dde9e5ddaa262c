"""The one way a command ends: bad input is one line and exit 2, Ctrl-C is exit 130, tracebacks only with --debug."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from core.common.errors import EXIT_USAGE, UserError

EXIT_INTERRUPTED = 130


def prog(module: str, subcommand: str) -> str:
    """How help names a command: `perfbench <subcommand>` when run as perfbench, else `python -m <module>`."""
    from pathlib import Path

    return f"perfbench {subcommand}" if Path(sys.argv[0]).name == "perfbench" else f"python -m {module}"


class OncePerRun(logging.Filter):
    """Lets each distinct log message through once: a run loads its dataset several times (gate, accuracy)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[str, int, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, record.getMessage())
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


def setup_logging(debug: bool) -> None:
    """Warnings (every message once) by default, everything with --debug."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(OncePerRun())


def run_command(body: Callable[[], int], *, debug: bool = False, interrupted: str = "interrupted") -> int:
    """Run a command's body; its UserError becomes one line on stderr and exit code 2."""
    try:
        return body()
    except UserError as err:
        if debug:
            raise
        from rich.markup import escape

        from core.common.console import errors

        # The message quotes untrusted text: never let it act as rich markup or terminal control codes.
        errors.print(f"[bold red]error:[/] {escape(str(err))}", markup=True, soft_wrap=True)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return EXIT_INTERRUPTED
