"""Choosing how to run: time every candidate briefly, check each against the reference, keep the
fastest that passes. The decision is cached per model, host and library versions.

The accuracy gate:
- real weights on a labelled dataset: every task metric (EM, F1, accuracy…) of the candidate is at
  least 99% of the FP32 reference's on the same sample of up to 256 features (MLPerf's 99% rule);
- otherwise (synthetic weights, or no labels): the mean |candidate - reference| over valid positions
  is at most DRIFT_BOUND of the reference's standard deviation, the top-1 position or class agrees on
  at least AGREEMENT_BOUND of the rows, and no output is NaN/Inf. Measured on synthetic albert:
  bf16 0.02 and int8 0.04-0.14 of a standard deviation with 94-100% agreement; the reference plus
  noise of half a standard deviation scores 0.46-0.50 and 25-38%.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from backends.base import Candidate, CompiledModel, Feeds, RuntimeBackend
from core.common import console
from core.measure.dataset_pass import DATASET_BATCH_SIZE, run_features
from core.common.errors import Interrupted, UserError, one_line
from core.measure.timing import MeasurePolicy, measure
from core.common.paths import state_dir
from datasets.base import Features

log = logging.getLogger(__name__)

# The gate's sample. Drift needs few features; a task metric needs enough questions that MLPerf's 1%
# bound is not one flipped answer (256 features ~ 240 SQuAD questions: one flip is 0.4%).
GATE_MAX_FEATURES = 48
GATE_MAX_FEATURES_METRIC = 256
DRIFT_BOUND = 0.25
AGREEMENT_BOUND = 0.80
METRIC_RATIO = 0.99
# Brief on purpose: enough calls to rank candidates whose speeds differ by more than the noise;
# the chosen one is then measured properly at every batch size.
TUNING_POLICY = MeasurePolicy(warmup_iterations=2, warmup_seconds=3.0, min_iterations=5, min_seconds=1.0, max_seconds=3.0)


@dataclass
class Gate:
    """The sample, the reference's outputs on it, and (real weights, labelled data) the task metric."""

    features: Features
    reference: dict[str, np.ndarray]
    reference_label: str
    evaluate: Callable[[dict[str, np.ndarray]], dict[str, Any]] | None = None
    reference_metrics: dict[str, float] = field(default_factory=dict)

    @property
    def by_metric(self) -> bool:
        return bool(self.reference_metrics)

    def rule(self) -> dict[str, Any]:
        rule: dict[str, Any] = {"Reference": self.reference_label, "Features": len(self.features)}
        if self.by_metric:
            rule["Rule"] = f"every task metric >= {METRIC_RATIO:.0%} of the reference's (MLPerf's 99% rule)"
            rule["Reference Metrics"] = {k: round(v, 4) for k, v in self.reference_metrics.items()}
        else:
            rule["Rule"] = (f"normalized drift <= {DRIFT_BOUND}, top-1 agreement >= {AGREEMENT_BOUND:.0%}, no NaN/Inf "
                            "(synthetic weights or unlabelled data: the task metric means nothing)")
        return rule

    def judge(self, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
        from core.quality.drift import agreement_statistics
        from core.reporting.report_io import quality_metrics

        stats = agreement_statistics(self.reference, outputs, self.features.lengths)
        row: dict[str, Any] = {"Normalized Drift": _round(stats["Normalized Drift"]), "Top-1 Agreement": _round(stats["Top-1 Agreement"])}
        problems = []
        if stats["Non-finite"]:
            problems.append(f"{stats['Non-finite']} NaN/Inf outputs")
        if self.by_metric:
            metrics = quality_metrics(self.evaluate(outputs))
            row["Metrics"] = {k: round(v, 4) for k, v in metrics.items()}
            problems += [f"{k} {metrics.get(k, float('nan')):.4g} < {METRIC_RATIO:.0%} of {ref:.4g}"
                         for k, ref in self.reference_metrics.items() if not metrics.get(k, float("-inf")) >= METRIC_RATIO * ref]
        else:
            drift, agreement = stats["Normalized Drift"], stats["Top-1 Agreement"]
            if drift is None or drift > DRIFT_BOUND:
                problems.append(f"drift {drift:.3g} > {DRIFT_BOUND}" if drift is not None else "nothing to compare")
            if agreement is not None and agreement < AGREEMENT_BOUND:
                problems.append(f"top-1 agreement {agreement:.0%} < {AGREEMENT_BOUND:.0%}")
        row["Gate"] = "fail" if problems else "pass"
        if problems:
            row["Why"] = "; ".join(problems)
        return row


def make_gate(features: Features, reference: dict[str, np.ndarray], reference_label: str, *,
              evaluate: Callable | None, synthetic: bool) -> Gate:
    """The gate judges by task metric only for meaningful scores (real weights and tokenizer) on labelled data."""
    from core.reporting.report_io import quality_metrics

    metrics = quality_metrics(evaluate(reference)) if evaluate is not None and not synthetic else {}
    return Gate(features, reference, reference_label, evaluate if metrics else None, metrics)


@dataclass
class Selection:
    candidate: Candidate
    compiled: CompiledModel
    section: dict[str, Any]     # the report's Graph Compile["Engine Selection"]


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def _decision_path(model: str, payload: dict[str, Any]) -> Path:
    from core.common.artifact_cache import cache_key, code_digest
    from core.measure.host import host_fingerprint, software_versions

    keyed = {**payload, "host": host_fingerprint(), "versions": software_versions(), "code": code_digest(Path(__file__))}
    return state_dir() / "tuning" / model / f"{cache_key(keyed)}.json"


def _body_digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _read_decision(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored.get("sha256") != _body_digest(stored["decision"]):
            raise ValueError("its digest does not match")
        return stored["decision"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        console.warn(f"tuning decision {path} is damaged ({err}); tuning again")
        return None


def _write_decision(path: Path, decision: dict[str, Any]) -> None:
    from core.common.atomic import atomic_write_text

    atomic_write_text(path, json.dumps({"decision": decision, "sha256": _body_digest(decision)}, indent=2) + "\n")


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
    path = _decision_path(model, {**cache_payload, "candidates": [[c.label, c.config.model_dump(mode="json")] for c in candidates],
                                  "batch_size": batch_size})
    decision = _read_decision(path)
    if decision is not None and decision.get("Chosen") in by_label:
        chosen = by_label[decision["Chosen"]]
        console.info(f"engine: {chosen.label} (decided {decision['Decided']} on this host; cached: {path.name})")
        return Selection(chosen, compile_candidate(chosen), {**decision, "Decision": f"cached from {decision['Decided']}"})

    console.info(f"choosing among {len(candidates)} candidates at batch size {batch_size}: "
                 + ", ".join(by_label) + " (timing each briefly, then the accuracy gate)")
    started = time.perf_counter()
    gate = make_gate()
    rows = [_try(c, compile_candidate, make_runtime, batch_size, feeds, gate) for c in candidates]
    passing = [row for row in rows if row.get("Gate") == "pass"]
    if not passing:
        reasons = "; ".join(f"{row['Engine']} {row['Precision']}: {row.get('Why', row.get('Gate'))}" for row in rows)
        raise UserError(f"no candidate passed the accuracy gate: {reasons}", field="engine",
                        fix="pin --engine and --precision to run one anyway")
    best = max(passing, key=lambda row: row["QPS"])
    chosen = by_label[f"{best['Engine']} {best['Precision']}"]
    runner_up = max((row for row in passing if row is not best), key=lambda row: row["QPS"], default=None)
    reason = (f"fastest of {len(passing)} candidates that passed the accuracy gate ({len(rows)} tried) at batch size "
              f"{batch_size}: {best['QPS']:.4g} QPS" + (f", next {runner_up['Engine']} {runner_up['Precision']} "
                                                         f"{runner_up['QPS']:.4g} QPS" if runner_up else ""))
    for row in rows:
        row["Chosen"] = row is best
    decision = {"Chosen": chosen.label, "Decided": now_iso(), "Reason": reason, "Batch Size": batch_size,
                "Tuning Seconds": round(time.perf_counter() - started, 1),
                "Timing": "brief: warm-up, then at least 5 calls and 1 s (at most 3 s) per candidate",
                "Gate": gate.rule(), "Candidates": rows}
    _write_decision(path, decision)
    console.info(f"engine: {chosen.label}, {reason}")
    return Selection(chosen, compile_candidate(chosen), {**decision, "Decision": "tuned in this run"})


def _try(candidate: Candidate, compile_candidate, make_runtime, batch_size: int, feeds: Feeds, gate: Gate) -> dict[str, Any]:
    """One candidate's row: compile, brief timing, gate. A failing candidate is recorded, not fatal."""
    row: dict[str, Any] = {"Engine": candidate.engine, "Precision": candidate.precision}
    runtime = None
    try:
        with console.status(f"compiling {candidate.label}"):
            compiled = compile_candidate(candidate)
        row["Compile Seconds"] = round(compiled.compile_seconds, 3)
        row["Cache"] = "hit" if compiled.cache_hit else "miss"
        runtime = make_runtime(compiled, candidate.config)
        runtime.load(batch_size)
        result = measure(runtime.bind(feeds), TUNING_POLICY, batch_size)
        row.update({"QPS": round(result.qps, 4), "P50 Latency": round(result.latency.p50, 4), "Iterations": result.latency.count})
        outputs, _ = run_features(runtime, gate.features, DATASET_BATCH_SIZE, length_aware=True)
        row.update(gate.judge(outputs))
    except (KeyboardInterrupt, Interrupted):
        raise
    except Exception as err:  # a candidate this model or host cannot run must not end the run
        log.debug("candidate %s failed", candidate.label, exc_info=True)
        row.update({"Gate": "error", "Why": err.message if isinstance(err, UserError) else f"{type(err).__name__}: {one_line(err)}"})
    finally:
        if runtime is not None:
            runtime.close()
    shown = f"{row['QPS']:.4g} QPS" if "QPS" in row else "no timing"
    drift = f", drift {row['Normalized Drift']}, agreement {row['Top-1 Agreement']}" if row.get("Normalized Drift") is not None else ""
    console.info(f"  {candidate.label}: {shown}{drift} -> {row['Gate']}" + (f" ({row['Why']})" if "Why" in row else ""))
    return row
