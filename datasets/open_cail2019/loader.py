"""CAIL2019-SCM in ByteMLPerf's preprocessed form, scored the way ByteMLPerf scores it.

ByteMLPerf's archive holds three `.npy` files made by its pre_process_data.py: for every triplet
(A, B, C) of the test set two rows, (A, closer case) labelled [1] then (A, other case) labelled [0],
as ragged lists of token ids and segment ids (object arrays, so pickles: read through
datasets.safe_pickle). Rows are padded with zeros to the model's length (1024) in the model's input
type (ByteMLPerf's RoFormer takes them as FLOAT32). Top-1 is the share of triplets whose closer case
gets the higher score (the model's first output, one score per row).
Without the files, 32 triplets of random token ids are generated at load time (not CAIL2019).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from core.common.digest import file_sha256
from core.common.errors import UserError
from datasets.base import DatasetLoader, DatasetRequest, Features, take_percent
from datasets.safe_pickle import load_npy

HERE = Path(__file__).resolve().parent
ENV_PATH = "PERFBENCH_OPEN_CAIL2019_PATH"
FILES = ("batch_token_ids.npy", "batch_segment_ids.npy", "label.npy")
FIX = "use the three .npy files of ByteMLPerf's open_cail2019.tar (python -m core.prepare --task roformer-tf-fp32)"
SAMPLE_TRIPLETS = 32
SAMPLE_SEED = 2019


def read_rows(folder: Path) -> tuple[list, list, np.ndarray]:
    """(token id lists, segment id lists, labels [N]) from ByteMLPerf's three files, checked for shape."""
    tokens, segments, labels = (load_npy(folder / name, fix=FIX) for name in FILES)
    labels = np.asarray(labels.tolist(), dtype=object).reshape(len(labels), -1)[:, 0].astype(np.int64)
    if not len(tokens) == len(segments) == len(labels) or len(labels) % 2:
        raise UserError(
            f"{len(tokens)} token rows, {len(segments)} segment rows and {len(labels)} labels: expected one even count",
            file=folder,
            fix=FIX,
        )
    if not (np.all(labels[0::2] + labels[1::2] == 1)):
        raise UserError("labels must come in pairs, one 1 and one 0 per triplet", file=folder / FILES[2], fix=FIX)
    return list(tokens), list(segments), labels


def generated_rows(vocab_size: int, seq_len: int) -> tuple[list, list, np.ndarray]:
    """SAMPLE_TRIPLETS random (A, B) and (A, C) rows: [CLS] A [SEP] B [SEP] with segments 0/1. Not CAIL2019."""
    rng = np.random.default_rng(SAMPLE_SEED)
    tokens, segments = [], []
    for _ in range(SAMPLE_TRIPLETS):
        first = rng.integers(5, vocab_size, size=int(rng.integers(seq_len // 8, seq_len // 3)))
        for _ in range(2):
            second = rng.integers(5, vocab_size, size=int(rng.integers(seq_len // 8, seq_len // 3)))
            tokens.append([2, *first, 3, *second, 3])
            segments.append([0] * (len(first) + 2) + [1] * (len(second) + 1))
    return tokens, segments, np.tile(np.array([1, 0]), SAMPLE_TRIPLETS)


class Cail2019Loader(DatasetLoader):
    """Features: rows in file order, pairs kept whole. evaluate(): pairwise Top-1 (%)."""

    name = "open_cail2019"

    def __init__(self, request: DatasetRequest):
        super().__init__(request)
        given = request.data_path or os.environ.get(ENV_PATH)
        self.folder = Path(given).expanduser() if given else HERE
        if given and not (self.folder / FILES[0]).is_file():
            raise UserError(f"no {FILES[0]} in the folder", file=self.folder, field="data_path", fix=FIX)
        self.source = "file" if (self.folder / FILES[0]).is_file() else "generated sample"
        self._labels: np.ndarray | None = None
        self._provenance: dict[str, Any] = {"source": self.source}

    def load(self) -> Features:
        model = self.request.model
        if self.source == "file":
            tokens, segments, labels = read_rows(self.folder)
        else:
            tokens, segments, labels = generated_rows(model.vocab_size, model.seq_len)
        pairs = take_percent(len(labels) // 2, self.request.data_percent, self.folder)
        count, width = 2 * pairs, model.seq_len
        by_role = {"token": np.zeros((count, width), np.int64), "segment": np.zeros((count, width), np.int64)}
        lengths = np.zeros(count, np.int64)
        for i in range(count):
            row = np.asarray(tokens[i][:width], np.int64)
            lengths[i] = len(row)
            by_role["token"][i, : len(row)] = row
            by_role["segment"][i, : len(row)] = np.asarray(segments[i][:width], np.int64)
        inputs = {}
        for i, name in enumerate(model.names):
            role = "segment" if "segment" in name.lower() or "type" in name.lower() else "token"
            inputs[name] = by_role[role].astype(model.numpy_dtype(i))
        self._labels = labels[:count]
        self._provenance.update(
            {
                "rows": count,
                "triplets": pairs,
                "data_percent": self.request.data_percent,
                "truncated_rows": int(sum(len(t) > width for t in tokens[:count])),
            }
        )
        if self.source == "file":
            self._provenance.update(
                {"path": str(self.folder), "sha256": {name: file_sha256(self.folder / name) for name in FILES}}
            )
        else:
            self._provenance["note"] = (
                f"generated sample ({SAMPLE_TRIPLETS} triplets of random tokens made at load "
                "time), not CAIL2019-SCM: scores are not comparable"
            )
        return Features(inputs=inputs, lengths=lengths, provenance=self.provenance())

    def evaluate(self, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
        if self._labels is None:
            self.load()
        name = (self.request.model.outputs or tuple(outputs))[0]
        scores = np.asarray(outputs[name], dtype=np.float64).reshape(len(self._labels), -1)[:, 0]
        closer = np.where(self._labels[0::2] == 1, scores[0::2], scores[1::2])
        other = np.where(self._labels[0::2] == 1, scores[1::2], scores[0::2])
        return {
            "Top-1": round(100.0 * float(np.mean(closer > other)), 4),
            "Triplets": int(len(closer)),
            "Non-finite Outputs": int((~np.isfinite(scores)).sum()),
        }

    def provenance(self) -> dict[str, Any]:
        return dict(self._provenance)
