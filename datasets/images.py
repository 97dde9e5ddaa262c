"""Shared pieces of the image-classification datasets (open_imagenet, open_cifar).

The model's one image input is [N, C, H, W] (or [N, H, W, C] where the entry's `layout` says NHWC).
Features are stored in a streamed .npy cache (written atomically, read memory-mapped) so a full
ImageNet validation set (50,000 x 3 x 224 x 224 float32, ~30 GB) never has to fit in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from core.common.atomic import atomic_writer
from core.common.errors import UserError
from datasets.base import DatasetLoader, ModelInputs

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TOP_K = 5


def image_geometry(model: ModelInputs, where: object) -> tuple[str, int, int, int]:
    """(layout, channels, height, width) of the model's first input; a one-line UserError if it is no image."""
    shape = tuple(model.shapes[0]) if model.shapes else ()
    layout = (model.layout or "").upper()
    if len(shape) != 4:
        raise UserError(
            f"input {model.names[0] if model.names else '?'} has shape {list(shape)}, not an image [N, C, H, W]",
            file=where,
            field="input_shape",
            fix="image datasets feed one 4-D float input, e.g. [1, 3, 224, 224]",
        )
    if layout not in ("NCHW", "NHWC"):
        layout = "NHWC" if shape[3] in (1, 3) and shape[1] not in (1, 3) else "NCHW"
    c, h, w = (shape[1], shape[2], shape[3]) if layout == "NCHW" else (shape[3], shape[1], shape[2])
    if c != 3:
        raise UserError(
            f"input {model.names[0]} has {c} channels, RGB images have 3",
            file=where,
            field="input_shape",
            fix="declare [1, 3, H, W] (NCHW) or [1, H, W, 3] with layout NHWC",
        )
    if not np.issubdtype(model.numpy_dtype(0), np.floating):
        raise UserError(
            f"input {model.names[0]} is {model.dtypes[0]}, normalized images are floats",
            file=where,
            field="input_type",
            fix="use FLOAT32 for image inputs",
        )
    return layout, c, h, w


def normalize(
    pixels: np.ndarray, mean: Iterable[float], std: Iterable[float], layout: str, dtype=np.float32
) -> np.ndarray:
    """uint8 HWC pixels -> [0, 1] -> (x - mean) / std, in the model's layout (no batch axis)."""
    x = pixels.astype(np.float32) / 255.0
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    if layout == "NCHW":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x, dtype=dtype)


def cached_images(
    path: Path, count: int, shape: tuple[int, ...], dtype, image: Callable[[int], np.ndarray]
) -> tuple[np.ndarray, bool]:
    """([count, *shape] array, hit): the .npy cache at `path` (memory-mapped), else built image by image."""
    dtype = np.dtype(dtype)
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
        if array.shape == (count, *shape) and array.dtype == dtype:
            return array, True
    except FileNotFoundError:
        pass
    except (OSError, ValueError):
        pass  # unreadable or truncated: rebuilt below
    with atomic_writer(path) as fh:
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (count, *shape)}
        np.lib.format.write_array_header_2_0(fh, header)
        for i in range(count):
            fh.write(np.ascontiguousarray(image(i), dtype=dtype).tobytes())
    return np.load(path, mmap_mode="r", allow_pickle=False), False


def top_k_accuracy(outputs: dict[str, np.ndarray], model: ModelInputs, gold: np.ndarray) -> dict[str, Any]:
    """Top-1 and Top-5 accuracy (%) of class scores (logits or probabilities) against integer labels."""
    name = (model.outputs or ("logits",))[0]
    if name not in outputs:
        raise UserError(
            f"no output {name!r} among {sorted(outputs)}",
            field="outputs",
            fix="the model entry's first output must be the class scores",
        )
    scores = np.asarray(outputs[name])
    if scores.ndim == 4 and scores.shape[2:] == (1, 1):  # [N, C, 1, 1] from a pooled conv head
        scores = scores[:, :, 0, 0]
    if scores.ndim != 2 or scores.shape[0] != len(gold):
        raise UserError(
            f"shape {list(scores.shape)}, expected [{len(gold)}, classes]",
            field=f"outputs.{name}",
            fix="one row of class scores per image",
        )
    classes = scores.shape[1]
    if len(gold) and int(gold.max()) >= classes:
        raise UserError(
            f"label {int(gold.max())} but the model scores only {classes} classes",
            field=f"outputs.{name}",
            fix="use a model with as many classes as the dataset's labels",
        )
    finite = np.isfinite(scores).all(axis=1)
    safe = np.where(finite[:, None], scores, -np.inf)
    k = min(TOP_K, classes)
    top = np.argpartition(-safe, k - 1, axis=1)[:, :k] if classes > k else np.tile(np.arange(classes), (len(gold), 1))
    # Rows with NaN/Inf never score.
    top1 = finite & (np.argmax(safe, axis=1) == gold)
    top5 = finite & (top == gold[:, None]).any(axis=1)
    n = max(1, len(gold))
    return {
        "Top-1": 100.0 * float(top1.sum()) / n,
        "Top-5": 100.0 * float(top5.sum()) / n,
        "Examples": int(len(gold)),
        "Non-finite Outputs": int((~finite).sum()),
    }


class ImageClassificationLoader(DatasetLoader):
    """What image-classification loaders share: Top-1/Top-5 against the labels load() keeps, and provenance.

    Subclasses set `_labels` (None until loaded) and `_provenance` in __init__/load().
    """

    _labels: np.ndarray | None
    _provenance: dict[str, Any]

    def evaluate(self, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
        if self._labels is None:
            self.load()
        return top_k_accuracy(outputs, self.request.model, self._labels)

    def provenance(self) -> dict[str, Any]:
        return dict(self._provenance)
