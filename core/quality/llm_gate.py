"""The accuracy gate for LLM candidates: may a candidate's teacher-forced logits stand in for the CPU FP32
reference's?

Judged per prompt, a candidate failing when any prompt fails. The tolerance comes from a model the candidate
cannot touch: the reference with the candidate's weight rounding applied (its FP32 weights rounded to BF16 and
back, run in FP32): the "scale" model. So a BF16 engine fails only for error beyond what BF16 explains.
Per prompt:
- no NaN/Inf;
- drift (mean |candidate - reference| over the reference's std) <= DRIFT_FACTOR x the scale model's drift
  (activations are rounded too, which weight rounding alone does not show), and at least DRIFT_FLOOR;
- greedy agreement >= AGREEMENT_BOUND over the decisive positions: those whose reference top-two gap exceeds
  TIE_FACTOR x the scale model's largest logit error at that position. The reference and the scale model fix
  which positions are decisive, so more candidate error never excuses more disagreement;
- with fewer than MIN_DECISIVE decisive positions agreement cannot decide: the verdict is inconclusive and
  the drift must stay within INCONCLUSIVE_FACTOR x the scale model's;
- the candidate is far closer to the scale model (the model it claims to be: the same rounded weights) than
  unrelated outputs are: its distance from the scale model's logits, beyond what the rounding explains, is at
  most UNRELATED_FRACTION of the scale model's distance from its own logits one position on. Where a coarse
  rounding moves the logits nearly as far as unrelated ones (4-bit weights on random weights do), the bounds
  above would pass any output; this one still fails an engine that computes something else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

# BF16 engines measured at 1.1x (Llama-3.2-1B's shapes, 2 layers) to 1.8x (tiny-llama) of the scale model's drift
# (activations rounded too); logits noise of 0.1 of their std is 3.9x there and fails.
DRIFT_FACTOR = 3.0
DRIFT_FLOOR = 1e-3  # FP32 engines differ by reordered sums: ~1e-6 of the std; a broken one by far more
TIE_FACTOR = 2.0
AGREEMENT_BOUND = 0.90
MIN_DECISIVE = 5
INCONCLUSIVE_FACTOR = 2.5  # tiny-llama BF16 at 4 steps: 1.9x
UNRELATED_FRACTION = 0.5


@dataclass
class PromptVerdict:
    drift: float
    scale_drift: float
    bound: float
    decisive: int
    agreement: float | None  # over the decisive positions; None when none is decisive
    passed: bool
    why: str
    beyond: float = 0.0  # the candidate's distance from the scale model, over the reference's std
    unrelated: float | None = None  # the scale model's distance from its own logits one position on


@dataclass
class LlmVerdict:
    prompts: list[PromptVerdict] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.prompts) and all(p.passed for p in self.prompts)

    @property
    def gate(self) -> str:
        return "pass" if self.passed else "fail"

    @property
    def drift(self) -> float:
        """The worst prompt's drift."""
        return max(p.drift for p in self.prompts)

    @property
    def agreement(self) -> float | None:
        """The worst prompt's decisive agreement."""
        values = [p.agreement for p in self.prompts if p.agreement is not None]
        return min(values) if values else None

    @property
    def decisive(self) -> int:
        return sum(p.decisive for p in self.prompts)

    @property
    def why(self) -> str:
        failed = [f"prompt {i}: {p.why}" for i, p in enumerate(self.prompts) if not p.passed]
        if failed:
            return "; ".join(failed)
        inconclusive = sum(1 for p in self.prompts if p.agreement is None or p.decisive < MIN_DECISIVE)
        note = f" ({inconclusive} prompts inconclusive: the tight drift bound decided)" if inconclusive else ""
        return f"every prompt within its bound{note}"


def rule(scale_label: str) -> dict[str, Any]:
    return {
        "Rule": (
            f"per prompt: no NaN/Inf; drift <= {DRIFT_FACTOR:g} x the scale model's (at least {DRIFT_FLOOR:g}); "
            f"greedy agreement >= {AGREEMENT_BOUND:.0%} over positions whose reference top-two gap exceeds "
            f"{TIE_FACTOR:g} x the scale model's largest error there; below {MIN_DECISIVE} such positions "
            f"inconclusive: drift <= {INCONCLUSIVE_FACTOR:g} x the scale model's; the distance from the scale model "
            f"<= {UNRELATED_FRACTION:g} x its distance from its own logits one position on; any prompt failing fails"
        ),
        "Scale": scale_label,
    }


def judge_prompt(reference, candidate, scale) -> PromptVerdict:
    """One prompt's teacher-forced logits [positions, vocab]: reference, candidate and scale model (FP32)."""
    import torch

    ref, cand, sc = reference.double(), candidate.double(), scale.double()
    spread = max(float(ref.std()), 1e-30)
    scale_drift = float((sc - ref).abs().mean()) / spread
    if not bool(torch.isfinite(cand).all()):
        return PromptVerdict(math.inf, scale_drift, 0.0, 0, None, False, "NaN or Inf in the logits")
    drift = float((cand - ref).abs().mean()) / spread
    beyond = float((cand - sc).abs().mean()) / spread
    unrelated = float((sc[1:] - sc[:-1]).abs().mean()) / spread if len(sc) > 1 else None
    far = unrelated is not None and beyond > UNRELATED_FRACTION * unrelated
    apart = (
        f"{beyond:.4g} from the scale model > {UNRELATED_FRACTION:g} x unrelated outputs' {unrelated:.4g}"
        if far
        else ""
    )
    top = ref.topk(2, dim=-1).values
    gap = top[:, 0] - top[:, 1]
    tolerance = (TIE_FACTOR * (sc - ref).abs().amax(dim=-1)).clamp(min=DRIFT_FLOOR * spread)
    decisive = gap > tolerance
    count = int(decisive.sum())
    agree = ref.argmax(-1) == cand.argmax(-1)
    agreement = float(agree[decisive].double().mean()) if count else None
    if count < MIN_DECISIVE:
        bound = max(INCONCLUSIVE_FACTOR * scale_drift, DRIFT_FLOOR)
        ok = drift <= bound and not far
        sign = "<=" if drift <= bound else ">"
        why = f"inconclusive ({count} decisive positions): drift {drift:.4g} {sign} {bound:.4g}"
        why += f"; {apart}" if far else ""
        return PromptVerdict(drift, scale_drift, bound, count, agreement, ok, why, beyond, unrelated)
    bound = max(DRIFT_FACTOR * scale_drift, DRIFT_FLOOR)
    reasons = [apart] if far else []
    if drift > bound:
        reasons.append(f"drift {drift:.4g} > {bound:.4g}")
    if agreement < AGREEMENT_BOUND:
        reasons.append(f"agreement {agreement:.3f} < {AGREEMENT_BOUND:.2f} over {count} decisive positions")
    why = "; ".join(reasons) or f"drift {drift:.4g} <= {bound:.4g}, agreement {agreement:.3f} over {count}"
    return PromptVerdict(drift, scale_drift, bound, count, agreement, not reasons, why, beyond, unrelated)


def judge(references: list, candidates: list, scales: list) -> LlmVerdict:
    """Every prompt's verdict; the lists hold one [positions, vocab] logits tensor a prompt each."""
    if not (len(references) == len(candidates) == len(scales)) or not references:
        raise ValueError("the gate needs the same prompts, at least one, from the reference, candidate and scale")
    return LlmVerdict([judge_prompt(r, c, s) for r, c, s in zip(references, candidates, scales)])
