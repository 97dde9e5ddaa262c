"""The dataset-loader interface every loader implements."""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.common.errors import UserError

# Input roles in the order ByteMLPerf lists a model's inputs: ids, mask, token types.
INPUT_ROLES = ("input_ids", "attention_mask", "token_type_ids")

NUMPY_DTYPES = {
    "LONG": np.int64,
    "UINT8": np.uint8,
    "INT64": np.int64,
    "INT": np.int32,
    "INT32": np.int32,
    "FLOAT32": np.float32,
    "FLOAT": np.float32,
    "FLOAT16": np.float16,
    "BOOL": np.bool_,
}


@dataclass(frozen=True)
class ModelInputs:
    """What a loader needs to know about the model it feeds."""

    names: tuple[str, ...]  # the model's input names, in role order (ids, mask[, token types])
    dtypes: tuple[str, ...]  # ByteMLPerf type names, e.g. ("LONG", "LONG", "LONG")
    seq_len: int  # padded sequence length (second dim of input_shape)
    vocab_size: int  # for generated ids and fallback tokenizers
    type_vocab_size: int  # 0 or 1: token types are all zero; 2: question 0 / context 1
    pad_token_id: int = 0
    outputs: tuple[str, ...] = ()  # the model's output names, in order (start, end) or (logits,)
    shapes: tuple[tuple[int, ...], ...] = ()  # declared input_shape per input; the first dimension is the batch
    layout: str | None = None  # ByteMLPerf's `layout` (NCHW/NHWC) for image inputs, where the entry gives it

    def numpy_dtype(self, i: int):
        return NUMPY_DTYPES[self.dtypes[i].upper()]

    @property
    def token_layout(self) -> bool:
        """ids, mask[, token types]: 2 or 3 integer [batch, seq] inputs of one length (the NLP models).

        Those get SQuAD-like lengths and can be trimmed per batch; anything else is generated per input
        from its declared shape (datasets.fake_dataset).
        """
        if not self.shapes:
            return True
        integer = all(np.issubdtype(self.numpy_dtype(i), np.integer) for i in range(len(self.names)))
        return (
            2 <= len(self.names) <= len(INPUT_ROLES)
            and integer
            and all(len(shape) == 2 and shape[1] == self.seq_len for shape in self.shapes)
        )


@dataclass(frozen=True)
class DatasetRequest:
    """Everything a loader is given. Built by core.run.runner from the workload and model entry."""

    model: ModelInputs
    tokenizer: str | None = None  # HF id or local dir; loaders resolve it offline only
    data_path: Path | None = None  # explicit dataset file/folder (workload, CLI or env override)
    data_percent: float = 100.0  # share of *questions/examples*, deterministic subset
    cache_dir: Path = Path(".cache")  # where loaders may cache features (never pickle)
    seed: int = 0
    labels: tuple[str, ...] = ()  # classification label order, from the model config


@dataclass
class Features:
    """Model-ready inputs for a whole dataset, in a fixed order.

    inputs[name] has shape [N, seq_len] and the model's dtype; lengths[i] is feature i's true
    (unpadded) length, so runners can trim padding per batch.
    """

    inputs: dict[str, np.ndarray]
    lengths: np.ndarray
    provenance: dict[str, Any] = field(default_factory=dict)
    sequence: bool = True  # False: inputs have no token axis to trim (images, latents); lengths mean nothing

    def __len__(self) -> int:
        return int(self.lengths.shape[0])


class DatasetLoader(ABC):
    """Loads a dataset into Features and scores outputs aligned with those features."""

    name: str = ""

    def __init__(self, request: DatasetRequest):
        self.request = request

    @abstractmethod
    def load(self) -> Features:
        """Build (or read from cache) the features. Raise core.common.errors.UserError on bad files."""

    @abstractmethod
    def evaluate(self, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
        """Score outputs (one array per output name, first axis aligned with the features).

        Returns report keys, e.g. {"Exact Match": 80.1, "F1 Score": 87.5, "Questions": 10570, "Features": 10833}.
        """

    @classmethod
    def default_tokenizer(cls, model_name: str) -> str | None:
        """The tokenizer (HF id or local path) for a model entry that names none; None: the fallback."""
        return None

    def provenance(self) -> dict[str, Any]:
        """Where the data came from: {"source": "file"|"bundled sample"|"generated", "path", "sha256", ...}."""
        return {}


def resolve_data_file(
    data_path: Path | None, env_var: str, default: Path, sample: Path, file_name: str
) -> tuple[Path, str]:
    """(path, source): the explicit path, else $env_var, else the default file, else the bundled sample."""
    for given, where in ((data_path, "data_path"), (os.environ.get(env_var) or None, env_var)):
        if given is None:
            continue
        path = Path(given).expanduser()
        if path.is_dir():
            path = path / file_name
        if not path.exists():
            raise UserError(
                "data file not found",
                file=path,
                field=where,
                fix=f"point {where} at the dataset ({file_name}) or unset it",
            )
        return path, "file"
    if default.exists():
        return default, "file"
    return sample, "bundled sample"


def take_percent(n: int, percent: float, where: object = None) -> int:
    """How many items a data_percent keeps: ceil(percent% of n), the first ones in file order."""
    if not 0 < percent <= 100:
        raise UserError(
            f"data_percent must be in (0, 100], got {percent}",
            file=where,
            field="data_percent",
            fix="use e.g. 100 for the whole set or 10 for the first tenth",
        )
    return max(1, math.ceil(n * percent / 100 - 1e-9))
