"""How long the run will take, and the whole-run budget it is held to: the estimate said after the first
candidate (TuningPlan) and before measuring, each stage's share of the budget, and the one bar."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from core.common import console
from core.measure.estimate import batch_estimate
from core.measure.timing import MeasurePolicy
from core.run.context import RunContext
from core.run.progress import RunProgress, duration

ACCURACY = "accuracy"
LOADGEN = "LoadGen"
TUNING = "tuning"
MEASURING = "measuring"
BUDGET_SECTION = "Run Budget"  # the report's section: the budget, the estimate, each stage's share and time

# A workload whose file and flags set none of these durations runs within DEFAULT_BUDGET_MINUTES; one that sets
# any is honoured as written (an explicit --time-budget still applies).
DEFAULT_BUDGET_MINUTES = 10.0
DURATION_FIELDS = frozenset(
    {"warmup_seconds", "min_seconds", "max_seconds", "min_duration_s", "min_query_count", "tuning_budget_minutes"}
)
# Under a budget, measuring keeps at least this share of it, so every batch size still gets its calls.
MEASURING_FLOOR = 0.1


@dataclass(frozen=True)
class RunBudget:
    seconds: float  # 0: no budget
    said: str  # how the console names it
    honoured: tuple[str, ...] = ()  # the duration fields the workload sets, which turn the default budget off

    def __bool__(self) -> bool:
        return self.seconds > 0


def run_budget(workload) -> RunBudget:
    """The whole run's budget: --time-budget (or the file's time_budget_minutes), 'off', else the default one
    unless the workload sets durations of its own."""
    minutes = workload.time_budget_minutes
    if minutes == "off":
        return RunBudget(0.0, "no budget (--time-budget off)")
    if minutes:
        return RunBudget(minutes * 60, f"the {minutes:g} min budget")
    named = sorted(DURATION_FIELDS & workload.model_fields_set)
    if named:
        return RunBudget(0.0, f"no default budget: the workload sets {', '.join(named)}", tuple(named))
    return RunBudget(
        DEFAULT_BUDGET_MINUTES * 60, f"the default {DEFAULT_BUDGET_MINUTES:g} min budget (--time-budget MINUTES or off)"
    )


def run_elapsed(run: RunContext) -> float:
    """Seconds since the run started (its report's start, to the second)."""
    started = datetime.fromisoformat(run.report.started) if run.report.started else datetime.now(timezone.utc)
    return max(0.0, (datetime.now(timezone.utc) - started).total_seconds())


def loadgen_seconds(workload) -> float:
    return workload.min_duration_s * len(workload.scenario) if workload.scenario else 0.0  # LoadGen's own minimum


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


def measuring_budget(run: RunContext, ahead: float = 0.0) -> float:
    """Seconds of the run's budget left for measuring (0: no budget): what the run has not spent yet, less the
    stages still to come (`ahead` before measuring, LoadGen after it); never below MEASURING_FLOOR of it."""
    budget = run_budget(run.workload).seconds
    if not budget:
        return 0.0
    left = budget - run_elapsed(run) - ahead - loadgen_seconds(run.workload)
    return max(budget * MEASURING_FLOOR, left)


def batch_stage(batch_size: int) -> str:
    return f"batch size {batch_size}"


def plan_run(run: RunContext) -> RunProgress:
    """Estimate each stage still to run and say the total before any of them starts."""
    workload = run.workload
    rate, source = timed_rate(run)
    estimates: dict[str, float] = {}
    if run.loader is not None and (workload.test_accuracy or workload.test_numeric):
        estimates[ACCURACY] = accuracy_estimate(run, rate) if rate else 0.0  # unknown: none is counted
    budget = run_budget(workload)
    before = estimates.get(ACCURACY, 0.0)
    perf = performance_estimates(run, rate, budget_left=measuring_budget(run, before)) if workload.test_perf else {}
    estimates.update(perf)
    if workload.scenario:
        estimates[LOADGEN] = loadgen_seconds(workload)
    parts = []
    if ACCURACY in estimates:
        parts.append(f"accuracy {duration(estimates[ACCURACY])}" if rate else "accuracy not counted")
    if perf:
        parts.append(f"performance {duration(sum(perf.values()))} over {len(perf)} batch sizes")
    if workload.scenario:
        parts.append(f"LoadGen at least {duration(estimates[LOADGEN])}")
    total = sum(estimates.values())
    run.report.sections.setdefault(BUDGET_SECTION, {})["Budget"] = budget.said
    if estimates:
        bound = "at most " if rate is None else ""
        tuned = tuning_seconds(run)
        over = "over " if budget and run_elapsed(run) + total > budget.seconds else ""
        said = (
            f"; {over}{budget.said}: "
            + (f"choosing the engine took {duration(tuned)} of it, " if tuned else "")
            + f"measuring gets {duration(measuring_budget(run, before))}"
            if budget
            else (f"; the workload's own {', '.join(budget.honoured)} honoured" if budget.honoured else "")
        )
        console.info(f"estimated time left: {bound}{duration(total)} ({', '.join(parts)}; from {source}){said}")
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
        # a cut batch size still warms up with one call and times one call per client
        shortest = replace(policy, warmup_iterations=1, max_seconds=0.0)
        least = {
            batch_stage(bs): batch_estimate(rate, bs, run.workload.clients, shortest) if rate else 0.0 for bs in sizes
        }
        estimates = {name: max(seconds * scale, least[name]) for name, seconds in estimates.items()}
    return estimates


def _gate_features(run: RunContext) -> int:
    """Inputs the engine selection's gate ran (and so the reference computed) in this run."""
    compiled = run.report.graph_compile
    selection = compiled.engine_selection if compiled else None
    if selection is None or selection.decision != "tuned in this run":
        return 0
    return int((selection.gate or {}).get("Features") or 0)


def accuracy_estimate(
    run: RunContext, rate: float, gate_features: int | None = None, count: int | None = None
) -> float:
    """The accuracy stage at `rate` seconds an input: the inputs it runs (with synthetic weights on generated
    inputs, those the gate did not compare) and, for the numeric check, the reference of those the gate's did not
    compute, at the rate the gate's reference ran. `gate_features`: the gate's sample while tuning; `count`: the
    accuracy stage's inputs, where known (loading them again costs)."""
    from core.run.accuracy import gate_compared, reuses_gate

    workload = run.workload
    count = len(run.loader.load()) if count is None else count
    gate = _gate_features(run) if gate_features is None else gate_features
    if gate_features is None:
        compared = gate_compared(run) if workload.test_numeric else 0
    else:
        compared = gate_features if workload.test_numeric and reuses_gate(run) else 0
    per_input = (run.report.sections.get(BUDGET_SECTION) or {}).get("Reference Seconds Per Input", 0.0)
    reference = max(0, count - gate) * per_input if workload.test_numeric else 0.0
    return max(0, count - compared) * rate + reference


def fit(budget: float, elapsed: float, stages: dict[str, float]) -> dict[str, float]:
    """Each stage's share of what is left of `budget`: accuracy and LoadGen as estimated (they are not cut);
    measuring keeps what it needs up to half of the rest (or MEASURING_FLOOR of the budget, if more); tuning gets
    what it needs of the remainder, and measuring what tuning leaves, up to what it needs."""
    fixed = stages.get(ACCURACY, 0.0) + stages.get(LOADGEN, 0.0)
    avail = max(0.0, budget - elapsed - fixed)
    need = stages.get(MEASURING, 0.0)
    keep = min(need, max(budget * MEASURING_FLOOR, avail / 2))
    shares = {TUNING: min(stages.get(TUNING, 0.0), max(0.0, avail - keep))}
    for name in (ACCURACY, MEASURING, LOADGEN):
        if name in stages:
            shares[name] = stages[name]
    if MEASURING in stages:
        shares[MEASURING] = min(need, max(budget * MEASURING_FLOOR, avail - shares[TUNING]))
    return shares


class TuningPlan:
    """The engine selection's guide before each candidate after the first: says the whole run's estimate once
    (from the first timed candidate), fits it into the run's budget (tuning then ends when its share is spent),
    and skips a candidate that cannot win (core.quality.compile_cost)."""

    def __init__(self, run: RunContext, batch_size: int):
        self.run, self.batch_size = run, batch_size
        self.gate_features = 0
        self.tuning_ends: float | None = None  # time.monotonic() by which tuning must end, under the budget
        self.tuning_share = 0.0
        self.said = False
        self.inputs: int | None = None  # the accuracy stage's, loaded once

    def gate_made(self, features: int, seconds: float) -> None:
        """The gate's sample and what building it (its reference, mostly) took: the accuracy stage's reference
        is estimated at that rate."""
        self.gate_features = features
        section = self.run.report.sections.setdefault(BUDGET_SECTION, {})
        section["Reference Seconds Per Input"] = round(seconds / features, 4) if features else 0.0

    def stages(self, rate: float, rest: list[float]) -> dict[str, float]:
        """The rest of the run at `rate` seconds an input: the candidates left (`rest`: each one's expected
        seconds), accuracy, measuring, LoadGen."""
        run, workload = self.run, self.run.workload
        stages = {TUNING: sum(rest)}
        if run.loader is not None and (workload.test_accuracy or workload.test_numeric):
            self.inputs = len(run.loader.load()) if self.inputs is None else self.inputs
            stages[ACCURACY] = accuracy_estimate(run, rate, self.gate_features, self.inputs)
        if workload.test_perf:
            stages[MEASURING] = sum(performance_estimates(run, rate, budget_left=float("inf")).values())
        if workload.scenario:
            stages[LOADGEN] = loadgen_seconds(workload)
        return stages

    def could_save(self, rate: float) -> float:
        """The most a candidate could save over the rest of the run: what the rate-bound stages would lose if it
        were instantly fast (windows held by min_seconds or LoadGen's minimum save nothing)."""
        now, instant = self.stages(rate, []), self.stages(1e-12, [])
        return max(0.0, sum(now.values()) - sum(instant.values()))

    def __call__(self, candidate, rows, rest: list[float]) -> str | None:
        """Before `candidate` (`rest`: the seconds each candidate still to try is expected to take, this one
        first): why it is skipped, or None. The engine selection honours it once a candidate has passed."""
        from core.quality.compile_cost import cannot_win

        timed = [row for row in rows if row.qps]
        if not timed:
            return None
        leader = max([row for row in timed if row.passed] or timed, key=lambda row: row.qps)
        rate = 1 / leader.qps
        if not self.said:
            self.said = True
            self._say(leader, rate, rest)
        seconds_each = rest[0] if rest else 0.0
        if self.tuning_ends is not None and time.monotonic() + seconds_each > self.tuning_ends:
            budget = run_budget(self.run.workload)
            return (
                f"{budget.said} leaves tuning {duration(self.tuning_share)} and a candidate takes "
                f"{duration(seconds_each)}"
            )
        return cannot_win(candidate, rows, self.could_save(rate))

    def _say(self, leader, rate: float, rest: list[float]) -> None:
        run = self.run
        stages = self.stages(rate, rest)
        elapsed = run_elapsed(run)
        total = elapsed + sum(stages.values())
        budget = run_budget(run.workload)
        section = run.report.sections.setdefault(BUDGET_SECTION, {})
        section.update(
            {
                "Budget": budget.said,
                "Budget Seconds": budget.seconds or None,
                "Estimate": {
                    "From": f"{leader.label} at {leader.qps:.4g} QPS, batch size {self.batch_size}",
                    "Elapsed Seconds": round(elapsed, 1),
                    "Total Seconds": round(total, 1),
                    **{f"{name.capitalize()} Seconds": round(seconds, 1) for name, seconds in stages.items()},
                },
            }
        )
        parts = ", ".join(f"{name} {duration(seconds)}" for name, seconds in stages.items())
        line = (
            f"whole run: {duration(total)} estimated ({duration(elapsed)} so far; then {parts}; "
            f"from {leader.label}'s {leader.qps:.4g} QPS)"
        )
        if budget and total > budget.seconds:
            shares = fit(budget.seconds, elapsed, stages)
            self.tuning_share = shares[TUNING]
            self.tuning_ends = time.monotonic() + shares[TUNING]
            section["Shares"] = {f"{name.capitalize()} Seconds": round(seconds, 1) for name, seconds in shares.items()}
            line += f"; over {budget.said}, so " + ", ".join(f"{n} gets {duration(s)}" for n, s in shares.items())
        elif budget.honoured:
            held = stages.get(MEASURING, 0.0) + stages.get(LOADGEN, 0.0)
            line += f"; the workload's own {', '.join(budget.honoured)} honoured: measuring takes {duration(held)}"
        console.info(line)
