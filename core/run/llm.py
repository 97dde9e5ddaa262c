"""An LLM task as a run: describe -> weights (checkpoint or synthetic, --layers) -> size check -> reference
and accuracy against the CPU FP32 reference -> each load point served and timed -> report.

The same report, writer and guard as every run: an interrupted run keeps the points it measured.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from backends import load_backend
from core.common import console
from core.common.errors import UserError
from core.config import llm_precision
from core.config.llm_precision import file_name
from core.config.overrides import LLM_FLAGS, apply_llm_overrides
from core.config.registry import Task
from core.model.llm import BYTES, SYNTHETIC_NOTE, LlmSource, build_model, check_fits, footprint, resolve_llm_source
from core.reporting.llm_tables import print_llm_table
from core.reporting.report import RunReport
from core.reporting.sections import Accuracy, GraphCompile, Weights
from core.run.context import RunContext, RunOptions
from core.run.runner import describe, guarded

TRANSFORMERS_NOTE = "static KV cache, one slot per request, each at its own position"


@dataclass(frozen=True)
class Point:
    tp_size: int
    batch_size: int
    input_tokens: int
    output_tokens: int
    rate: float | None = None  # requests per second, open loop; None: a closed loop of batch_size clients


def llm_engines() -> list[str]:
    """auto, transformers and the CPU backend's converting engines."""
    from core.run.llm_select import cpu_engines

    return ["auto", "transformers", *(backend.NAME for backend in cpu_engines())]


def llm_overrides(options: RunOptions) -> dict:
    """The command line's values for an LLM task; a flag that does not apply is refused by name."""
    names = {
        "batch_sizes": options.batch_sizes,
        "input_tokens": options.input_tokens,
        "output_tokens": options.output_tokens,
        "layers": options.layers,
        "precision": options.precision,
        "engine": options.engine,
        "time_budget_minutes": options.time_budget_minutes,
        "trust_remote_code": options.trust_remote_code or None,
        "concurrency": options.concurrency,
        "request_rate": options.request_rate,
        "burstiness": options.burstiness,
        "max_concurrency": options.max_concurrency,
        "slo": options.slo,
        "find_max_rate": options.find_max_rate,
        "loadgen_scenarios": options.scenario,
        "profile": options.profile,
    }
    if options.batch_sizes and options.concurrency:
        raise UserError("--batch-sizes and --concurrency are one thing", field="--concurrency", fix="give one")
    if options.scenario and not set(options.scenario) <= {"Server", "Offline"}:
        raise UserError("LLM tasks run LoadGen's Server and Offline", field="--scenario", fix="use Server, Offline")
    for name, flag in (
        ("data_path", "--data-path"),
        ("min_seconds", "--min-seconds"),
        ("max_seconds", "--max-seconds"),
        ("compile_only", "--compile-only"),
        ("profile_batch_size", "--profile-batch-size"),
    ):
        if getattr(options, name) is not None:
            raise UserError("does not apply to LLM tasks", field=flag, fix="drop it; perf_time bounds each point")
    return {name: value for name, value in names.items() if value is not None and name in LLM_FLAGS}


def run_llm_task(task: Task, options: RunOptions) -> RunReport:
    overrides = llm_overrides(options)
    task = apply_llm_overrides(task, overrides)
    workload = task.workload
    spec = load_backend(options.hardware_type)
    if spec.llm_device is None:
        raise UserError(f"the {spec.name} backend runs no LLM tasks", field="--hardware_type", fix="use CPU or GPU")
    engine = workload.engine or "auto"
    engines = llm_engines()
    if engine not in engines:
        raise UserError(
            f"unknown LLM engine '{engine}'", file=task.workload_file, field="engine", fix=f"use {', '.join(engines)}"
        )
    if engine not in ("auto", "transformers") and not workload.test_accuracy:
        raise UserError(f"engine {engine} needs test_accuracy (its gate)", file=task.workload_file, field="engine")
    config = spec.make_config(None, workload.engine_options, source=task.workload_file)
    unavailable = spec.unavailable(config)
    if unavailable:
        raise UserError(f"the {spec.name} backend cannot run here: {unavailable}", field="--hardware_type")
    precision = workload.precision or "auto"
    report = RunReport(
        model=task.workload_file.stem,
        backend=spec.name,
        dataset=workload.accuracy_config.dataset if workload.test_accuracy else None,
        precision=_model_precision(task.model) if precision == "auto" else file_name(precision),
    )
    report.sections["Kind"] = "llm"
    run = RunContext(task, options, spec, config, precision, report, batch_sizes=list(workload.batch_sizes))
    return guarded(report, options, lambda: _stages(run, overrides))


def _stages(run: RunContext, overrides: dict) -> None:
    describe(run, overrides)
    workload, report = run.workload, run.report
    source = resolve_llm_source(
        run.model,
        run.task.model_file,
        layers=workload.layers,
        seed=workload.seed,
        trust_remote_code=workload.trust_remote_code,
    )
    report.weights = Weights.from_dict(source.report_entry())
    for note in source.notes:
        report.notes.append(note)
        console.info(note)
    label = run.model.model_name + (f" ({source.scaled}: every figure is of the scaled model)" if source.scaled else "")
    if source.synthetic:
        console.banner(f"{label}: {SYNTHETIC_NOTE}")
    else:
        console.info(f"weights: {source.path}" + (f" ({source.scaled})" if source.scaled else ""))
    precision = _precision(run)
    points = _points(run, source)
    slots = max(p.batch_size for p in points)
    max_len = max(p.input_tokens + p.output_tokens for p in points)
    plain = precision in BYTES  # else a weight-only label: an engine converts the FP32 weights
    if not plain and not workload.test_accuracy:
        raise UserError(
            f"--precision {precision} is run by a converted engine, chosen behind the accuracy gate",
            field="test_accuracy",
            fix="set test_accuracy to true in the workload, or pin FP32/BF16",
        )
    reference = workload.test_accuracy and precision != "FP32"
    device = run.spec.llm_device(run.config)
    _threads(run)
    fp = footprint(source, precision if plain else "FP32", reference, slots, max_len)
    check_fits(fp, _available_bytes(device), run.task.model_file, source.scaled, source.full_layers)
    started = time.perf_counter()
    module = build_model(
        source, workload.seed, "FP32" if reference else precision, trust_remote_code=workload.trust_remote_code
    )
    module.to(device)
    build_seconds = time.perf_counter() - started
    console.info(f"model: {source.architecture}, {_count(fp.parameters)} parameters, built in {build_seconds:.1f} s")
    selection, engine, artifact_mb = None, "transformers", None
    weight_bytes, optimizations = BYTES.get(precision, 4), TRANSFORMERS_NOTE
    if workload.test_accuracy:
        from core.run.llm_select import candidates, select

        def rebuild():
            return build_model(source, workload.seed, "FP32", trust_remote_code=workload.trust_remote_code).to(device)

        tried = candidates(run, precision)
        choice = select(module, tried, points[0], run, source, rebuild)
        module, engine, precision, selection = choice.model, choice.engine, choice.precision, choice.selection
        artifact_mb, weight_bytes = choice.artifact_mb, choice.rounding.bytes_per_weight
        optimizations = choice.optimizations or TRANSFORMERS_NOTE
        report.accuracy = Accuracy.from_dict(choice.accuracy)
        report.precision = file_name(precision)
        if len(tried) > 1:
            report.notes.append(f"engine auto: {selection.chosen}: {selection.reason}")
            console.info(f"engine: {selection.chosen} ({selection.reason})")
    elif precision != "FP32":
        module.to(_dtype(precision))
    report.graph_compile = GraphCompile.from_dict(
        {
            "Compile Duration": round(build_seconds, 3),
            "Compile Precision": precision,
            "Engine": engine,
            "Optimizations": [optimizations],
            "Parameters": fp.parameters,
            "Weights MB": round(fp.parameters * weight_bytes / 2**20, 1),
            **({"Artifact Size MB": artifact_mb} if artifact_mb is not None else {}),
        }
    )
    report.graph_compile.engine_selection = selection
    if workload.test_perf:
        from core.run.llm_roofline import prepare

        roof = prepare(run, source, precision, weight_bytes, module)
        _measure(run, module, points, source, roof)
        if workload.profile:
            from core.run.llm_profile import profile_llm

            profile_llm(run, module, engine, points, roof)
    else:
        report.notes.append("test_perf is false: performance not measured")
    if report.llm_rows:
        scaled = f", {source.scaled}" if source.scaled else ""
        print_llm_table(f"{run.model.model_name} on {run.spec.name} ({precision}{scaled})", report.llm_rows)


def _threads(run: RunContext) -> None:
    """The backend's thread setting (CPU: engine_options.intra_op_threads, one per usable core by default),
    applied to torch and recorded: a tiny model on a busy host runs far faster on one thread."""
    import torch

    threads = getattr(run.config, "intra_op_threads", None)
    if threads:
        torch.set_num_threads(int(threads))
    run.report.sections["Runtime"] = {"engine": "transformers", "threads": torch.get_num_threads()}


def _model_precision(model) -> str:
    """ByteMLPerf's convention: the report is named for the model's precision unless one is pinned
    (Graph Compile's Compile Precision says what ran)."""
    dtype = str(model.network.get("torch_dtype") or "float32")
    return {"bfloat16": "BF16", "float16": "FP16"}.get(dtype, "FP32")


def _precision(run: RunContext) -> str:
    """The activation precision: pinned, or auto (BF16 where the hardware runs it natively, else FP32)."""
    if run.precision != "auto":
        return llm_precision.parse(run.precision).label
    if run.spec.name == "CPU":
        from core.measure.host import cpu_isa

        chosen = "BF16" if cpu_isa().bf16 else "FP32"
        reason = "native BF16 on this CPU" if chosen == "BF16" else "no native BF16 on this CPU"
    else:
        chosen, reason = "BF16", "an accelerator"
    run.report.notes.append(f"precision auto: {chosen} ({reason})")
    console.info(f"precision: {chosen} ({reason})")
    return chosen


def _points(run: RunContext, source: LlmSource) -> list[Point]:
    perf = run.workload.perf_config
    limit = int(getattr(source.config, "max_position_embeddings", 0) or 0)
    for length in perf.input_tokens:
        if limit and length + perf.output_tokens > limit:
            raise UserError(
                f"{length} input + {perf.output_tokens} output tokens exceed the model's {limit} positions",
                file=run.task.workload_file,
                field="perf_config.input_tokens",
                fix=f"keep input + output tokens within {limit}",
            )
    devices = 1
    skipped = [tp for tp in perf.tp_sizes if tp > devices]
    tps = [tp for tp in perf.tp_sizes if tp <= devices] or [1]
    if skipped:
        note = f"TP sizes {', '.join(map(str, skipped))} skipped: this host has {devices} device"
        if 1 not in perf.tp_sizes:
            note += "; TP 1 runs instead"
        run.report.notes.append(note)
        console.info(note)
    from core.run.llm_load import rates, shapes

    return [
        Point(tp, bs, tokens_in, tokens_out, rate)
        for tp in tps
        for rate in rates(run.workload)
        for bs in run.workload.batch_sizes
        for tokens_in, tokens_out in shapes(run.workload)
    ]


def _count(parameters: int) -> str:
    """1.236 B, 139.6 k: a parameter count as people say it."""
    for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if parameters >= scale:
            return f"{parameters / scale:.4g} {unit}"
    return str(parameters)


def _available_bytes(device) -> int:
    import psutil

    if str(device).startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    return int(psutil.virtual_memory().available * 0.9)  # leave the OS and the harness some room


def _dtype(precision: str):
    import torch

    return {"FP32": torch.float32, "BF16": torch.bfloat16, "FP16": torch.float16}[precision]


def _measure(run: RunContext, module, points: list[Point], source: LlmSource, roof=None) -> None:
    from backends.llm_transformers import serving_engine
    from core.measure.llm_serving import warm_up
    from core.measure.llm_stats import llm_row
    from core.measure.memory import PeakRss
    from core.run.llm_load import ServingPlan, run_loadgen, search_max_rate

    workload = run.workload
    plan = ServingPlan(run, int(source.config.vocab_size), len(points), getattr(module, "batched_decode", True))

    def measure(point: Point, index: int):
        load = plan.load(point, index)
        engine = serving_engine(module, point.batch_size, point.input_tokens + point.output_tokens)
        prompts = plan.prompts(point, index)
        with PeakRss() as peak:
            warm = warm_up(engine, load, prompts, workload.warmup_requests)
            served = plan.serve(engine, load, prompts)
        row = llm_row(served, point.tp_size, plan.slo)
        row.warmup_seconds = round(warm, 3)
        row.kv_cache_mb = round(engine.cache_bytes / 2**20, 2)
        row.peak_rss_mb = peak.peak_mb
        row.roofline = roof.of(row) if roof else None
        run.report.llm_rows.append(row)
        run.report.llm_samples[row.key] = served.samples()
        console.info(_line(row))
        return row

    for index, point in enumerate(points):
        measure(point, index)
    if workload.find_max_rate:
        search_max_rate(plan, measure, points)
        run.report.llm_rows.sort(key=lambda row: row.point)
    if workload.loadgen_scenarios:
        run_loadgen(plan, module, points[0])


def _line(row) -> str:
    """The console line of one load point."""
    if not row.ok:
        return f"{row.label}: failed: {row.error}"
    ttft, tpot, itl = row.ttft, row.tpot, row.itl
    parts = [
        f"{row.label}: TTFT {ttft.avg:.1f} ms (p99 {'~' if ttft.p99_upper is None else ''}{ttft.p99:.1f})",
        f"TPOT {tpot.avg:.1f} ms" if tpot else "TPOT -",
        f"ITL p99 {'~' if itl and itl.p99_upper is None else ''}{itl.p99:.1f} ms" if itl else "ITL -",
        f"{row.token_throughput:.2f} tokens/s",
        f"goodput {row.goodput:.3g} of {row.qps:.3g} req/s" if row.goodput is not None else "",
        f"{row.request_number} requests in {row.measured_seconds:.1f} s ({row.stop_reason})",
    ]
    if row.roofline is not None:
        from core.run.llm_roofline import line

        parts.append(line(row.roofline))
    return ", ".join(p for p in parts if p)
