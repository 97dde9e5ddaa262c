"""One benchmark run as a sequence of stages: describe -> assets -> weights -> compile -> accuracy ->
performance per batch size -> LoadGen scenarios -> report.

The report is filled in as the run goes and written in a `finally`, so Ctrl-C, SIGTERM or a crash
in one batch size never loses what was already measured.
"""

from __future__ import annotations

import signal
import time
from contextlib import contextmanager

from backends import load_backend
from backends.base import AUTO
from core.common import console
from core.common.errors import Interrupted, UserError
from core.config.overrides import apply_overrides
from core.config.registry import Task
from core.model.source import resolve_source
from core.reporting.report import RunReport
from core.reporting.sections import HostInfo, Weights
from core.reporting.tables import print_table
from core.reporting.writer import write_report
from core.run import roofline
from core.run.accuracy import check_accuracy
from core.run.assets import prepare_assets
from core.run.compile import compile_model
from core.run.context import RunContext, RunOptions, make_loader, model_inputs
from core.run.performance import measure_batch_sizes, performance_table
from core.run.plan import (
    ACCURACY,
    BUDGET_SECTION,
    LOADGEN,
    plan_run,
    replan_after_accuracy,
    run_elapsed,
    timed_rate,
    tuning_seconds,
)
from core.run.profile import profile_batch_size, profile_run

__all__ = ["RunOptions", "run_task"]


def run_task(task: Task, options: RunOptions) -> RunReport:
    """Run one task with the command line's overrides; the report as measured, `written` where it was saved."""
    overrides = options.overrides()
    task = apply_overrides(task, overrides)
    workload, model = task.workload, task.model
    spec = load_backend(options.hardware_type)
    blame = "--engine" if "engine" in overrides.values else task.workload_file
    config = spec.make_config(workload.engine, workload.engine_options, source=blame)
    unavailable = spec.unavailable(config)
    if unavailable:
        raise UserError(
            f"the {spec.name} backend cannot run here: {unavailable}",
            field="--hardware_type",
            fix="see README 'Accelerators' for what it needs, or run --hardware_type CPU",
        )
    precision = workload.precision or AUTO
    # ByteMLPerf's convention: the file is named for the model's precision unless one was pinned;
    # Graph Compile's "Compile Precision" says what ran.
    report = RunReport(
        model=model.model,
        backend=spec.name,
        dataset=model.dataset_name or "fake_dataset",
        precision=model.model_precision if precision == AUTO else precision,
    )
    run = RunContext(task, options, spec, config, precision, report, batch_sizes=list(workload.batch_sizes))
    return guarded(report, options, lambda: _stages(run, overrides.record()))


def guarded(report: RunReport, options: RunOptions, stages) -> RunReport:
    """Run `stages`, then write the report whatever happened: a failure or an interruption keeps what was
    measured, and the report says how the run ended."""
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        stages()
        report.status = "complete"
    except (KeyboardInterrupt, Interrupted):
        report.status = "incomplete"
        report.notes.append("interrupted: the report holds what was measured before the interruption")
        raise
    except UserError:
        report.status = "failed"
        raise
    except Exception as err:
        report.status = "incomplete"
        report.notes.append(f"run failed: {type(err).__name__}: {err}")
        raise
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
        if report.status != "failed" or report.performance or report.llm_rows:
            console.path_line("report", write_report(report, options.output_dir))
    return report


def _raise_interrupted(signum, frame):  # noqa: ARG001 - signal handler signature
    raise Interrupted(f"signal {signum}")


def _stages(run: RunContext, overrides: dict) -> None:
    describe(run, overrides)
    run.report.sections["Assets"] = prepare_assets(run)
    _weights_and_inputs(run)
    compiled = compile_model(run)
    if run.workload.compile_only:
        _compile_only(run)
        return
    profiled = profile_batch_size(run)  # a wrong --profile-batch-size is refused before any measuring
    runtime = run.spec.runtime_backend(compiled, run.config)
    had_rate = timed_rate(run)[0] is not None
    progress = plan_run(run)
    try:
        with progress.showing():
            if run.loader is not None and (run.workload.test_accuracy or run.workload.test_numeric):
                with progress.stage(ACCURACY) as tick, _took(run, "Accuracy"):
                    check_accuracy(run, runtime, on_batch=tick)
                replan_after_accuracy(run, progress, had_rate)
            if run.workload.test_perf:
                with _took(run, "Work And Peaks"):
                    run.roofline = roofline.prepare_or_note(run, runtime)
                with _took(run, "Measuring"):
                    measure_batch_sizes(run, runtime, progress)
                if profiled is not None:
                    profile_run(run, runtime, profiled)
            else:
                run.report.notes.append("test_perf is false: performance not measured")
                console.info("test_perf is false: skipping the performance section")
            if run.workload.scenario:
                with _took(run, "LoadGen"):
                    _scenarios(run, runtime, progress)
        run.report.sections["Runtime"] = runtime.settings()
    finally:
        runtime.close()
        took = run.report.sections.setdefault(BUDGET_SECTION, {}).setdefault("Actual Seconds", {})
        took.update({"Tuning": round(tuning_seconds(run), 1), "Total": round(run_elapsed(run), 1)})
    if run.report.performance:
        title = f"{run.model.model} on {run.spec.name} ({compiled.engine} {compiled.precision})"
        print_table(console.console, performance_table(title, run.report.performance))
        backing = sorted({row.tail_backing for row in run.report.performance if row.tail_backing})
        if backing:
            console.info(
                "~: a tail percentile on fewer samples than a 95% upper bound needs (" + "; ".join(backing) + ")"
            )


@contextmanager
def _took(run: RunContext, stage: str):
    """What a stage took, kept beside the run's estimate (Run Budget, Actual Seconds)."""
    started = time.monotonic()
    try:
        yield
    finally:
        took = run.report.sections.setdefault(BUDGET_SECTION, {}).setdefault("Actual Seconds", {})
        took[stage] = round(time.monotonic() - started, 1)


def describe(run: RunContext, overrides: dict) -> None:
    """Host, software and the effective configuration, first: a run that fails later still says what it was."""
    from core.measure.host import host_info, software_versions

    task = run.task
    run.report.host = HostInfo.from_dict(host_info())
    if run.spec.device_facts is not None:
        run.device_facts = run.spec.device_facts(run.config)
        run.report.host.accelerator = run.device_facts["summary"]
        run.report.host.accelerators = run.device_facts
    run.report.sections["Software"] = software_versions()
    run.report.sections["Config"] = {
        "workload": task.workload.model_dump(mode="json"),
        "workload_file": str(task.workload_file),
        "model": task.model.model_dump(mode="json", exclude={"assets"}),
        "backend": run.config.model_dump(mode="json"),
        "overrides": overrides,
    }


def _weights_and_inputs(run: RunContext) -> None:
    """Where the weights come from (loudly when synthetic), the model's inputs, and the dataset loader."""
    workload, model = run.workload, run.model
    run.source = resolve_source(model, model_file=run.task.model_file, seed=workload.seed)
    run.report.weights = Weights.from_dict(run.source.report_entry())
    if run.source.synthetic:
        console.banner(f"{model.model}: {run.source.note}")
    else:
        console.info(f"weights: {run.source.note}")
    run.inputs = model_inputs(run.task, run.source)
    # INT8 calibration and the accuracy gate of auto read the dataset too.
    if (workload.test_accuracy or workload.test_numeric or run.precision in ("INT8", AUTO)) and model.dataset_name:
        run.loader = make_loader(run.task, run.inputs)
    elif workload.test_numeric:  # ByteMLPerf runs numeric checks of dataset-less models on fake data
        run.loader = make_loader(run.task, run.inputs, dataset="fake_dataset")


def _compile_only(run: RunContext) -> None:
    # An empty Performance list must not hide the last measured report.
    run.report.replaces_latest = False
    message = (
        f"compile only: nothing measured; kept under runs/ only, "
        f"result-{run.report.precision.lower()}.json is unchanged"
    )
    run.report.notes.append(message)
    console.info(message)


def _scenarios(run: RunContext, runtime, progress) -> None:
    from core.scenarios import loadgen

    with progress.stage(LOADGEN):
        loadgen.run(
            workload=run.workload,
            scenarios=run.workload.scenario,
            runtime=runtime,
            clients=run.workload.clients,
            max_batch=max(run.batch_sizes),
            sample_feeds=run.sample_feeds,
            loader=run.loader,
            report=run.report,
            folder=run.folder(),
        )
