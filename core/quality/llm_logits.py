"""An LLM candidate against the CPU FP32 reference on the same weights.

The reference generates greedily from a few seeded prompts; the candidate then reads the same sequences
(teacher forcing), so one early different token does not cascade into every later comparison. Reported:
llm_perf's Logits Diff on the first generated token (max difference, mean squared and absolute error,
cosine similarity), its Token Diff per position, the same figures over every generated position, the share
of positions whose greedy token agrees, free-running agreement, and a relative drift. Full-vocabulary
logits are compared one sequence at a time, never held for a whole batch. Perplexity over a multiple-choice
CSV in llm_perf's merged_52_test.csv format when the workload names one.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from core.common.errors import UserError

CHOICES = ("A", "B", "C", "D")


def logits_diff(reference, candidate) -> dict[str, float]:
    """llm_perf's four figures between two logits tensors of one shape (float32)."""
    import torch

    diff = (candidate - reference).double()
    cosine = torch.nn.functional.cosine_similarity(reference.double().flatten(), candidate.double().flatten(), dim=0)
    return {
        "Max Difference": round(float(diff.abs().max()), 6),
        "Mean Squared Error": round(float(diff.pow(2).mean()), 8),
        "Mean Absolute Error": round(float(diff.abs().mean()), 6),
        "Cosine Similarity": round(float(cosine), 8),
    }


class Comparison:
    """Accumulates teacher-forced comparisons sequence by sequence."""

    def __init__(self) -> None:
        self.first_ref: list = []
        self.first_cand: list = []
        self.token_diff: list[float] = []  # per generated position, the largest logit difference
        self.agree = 0
        self.positions = 0
        self.abs_sum = 0.0
        self.sq_sum = 0.0
        self.max_diff = 0.0
        self.ref_sq = 0.0
        self.ref_sum = 0.0
        self.count = 0
        self.dot = 0.0
        self.cand_sq = 0.0
        self.free_agree = 0
        self.free_total = 0

    def add(self, reference, candidate, free_ref: list[int], free_cand: list[int]) -> None:
        """One sequence: teacher-forced logits [positions, vocab] of each side, and each side's own greedy tokens."""
        diff = (candidate - reference).double()
        self.first_ref.append(reference[0])
        self.first_cand.append(candidate[0])
        self.token_diff.extend(float(v) for v in diff.abs().amax(dim=-1))
        self.agree += int((reference.argmax(-1) == candidate.argmax(-1)).sum())
        self.positions += reference.shape[0]
        self.abs_sum += float(diff.abs().sum())
        self.sq_sum += float(diff.pow(2).sum())
        self.max_diff = max(self.max_diff, float(diff.abs().max()))
        ref = reference.double()
        self.ref_sum += float(ref.sum())
        self.ref_sq += float(ref.pow(2).sum())
        self.count += reference.numel()
        self.dot += float((ref * candidate.double()).sum())
        self.cand_sq += float(candidate.double().pow(2).sum())
        # Free running: agreement up to the first different token, then nothing more is comparable.
        same = 0
        for a, b in zip(free_ref, free_cand):
            if a != b:
                break
            same += 1
        self.free_agree += same
        self.free_total += len(free_ref)

    def result(self) -> dict[str, Any]:
        import torch

        mean = self.ref_sum / self.count
        spread = math.sqrt(max(self.ref_sq / self.count - mean * mean, 1e-30))
        mae = self.abs_sum / self.count
        return {
            "Logits Diff": logits_diff(torch.stack(self.first_ref), torch.stack(self.first_cand)),
            "Token Diff": [round(v, 6) for v in self.token_diff],
            "Teacher-Forced Logits Diff": {
                "Max Difference": round(self.max_diff, 6),
                "Mean Squared Error": round(self.sq_sum / self.count, 8),
                "Mean Absolute Error": round(mae, 6),
                "Cosine Similarity": round(self.dot / math.sqrt(self.ref_sq * self.cand_sq), 8),
            },
            "Greedy Agreement": round(self.agree / self.positions, 6),
            "Free-Running Agreement": round(self.free_agree / self.free_total, 6),
            "Drift": round(mae / spread, 6),
            "Positions": self.positions,
        }


def multiple_choice_texts(path: Path) -> list[str]:
    """Texts of a merged_52_test.csv-format file (question, A-D, optionally answer): each question with its
    choices, then 'Answer:' and the answer where the file has one."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as err:
        raise UserError(
            f"cannot read the dataset: {err.strerror}", file=path, field="accuracy_config.dataset"
        ) from None
    except (UnicodeDecodeError, csv.Error) as err:
        raise UserError(f"not a CSV file: {err}", file=path, field="accuracy_config.dataset") from None
    missing = [c for c in ("question", *CHOICES) if not rows or c not in rows[0]]
    if missing:
        raise UserError(
            f"missing columns {', '.join(missing)}",
            file=path,
            field="accuracy_config.dataset",
            fix="merged_52_test.csv's columns: id, question, A, B, C, D (answer optional)",
        )
    texts = []
    for row in rows:
        text = row["question"] + "\n" + "\n".join(f"{c}. {row[c]}" for c in CHOICES) + "\nAnswer:"
        if row.get("answer"):
            text += " " + row["answer"]
        texts.append(text)
    return texts


def perplexity(logits_of, token_lists: list[list[int]]) -> float:
    """exp of the mean next-token negative log-likelihood over every token after each text's first."""
    import torch

    total, count = 0.0, 0
    for ids in token_lists:
        if len(ids) < 2:
            continue
        logits = logits_of(ids[:-1])
        target = torch.tensor(ids[1:], device=logits.device)
        total += float(torch.nn.functional.cross_entropy(logits, target, reduction="sum"))
        count += len(ids) - 1
    return math.exp(total / count) if count else math.nan
