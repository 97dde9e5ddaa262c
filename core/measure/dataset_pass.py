"""Running a whole feature set through a runtime, batch by batch, with padding trimmed per batch."""

from __future__ import annotations

import math
import time

import numpy as np

from datasets.base import Features

PAD_MULTIPLE = 8  # trimmed sequence lengths are rounded up to this, to limit distinct shapes
PAD_LOGIT = -1e4  # what trimmed-away positions hold in per-token outputs
DATASET_BATCH_SIZE = 8  # batch of accuracy passes, the reference and the accuracy gate (they share outputs)


def batch_feeds(
    inputs: dict[str, np.ndarray], lengths: np.ndarray, index: np.ndarray, *, length_aware: bool
) -> tuple[dict[str, np.ndarray], int]:
    """The rows `index` as one batch, and its width: length-aware, [N, tokens] inputs are trimmed to the
    longest member (rounded up to PAD_MULTIPLE); otherwise rows are taken whole and the width is 0."""
    if not length_aware:
        return {name: np.ascontiguousarray(array[index]) for name, array in inputs.items()}, 0
    seq_len = next(iter(inputs.values())).shape[1]
    width = min(seq_len, int(math.ceil(lengths[index].max() / PAD_MULTIPLE) * PAD_MULTIPLE))
    return {name: np.ascontiguousarray(array[index, :width]) for name, array in inputs.items()}, width


def full_length(result: dict[str, np.ndarray], width: int, seq_len: int) -> dict[str, np.ndarray]:
    """A trimmed batch's outputs as float32 at full length: per-token outputs hold PAD_LOGIT beyond `width`
    (0: the batch was not trimmed)."""
    full = {}
    for name, value in result.items():
        value = np.asarray(value, dtype=np.float32)
        if width and value.ndim >= 2 and value.shape[1] == width and width != seq_len:
            padded = np.full((value.shape[0], seq_len, *value.shape[2:]), PAD_LOGIT, dtype=np.float32)
            padded[:, :width] = value
            value = padded
        full[name] = value
    return full


def run_features(
    runtime, features: Features, batch_size: int, *, length_aware: bool, on_batch=None
) -> tuple[dict[str, np.ndarray], float]:
    """Run every feature; returns outputs in feature order and the seconds spent in the model.

    Length-aware: features are grouped by true length and each batch is trimmed to its longest
    member, so no compute goes to padding; per-token outputs are put back at full length.
    """
    count = len(features)
    # A static-shape runtime (CUDA graphs, torch.compile) gets full batches at full length: every batch
    # one shape, the last one padded with repeats of its final row, whose outputs are dropped.
    static = getattr(runtime, "static_shapes", False)
    length_aware = length_aware and features.sequence and not static  # images and latents have no padding
    seq_len = next(iter(features.inputs.values())).shape[1] if length_aware else 0
    order = np.argsort(features.lengths, kind="stable") if length_aware else np.arange(count)
    outputs: dict[str, np.ndarray] = {}
    seconds = 0.0
    runtime.load(batch_size)
    for start in range(0, count, batch_size):
        index = order[start : start + batch_size]
        rows = np.concatenate([index, np.repeat(index[-1:], batch_size - len(index))]) if static else index
        feeds, width = batch_feeds(features.inputs, features.lengths, rows, length_aware=length_aware)
        t0 = time.perf_counter()
        result = runtime.predict(feeds)
        seconds += time.perf_counter() - t0
        result = {name: value[: len(index)] for name, value in result.items()}
        for name, value in full_length(result, width, seq_len).items():
            if name not in outputs:
                outputs[name] = np.empty((count, *value.shape[1:]), dtype=np.float32)
            outputs[name][index] = value
        if on_batch is not None:
            on_batch(start + len(index))
    return outputs, seconds
