"""Stage: throughput and latency per batch size, each row recorded before it is announced."""

from __future__ import annotations

import time
import traceback
from dataclasses import replace

from core.common import console
from core.common.errors import Interrupted, UserError
from core.common.statistics import samples_needed
from core.measure.estimate import budget_policy
from core.measure.memory import PeakRss, perf_memory_fields
from core.measure.timing import MeasurePolicy, measure_clients
from core.reporting.schema import PerfRow
from core.reporting.tables import Cell, TextTable, fmt
from core.run.context import RunContext
from core.run.plan import batch_stage, measuring_budget, performance_estimates, timed_rate
from core.run.progress import RunProgress, duration


def measure_batch_sizes(run: RunContext, runtime, progress: RunProgress) -> None:
    """Every batch size in turn; under a time budget each gets an equal share of what is left of it."""
    policy = MeasurePolicy.from_workload(run.workload)
    clients = run.workload.clients
    budget = measuring_budget(run)
    rate = timed_rate(run)[0]
    started = time.monotonic()
    for i, batch_size in enumerate(run.batch_sizes):
        if budget:
            spent = time.monotonic() - started
            this = budget_policy(policy, budget - spent, len(run.batch_sizes) - i, rate, batch_size, clients)
        else:
            this = policy
        with progress.stage(batch_stage(batch_size)) as tick:
            row = perf_row(run, runtime, batch_size, this, tick)
        run.report.performance.append(row)  # recorded before it is announced: an interruption keeps it
        if row.ok and row.qps:
            rate = 1 / row.qps  # the later batch sizes are estimated from the one just measured
            later = performance_estimates(
                run, rate, run.batch_sizes[i + 1 :], budget_left=budget - (time.monotonic() - started)
            )
            for name, seconds in later.items():
                progress.reestimate(name, seconds)
            console.info(
                f"bs {batch_size}: {row.qps:.2f} QPS{_interval(row)}, p50 {row.p50_latency:.1f} ms, "
                f"p99 {'~' if row.unbacked('P99 Latency') else ''}{row.p99_latency:.1f} ms over {row.iterations} "
                "iterations"
                + (f" ({clients} clients)" if clients > 1 else "")
                + (f" (p99 unbacked: a 95% bound needs {samples_needed(0.99)})" if row.unbacked("P99 Latency") else "")
                + _device_text(row)
                + roofline_text(row)
                + drift_text(row)
                + (f"; stopped by the {row.stop_reason}" if row.stop_reason == "time budget" else "")
                + f"; {duration(progress.left())} left"
            )


def perf_row(run: RunContext, runtime, batch_size: int, policy: MeasurePolicy, tick=None) -> PerfRow:
    """One batch size with the workload's concurrent clients; an engine error is recorded in the row
    and the run goes on."""
    from core.measure.clients import open_instances, record

    peak = PeakRss()
    meters = []
    try:
        with peak:  # loading and binding count: they are part of what a batch size needs
            runtime.load(batch_size)
            meters = runtime.meters()
            instances = open_instances(runtime, run.workload.clients)
            record(instances, run.report)
            calls = instances.calls(run.sample_feeds(batch_size))
            result = measure_clients(calls, policy, batch_size, on_iteration=tick, meters=meters)
        run.report.samples[batch_size] = result.samples_ns  # kept beside the report for later comparisons
        row = replace(result.perf_row(), **perf_memory_fields(peak), **_meter_fields(meters, result))
        return replace(row, **run.roofline.row_fields(row)) if run.roofline else row
    except (KeyboardInterrupt, Interrupted, UserError):
        raise
    except Exception as err:  # one failing batch size (OOM, engine error) must not end the run
        if run.options.debug:
            traceback.print_exc()
        console.warn(f"batch size {batch_size} failed: {type(err).__name__}: {err}")
        return PerfRow(
            bs=batch_size,
            status="failed",
            error=f"{type(err).__name__}: {str(err)[:500]}",
            **perf_memory_fields(peak),
            **_meter_fields(meters, None),  # a batch size that ran out of device memory says how much it held
        )


def _meter_fields(meters, result) -> dict:
    fields: dict = {}
    for meter in meters:
        fields.update(meter.row_fields(result))
    return fields


def _device_text(row: PerfRow) -> str:
    """'; device 1.2 ms a call, 0.05 J/sample at 310 W': what an accelerator's meters read, where they did."""
    parts = [f"device {fmt(row.device_avg_latency)} ms a call"] if row.device_avg_latency is not None else []
    if row.energy_j_per_sample is not None:
        parts.append(f"{fmt(row.energy_j_per_sample)} J/sample at {fmt(row.avg_power_w)} W")
    return "; " + ", ".join(parts) if parts else ""


# Below this the drift is reported in the row but not announced: a few percent is an ordinary shared host.
DRIFT_NOTICE = 0.05


def drift_text(row: PerfRow) -> str:
    """Why an interval is wide: the machine's speed moved during the window (another process, a throttle)."""
    if row.drift is None or row.drift < DRIFT_NOTICE:
        return ""
    return (
        f"; the machine's speed moved ±{row.drift:.0%} during this window beyond the calls' own scatter "
        "(another process?), which widens the interval: rerun on a quiet machine, or --min-seconds for more blocks"
    )


def roofline_text(row: PerfRow) -> str:
    """'; 146 GFLOP/s, 61% of the compute roof': how close the row came, where it could be said."""
    if row.achieved_gflops is None:
        return ""
    share = f", {row.peak_share:.0%} of the {row.roof} roof" if row.peak_share is not None else ""
    return f"; {fmt(row.achieved_gflops)} GFLOP/s{share}"


def _interval(row: PerfRow) -> str:
    """' [1.41-1.66]': the row's 95% QPS interval, where it has one."""
    interval = row.qps_interval()
    return f" [{fmt(interval[0])}–{fmt(interval[1])}]" if interval else ""


# Columns shown only when some row has them (a GPU's): PerfRow field -> column.
DEVICE_COLUMNS = {
    "device_avg_latency": "Dev AVG ms",
    "device_memory_mb": "Dev MB",
    "energy_j_per_sample": "J/sample",
    "avg_power_w": "Avg W",
}


# How close each row came (core.run.roofline), shown when some row has it.
ROOFLINE_COLUMNS = {"achieved_gflops": "GFLOP/s", "peak_share": "Peak %", "roof": "Roof"}


def _roof_cell(row: PerfRow, name: str) -> str:
    value = getattr(row, name)
    if name == "peak_share" and value is not None:
        return f"{value:.1%}"
    return value if isinstance(value, str) else fmt(value)


def performance_table(title: str, rows: list[PerfRow]) -> TextTable:
    """The end-of-run table: every number whole, whatever the width of the terminal or log."""
    device = [name for name in DEVICE_COLUMNS if any(getattr(row, name) is not None for row in rows)]
    roof = [name for name in ROOFLINE_COLUMNS if any(getattr(row, name) is not None for row in rows)]
    table = TextTable(
        title,
        [
            "BS",
            "status",
            "QPS",
            "AVG ms",
            "P50 ms",
            "P90 ms",
            "P99 ms",
            "Std ms",
            "Iters",
            "RSS MB",
            *(DEVICE_COLUMNS[name] for name in device),
            *(ROOFLINE_COLUMNS[name] for name in roof),
        ],
        text_columns=0,
    )
    for row in rows:
        measured = [Cell(fmt(getattr(row, name))) for name in device]
        measured += [Cell(_roof_cell(row, name)) for name in roof]
        if not row.ok:
            table.rows.append(
                [Cell(str(row.bs)), Cell(row.status, bad=True), *(Cell("—") for _ in range(8)), *measured]
            )
            continue
        latencies = {
            "AVG Latency": row.avg_latency,
            "P50 Latency": row.p50_latency,
            "P90 Latency": row.p90_latency,
            "P99 Latency": row.p99_latency,
            "Std Latency": row.std_latency,
        }
        table.rows.append(
            [
                Cell(str(row.bs)),
                Cell("ok" if row.warning is None else "few iters"),
                Cell(fmt(row.qps) + _interval(row)),
                *(Cell(f"~{fmt(value)}" if row.unbacked(key) else fmt(value)) for key, value in latencies.items()),
                Cell(str(row.iterations)),
                Cell(fmt(row.peak_rss_mb)),
                *measured,
            ]
        )
    return table
