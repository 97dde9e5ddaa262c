"""GLUE's official metrics, as its scorer computes them (scikit-learn and SciPy, like the GLUE baselines
and Hugging Face's `glue_compute_metrics`), in percent.

A prediction that is not finite (NaN/Inf logits or score) is never scored as right: a class prediction
counts as wrong, and a regression score is left out of the correlations; the count is reported.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from datasets.glue.tasks import ACCURACY, F1, MATTHEWS, PEARSON, SPEARMAN, GlueTask


def classify(logits: np.ndarray, gold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(predicted class per row, finite rows); a non-finite row predicts a class other than its gold one."""
    finite = np.isfinite(logits).all(axis=1)
    predicted = np.argmax(np.where(finite[:, None], logits, 0), axis=1)
    wrong = (gold + 1) % logits.shape[1]
    return np.where(finite, predicted, wrong), finite


def scores(spec: GlueTask, outputs: np.ndarray, gold: np.ndarray) -> dict[str, Any]:
    """The task's metrics on model outputs ([N, classes] logits, or [N] / [N, 1] scores for STS-B)."""
    if spec.regression:
        return regression_scores(np.asarray(outputs, dtype=np.float64).reshape(len(gold)), gold.astype(np.float64))
    predicted, finite = classify(np.asarray(outputs, dtype=np.float64), gold)
    return {**classification_scores(spec, predicted, gold), "Non-finite Outputs": int((~finite).sum())}


def classification_scores(spec: GlueTask, predicted: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import f1_score, matthews_corrcoef

    found: dict[str, float] = {}
    for metric in spec.metrics:
        if metric == ACCURACY:
            found[metric] = 100.0 * float((predicted == gold).mean())
        elif metric == F1:  # of the positive class ("1": paraphrase, duplicate)
            found[metric] = 100.0 * float(f1_score(gold, predicted, pos_label=1, zero_division=0))
        elif metric == MATTHEWS:
            found[metric] = 100.0 * float(matthews_corrcoef(gold, predicted))
    return found


def regression_scores(predicted: np.ndarray, gold: np.ndarray) -> dict[str, Any]:
    from scipy.stats import pearsonr, spearmanr

    finite = np.isfinite(predicted)
    kept_pred, kept_gold = predicted[finite], gold[finite]
    constant = len(kept_pred) < 2 or np.ptp(kept_pred) == 0 or np.ptp(kept_gold) == 0
    return {
        # A constant prediction has no correlation with anything: NaN, which the report writes as such.
        PEARSON: float("nan") if constant else 100.0 * float(pearsonr(kept_pred, kept_gold)[0]),
        SPEARMAN: float("nan") if constant else 100.0 * float(spearmanr(kept_pred, kept_gold)[0]),
        "Non-finite Outputs": int((~finite).sum()),
    }
