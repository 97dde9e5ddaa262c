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
    make_gate: Callable[[], Gate],
    cache_payload: dict[str, Any],
) -> Selection:
    """The fastest candidate that passes the gate, from the decision cache when this host decided before."""
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
    )
    started = time.perf_counter()
    gate = make_gate()
    rows: list[CandidateRow] = []
    fastest: tuple[float, CompiledModel] | None = None  # kept, so the winner is not compiled twice
    for candidate in candidates:
        row, compiled = _try(candidate, compile_candidate, make_runtime, batch_size, feeds, gate)
        rows.append(row)
        if row.passed and (fastest is None or row.qps > fastest[0]):
            fastest = (row.qps, compiled)  # the previous fastest is released
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
        f"fastest of {len(passing)} candidates that passed the accuracy gate ({len(rows)} tried) at batch size "
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
        timing="brief: warm-up, then at least 5 calls and 1 s (at most 3 s) per candidate",
        gate=gate.rule(),
        candidates=rows,
    )
    _write_decision(path, decision)
    console.info(f"engine: {chosen.label}, {reason}")
    decision.decision = "tuned in this run"
    return Selection(chosen, fastest[1], decision)


def _try(
    candidate: Candidate, compile_candidate, make_runtime, batch_size: int, feeds: Feeds, gate: Gate
) -> tuple[CandidateRow, CompiledModel | None]:
    """One candidate's row and what it compiled: compile, brief timing, gate. A failing candidate is
    recorded, not fatal."""
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
        outputs, _ = run_features(runtime, gate.features, DATASET_BATCH_SIZE, length_aware=True)
        verdict = gate.judge(outputs)
        row.normalized_drift, row.top1_agreement = verdict.normalized_drift, verdict.top1_agreement
        row.near_ties, row.decisive_rows = verdict.near_ties, verdict.decisive_rows
        row.decisive_agreement = verdict.decisive_agreement
        row.metrics, row.gate, row.why = verdict.metrics, verdict.gate, verdict.why or verdict.note
    except (KeyboardInterrupt, Interrupted):
        raise
    except Exception as err:  # a candidate this model or host cannot run must not end the run
        log.debug("candidate %s failed", candidate.label, exc_info=True)
        row.gate = "error"
        row.why = err.message if isinstance(err, UserError) else f"{type(err).__name__}: {one_line(err)}"
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
