"""Compare reports side by side: `python -m core.compare A B [C ...] [--threshold 5%]`.

A, B, ... are report files or run ids (kept under <reports-dir>/**/runs/). The first report is the
baseline: every other value is shown with its ratio to it. With --threshold, a QPS drop or a latency
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
from core.common.cli import run_command
from core.common.errors import UserError
from core.reporting.comparison import Comparison, build_comparison, comparison_notes, comparison_tables
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
    """Run ids where known, else <HW>/<model>/<file> or the argument; repeated labels get #2, #3."""
    labels: list[str] = []
    for r, arg in zip(reports, args):
        label = r.run_id or ("/".join(r.source.parts[-3:]) if r.source else arg)
        n, candidate = 1, label
        while candidate in labels:
            n += 1
            candidate = f"{label}#{n}"
        labels.append(candidate)
    return labels


def load_for_compare(args: Sequence[str], reports_dir: Path) -> tuple[list[dict], list[RunReport]]:
    """(as written, typed) reports for paths or run ids."""
    raw, typed = [], []
    for arg in args:
        data, report = read_report(resolve_report_path(arg, reports_dir))
        raw.append(data)
        typed.append(report)
    return raw, typed


def render(cmp: Comparison, raw: Sequence[dict], fmt_name: str, color: bool) -> str:
    if fmt_name == "json":
        return json.dumps(cmp.to_json(), indent=2) + "\n"
    if fmt_name == "html":
        from core.reporting.html_report import render_compare_html

        base_dirs = [r.source.parent if r.source else None for r in cmp.reports]
        return render_compare_html(raw, labels=cmp.labels, threshold=cmp.threshold, base_dirs=base_dirs)
    return render_text(comparison_tables(cmp), comparison_notes(cmp), fmt_name, color)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core.compare",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "reports", nargs="+", metavar="REPORT", help="report files or run ids; the first is the baseline (at least two)"
    )
    parser.add_argument(
        "--threshold",
        type=str,
        default=None,
        help="mark QPS drops / latency rises beyond this (e.g. 5%%) and exit 1 if any",
    )
    parser.add_argument("--format", choices=FORMATS, default="table")
    parser.add_argument("--output", type=Path, default=None, help="write here instead of standard output")
    parser.add_argument("--reports-dir", type=Path, default=Path("reports"), help="where run ids are looked up")
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
    return EXIT_REGRESSION if cmp.regressions else 0


if __name__ == "__main__":
    sys.exit(main())
