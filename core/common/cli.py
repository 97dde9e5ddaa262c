"""The one way a command ends: bad input is one line and exit 2, Ctrl-C is exit 130, tracebacks only with --debug."""

from __future__ import annotations

import sys
from collections.abc import Callable

from core.common.errors import EXIT_USAGE, UserError

EXIT_INTERRUPTED = 130


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
