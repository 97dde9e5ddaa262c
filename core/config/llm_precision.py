"""LLM precisions name weights and activations apart: weight-only quantization is what CPU LLM users run.

"FP32" and "BF16" mean both; "INT4 weights, INT8 activations" names each. A pinned precision may name only
the weights ("INT4 weights"): any candidate storing INT4 weights matches it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

WEIGHTS = ("FP32", "BF16", "FP16", "INT8", "INT4", "Q8_0", "Q4_0")
ACTIVATIONS = ("FP32", "BF16", "FP16", "INT8")
_SPLIT = re.compile(r"^\s*(?P<w>[\w.]+)\s+weights?\s*(?:,\s*(?P<a>\w+)\s+activations?)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class LlmPrecision:
    weights: str
    activations: str | None  # None: any (a pin naming only the weights)

    @property
    def label(self) -> str:
        if self.activations == self.weights:
            return self.weights
        if self.activations is None:
            return f"{self.weights} weights"
        return f"{self.weights} weights, {self.activations} activations"

    def matches(self, other: LlmPrecision) -> bool:
        """Whether `other` (a candidate's precision) is what this pin asks for."""
        return self.weights == other.weights and self.activations in (None, other.activations)


def parse(text: str) -> LlmPrecision:
    """ "BF16", "INT4 weights", "INT4 weights, INT8 activations" (any case); ValueError naming the choices."""
    plain = text.strip().upper()
    if plain in ACTIVATIONS:
        return LlmPrecision(plain, plain)
    found = _SPLIT.match(text)
    weights = found and found["w"].upper()
    activations = found and found["a"] and found["a"].upper()
    if not weights or weights not in WEIGHTS or (activations and activations not in ACTIVATIONS):
        raise ValueError(
            f"{text!r} is not an LLM precision: use one of {', '.join(ACTIVATIONS)}, or '<W> weights' / "
            f"'<W> weights, <A> activations' with W in {', '.join(WEIGHTS)} and A in {', '.join(ACTIVATIONS)}"
        )
    return LlmPrecision(weights, activations)


def activations_of(label: str) -> str:
    precision = parse(label)
    return precision.activations or precision.weights


def file_name(label: str) -> str:
    """The report file's precision part: "bf16", "int4w-int8a" (a label has spaces and a comma)."""
    precision = parse(label)
    if precision.activations == precision.weights:
        return precision.weights.lower()
    return (f"{precision.weights}w" + (f"-{precision.activations}a" if precision.activations else "")).lower()
