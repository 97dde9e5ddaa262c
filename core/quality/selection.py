"""Choosing how to run: time every candidate briefly, check each with the accuracy gate, keep the
fastest that passes. The decision is cached per model, host and library versions.
"""

from __future__ import annotations

import json
import logging
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
# A candidate whose brief timing is this much slower than the fastest one that already passed is dropped
# before its gate sample runs (successive halving): the ranking it would lose is clear beyond the timing's noise
# (brief windows on a shared host scatter by up to ~20%, docs/MEASUREMENTS.md).
DROP_RATIO = 1.25


@dataclass
class Selection:
    candidate: Candidate
    compiled: CompiledModel
    section: EngineSelection  # the report's Graph Compile "Engine Selection"


def _decision_path(model: str, payload: dict[str, Any]) -> Path:
    from core.common.artifact_cache import cache_key, code_digest
    from core.measure.host import host_fingerprint, software_versions

    keyed = {
        **payload,
        "host": host_fingerprint(),
        "versions": software_versions(),
        "code": code_digest(Path(__file__)),
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
) -> Selection:
    """The fastest candidate that passes the gate, from the decision cache when this host decided before.

    Candidates come in the order the backend expects fastest first. One clearly slower than the fastest
    that already passed (DROP_RATIO) is dropped before its gate sample; past `budget_seconds` the rest are
    skipped once one has passed. `make_gate(seconds per sample)` builds the gate when the first candidate's
    speed is known, so the sample fits the time. The estimate of what is left is said after each candidate."""
    from core.reporting.report import now_iso

    by_label = {c.label: c for c in candidates}
    path = _decision_path(
        model,
        {
            **cache_payload,
            "candidates": [[c.label, c.config.model_dump(mode="json")] for c in candidates],
            "batch_size": batch_size,
        },
    )
    decision = _read_decision(path)
    if decision is not None and decision.chosen in by_label:
        chosen = by_label[decision.chosen]
        console.info(f"engine: {chosen.label} (decided {decision.decided} on this host; cached: {path.name})")
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
    spent: list[float] = []  # each tried candidate's seconds, for the estimate of the rest
    fastest: tuple[float, str, CompiledModel] | None = None  # kept, so the winner is not compiled twice
    for i, candidate in enumerate(candidates):
        elapsed = time.perf_counter() - started
        if budget_seconds and elapsed > budget_seconds and fastest is not None:
            rows.append(_skipped(candidate, f"tuning budget of {budget_seconds / 60:.3g} min spent"))
            continue
        t0 = time.perf_counter()
        best = (fastest[0], fastest[1]) if fastest else None
        before = reference_seconds
        row, compiled = _try(candidate, compile_candidate, make_runtime, batch_size, feeds, gate_for, best)
        spent.append(time.perf_counter() - t0 - (reference_seconds - before))
        rows.append(row)
        if row.passed and (fastest is None or row.qps > fastest[0]):
            fastest = (row.qps, row.label, compiled)  # the previous fastest is released
        left = len(candidates) - i - 1
        if left:
            estimate = sum(spent) / len(spent) * left
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
    reason = (
        f"fastest of {len(passing)} candidates that passed the accuracy gate "
        f"({sum(row.gate != 'skipped' for row in rows)} tried) at batch size "
        f"{batch_size}: {best.qps:.4g} QPS" + (f", next {runner_up.label} {runner_up.qps:.4g} QPS" if runner_up else "")
    )
    for row in rows:
        row.chosen = row is best
    decision = EngineSelection(
        chosen=chosen.label,
        decided=now_iso(),
        reason=reason,
        batch_size=batch_size,
        tuning_seconds=round(time.perf_counter() - started, 1),
        timing="brief: warm-up, then at least 5 calls and 1 s (at most 3 s) per candidate; dropped before the gate "
        f"when {DROP_RATIO:g}x slower than the fastest that passed",
        gate=gate.rule(),
        candidates=rows,
    )
    _write_decision(path, decision)
    console.info(f"engine: {chosen.label}, {reason}")
    decision.decision = "tuned in this run"
    return Selection(chosen, fastest[2], decision)


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
    best: tuple[float, str] | None,
) -> tuple[CandidateRow, CompiledModel | None]:
    """One candidate's row and what it compiled: compile, brief timing, then the gate unless it is clearly
    slower than `best` (the fastest that passed: QPS and label). A failing candidate is recorded, not fatal."""
    row = CandidateRow(engine=candidate.engine, precision=candidate.precision)
    runtime = compiled = None
    try:
        with console.status(f"compiling {candidate.label}"):
            compiled = compile_candidate(candidate)
        row.compile_seconds = round(compiled.compile_seconds, 3)
        row.cache = "hit" if compiled.cache_hit else "miss"
        runtime = make_runtime(compiled, candidate.config)
        runtime.load(batch_size)
        result = measure(runtime.bind(feeds), TUNING_POLICY, batch_size)
        row.qps, row.p50_latency = round(result.qps, 4), round(result.latency.p50, 4)
        row.iterations = result.latency.count
        if best is not None and result.qps * DROP_RATIO < best[0]:
            row.gate = "dropped"
            row.why = f"slower than {best[1]} after {result.latency.count} calls ({row.qps:.4g} vs {best[0]:.4g} QPS)"
        else:
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
