"""Shape- and dtype-correct inputs for any model, with realistic values per input.

Used for every performance measurement, and as the dataset of models that declare none (numeric checks
then compare outputs on these inputs). It has no labels, so it scores nothing.

ByteMLPerf's fake-data semantics: each input has its declared `input_shape` with the first dimension
replaced by the batch size, in its `input_type`. Values are chosen per input so the model computes what
it would on real data: token ids inside the vocabulary with a prefix mask, 0/1 masks, diffusion
timesteps in [0, 1000), token ids even where typed as floats, images normalized like ImageNet,
standard-normal latents and features.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from datasets.base import DatasetLoader, Features, ModelInputs

# True lengths of SQuAD v1.1 dev features with a BERT tokenizer cluster around 150-200 tokens of 384;
# a fake mask with that spread keeps masked positions realistic for numeric checks.
MEAN_LENGTH_FRACTION = 0.45
LENGTH_SPREAD_FRACTION = 0.15
QUESTION_FRACTION = 0.06
FAKE_FEATURES = 64
# Image and latent models cost far more per sample (an SD VAE decoder ~300 GFLOP) and each sample already
# holds thousands of compared values, so their numeric check uses fewer samples.
DECLARED_FAKE_FEATURES = 16
# Generated numeric-check data for large inputs (a 640x640 image is 4.9 MB) stays under this, with at least MIN.
FAKE_BYTES = 64 << 20
MIN_FAKE_FEATURES = 4
# ByteMLPerf draws integer inputs from [0, 1000) when it knows no vocabulary; diffusion schedules have 1000 steps.
DEFAULT_INT_HIGH = 1000
TIMESTEPS = 1000
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_MASK_WORDS = ("mask",)
_PAD_WORDS = ("pad",)
_TYPE_WORDS = ("token_type", "segment", "type_ids")
_TIME_WORDS = ("timestep", "time_step")
_ID_WORDS = ("ids", "token", "text", "input")
_FLOAT_ID_WORDS = ("ids", "token", "text")  # ByteMLPerf's RoFormer takes its token ids as FLOAT32


def fake_lengths(rng: np.random.Generator, count: int, seq_len: int) -> np.ndarray:
    lengths = rng.normal(MEAN_LENGTH_FRACTION * seq_len, LENGTH_SPREAD_FRACTION * seq_len, size=count)
    return np.clip(np.rint(lengths), min(8, seq_len), seq_len).astype(np.int64)


def fake_inputs(
    model: ModelInputs, batch_size: int, seed: int = 0, lengths: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """A batch of inputs by name: token models in role order (ids, prefix mask, question/context types),
    any other model per input from its declared shape (see the module docstring)."""
    rng = np.random.default_rng(seed)
    if not model.token_layout:
        return _declared_inputs(model, batch_size, rng, lengths)
    seq = model.seq_len
    if lengths is None:
        lengths = fake_lengths(rng, batch_size, seq)
    positions = np.arange(seq)[None, :]
    valid = positions < lengths[:, None]
    ids = rng.integers(low=min(5, model.vocab_size - 1), high=model.vocab_size, size=(batch_size, seq))
    ids = np.where(valid, ids, model.pad_token_id)
    arrays = [ids, valid.astype(np.int64)]
    if len(model.names) > 2:
        question_end = max(1, int(QUESTION_FRACTION * seq))
        types = (positions >= question_end) & valid if model.type_vocab_size >= 2 else np.zeros_like(valid)
        arrays.append(types.astype(np.int64))
    return {name: array.astype(model.numpy_dtype(i)) for i, (name, array) in enumerate(zip(model.names, arrays))}


def _has(name: str, words: tuple[str, ...]) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in words)


def _declared_inputs(
    model: ModelInputs, batch_size: int, rng: np.random.Generator, lengths: np.ndarray | None
) -> dict[str, np.ndarray]:
    # Inputs with the same sequence axis share lengths, so ids are padded exactly where the mask is 0.
    by_seq: dict[int, np.ndarray] = {}

    def valid(seq: int) -> np.ndarray:
        if seq not in by_seq:
            by_seq[seq] = lengths if lengths is not None and len(by_seq) == 0 else fake_lengths(rng, batch_size, seq)
        return np.arange(seq)[None, :] < by_seq[seq][:, None]

    feeds = {}
    for i, name in enumerate(model.names):
        shape = (batch_size, *model.shapes[i][1:])
        dtype = np.dtype(model.numpy_dtype(i))
        feeds[name] = _one_input(name, shape, dtype, model, rng, valid).astype(dtype, copy=False)
    return feeds


def _one_input(
    name: str, shape: tuple[int, ...], dtype: np.dtype, model: ModelInputs, rng: np.random.Generator, valid
) -> np.ndarray:
    sequence = len(shape) == 2 and shape[1] > 1
    if _has(name, _MASK_WORDS):
        if not sequence:  # nothing to mask out: every position counts
            return np.zeros(shape, bool) if _has(name, _PAD_WORDS) else np.ones(shape, dtype)
        keep = valid(shape[1])
        return ~keep if _has(name, _PAD_WORDS) else keep  # a padding mask is True where padded
    if dtype == np.bool_:
        return np.zeros(shape, bool)  # ByteMLPerf's choice for flags it cannot interpret
    if _has(name, _TYPE_WORDS):
        return np.zeros(shape, np.int64)
    if _has(name, _TIME_WORDS):
        if np.issubdtype(dtype, np.integer):
            return rng.integers(0, TIMESTEPS, size=shape)
        return rng.uniform(0, TIMESTEPS, size=shape)
    if dtype == np.uint8:  # raw pixels
        return rng.integers(0, 256, size=shape)
    if np.issubdtype(dtype, np.integer) or (sequence and _has(name, _FLOAT_ID_WORDS)):
        high = model.vocab_size if model.vocab_size > 1 else DEFAULT_INT_HIGH
        ids = rng.integers(min(5, high - 1), high, size=shape)
        if sequence and _has(name, _ID_WORDS):
            ids = np.where(valid(shape[1]), ids, model.pad_token_id)
        return ids
    channels = _channel_axis(shape, model.layout)
    if channels is not None:
        return _normalized_image(shape, channels, rng)
    return rng.standard_normal(size=shape)  # latents, hidden states, dense features


def _channel_axis(shape: tuple[int, ...], layout: str | None) -> int | None:
    """The channel axis of an image input [N, C, H, W] or [N, H, W, C] with 1 or 3 channels, else None."""
    if len(shape) != 4:
        return None
    if layout and layout.upper() in ("NCHW", "NHWC"):
        return 1 if layout.upper() == "NCHW" else 3
    if shape[1] in (1, 3):
        return 1
    if shape[3] in (1, 3):
        return 3
    return None


def _normalized_image(shape: tuple[int, ...], axis: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform pixels in [0, 1) normalized with ImageNet's per-channel mean and std, as image models expect."""
    pixels = rng.random(size=shape)
    channels = shape[axis]
    mean = np.array(IMAGENET_MEAN if channels == 3 else (0.5,) * channels)
    std = np.array(IMAGENET_STD if channels == 3 else (0.5,) * channels)
    view = [1] * len(shape)
    view[axis] = channels
    return (pixels - mean.reshape(view)) / std.reshape(view)


def fake_feature_count(model: ModelInputs) -> int:
    """How many samples a numeric check on fake data uses: FAKE_FEATURES for token models,
    DECLARED_FAKE_FEATURES for others, fewer for very large inputs."""
    if model.token_layout:
        return FAKE_FEATURES
    sample_bytes = sum(
        math.prod(shape[1:]) * np.dtype(model.numpy_dtype(i)).itemsize for i, shape in enumerate(model.shapes)
    )
    return int(min(DECLARED_FAKE_FEATURES, max(MIN_FAKE_FEATURES, FAKE_BYTES // max(1, sample_bytes))))


class FakeDataset(DatasetLoader):
    name = "fake_dataset"

    def load(self) -> Features:
        model = self.request.model
        count = fake_feature_count(model)
        if not model.token_layout:
            inputs = fake_inputs(model, count, self.request.seed)
            return Features(
                inputs=inputs, lengths=np.zeros(count, np.int64), provenance=self.provenance(), sequence=False
            )
        rng = np.random.default_rng(self.request.seed)
        lengths = fake_lengths(rng, count, model.seq_len)
        inputs = fake_inputs(model, count, self.request.seed, lengths)
        return Features(inputs=inputs, lengths=lengths, provenance=self.provenance())

    def evaluate(self, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
        return {"Note": "fake_dataset has no labels: no accuracy"}

    def provenance(self) -> dict[str, Any]:
        if self.request.model.token_layout:
            return {"source": "generated", "note": "random token ids with realistic masks"}
        return {"source": "generated", "note": "generated from the declared input shapes and types"}


LOADER = FakeDataset
