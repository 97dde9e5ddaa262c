"""Running a whole feature set through a runtime, batch by batch, with padding trimmed per batch."""

from __future__ import annotations

import math
import time

import numpy as np

from datasets.base import Features

PAD_MULTIPLE = 8  # trimmed sequence lengths are rounded up to this, to limit distinct shapes
PAD_LOGIT = -1e4  # what trimmed-away positions hold in per-token outputs


def run_features(
    runtime, features: Features, batch_size: int, *, length_aware: bool, on_batch=None
) -> tuple[dict[str, np.ndarray], float]:
    """Run every feature; returns outputs in feature order and the seconds spent in the model.

    Length-aware: features are grouped by true length and each batch is trimmed to its longest
    member, so no compute goes to padding; per-token outputs are put back at full length.
    """
    count = len(features)
    length_aware = length_aware and features.sequence  # images and latents have no padding to trim
    seq_len = next(iter(features.inputs.values())).shape[1] if features.sequence else 0
    order = np.argsort(features.lengths, kind="stable") if length_aware else np.arange(count)
    outputs: dict[str, np.ndarray] = {}
    seconds = 0.0
    runtime.load(batch_size)
    for start in range(0, count, batch_size):
        index = order[start : start + batch_size]
        width = seq_len
        if length_aware:
            width = min(seq_len, int(math.ceil(features.lengths[index].max() / PAD_MULTIPLE) * PAD_MULTIPLE))
        feeds = {name: np.ascontiguousarray(array[index, :width] if features.sequence else array[index])
                 for name, array in features.inputs.items()}
        t0 = time.perf_counter()
        result = runtime.predict(feeds)
        seconds += time.perf_counter() - t0
        for name, value in result.items():
            value = np.asarray(value, dtype=np.float32)
            per_token = features.sequence and value.ndim >= 2 and value.shape[1] == width
            if name not in outputs:
                shape = (count, seq_len, *value.shape[2:]) if per_token else (count, *value.shape[1:])
                outputs[name] = np.full(shape, PAD_LOGIT, dtype=np.float32)
            if per_token:
                outputs[name][index, :width] = value
            else:
                outputs[name][index] = value
        if on_batch is not None:
            on_batch(start + len(index))
    return outputs, seconds
