"""The accuracy gate: may a candidate engine/precision stand in for the CPU FP32 reference?

- real weights on a labelled dataset: every task metric (EM, F1, accuracy…) of the candidate is at
  least 99% of the FP32 reference's on the same sample of up to 256 features (MLPerf's 99% rule);
- otherwise (synthetic weights, or no labels): each output on its own, and the candidate fails when any
  output fails. No value is NaN/Inf; the mean |candidate - reference| over valid positions (the drift)
  is at most DRIFT_BOUND of the reference's standard deviation there (ROW_DRIFT_BOUND for a row); the top-1
  position or class agrees on at least AGREEMENT_BOUND of the decisive rows, and at most 1 -
  AGREEMENT_BOUND of the picks are far from the reference's best. Near-ties and far picks are measured
  against a tolerance fixed by the reference alone (drift.TIE_SPREAD), so more error never excuses more
  disagreement. With fewer than MIN_DECISIVE_ROWS decisive rows agreement cannot decide: the verdict is
  inconclusive and the drift must stay within what a sound candidate shows (INCONCLUSIVE_DRIFT_BOUND).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.quality.drift import SOUND_DRIFT, TIE_SPREAD, OutputAgreement, agreement_statistics
from datasets.base import Features

# The gate's sample. Drift needs few features; a task metric needs enough questions that MLPerf's 1%
# bound is not one flipped answer (256 features ~ 240 SQuAD questions: one flip is 0.4%).
GATE_MAX_FEATURES = 48
GATE_MAX_FEATURES_METRIC = 256
# The synthetic rule's sample is sized by time: GATE_SECONDS of the candidate's calls, between these. The drift
# is a mean over every value of the sample (thousands per feature), steady on a few features; agreement needs
# MIN_DECISIVE_ROWS decisive rows in each output, and seeded ALBERT's flat start and end logits give ~0.4 a
# feature each (8 and 9 of 21 measured): 32 features give ~13. Fewer leave the verdict inconclusive, where
# only the tight drift bound holds (int8 candidates drift 0.07 there and would fail).
GATE_MIN_FEATURES = 32
GATE_SECONDS = 20.0
# Sound candidates drift 0.01-0.03 (bf16) to 0.08 (OpenVINO int8) of the reference's std on synthetic ALBERT
# (Zen 4; onnxruntime's dynamic int8 0.11-0.16), broken ones 0.2 and more (noise of 0.3 std, a ramp, stale or
# zeroed outputs): the bound sits between.
DRIFT_BOUND = 0.15
# One row's values are few, so its drift scatters more; a stale or zeroed row drifts ~1.
ROW_DRIFT_BOUND = 0.25
AGREEMENT_BOUND = 0.80
# Fewer decisive rows than this and agreement is not judged (inconclusive): below 10 rows one disagreement
# moves agreement by more than the 20 points the bound allows. The drift must then stay within what rounding
# alone gives, far below what broken ones do.
MIN_DECISIVE_ROWS = 10
INCONCLUSIVE_DRIFT_BOUND = SOUND_DRIFT
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
                f"each output: normalized drift <= {DRIFT_BOUND} (each row <= {ROW_DRIFT_BOUND}), top-1 agreement >= "
                f"{AGREEMENT_BOUND:.0%} over the decisive rows and at most {1 - AGREEMENT_BOUND:.0%} of picks far "
                f"from the reference's best (near-tie tolerance {TIE_SPREAD:.3f} of the reference's std); below "
                f"{MIN_DECISIVE_ROWS} decisive rows inconclusive: drift <= {INCONCLUSIVE_DRIFT_BOUND}; no NaN/Inf "
                "(synthetic weights or unlabelled data: the task metric means nothing)"
            )
        return rule

    def judge(self, outputs: dict[str, np.ndarray]) -> Verdict:
        stats = agreement_statistics(self.reference, outputs, self.features.lengths)
        verdict = summarize(stats)
        nonfinite = sum(s.nonfinite for s in stats)
        problems = [f"{nonfinite} NaN/Inf outputs"] if nonfinite else []
        if self.by_metric:
            metrics = quality_of(self.evaluate(outputs))
            verdict.metrics = {k: round(v, 4) for k, v in metrics.items()}
            verdict.rule = "metric"
            problems += [
                f"{k} {metrics.get(k, float('nan')):.4g} < {METRIC_RATIO:.0%} of {ref:.4g}"
                for k, ref in self.reference_metrics.items()
                if not metrics.get(k, float("-inf")) >= METRIC_RATIO * ref
            ]
        else:
            named = len(stats) > 1  # several outputs: say which one each finding is about
            rules = []
            for output in stats:
                rule, found = judge_output(output)
                rules.append(f"{output.name}: {rule}" if named else rule)
                problems += [f"{output.name}: {p}" if named else p for p in found]
            verdict.rule = "inconclusive" if any(_inconclusive(s) for s in stats) else "agreement"
            verdict.note = "; ".join(rules)
        verdict.gate = "fail" if problems else "pass"
        verdict.why = "; ".join(problems) or None
        return verdict


def judge_output(output: OutputAgreement) -> tuple[str, list[str]]:
    """The rule that decides one output (in words) and what fails it."""
    if output.drift is None:
        return "nothing to compare", ["nothing to compare"]
    ties = f"{output.near_ties} near-ties"
    if _inconclusive(output):
        rule, bound = f"inconclusive ({output.decisive} decisive rows, {ties}): drift alone", INCONCLUSIVE_DRIFT_BOUND
    else:
        rule, bound = f"agreement over {output.decisive} decisive rows ({ties})", DRIFT_BOUND
    problems = []
    if output.drift > bound:
        inconclusive = f" (inconclusive: {output.decisive} decisive rows)" if _inconclusive(output) else ""
        problems.append(f"drift {output.drift:.3g} > {bound}{inconclusive}")
    if output.worst_row_drift > ROW_DRIFT_BOUND:
        problems.append(f"a row drifts {output.worst_row_drift:.3g} > {ROW_DRIFT_BOUND}")
    agreement = output.decisive_agreement
    if not _inconclusive(output) and agreement < AGREEMENT_BOUND:
        problems.append(
            f"top-1 agreement {agreement:.0%} < {AGREEMENT_BOUND:.0%} over {output.decisive} decisive rows"
            f" ({ties} left out)"
        )
    if output.picks - output.far_picks < AGREEMENT_BOUND * output.picks:
        problems.append(
            f"{output.far_picks} of {output.picks} picks far from the reference's best (> {1 - AGREEMENT_BOUND:.0%})"
        )
    return rule, problems


def _inconclusive(output: OutputAgreement) -> bool:
    return output.decisive < MIN_DECISIVE_ROWS


def summarize(stats: list[OutputAgreement]) -> Verdict:
    """The figures a candidate's row shows: the worst output's drift (what the bound holds), picks pooled."""
    drifts = [s.drift for s in stats if s.drift is not None]
    picks, decisive = sum(s.picks for s in stats), sum(s.decisive for s in stats)
    return Verdict(
        rounded(max(drifts)) if drifts else None,
        rounded(sum(s.agree for s in stats) / picks) if picks else None,
        sum(s.near_ties for s in stats),
        decisive,
        rounded(sum(s.decisive_agree for s in stats) / decisive) if decisive else None,
    )


@dataclass
class Verdict:
    """The gate's judgement of one candidate's outputs."""

    normalized_drift: float | None
    top1_agreement: float | None
    near_ties: int | None = None  # rows whose reference top two lie within the tie tolerance
    decisive_rows: int | None = None
    decisive_agreement: float | None = None  # agreement over the rows the reference can tell apart
    metrics: dict[str, float] | None = None  # the task metrics, when the gate judges by them
    gate: str = "pass"
    why: str | None = None
    note: str | None = None  # the rule that decided, per output: agreement, or inconclusive (drift alone)
    rule: str | None = None  # "agreement", "inconclusive" (any output too few decisive rows) or "metric"

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
