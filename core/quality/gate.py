"""The accuracy gate: may a candidate engine/precision stand in for the CPU FP32 reference?

- real weights on a labelled dataset: every task metric (EM, F1, accuracy…) of the candidate is at
  least 99% of the FP32 reference's on the same sample of up to 256 features (MLPerf's 99% rule);
- otherwise (synthetic weights, or no labels): the mean |candidate - reference| over valid positions
  is at most DRIFT_BOUND of the reference's standard deviation, the top-1 position or class agrees on
  at least AGREEMENT_BOUND of the rows, and no output is NaN/Inf. The bounds sit between what bf16 and
  int8 drift to and what noise of half a standard deviation scores (docs/MEASUREMENTS.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from datasets.base import Features

# The gate's sample. Drift needs few features; a task metric needs enough questions that MLPerf's 1%
# bound is not one flipped answer (256 features ~ 240 SQuAD questions: one flip is 0.4%).
GATE_MAX_FEATURES = 48
GATE_MAX_FEATURES_METRIC = 256
# The synthetic rule's sample is sized by time: GATE_SECONDS of the candidate's calls, between these. The drift
# is a mean over every value of the sample (thousands per feature), steady on a few features; agreement needs
# MIN_DECISIVE_ROWS rows, which 8 QA features give with a start and an end pick each.
GATE_MIN_FEATURES = 8
GATE_SECONDS = 20.0
DRIFT_BOUND = 0.25
AGREEMENT_BOUND = 0.80
# Fewer decisive rows than this and agreement is not judged (drift alone decides): below 10 rows one
# disagreement moves agreement by more than the 20 points the bound allows.
MIN_DECISIVE_ROWS = 10
METRIC_RATIO = 0.99


@dataclass
class Gate:
    """The sample, the reference's outputs on it, and (real weights, labelled data) the task metric."""

    features: Features
    reference: dict[str, np.ndarray]
    reference_label: str
    evaluate: Callable[[dict[str, np.ndarray]], dict[str, Any]] | None = None
    reference_metrics: dict[str, float] = field(default_factory=dict)
    sample_note: str | None = None  # why the sample has the features it has (sized by time)

    @property
    def by_metric(self) -> bool:
        return bool(self.reference_metrics)

    def rule(self) -> dict[str, Any]:
        rule: dict[str, Any] = {"Reference": self.reference_label, "Features": len(self.features)}
        if self.sample_note:
            rule["Sample"] = self.sample_note
        if self.by_metric:
            rule["Rule"] = f"every task metric >= {METRIC_RATIO:.0%} of the reference's (MLPerf's 99% rule)"
            rule["Reference Metrics"] = {k: round(v, 4) for k, v in self.reference_metrics.items()}
        else:
            rule["Rule"] = (
                f"normalized drift <= {DRIFT_BOUND}, top-1 agreement >= {AGREEMENT_BOUND:.0%} over the decisive "
                f"rows (near-ties left out; drift alone below {MIN_DECISIVE_ROWS} decisive rows), no NaN/Inf "
                "(synthetic weights or unlabelled data: the task metric means nothing)"
            )
        return rule

    def judge(self, outputs: dict[str, np.ndarray]) -> Verdict:
        from core.quality.drift import agreement_statistics

        stats = agreement_statistics(self.reference, outputs, self.features.lengths)
        drift, agreement = stats["Normalized Drift"], stats["Top-1 Agreement"]
        decisive, rows = stats["Decisive Agreement"], stats["Decisive Rows"]
        verdict = Verdict(rounded(drift), rounded(agreement), stats["Near Ties"], rows, rounded(decisive))
        problems = []
        if stats["Non-finite"]:
            problems.append(f"{stats['Non-finite']} NaN/Inf outputs")
        if self.by_metric:
            metrics = quality_of(self.evaluate(outputs))
            verdict.metrics = {k: round(v, 4) for k, v in metrics.items()}
            problems += [
                f"{k} {metrics.get(k, float('nan')):.4g} < {METRIC_RATIO:.0%} of {ref:.4g}"
                for k, ref in self.reference_metrics.items()
                if not metrics.get(k, float("-inf")) >= METRIC_RATIO * ref
            ]
        else:
            if drift is None or drift > DRIFT_BOUND:
                problems.append(f"drift {drift:.3g} > {DRIFT_BOUND}" if drift is not None else "nothing to compare")
            if decisive is not None and rows >= MIN_DECISIVE_ROWS and decisive < AGREEMENT_BOUND:
                problems.append(
                    f"top-1 agreement {decisive:.0%} < {AGREEMENT_BOUND:.0%} over {rows} decisive rows"
                    f" ({stats['Near Ties']} near-ties left out)"
                )
            elif agreement is not None and rows < MIN_DECISIVE_ROWS:
                verdict.note = (
                    f"only {rows} decisive rows ({stats['Near Ties']} near-ties): agreement not judged, drift alone"
                )
        verdict.gate = "fail" if problems else "pass"
        verdict.why = "; ".join(problems) or None
        return verdict


@dataclass
class Verdict:
    """The gate's judgement of one candidate's outputs."""

    normalized_drift: float | None
    top1_agreement: float | None
    near_ties: int | None = None  # rows whose reference top two lie within the observed rounding
    decisive_rows: int | None = None
    decisive_agreement: float | None = None  # agreement over the rows the reference can tell apart
    metrics: dict[str, float] | None = None  # the task metrics, when the gate judges by them
    gate: str = "pass"
    why: str | None = None
    note: str | None = None  # how the verdict was reached, when not by the full rule

    @property
    def passed(self) -> bool:
        return self.gate == "pass"


def quality_of(evaluation: dict[str, Any]) -> dict[str, float]:
    """The quality metrics of a loader's evaluate() result (no counts, drift or problem counts)."""
    from core.reporting.sections import Accuracy

    return Accuracy.from_dict(evaluation).quality()


def gate_features(synthetic: bool, seconds_per_sample: float) -> tuple[int, str]:
    """How many features the gate judges, and why: the task metric's sample is fixed (its 1% bound must not be
    one flipped answer); the synthetic rule's fits GATE_SECONDS of the first candidate's speed."""
    if not synthetic:
        return GATE_MAX_FEATURES_METRIC, f"up to {GATE_MAX_FEATURES_METRIC}: the task metric's 1% bound"
    fits = int(GATE_SECONDS / seconds_per_sample) if seconds_per_sample > 0 else GATE_MAX_FEATURES
    count = max(GATE_MIN_FEATURES, min(GATE_MAX_FEATURES, fits))
    return count, (
        f"{count}: what {GATE_SECONDS:g} s of the first candidate's calls run "
        f"({seconds_per_sample:.3g} s a sample), between {GATE_MIN_FEATURES} and {GATE_MAX_FEATURES}"
    )


def make_gate(
    features: Features,
    reference: dict[str, np.ndarray],
    reference_label: str,
    *,
    evaluate: Callable | None,
    synthetic: bool,
) -> Gate:
    """The gate judges by task metric only for meaningful scores (real weights and tokenizer) on labelled data."""
    metrics = quality_of(evaluate(reference)) if evaluate is not None and not synthetic else {}
    return Gate(features, reference, reference_label, evaluate if metrics else None, metrics)


def rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)
