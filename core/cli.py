"""`perfbench`: one command with subcommands, each the module entry point it names (same flags, same exit codes).

    perfbench run --task albert-torch-fp32          # python -m core.perf_engine
    perfbench compare A.json B.json --threshold 5%  # python -m core.compare
    perfbench summary reports/ --html dash.html     # python -m core.summary
    perfbench sweep sweep.yaml                      # python -m core.sweep
    perfbench prepare --task albert-torch-fp32      # python -m core.prepare
    perfbench evaluate squad|glue ...               # the official SQuAD v1.1 / GLUE scorers

Nothing heavy is imported here: a subcommand's module is imported only once it is chosen.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# subcommand -> (module with main(argv), one line of what it does)
COMMANDS = {
    "run": ("core.perf_engine", "run a workload: compile, check accuracy, measure, write a report"),
    "compare": ("core.reporting.compare", "compare reports side by side; --threshold exits 1 on a regression"),
    "summary": ("core.reporting.summary", "leaderboard of a reports folder; --html writes the dashboard"),
    "sweep": ("core.fleet.sweep", "run tasks x hardware types, here or on a Ray cluster"),
    "prepare": ("core.prepare", "download and verify a task's real model files and datasets"),
    "evaluate": (None, "score predictions with the official metrics: evaluate squad ... | evaluate glue ..."),
}
EVALUATORS = {"squad": "datasets.open_squad.evaluate", "glue": "datasets.glue.evaluate"}


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("perfbench")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    commands = "\n".join(f"  {name:<9} {what}" for name, (_, what) in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="perfbench",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Configuration-driven inference benchmarks: how fast a model runs on this hardware and\n"
        f"software stack, and whether it still gives the right answers.\n\ncommands:\n{commands}",
        epilog="Each command has its own --help. The module entry points (python -m core.perf_engine, ...)\n"
        "work the same.",
    )
    parser.add_argument("--version", action="version", version=f"perfbench {_version()}")
    parser.add_argument("command", choices=list(COMMANDS), metavar="COMMAND", help="one of the commands above")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv[:1])  # the subcommand parses the rest, its --help included
    rest = argv[1:]
    if args.command == "evaluate":
        return _evaluate(rest)
    module = importlib.import_module(COMMANDS[args.command][0])
    return module.main(rest)


def _evaluate(rest: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="perfbench evaluate", description=COMMANDS["evaluate"][1])
    parser.add_argument("metric", choices=list(EVALUATORS), help="squad: SQuAD v1.1 EM/F1; glue: GLUE's metrics")
    if not rest or rest[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if rest else 2
    chosen = parser.parse_args(rest[:1]).metric
    return importlib.import_module(EVALUATORS[chosen]).main(rest[1:])


if __name__ == "__main__":
    sys.exit(main())
