"""`python -m core.summary`: the leaderboard of every report under a folder, in the terminal, as
markdown or JSON, and with --html a dashboard page over every kept run."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from core.common.cli import prog, run_command
from core.common.errors import UserError
from core.reporting.leaderboard import collect, leaderboard_tables, to_json
from core.reporting.tables import render_text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog("core.summary", "summary"),
        description="The leaderboard of every report under a folder (the latest run of each model, hardware and\n"
        "precision), in the terminal, as markdown or as JSON; with --html, a dashboard page over every kept run.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "dir", nargs="?", type=Path, default=Path("reports"), metavar="DIR", help="reports folder (default: reports)"
    )
    parser.add_argument("--all", action="store_true", help="include every kept run, not only the latest")
    parser.add_argument(
        "--format",
        choices=("table", "markdown", "json"),
        default="table",
        help="table (the terminal), markdown or json",
    )
    parser.add_argument(
        "--html", type=Path, metavar="FILE", help="also write a dashboard page over every kept run (implies --all)"
    )
    parser.add_argument(
        "--threshold", default="5%", help="the dashboard flags regressions between consecutive runs beyond this"
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: _summary(args), debug=args.debug)


def _dashboard(args: argparse.Namespace) -> None:
    from core.common.atomic import atomic_write_text
    from core.reporting.compare import parse_threshold
    from core.reporting.dashboard import render_dashboard

    threshold = parse_threshold(args.threshold)
    groups, warnings = collect(args.dir, include_runs=True)
    page = render_dashboard(groups, warnings, args.html, root=args.dir, threshold=threshold)
    try:
        atomic_write_text(args.html, page)
    except OSError as err:
        raise UserError(f"cannot write: {err.strerror}", file=args.html, field="--html") from err
    print(f"dashboard: {sum(len(g.entries) for g in groups)} runs of {len(groups)} models")
    print(f"  {args.html}")


def _summary(args: argparse.Namespace) -> int:
    if args.html is not None:
        _dashboard(args)
    groups, warnings = collect(args.dir, args.all)
    if args.format == "json":
        sys.stdout.write(json.dumps(to_json(groups, warnings), indent=2) + "\n")
        return 0
    notes = [("warning", w) for w in warnings]
    if not groups:
        notes.append(("", f"no reports under {args.dir}"))
    sys.stdout.write(render_text(leaderboard_tables(groups), notes, args.format, color=sys.stdout.isatty()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
