"""What an LLM load point sends: when requests arrive (open loop) and how long each prompt and answer is.

Open-loop arrivals follow a gamma process: inter-arrival times of shape `burstiness` and mean 1 / rate, so
burstiness 1 is Poisson, below 1 burstier, above 1 more regular (vLLM's `--burstiness`). They are drawn
before the point starts and kept to, whatever the engine does: a request the server notices late still
arrived on time, and its wait is in its queue time and its TTFT.

Lengths: fixed (llm_perf), seeded uniform ranges, or the turns of a ShareGPT-format JSON file (a list of
`{"conversations": [{"from": "human", "value": ...}, {"from": "gpt", "value": ...}, ...]}`), whose lengths
are counted with the tokenizer when there is one, else as words x 4/3 (token ids are synthetic either way).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.common.errors import UserError

# Tokens per English word, roughly, for a ShareGPT file read without a tokenizer.
TOKENS_PER_WORD = 4 / 3


def arrival_offsets(rate: float, burstiness: float, window_s: float, seed: int, at_least: int = 1) -> list[int]:
    """Arrival times (ns from the point's start) of a gamma process at `rate` per second, every one inside
    the window, and at least `at_least` of them (the window is then outrun, as a closed loop's is)."""
    if rate <= 0 or burstiness <= 0:
        raise ValueError("rate and burstiness must be positive")
    rng = np.random.default_rng(seed)
    scale = 1.0 / (rate * burstiness)
    offsets: list[int] = []
    t = 0.0
    while True:
        offsets.append(round(t * 1e9))
        t += float(rng.gamma(burstiness, scale))
        if t >= window_s and len(offsets) >= at_least:
            return offsets


@dataclass(frozen=True)
class Lengths:
    """How long each prompt and answer is: `draw()` gives (input tokens, output tokens)."""

    kind: str  # uniform | sharegpt (fixed lengths need no drawing)
    draw: Callable[[], tuple[int, int]]
    description: str


def uniform_lengths(inputs: tuple[int, int], outputs: tuple[int, int], seed: int) -> Lengths:
    """Input and output lengths drawn uniformly from the inclusive ranges, seeded."""
    rng = np.random.default_rng(seed)

    def draw() -> tuple[int, int]:
        return int(rng.integers(inputs[0], inputs[1] + 1)), int(rng.integers(outputs[0], outputs[1] + 1))

    text = f"uniform: {inputs[0]}-{inputs[1]} in, {outputs[0]}-{outputs[1]} out (seed {seed})"
    return Lengths("uniform", draw, text)


def sharegpt_lengths(path: Path, seed: int, max_input: int, max_output: int, count_tokens=None) -> Lengths:
    """(prompt, answer) lengths of a ShareGPT file's first two turns, drawn in a seeded order; pairs longer
    than the model holds are left out. `count_tokens(text)` counts with a tokenizer; default words x 4/3."""
    pairs = read_sharegpt(path, count_tokens or _word_tokens)
    fitting = [(a, b) for a, b in pairs if a <= max_input and b <= max_output]
    if not fitting:
        raise UserError(
            f"no conversation fits {max_input} input and {max_output} output tokens",
            file=path,
            fix="use a file with shorter turns, or raise the lengths",
        )
    rng = np.random.default_rng(seed)
    order: list[int] = []

    def draw() -> tuple[int, int]:
        if not order:
            order.extend(rng.permutation(len(fitting)).tolist())
        return fitting[order.pop()]

    counted = "tokenizer" if count_tokens else f"words x {TOKENS_PER_WORD:.2f}, no tokenizer"
    text = f"ShareGPT {path.name}: {len(fitting)} of {len(pairs)} conversations, lengths by {counted} (seed {seed})"
    return Lengths("sharegpt", draw, text)


def _word_tokens(text: str) -> int:
    return max(1, math.ceil(len(text.split()) * TOKENS_PER_WORD))


def read_sharegpt(path: Path, count_tokens: Callable[[str], int]) -> list[tuple[int, int]]:
    """Each conversation's first prompt and the answer after it, as token counts."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UserError(f"cannot read it: {err}", file=path, fix="give a ShareGPT-format JSON file") from None
    if not isinstance(data, list):
        raise UserError("not a list of conversations", file=path, fix="give a ShareGPT-format JSON file")
    pairs = []
    for item in data:
        turns = item.get("conversations") if isinstance(item, dict) else None
        if not isinstance(turns, list) or len(turns) < 2:
            continue
        prompt, answer = (t.get("value") if isinstance(t, dict) else None for t in turns[:2])
        if isinstance(prompt, str) and isinstance(answer, str) and prompt and answer:
            pairs.append((count_tokens(prompt), count_tokens(answer)))
    if not pairs:
        raise UserError(
            "no conversation with a prompt and an answer",
            file=path,
            field="conversations",
            fix='each item needs "conversations": [{"from": "human", "value": ...}, {"from": "gpt", "value": ...}]',
        )
    return pairs
