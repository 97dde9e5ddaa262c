"""Reference outputs of the shapes the accuracy gate judges, and candidates built from them: sound ones (the
rounding of a lower precision) and broken ones (what a wrong engine, a stale buffer or a bad export gives)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from core.quality.gate import Gate
from datasets.base import Features

Outputs = dict[str, np.ndarray]


def flat_qa_logits(seed: int = 0, rows: int = 48, seq: int = 384, bump: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """[rows, seq, 2] start/end logits as seeded random weights give them: every position scores by its token
    alone (30 tokens a row), so a row's best token recurs and its top two are closer than any rounding.
    Every other row has one position raised by `bump`: with a large bump, a decision the reference can make."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(120, 260, rows)
    token_scores = rng.normal(0.0, 1.0, (rows, 30, 2))
    tokens = rng.integers(0, 30, (rows, seq))
    logits = np.take_along_axis(token_scores, tokens[..., None], axis=1) + rng.normal(0, 1e-4, (rows, seq, 2))
    for row in range(0, rows, 2):
        logits[row, rng.integers(0, lengths[row]), :] += bump
    return logits, lengths


def rounded_like(reference: np.ndarray, precision: str, seed: int = 1) -> np.ndarray:
    """The reference as a lower precision computes it: the rounding of its format (FP16, BF16), or INT8's
    quantize-dequantize with one per-tensor scale plus the noise an int8 matmul chain adds (drift ~0.025,
    what int8 candidates show on ALBERT)."""
    import torch

    rng = np.random.default_rng(seed)
    if precision == "FP16":
        return reference.astype(np.float16).astype(np.float64)
    if precision == "BF16":  # bf16's 8-bit mantissa, and the error a bf16 matmul chain adds (~1% of the spread)
        noisy = reference + rng.normal(0, 0.01 * reference.std(), reference.shape)
        return torch.from_numpy(noisy).to(torch.bfloat16).double().numpy()
    scale = np.abs(reference).max() / 127
    dequantized = np.clip(np.round(reference / scale), -127, 127) * scale
    return dequantized + rng.normal(0, 0.025 * reference.std(), reference.shape)


class Shape:
    """A model's outputs: the reference, the feature lengths (0: no sequence), and the gate built on them."""

    def __init__(self, name: str, reference: Outputs, lengths: np.ndarray):
        self.name, self.reference, self.lengths = name, reference, lengths

    @property
    def rows(self) -> int:
        return len(self.lengths)

    def gate(self) -> Gate:
        width = max(int(self.lengths.max()), 2)
        features = Features(inputs={"input_ids": np.zeros((self.rows, width), np.int64)}, lengths=self.lengths)
        return Gate(features, self.reference, "cpu fp32")

    def __repr__(self) -> str:
        return self.name


def shapes() -> list[Shape]:
    """QA logits flat (few decisive rows) and peaked (many), classification, image classification, and a
    multi-output model (CLIP's text tower: per-token hidden states beside a pooled output)."""
    rng = np.random.default_rng(11)
    flat, flat_lengths = flat_qa_logits()
    peaked, peaked_lengths = flat_qa_logits(seed=5, bump=4.0)
    classes = rng.normal(0, 2.0, (64, 3))
    image = rng.normal(0, 1.0, (16, 1000))
    hidden, pooler = rng.normal(0, 1.0, (16, 77, 64)), np.tanh(rng.normal(0, 1.0, (16, 64)))
    return [
        Shape("qa-flat[48,384,2]", {"logits": flat}, flat_lengths),
        Shape("qa-peaked[48,384,2]", {"start_end": peaked}, peaked_lengths),
        Shape("classes[64,3]", {"logits": classes}, np.zeros(64, np.int64)),
        Shape("image[16,1000]", {"logits": image}, np.zeros(16, np.int64)),
        Shape("clip[16,77,64]+[16,64]", {"last_hidden_state": hidden, "pooler_output": pooler}, np.full(16, 77)),
    ]


def per_token(array: np.ndarray, lengths: np.ndarray) -> bool:
    """The gate's own test: a sequence axis after the rows that covers every feature's length."""
    return array.ndim >= 2 and array.shape[1] >= int(lengths.max(initial=0)) > 1


def valid(array: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The mask of valid values: positions < length for a per-token output, everything otherwise."""
    if per_token(array, lengths):
        keep = np.arange(array.shape[1])[None, :] < lengths[:, None]
        return np.broadcast_to(keep.reshape(keep.shape + (1,) * (array.ndim - 2)), array.shape)
    return np.ones(array.shape, dtype=bool)


def choices(array: np.ndarray, lengths: np.ndarray) -> list[tuple]:
    """The index of every pick's choices: a row's valid positions per trailing channel, or a row's classes."""
    if per_token(array, lengths):
        channels = int(np.prod(array.shape[2:], dtype=int))
        return [
            (row, slice(0, lengths[row]), *np.unravel_index(channel, array.shape[2:]))
            for row in range(len(array))
            for channel in range(channels)
        ]
    return [(row,) for row in range(len(array))]


def _spread(array: np.ndarray, lengths: np.ndarray) -> float:
    return float(array[valid(array, lengths)].std())


# Broken candidates: each takes one output (and the lengths) and returns what a broken engine would give.
def noise(array, lengths, rng):
    return array + rng.normal(0, 0.30 * _spread(array, lengths), array.shape)


def ramp(array, lengths, rng):
    """A smooth ramp of 0.45 of the spread along each row's choices."""
    out = array.copy()
    spread = _spread(array, lengths)
    for index in choices(array, lengths):
        values = out[index].reshape(-1)
        out[index] = (values + np.linspace(0, 0.45 * spread, values.size)).reshape(out[index].shape)
    return out


def worst_picks(array, lengths, rng):
    """Every pick answers the reference's worst choice (its best and worst values swapped)."""
    out = array.copy()
    for index in choices(array, lengths):
        values = out[index].reshape(-1)
        best, worst = int(values.argmax()), int(values.argmin())
        values[[best, worst]] = values[[worst, best]]
        out[index] = values.reshape(out[index].shape)
    return out


def worst_picks_jittered(array, lengths, rng):
    """The worst picks, plus ±0.36 of the spread on half the values: drift enough to hide the swaps in."""
    out = worst_picks(array, lengths, rng)
    half = rng.random(array.shape) < 0.5
    out[half] += rng.choice([-0.36, 0.36], array.shape)[half] * _spread(array, lengths)
    return out


def zeroed(array, lengths, rng):
    return np.zeros_like(array)


def stale(array, lengths, rng):
    return np.roll(array, 1, axis=0)  # each row holds the previous sample's outputs


def one_row_stale(array, lengths, rng):
    out = array.copy()
    out[3] = array[2]
    return out


def permuted(array, lengths, rng):
    """Each pick's choices shuffled: the values are right, their places are not."""
    out = array.copy()
    for index in choices(array, lengths):
        values = out[index].reshape(-1)
        out[index] = rng.permutation(values).reshape(out[index].shape)
    return out


def swapped_classes(array, lengths, rng):
    """The last axis rolled by one: classes (or start/end channels, or hidden channels) exchanged."""
    return np.roll(array, 1, axis=-1)


BROKEN: list[Callable] = [
    noise,
    ramp,
    worst_picks,
    worst_picks_jittered,
    zeroed,
    stale,
    one_row_stale,
    permuted,
    swapped_classes,
]
