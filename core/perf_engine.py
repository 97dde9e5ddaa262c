"""Command line: `python -m core.perf_engine --hardware_type CPU --task albert-torch-fp32`.

Heavy libraries (torch, transformers, onnxruntime) are imported only once a run starts, so help,
listings and input errors answer at once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.common.cli import EXIT_INTERRUPTED, prog, run_command, setup_logging
from core.common.errors import Interrupted, UserError

EXIT_BATCH_FAILED = 1  # the report is written; some batch sizes have no numbers


def _batch_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of integers, e.g. 1,4,8") from None
    if not sizes or any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError(f"'{text}': batch sizes must be positive integers, e.g. 1,4,8")
    return sorted(set(sizes))


def _minutes(text: str) -> float | str:
    if text.strip().lower() == "off":
        return "off"
    try:
        minutes = float(text)
    except ValueError:
        minutes = -1.0
    if not (minutes > 0 and minutes != float("inf")):
        raise argparse.ArgumentTypeError(f"'{text}' is not a positive number of minutes or 'off', e.g. 5 or 0.5")
    return minutes


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not (seconds >= 0 and seconds != float("inf")):
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds, e.g. 30")
    return seconds


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a positive integer")
    return value


def _rates(text: str) -> list[float]:
    try:
        rates = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        rates = []
    if not rates or not all(0 < rate < float("inf") for rate in rates):
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of positive rates, e.g. 0.5,1,2")
    return rates


def _slo(text: str) -> dict[str, float] | str:
    """`ttft_p99=2000,tpot_p99=100` (ms), or a preset's name; the workload's checks judge the names."""
    if "=" not in text:
        return text.strip()
    limits = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = part.partition("=")
        try:
            limits[key.strip().lower()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{part}' is not KEY=MS, e.g. ttft_p99=2000") from None
    return limits


def _precision(text: str) -> str:
    """auto, FP32, TF32, BF16, INT8, FP16; or, for LLM tasks, weights and activations apart."""
    from core.config.llm_precision import parse

    if text.lower() == "auto" or text.upper() in ("FP32", "TF32", "BF16", "INT8", "FP16"):
        return "auto" if text.lower() == "auto" else text.upper()
    try:
        return parse(text).label
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{err}; or TF32/INT8 for general_perf tasks") from None


def _scenarios(text: str) -> list[str]:
    from core.config.schema import scenario_names

    try:
        return scenario_names([part for part in text.split(",") if part.strip()])
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog("core.perf_engine", "run"),
        description="Run an inference workload: compile, check accuracy and numeric drift, measure "
        "throughput and latency per batch size, and write a JSON report.",
    )
    parser.add_argument(
        "--task", help="workload name from workloads/ (see --show_task_list) or a path to a .json/.yaml workload file"
    )
    parser.add_argument(
        "--hardware_type",
        "--hardware-type",
        dest="hardware_type",
        default="CPU",
        help="backend to run on (see --show_hardware_list); default CPU",
    )
    parser.add_argument(
        "--compile_only",
        "--compile-only",
        dest="compile_only",
        action="store_true",
        default=None,
        help="compile (export, optimize, cache) and stop before measuring",
    )
    parser.add_argument(
        "--show_task_list",
        "--show-task-list",
        dest="show_task_list",
        action="store_true",
        help="list the workloads and exit",
    )
    parser.add_argument(
        "--show_hardware_list",
        "--show-hardware-list",
        dest="show_hardware_list",
        action="store_true",
        help="list the hardware types (backend packages and plugins) and exit",
    )
    parser.add_argument(
        "--batch-sizes",
        "--batch_sizes",
        dest="batch_sizes",
        type=_batch_sizes,
        help="override the workload's batch sizes, e.g. 1,4",
    )
    parser.add_argument(
        "--data-path",
        "--data_path",
        dest="data_path",
        type=Path,
        help="dataset file or folder for accuracy checks (overrides the workload)",
    )
    parser.add_argument(
        "--output-dir",
        "--output_dir",
        dest="output_dir",
        type=Path,
        default=Path("reports"),
        help="where reports go: <dir>/<HW>/<model>/result-<precision>.json (default reports/)",
    )
    parser.add_argument(
        "--engine",
        help="pin the backend's engine (CPU: auto, onnxruntime, openvino, pytorch); default: the workload's, else auto",
    )
    parser.add_argument(
        "--precision",
        type=_precision,
        metavar="PRECISION",
        help="pin the precision: auto, FP32, TF32, BF16, INT8, FP16; LLM tasks name weights and activations apart "
        "('INT4 weights', 'Q8_0 weights, INT8 activations'); default: the workload's, else auto (fastest that "
        "passes the accuracy gate)",
    )
    parser.add_argument(
        "--scenario",
        type=_scenarios,
        help="run MLPerf LoadGen scenarios (SingleStream, MultiStream, Offline, Server; comma-separated) "
        "after the per-batch-size loop; overrides the workload's",
    )
    parser.add_argument(
        "--time-budget",
        "--time_budget",
        dest="time_budget_minutes",
        type=_minutes,
        metavar="MINUTES",
        help="the whole run (tuning, accuracy, measuring) within this many minutes, or 'off' for no budget; "
        "default: 10 when the workload sets no durations. A window it cuts says 'Stop Reason: time budget' "
        "(every client still gets one timed call)",
    )
    parser.add_argument(
        "--min-seconds",
        "--min_seconds",
        dest="min_seconds",
        type=_seconds,
        metavar="S",
        help="measure each batch size at least this long (more blocks: a tighter QPS interval on a drifting host)",
    )
    parser.add_argument(
        "--max-seconds",
        "--max_seconds",
        dest="max_seconds",
        type=_seconds,
        metavar="S",
        help="stop measuring a batch size after this long",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        default=None,
        help="after the timed windows, run a few calls under the engine's own profiler and report where the "
        "time went (report section Profile, raw trace under runs/<run id>-profile/)",
    )
    parser.add_argument(
        "--profile-batch-size",
        "--profile_batch_size",
        dest="profile_batch_size",
        type=int,
        metavar="BS",
        help="the batch size --profile profiles (default: the first measured)",
    )
    llm = parser.add_argument_group("LLM tasks (ByteMLPerf llm_perf's format)")
    llm.add_argument(
        "--input-tokens",
        "--input_tokens",
        dest="input_tokens",
        type=_batch_sizes,
        metavar="N[,N...]",
        help="override perf_config.input_tokens: prompt lengths in tokens, e.g. 128 or 128,512",
    )
    llm.add_argument(
        "--output-tokens",
        "--output_tokens",
        dest="output_tokens",
        type=_positive_int,
        metavar="N",
        help="override perf_config.output_tokens: new tokens per request",
    )
    llm.add_argument(
        "--layers",
        type=_positive_int,
        metavar="N",
        help="build N of the model's decoder layers, every shape unchanged (a model larger than this host); "
        "every figure is then marked as coming from the scaled model",
    )
    llm.add_argument(
        "--concurrency",
        type=_batch_sizes,
        metavar="C[,C...]",
        help="closed loop: sweep these concurrencies (llm_perf's batch sizes: the same thing)",
    )
    llm.add_argument(
        "--request-rate",
        "--request_rate",
        dest="request_rate",
        type=_rates,
        metavar="R[,R...]",
        help="open loop: sweep these request rates (per second, Poisson arrivals kept to whatever the engine does)",
    )
    llm.add_argument(
        "--burstiness",
        type=float,
        metavar="G",
        help="open loop: gamma shape of the inter-arrival times (1 Poisson, below 1 burstier)",
    )
    llm.add_argument(
        "--max-concurrency",
        "--max_concurrency",
        dest="max_concurrency",
        type=_positive_int,
        metavar="N",
        help="open loop: requests in flight at most (the engine's slots); the rest queue",
    )
    llm.add_argument(
        "--slo",
        type=_slo,
        metavar="ttft_p99=MS,tpot_p99=MS|PRESET",
        help="latency objectives (ttft/tpot/e2e _p50/_p90/_p99 in ms) or a preset: llama2-70b, "
        "llama2-70b-interactive, llama3.1-8b, llama3.1-8b-interactive (MLPerf's limits); adds goodput per point",
    )
    llm.add_argument(
        "--find-max-rate",
        "--find_max_rate",
        dest="find_max_rate",
        action="store_true",
        default=None,
        help="search the highest request rate whose P99s meet --slo, and report it with its evidence",
    )
    llm.add_argument(
        "--trust-remote-code",
        "--trust_remote_code",
        dest="trust_remote_code",
        action="store_true",
        help="run the modeling code in a local model folder (architectures transformers does not ship)",
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        help="never touch the network (also PERFBENCH_OFFLINE=1); missing assets fall back to synthetic/bundled",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.debug)
    return run_command(lambda: _main(args), debug=args.debug)


def _main(args: argparse.Namespace) -> int:
    import backends
    from core.config import registry

    if args.show_task_list:
        for group, tasks in registry.task_listing().items():
            print(f"{group}:")
            width = max(len(name) for name, _ in tasks)
            for name, line in tasks:
                print(f"  {name:<{width}}  {line}")
        return 0
    if args.show_hardware_list:
        for name in backends.hardware_types():
            note = backends.load_backend(name).listing_note()
            print(f"{name}  (unavailable here: {note})" if note else name)
        return 0
    if not args.task:
        raise UserError("no task given", fix="pass --task <name or workload file>; see --show_task_list")
    task = registry.load_task(args.task)
    backends.load_backend(args.hardware_type, field="--hardware_type")  # an unknown type lists the known ones
    _check_output_dir(args.output_dir)

    from core.run.runner import RunOptions, run_task

    options = RunOptions(
        hardware_type=args.hardware_type,
        output_dir=args.output_dir,
        batch_sizes=args.batch_sizes,
        compile_only=args.compile_only,
        data_path=args.data_path,
        engine=args.engine,
        precision=args.precision,
        offline=args.offline,
        debug=args.debug,
        scenario=args.scenario,
        time_budget_minutes=args.time_budget_minutes,
        min_seconds=args.min_seconds,
        max_seconds=args.max_seconds,
        profile=args.profile,
        profile_batch_size=args.profile_batch_size,
        input_tokens=args.input_tokens,
        output_tokens=args.output_tokens,
        layers=args.layers,
        trust_remote_code=args.trust_remote_code,
        concurrency=args.concurrency,
        request_rate=args.request_rate,
        burstiness=args.burstiness,
        max_concurrency=args.max_concurrency,
        slo=args.slo,
        find_max_rate=args.find_max_rate,
    )
    if not task.is_llm:
        for flag, value in (
            ("--input-tokens", args.input_tokens),
            ("--output-tokens", args.output_tokens),
            ("--layers", args.layers),
            ("--trust-remote-code", args.trust_remote_code or None),
            ("--concurrency", args.concurrency),
            ("--request-rate", args.request_rate),
            ("--burstiness", args.burstiness),
            ("--max-concurrency", args.max_concurrency),
            ("--slo", args.slo),
            ("--find-max-rate", args.find_max_rate),
        ):
            if value is not None:
                raise UserError("applies to LLM tasks only", field=flag, fix="drop it")
    try:
        if task.is_llm:
            from core.run.llm import run_llm_task

            report = run_llm_task(task, options)
        else:
            report = run_task(task, options)
    except Interrupted:
        print("terminated: partial report written", file=sys.stderr)
        return EXIT_INTERRUPTED
    failed = report.failed_batch_sizes
    if failed:
        print(f"batch sizes {', '.join(map(str, failed))} failed: see the report's Performance rows", file=sys.stderr)
        return EXIT_BATCH_FAILED
    return 0


def _check_output_dir(folder: Path) -> None:
    """Find a folder we cannot write before any work is done, not after an hour of measuring."""
    import tempfile

    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    fix = "pass --output-dir with a writable folder"
    if not existing.is_dir():
        raise UserError(f"{existing} is not a folder", file=folder, field="--output-dir", fix=fix)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as err:
        raise UserError(f"cannot write there: {err.strerror}", file=folder, field="--output-dir", fix=fix) from None


if __name__ == "__main__":
    sys.exit(main())
