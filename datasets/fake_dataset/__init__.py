"""Shape- and dtype-correct inputs for any model, with realistic attention masks.

Used for every performance measurement, and as the dataset of models that declare none.
It has no labels, so it scores nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from datasets.base import DatasetLoader, Features, ModelInputs

# True lengths of SQuAD v1.1 dev features with a BERT tokenizer cluster around 150-200 tokens of 384;
# a fake mask with that spread keeps masked positions realistic for numeric checks.
MEAN_LENGTH_FRACTION = 0.45
LENGTH_SPREAD_FRACTION = 0.15
QUESTION_FRACTION = 0.06
FAKE_FEATURES = 64


def fake_lengths(rng: np.random.Generator, count: int, seq_len: int) -> np.ndarray:
    lengths = rng.normal(MEAN_LENGTH_FRACTION * seq_len, LENGTH_SPREAD_FRACTION * seq_len, size=count)
    return np.clip(np.rint(lengths), min(8, seq_len), seq_len).astype(np.int64)


def fake_inputs(model: ModelInputs, batch_size: int, seed: int = 0, lengths: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """A batch of inputs in role order: random ids, a prefix mask of true length, question/context types."""
    rng = np.random.default_rng(seed)
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


class FakeDataset(DatasetLoader):
    name = "fake_dataset"

    def load(self) -> Features:
        model = self.request.model
        rng = np.random.default_rng(self.request.seed)
        lengths = fake_lengths(rng, FAKE_FEATURES, model.seq_len)
        inputs = fake_inputs(model, FAKE_FEATURES, self.request.seed, lengths)
        return Features(inputs=inputs, lengths=lengths, provenance=self.provenance())

    def evaluate(self, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
        return {"Note": "fake_dataset has no labels: no accuracy"}

    def provenance(self) -> dict[str, Any]:
        return {"source": "generated", "note": "random token ids with realistic masks"}


LOADER = FakeDataset
