"""Download, verify and install a task's model and dataset assets.

    python -m core.prepare --task albert-torch-fp32            # install what is missing
    python -m core.prepare --list                              # every task's assets and their state
    python -m core.prepare --task albert-torch-fp32 --offline  # report only, never touch the network

Exit codes: 0 all assets usable, 1 some missing (e.g. offline), 2 bad input or a failed download/check.
--list without --task shows every task; one that cannot run here is marked `unsupported` (with why) and
does not change the exit code.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.common.cli import prog, run_command, setup_logging
from core.common.errors import UserError
from core.common.paths import REPO_ROOT

EXIT_MISSING = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog("core.prepare", "prepare"),
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Environment: PERFBENCH_BASE_URL replaces the archive host; "
        "PERFBENCH_OFFLINE=1 or HF_HUB_OFFLINE=1 means --offline; "
        "HF_HOME places the Hugging Face cache.",
    )
    parser.add_argument(
        "--task",
        action="append",
        metavar="TASK",
        help="task name or workload file (repeatable); with --list, defaults to every task",
    )
    parser.add_argument(
        "--list", action="store_true", help="show assets and whether present and verified; install nothing"
    )
    parser.add_argument(
        "--verify", action="store_true", help="with --list: re-hash installed files (slow for big models)"
    )
    parser.add_argument("--offline", action="store_true", help="never touch the network; report what is missing")
    parser.add_argument(
        "--base-url",
        metavar="URL",
        help="archive host replacing {base_url} (default: $PERFBENCH_BASE_URL or ByteMLPerf's)",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    return parser


def task_assets(task) -> list:
    """The model's assets followed by its dataset's, each name once; `task` is a name, a file or a loaded Task."""
    from core.config import registry

    loaded = registry.load_task(task) if isinstance(task, str) else task
    specs = list(loaded.model.assets)
    if loaded.model.dataset_name:
        specs += registry.dataset_assets(loaded.model.dataset_name)
    unique: dict[str, object] = {}
    for spec in specs:
        if spec.name in unique and unique[spec.name] != spec:
            raise UserError(
                f"two different assets are named '{spec.name}'",
                file=loaded.model_file,
                field="assets",
                fix="give each distinct asset its own name",
            )
        unique.setdefault(spec.name, spec)
    return list(unique.values())


def _table(title: str, rows: list[tuple[str, ...]]):
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title)
    for column in ("task", "asset", "kind", "state", "where / note"):
        table.add_column(column, overflow="fold")
    style = {
        "present": "green",
        "installed": "green",
        "unverified": "yellow",
        "modified": "red",
        "missing": "red",
        "unsupported": "magenta",
    }
    for task, name, kind, state, note in rows:
        # Text, never markup: names, paths and error messages may hold '[' (and '-' made '[]-[/]' a markup error).
        table.add_row(Text(task), Text(name), Text(kind), Text(state, style=style.get(state, "")), Text(note))
    return table


def _shown(path: Path | None, root: Path) -> str:
    if path is None:
        return ""
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def run(args: argparse.Namespace, root: Path) -> int:
    from rich.console import Console

    from core.assets import asset_status, ensure_assets, resolve_base_url
    from core.config import registry

    if not args.task and not args.list:
        raise UserError("nothing to do", field="--task", fix="give --task NAME (repeatable) or --list")
    if args.verify and not args.list:
        raise UserError("--verify only applies to --list", field="--verify", fix="add --list")
    resolve_base_url(args.base_url)  # bad input is reported before any work
    tasks = args.task or registry.task_names()
    console = Console()
    rows, missing, unsupported = [], 0, []
    for task in tasks:
        try:
            loaded = registry.load_task(task)
        except UserError as err:
            if args.task:  # a task asked for by name: bad input, exit 2
                raise
            # Listing every task: one that cannot load here (e.g. an unknown dataset) is shown, not fatal.
            rows.append((task, "-", "-", "unsupported", str(err)))
            unsupported.append(task)
            continue
        specs = task_assets(loaded)
        if args.list:
            statuses = [asset_status(spec, root=root, deep=args.verify) for spec in specs]
        else:
            statuses = ensure_assets(specs, allow_network=not args.offline, base_url=args.base_url, root=root)
        for spec, status in zip(specs, statuses):
            rows.append((task, spec.name, spec.kind, status.state, status.message or _shown(status.path, root)))
            missing += not status.usable
        if not specs:
            rows.append((task, "-", "-", "-", "no assets declared"))
    console.print(_table("assets" if args.list else "prepared assets", rows))
    if missing:
        console.print(f"{missing} asset(s) not usable; the notes say why", markup=False)
    if unsupported:
        console.print(
            f"{len(unsupported)} task(s) cannot run here (see their notes): {', '.join(unsupported)}",
            markup=False,
            highlight=False,
        )
    return EXIT_MISSING if missing else 0


def main(argv: list[str] | None = None, *, root: Path = REPO_ROOT) -> int:
    """`root`: the repository the assets install into (tests pass a temporary one)."""
    args = build_parser().parse_args(argv)
    setup_logging(args.debug)
    return run_command(
        lambda: run(args, root), debug=args.debug, interrupted="interrupted; a partial download resumes on the next run"
    )


if __name__ == "__main__":
    sys.exit(main())
