"""Compare reports side by side: `python -m core.compare A B [C ...] [--threshold 5%]`.

A, B, ... are report files or run ids (kept under <reports-dir>/**/runs/); `A1,A2,A3` is one side made of
several runs of one configuration: their mean, with a QPS interval and a test over the runs, which on a
noisy machine tell changes apart that one run per side cannot. The first side is the baseline: every other
value is shown with its ratio to it. With --threshold, a QPS drop or a latency
rise beyond it (or a batch size that failed where the baseline ran) is a regression and the exit code
is 1. Bad input exits 2 with one line.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from core.common.atomic import atomic_write_text
from core.common.cli import prog, run_command
from core.common.errors import UserError
from core.reporting.comparison import Comparison, build_comparison, comparison_notes, comparison_tables
from core.reporting.pooled import pool_runs
from core.reporting.report import RunReport
from core.reporting.report_io import read_report, resolve_report_path
from core.reporting.tables import render_text

EXIT_REGRESSION = 1
FORMATS = ("table", "markdown", "json", "html")


def parse_threshold(text: str) -> float:
    """'5%' or '5' mean five percent; returned as a fraction."""
    try:
        value = float(text.strip().rstrip("%"))
    except ValueError:
        value = -1.0
    if not 0 <= value < 100:
        raise UserError(f"{text!r} is not a percentage in [0, 100)", field="--threshold", fix="e.g. --threshold 5%")
    return value / 100


def unique_labels(reports: Sequence[RunReport], args: Sequence[str]) -> list[str]:
    """Run ids where known, else <HW>/<model>/<file> or the argument (a pooled side: its first run's, with
    how many it pools); repeated labels get #2, #3."""
    labels: list[str] = []
    for r, arg in zip(reports, args):
        label = r.run_id or ("/".join(r.source.parts[-3:]) if r.source else arg)
        if r.repeats:
            label += f" (mean of {len(r.repeats)})"
        n, candidate = 1, label
        while candidate in labels:
            n += 1
            candidate = f"{label}#{n}"
        labels.append(candidate)
    return labels


def load_sides(args: Sequence[str], reports_dir: Path) -> list[RunReport]:
    """A typed report per argument (a path or run id); comma-joined ones make one side pooling those runs."""
    sides = []
    for arg in args:
        parts = [arg] if Path(arg).is_file() else [part for part in arg.split(",") if part.strip()]
        if not parts:
            raise UserError("names no report", field=f"REPORT {arg!r}", fix="give report files or run ids")
        runs = [read_report(resolve_report_path(part.strip(), reports_dir))[1] for part in parts]
        sides.append(pool_runs(runs, arg))
    return sides


def render(cmp: Comparison, fmt_name: str, color: bool) -> str:
    if fmt_name == "json":
        return json.dumps(cmp.to_json(), indent=2) + "\n"
    if fmt_name == "html":
        from core.reporting.html_report import comparison_html

        return comparison_html(cmp, base_dirs=[r.source.parent if r.source else None for r in cmp.reports])
    return render_text(comparison_tables(cmp), comparison_notes(cmp), fmt_name, color)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog("core.compare", "compare"),
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "reports",
        nargs="+",
        metavar="REPORT",
        help="report files or run ids (A1,A2,... : several runs as one side); the first is the baseline (two at least)",
    )
    parser.add_argument(
        "--threshold",
        type=str,
        default=None,
        help="exit 1 on a QPS drop or latency rise beyond this (e.g. 5%%) that the test of noise also calls "
        "slower (or that no samples can test), or a batch size that failed where the baseline ran",
    )
    parser.add_argument(
        "--format", choices=FORMATS, default="table", help="table (the terminal), markdown, json or html"
    )
    parser.add_argument("--output", type=Path, default=None, help="write here instead of standard output")
    parser.add_argument(
        "--reports-dir", type=Path, default=Path("reports"), help="where run ids are looked up (default reports/)"
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: _compare(args), debug=args.debug)


def _compare(args: argparse.Namespace) -> int:
    if len(args.reports) < 2:
        raise UserError(
            "give at least two reports to compare", field="REPORT", fix="python -m core.compare BASELINE OTHER [...]"
        )
    threshold = parse_threshold(args.threshold) if args.threshold is not None else None
    sides = load_sides(args.reports, args.reports_dir)
    cmp = build_comparison(sides, unique_labels(sides, args.reports), threshold)
    text = render(cmp, args.format, color=args.output is None and sys.stdout.isatty())
    if args.output is None:
        sys.stdout.write(text)
    else:
        try:
            atomic_write_text(args.output, text)
        except OSError as err:
            raise UserError(f"cannot write: {err.strerror}", file=args.output, field="--output") from err
    return EXIT_REGRESSION if cmp.regressions else 0


if __name__ == "__main__":
    sys.exit(main())
