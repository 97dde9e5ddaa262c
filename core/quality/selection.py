"""Choosing how to run: time every candidate briefly, check each with the accuracy gate, keep the
fastest that passes. The decision is cached per model, host, library versions and the code that decides
(this package's modules: selection, gate, drift); a partial one (candidates skipped or dropped early) only
for a run with the same tuning budget, since a run with more time would have tried more.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backends.base import Candidate, CompiledModel, Feeds, RuntimeBackend
from core.common import console
from core.common.digest import json_digest
from core.common.errors import Interrupted, UserError, one_line
from core.common.paths import state_dir
from core.measure.dataset_pass import DATASET_BATCH_SIZE, run_features
from core.measure.timing import MeasurePolicy, measure
from core.quality.gate import Gate
from core.reporting.sections import CandidateRow, EngineSelection

log = logging.getLogger(__name__)

# Brief on purpose: enough calls to rank candidates whose speeds differ by more than the noise;
# the chosen one is then measured properly at every batch size.
TUNING_POLICY = MeasurePolicy(
    warmup_iterations=2, warmup_seconds=3.0, min_iterations=5, min_seconds=1.0, max_seconds=3.0
)
# A candidate this much slower than the leader (the fastest that already passed) is dropped before its gate
# sample runs (successive halving). Never on a mean or on fewer than MIN_DROP_CALLS calls (brief means scatter
# by ~20% on a 2-core shared host, docs/MEASUREMENTS.md): first by its fastest calls, since a shared host only
# slows calls down, so a slow first call cannot cause a drop; then confirmed by timing it and the leader in
# turns, so a neighbour that slowed its whole window slows the leader's calls as much.
DROP_RATIO = 1.25
MIN_DROP_CALLS = 5
FASTEST_CALLS = 3  # the figure: QPS over the mean of this many fastest calls
# The code whose rules the decision follows: every module of this package, read at run time.
DECISION_CODE = Path(__file__).parent


@dataclass
class Leader:
    """The fastest candidate that passed so far: what a later one is dropped against."""

    label: str
    fastest_calls_qps: float
    compiled: CompiledModel
    config: Any  # its backend settings, to open its runtime again for the re-time


@dataclass
class Selection:
    candidate: Candidate
    compiled: CompiledModel
    section: EngineSelection  # the report's Graph Compile "Engine Selection"


def decision_code() -> str:
    """Digest of the sources that decide: selection, gate, drift (and any module beside them)."""
    from core.common.artifact_cache import code_digest

    return code_digest(*sorted(DECISION_CODE.glob("*.py")))


def _decision_path(model: str, payload: dict[str, Any], code: str, budget: float | None, partial: bool) -> Path:
    """Where a decision is kept: a complete one for any budget (it tried everything); a partial one for the
    budget it was taken under, so a run without a budget or with a larger one tunes again."""
    from core.common.artifact_cache import cache_key
    from core.measure.host import host_fingerprint, software_versions

    keyed = {
        **payload,
        "host": host_fingerprint(),
        "versions": software_versions(),
        "code": code,
        "scope": {"partial": True, "budget": budget} if partial else "complete",
    }
    return state_dir() / "tuning" / model / f"{cache_key(keyed)}.json"


def _body_digest(body: dict[str, Any]) -> str:
    return json_digest(body)


def _read_decision(path: Path) -> EngineSelection | None:
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored.get("sha256") != _body_digest(stored["decision"]):
            raise ValueError("its digest does not match")
        return EngineSelection.from_dict(stored["decision"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        console.warn(f"tuning decision {path} is damaged ({err}); tuning again")
        return None


def _write_decision(path: Path, decision: EngineSelection) -> None:
    from core.common.atomic import atomic_write_text

    body = decision.to_dict()
    atomic_write_text(path, json.dumps({"decision": body, "sha256": _body_digest(body)}, indent=2) + "\n")


def select(
    candidates: list[Candidate],
    *,
    model: str,
    compile_candidate: Callable[[Candidate], CompiledModel],
    make_runtime: Callable[[CompiledModel, Any], RuntimeBackend],
    batch_size: int,
    feeds: Feeds,
    make_gate: Callable[[float], Gate],
    cache_payload: dict[str, Any],
    budget_seconds: float | None = None,
    before_next: Callable[[Candidate, list[CandidateRow], list[float]], str | None] | None = None,
) -> Selection:
    """The fastest candidate that passes the gate, from the decision cache when this host decided before.

    Candidates come in the order the backend expects fastest first. One clearly slower than the fastest
    that already passed (DROP_RATIO) is dropped before its gate sample; past `budget_seconds` the rest are
    skipped once one has passed. `make_gate(seconds per sample)` builds the gate when the first candidate's
    speed is known, so the sample fits the time. The estimate of what is left is said after each candidate.
    `before_next(candidate, rows, seconds each candidate left is expected to take, this one first)` may give a
    reason to skip a later candidate (the run's budget, a candidate that cannot win); it is honoured once one
    has passed."""
    from core.quality.compile_cost import expected_costs
    from core.reporting.report import now_iso

    by_label = {c.label: c for c in candidates}
    keyed = {
        **cache_payload,
        "candidates": [[c.label, c.config.model_dump(mode="json")] for c in candidates],
        "batch_size": batch_size,
    }
    code = decision_code()
    for partial in (False, True):
        path = _decision_path(model, keyed, code, budget_seconds, partial)
        decision = _read_decision(path)
        if decision is not None and decision.chosen in by_label:
            chosen = by_label[decision.chosen]
            console.info(
                f"engine: {chosen.label} (decided {decision.decided} on this host"
                + (f", partial: {decision.partial}" if decision.partial else "")
                + f"; cached: {path.name})"
            )
            decision.decision = f"cached from {decision.decided}"
            return Selection(chosen, compile_candidate(chosen), decision)

    console.info(
        f"choosing among {len(candidates)} candidates at batch size {batch_size}: "
        + ", ".join(by_label)
        + " (timing each briefly, then the accuracy gate)"
        + (f"; tuning budget {budget_seconds / 60:.3g} min" if budget_seconds else "")
    )
    started = time.perf_counter()
    gate: Gate | None = None
    reference_seconds = 0.0

    def gate_for(seconds_per_sample: float) -> Gate:
        nonlocal gate, reference_seconds
        if gate is None:  # sized by the first candidate's speed: the gate sample is what costs on heavy models
            t0 = time.perf_counter()
            gate = make_gate(seconds_per_sample)
            reference_seconds = time.perf_counter() - t0  # once: not part of what a candidate costs
        return gate

    rows: list[CandidateRow] = []
    spent: list[tuple[Candidate, float, float | None]] = []  # tried: seconds, compile seconds (the estimate)
    fastest: tuple[float, str, CompiledModel] | None = None  # kept, so the winner is not compiled twice
    leader: Leader | None = None
    for i, candidate in enumerate(candidates):
        elapsed = time.perf_counter() - started
        why = (  # asked first: it also says the whole run's estimate, once, after the first candidate
            before_next(
                candidate,
                rows,
                likely_costs(candidates[i:], expected_costs(candidates[i:], spent), elapsed, budget_seconds, fastest),
            )
            if before_next and spent
            else None
        )
        if budget_seconds and elapsed > budget_seconds and fastest is not None:
            rows.append(_skipped(candidate, f"tuning budget of {budget_seconds / 60:.3g} min spent"))
            continue
        if budget_seconds and elapsed > budget_seconds and _float_later(candidate, candidates[i + 1 :]):
            # Out of time with nothing passed: no more INT8 calibrations (the slow builds); float ones next.
            rows.append(
                _skipped(candidate, f"tuning budget of {budget_seconds / 60:.3g} min spent, none passed: float next")
            )
            continue
        if why and fastest is not None:
            rows.append(_skipped(candidate, why))
            continue
        t0 = time.perf_counter()
        before = reference_seconds
        row, compiled = _try(candidate, compile_candidate, make_runtime, batch_size, feeds, gate_for, leader)
        spent.append((candidate, time.perf_counter() - t0 - (reference_seconds - before), row.compile_seconds))
        rows.append(row)
        if row.passed and (fastest is None or row.qps > fastest[0]):
            fastest = (row.qps, row.label, compiled)  # the previous fastest is released
            leader = Leader(row.label, row.fastest_calls_qps or row.qps, compiled, candidate.config)
        left = len(candidates) - i - 1
        if left:
            estimate = sum(expected_costs(candidates[i + 1 :], spent))
            if budget_seconds:
                estimate = min(estimate, max(0.0, budget_seconds - (time.perf_counter() - started)))
            console.info(f"tuning: ~{_minutes(estimate)} left for {left} more candidates")
    passing = [row for row in rows if row.passed]
    if not passing:
        reasons = "; ".join(f"{row.label}: {row.why or row.gate}" for row in rows)
        raise UserError(
            f"no candidate passed the accuracy gate: {reasons}",
            field="engine",
            fix="pin --engine and --precision to run one anyway",
        )
    best = max(passing, key=lambda row: row.qps)
    chosen = by_label[best.label]
    runner_up = max((row for row in passing if row is not best), key=lambda row: row.qps, default=None)
    passed = f"fastest of {len(passing)} candidates" if len(passing) > 1 else "the only candidate"
    reason = (
        f"{passed} that passed the accuracy gate "
        f"({sum(row.gate != 'skipped' for row in rows)} tried) at batch size "
        f"{batch_size}: {best.qps:.4g} QPS" + (f", next {runner_up.label} {runner_up.qps:.4g} QPS" if runner_up else "")
    )
    for row in rows:
        row.chosen = row is best
    partial = ", ".join(
        f"{count} {what}"
        for what, count in (
            ("skipped", sum(row.gate == "skipped" for row in rows)),
            ("dropped early", sum(row.gate == "dropped" for row in rows)),
        )
        if count
    )
    decision = EngineSelection(
        chosen=chosen.label,
        decided=now_iso(),
        reason=reason,
        batch_size=batch_size,
        tuning_seconds=round(time.perf_counter() - started, 1),
        timing="brief: warm-up, then at least 5 calls and 1 s (at most 3 s) per candidate; dropped before the gate "
        f"when, after at least {MIN_DROP_CALLS} calls, its {FASTEST_CALLS} fastest calls are {DROP_RATIO:g}x "
        "slower than those of the fastest that passed, and again when the two are timed in turns",
        gate=gate.rule(),
        candidates=rows,
        code=code,
        budget_seconds=budget_seconds if partial else None,
        partial=partial or None,
    )
    _write_decision(_decision_path(model, keyed, code, budget_seconds, bool(partial)), decision)
    console.info(f"engine: {chosen.label}, {reason}")
    decision.decision = "tuned in this run"
    return Selection(chosen, fastest[2], decision)


def fastest_calls_qps(samples_ns: tuple[int, ...], batch_size: int) -> float:
    """QPS over the mean of the FASTEST_CALLS fastest calls: what the candidate does when nothing slows it."""
    fastest = sorted(samples_ns)[:FASTEST_CALLS]
    return batch_size * len(fastest) * 1e9 / sum(fastest) if fastest and sum(fastest) > 0 else 0.0


def _clearly_slower(row: CandidateRow, leader: Leader | None, make_runtime, call, batch_size: int, feeds) -> bool:
    """Whether to drop `row`: after at least MIN_DROP_CALLS calls its fastest calls are DROP_RATIO slower than the
    leader's, and so are they when `call` and the leader's runtime (opened again) are timed in turns. Marks the
    row dropped with the evidence; a re-time that ran and did not confirm is kept in Drop Check."""
    if leader is None or not row.fastest_calls_qps or (row.iterations or 0) < MIN_DROP_CALLS:
        return False
    ratio = leader.fastest_calls_qps / row.fastest_calls_qps
    if ratio <= DROP_RATIO:
        return False
    first = (
        f"after {row.iterations} calls: its {FASTEST_CALLS} fastest calls {row.fastest_calls_qps:.4g} QPS vs "
        f"{leader.fastest_calls_qps:.4g} ({ratio:.2f}x)"
    )
    try:
        lead_qps, own_qps = _in_turns(make_runtime(leader.compiled, leader.config), call, batch_size, feeds)
    except (KeyboardInterrupt, Interrupted):
        raise
    except Exception as err:  # the leader cannot run beside it (memory): the gate judges it instead
        row.drop_check = f"{first}; not re-timed beside {leader.label} ({type(err).__name__}): not dropped"
        return False
    again = lead_qps / own_qps if own_qps > 0 else math.inf
    row.drop_ratio = round(again, 3)
    row.drop_check = (
        f"{first}; timed in turns with {leader.label}, {MIN_DROP_CALLS} turns each: {own_qps:.4g} vs "
        f"{lead_qps:.4g} QPS ({row.drop_ratio:g}x); drops at {DROP_RATIO:g}x"
    )
    if again <= DROP_RATIO:
        return False
    row.gate, row.why = "dropped", f"slower than {leader.label} {row.drop_check}"
    return True


def _in_turns(leader_runtime: RuntimeBackend, call, batch_size: int, feeds: Feeds) -> tuple[float, float]:
    """The leader's and the candidate's fastest-calls QPS over MIN_DROP_CALLS timed calls each, taken in turns.
    Each turn times a side's second call: the first pays for the switch (caches, and the other engine's threads
    still spinning after its call, which slowed the next call by up to 50x on a 2-core host)."""
    try:
        leader_runtime.load(batch_size)
        lead = leader_runtime.bind(feeds)
        times: tuple[list[int], list[int]] = ([], [])
        for _ in range(MIN_DROP_CALLS):
            for run, out in zip((lead, call), times, strict=True):
                run()
                t0 = time.perf_counter_ns()
                run()
                out.append(time.perf_counter_ns() - t0)
    finally:
        leader_runtime.close()
    return fastest_calls_qps(tuple(times[0]), batch_size), fastest_calls_qps(tuple(times[1]), batch_size)


def likely_costs(
    left: list[Candidate], costs: list[float], elapsed: float, budget_seconds: float | None, passed: object
) -> list[float]:
    """`costs` of the candidates `left`, 0 for those the tuning budget will likely skip, by the loop's own
    rules: past the budget nothing starts once one has passed, and no INT8 one while a float one is later; a
    candidate tried past the budget is taken to pass (so the rest are skipped). `passed`: one has, so far."""
    out, clock = [], elapsed
    for i, (candidate, cost) in enumerate(zip(left, costs)):
        over = bool(budget_seconds) and clock > budget_seconds
        if over and (passed or _float_later(candidate, left[i + 1 :])):
            out.append(0.0)
            continue
        out.append(cost)
        clock += cost
        passed = passed or over
    return out


def _float_later(candidate: Candidate, later: list[Candidate]) -> bool:
    return candidate.precision == "INT8" and any(other.precision != "INT8" for other in later)


def _skipped(candidate: Candidate, why: str) -> CandidateRow:
    row = CandidateRow(engine=candidate.engine, precision=candidate.precision, gate="skipped", why=why)
    console.info(f"  {candidate.label}: skipped ({why})")
    return row


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _try(
    candidate: Candidate,
    compile_candidate,
    make_runtime,
    batch_size: int,
    feeds: Feeds,
    gate_for: Callable[[float], Gate],
    leader: Leader | None,
) -> tuple[CandidateRow, CompiledModel | None]:
    """One candidate's row and what it compiled: compile, brief timing, then the gate unless it is clearly
    slower than `leader` (the fastest that passed). A failing candidate is recorded, not fatal."""
    row = CandidateRow(engine=candidate.engine, precision=candidate.precision)
    runtime = compiled = None
    try:
        with console.status(f"compiling {candidate.label}"):
            compiled = compile_candidate(candidate)
        row.compile_seconds = round(compiled.compile_seconds, 3)
        row.cache = "hit" if compiled.cache_hit else "miss"
        runtime = make_runtime(compiled, candidate.config)
        runtime.load(batch_size)
        call = runtime.bind(feeds)
        result = measure(call, TUNING_POLICY, batch_size)
        row.qps, row.p50_latency = round(result.qps, 4), round(result.latency.p50, 4)
        row.iterations = result.latency.count
        row.fastest_calls_qps = round(fastest_calls_qps(result.samples_ns, batch_size), 4)
        if not _clearly_slower(row, leader, make_runtime, call, batch_size, feeds):
            gate = gate_for(1.0 / result.qps if result.qps > 0 else float("inf"))
            outputs, _ = run_features(runtime, gate.features, DATASET_BATCH_SIZE, length_aware=True)
            verdict = gate.judge(outputs)
            row.normalized_drift, row.top1_agreement = verdict.normalized_drift, verdict.top1_agreement
            row.near_ties, row.decisive_rows = verdict.near_ties, verdict.decisive_rows
            row.decisive_agreement = verdict.decisive_agreement
            row.metrics, row.gate, row.why = verdict.metrics, verdict.gate, verdict.why or verdict.note
    except (KeyboardInterrupt, Interrupted):
        raise
    except UserError as err:
        if err.field == "model_path":  # the model file itself is bad: no candidate can run it, say so once
            raise
        row.gate, row.why = "error", err.message
    except Exception as err:  # a candidate this model or host cannot run must not end the run
        log.debug("candidate %s failed", candidate.label, exc_info=True)
        row.gate = "error"
        row.why = f"{type(err).__name__}: {one_line(err)}"
    finally:
        if runtime is not None:
            runtime.close()
    shown = f"{row.qps:.4g} QPS" if row.qps is not None else "no timing"
    drift = (
        f", drift {row.normalized_drift}, agreement {row.top1_agreement}"
        + (
            f" ({row.decisive_agreement} over {row.decisive_rows} decisive rows, {row.near_ties} near-ties)"
            if row.near_ties
            else ""
        )
        if row.normalized_drift is not None
        else ""
    )
    console.info(f"  {candidate.label}: {shown}{drift} -> {row.gate}" + (f" ({row.why})" if row.why else ""))
    return row, compiled
