"""Before measuring: how long the rest of the run will take, said on the console and shown by one bar."""

from __future__ import annotations

from core.common import console
from core.measure.estimate import batch_estimate
from core.measure.timing import MeasurePolicy
from core.run.context import RunContext
from core.run.progress import RunProgress, duration

ACCURACY = "accuracy"
LOADGEN = "LoadGen"


def timed_rate(run: RunContext) -> tuple[float | None, str]:
    """Seconds per item from the fastest thing the run has already timed, and what it was."""
    compiled = run.report.graph_compile
    selection = compiled.engine_selection if compiled else None
    chosen = next((row for row in selection.candidates if row.chosen), None) if selection else None
    if chosen is not None and chosen.qps:
        return (
            1 / chosen.qps,
            f"the engine selection's timing: {chosen.qps:.4g} QPS at batch size {selection.batch_size}",
        )
    throughput = run.report.sections.get("Dataset Throughput") or {}
    if throughput.get("Features Per Second") and not throughput.get("Length Aware"):  # trimmed batches run faster
        fps = throughput["Features Per Second"]
        return 1 / fps, f"the accuracy pass: {fps:.4g} features/s at batch size {throughput.get('Batch Size')}"
    return None, "nothing timed yet, so the workload's caps"


def tuning_seconds(run: RunContext) -> float:
    """What choosing the engine took in this run (0 when the decision came from the cache)."""
    compiled = run.report.graph_compile
    selection = compiled.engine_selection if compiled else None
    if selection is None or selection.decision != "tuned in this run" or not selection.tuning_seconds:
        return 0.0
    return float(selection.tuning_seconds)


def measuring_budget(run: RunContext) -> float:
    """Seconds of --time-budget left for measuring once the engine is chosen (0: no budget). The budget covers
    tuning too; measuring keeps at least a tenth of it, so every batch size still gets its calls."""
    budget = (run.workload.time_budget_minutes or 0) * 60
    return max(budget * 0.1, budget - tuning_seconds(run)) if budget else 0.0


def batch_stage(batch_size: int) -> str:
    return f"batch size {batch_size}"


def plan_run(run: RunContext) -> RunProgress:
    """Estimate each stage still to run and say the total before any of them starts."""
    workload = run.workload
    rate, source = timed_rate(run)
    estimates: dict[str, float] = {}
    if run.loader is not None and (workload.test_accuracy or workload.test_numeric):
        estimates[ACCURACY] = len(run.loader.load()) * rate if rate else 0.0  # unknown: none is counted
    perf = performance_estimates(run, rate) if workload.test_perf else {}
    estimates.update(perf)
    if workload.scenario:
        estimates[LOADGEN] = workload.min_duration_s * len(workload.scenario)  # LoadGen's own minimum
    parts = []
    if ACCURACY in estimates:
        parts.append(f"accuracy {duration(estimates[ACCURACY])}" if rate else "accuracy not counted")
    if perf:
        parts.append(f"performance {duration(sum(perf.values()))} over {len(perf)} batch sizes")
    if workload.scenario:
        parts.append(f"LoadGen at least {duration(workload.min_duration_s * len(workload.scenario))}")
    total = sum(estimates.values())
    if estimates:
        bound = "at most " if rate is None else ""
        tuned = tuning_seconds(run)
        budget = (
            f"; --time-budget {workload.time_budget_minutes:g} min: "
            + (f"choosing the engine took {duration(tuned)} of it, " if tuned else "")
            + f"measuring gets {duration(measuring_budget(run))}"
            if workload.time_budget_minutes
            else ""
        )
        console.info(f"estimated time left: {bound}{duration(total)} ({', '.join(parts)}; from {source}){budget}")
    return RunProgress(estimates)


def replan_after_accuracy(run: RunContext, progress: RunProgress, had_rate: bool) -> None:
    """A run with nothing timed before its accuracy pass re-estimates its batch sizes from that pass."""
    rate, source = timed_rate(run)
    if had_rate or rate is None or not run.workload.test_perf:
        return
    perf = performance_estimates(run, rate)
    for name, seconds in perf.items():
        progress.reestimate(name, seconds)
    console.info(f"estimated time left: {duration(progress.left())} (from {source})")


def performance_estimates(
    run: RunContext, rate: float | None, batch_sizes: list[int] | None = None, budget_left: float | None = None
) -> dict[str, float]:
    """Each batch size's warm-up and window (of `batch_sizes`, by default all); under --time-budget their sum
    is held to what is left of the budget (`budget_left`, by default all of it)."""
    policy = MeasurePolicy.from_workload(run.workload)
    sizes = run.batch_sizes if batch_sizes is None else batch_sizes
    estimates = {batch_stage(bs): batch_estimate(rate, bs, run.workload.clients, policy) for bs in sizes}
    budget = measuring_budget(run)
    if budget_left is None:
        budget_left = budget
    if budget and estimates and sum(estimates.values()) > budget_left:
        scale = max(0.0, budget_left) / sum(estimates.values())
        estimates = {name: seconds * scale for name, seconds in estimates.items()}
    return estimates
