"""CIFAR-100 test set, python version (`cifar-100-python/test`): Top-1/Top-5 over the 100 fine labels.

The file is a pickle of {b"data": uint8 [N, 3072] (R, G, B planes of 32x32), b"fine_labels": [N]}.
It is read only through datasets.safe_pickle (numpy arrays and plain containers, nothing
else). Preprocessing as ByteMLPerf's CIFAR loader: pixels to [0, 1], normalized with CIFAR-100's
mean (0.5071, 0.4867, 0.4408) and std (0.2675, 0.2565, 0.2761), NCHW float32 (NHWC where the model
entry's layout says so); a model declaring another size than 32x32 gets the images resized (bilinear).
Without the file, 64 images are generated deterministically at load time (not CIFAR).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from core.common.digest import file_sha256
from core.common.errors import UserError
from datasets.base import DatasetRequest, Features, resolve_data_file, take_percent
from datasets.images import ImageClassificationLoader, image_geometry, normalize

HERE = Path(__file__).resolve().parent
ENV_PATH = "PERFBENCH_OPEN_CIFAR_PATH"
FILE_NAME = "test"
CIFAR_MEAN = (0.5071, 0.4867, 0.4408)
CIFAR_STD = (0.2675, 0.2565, 0.2761)
CLASSES = 100
SAMPLE_COUNT = 64
SAMPLE_SEED = 3333


def read_cifar(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 32, 32, 3], fine labels int64 [N]) from a CIFAR-100 python `test` file."""
    from datasets.safe_pickle import restricted_load

    content = restricted_load(path)
    if not isinstance(content, dict):
        raise UserError(
            f"expected a dict, got {type(content).__name__}",
            file=path,
            fix="use the CIFAR-100 python version's `test` file",
        )
    for key in (b"data", b"fine_labels"):
        if key not in content:
            raise UserError(
                f"no {key.decode()!r} entry",
                file=path,
                field=key.decode(),
                fix="use the CIFAR-100 python version's `test` file (it has data and fine_labels)",
            )
    data = content[b"data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = list(getattr(data, "shape", [])) or type(data).__name__
        raise UserError(
            f"data is {shape}, expected uint8 [N, 3072]",
            file=path,
            field="data",
            fix="use the CIFAR-100 python version's `test` file",
        )
    try:
        labels = np.asarray(content[b"fine_labels"], dtype=np.int64)
    except (TypeError, ValueError):
        labels = np.zeros(0, np.int64) - 1
    if labels.shape != (data.shape[0],) or (labels.size and (labels.min() < 0 or labels.max() >= CLASSES)):
        raise UserError(
            f"fine_labels must be {data.shape[0]} integers in 0..{CLASSES - 1}",
            file=path,
            field="fine_labels",
            fix="use the CIFAR-100 python version's `test` file",
        )
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def generated_sample() -> tuple[np.ndarray, np.ndarray]:
    """SAMPLE_COUNT deterministic 32x32 images (smooth colour fields with noise) and labels. Not CIFAR."""
    rng = np.random.default_rng(SAMPLE_SEED)
    y, x = np.mgrid[0:32, 0:32].astype(np.float32) / 31
    images = []
    for _ in range(SAMPLE_COUNT):
        a, b, c = rng.uniform(0, 255, size=(3, 3))
        field = a[None, None] * x[..., None] + b[None, None] * y[..., None] + c[None, None] * (1 - x[..., None])
        images.append(np.clip(field / 2 + rng.normal(0, 12, size=(32, 32, 3)), 0, 255).astype(np.uint8))
    return np.stack(images), rng.integers(0, CLASSES, size=SAMPLE_COUNT)


class CifarLoader(ImageClassificationLoader):
    """Features: test images in file order. evaluate(): Top-1 and Top-5 accuracy (%)."""

    name = "open_cifar"

    def __init__(self, request: DatasetRequest):
        super().__init__(request)
        self.path, self.source = resolve_data_file(
            request.data_path, ENV_PATH, HERE / "cifar-100-python" / FILE_NAME, HERE / "sample" / FILE_NAME, FILE_NAME
        )
        if self.source != "file":
            self.source = "generated sample"
        self._labels: np.ndarray | None = None
        self._provenance: dict[str, Any] = {"source": self.source}

    def load(self) -> Features:
        model = self.request.model
        where = self.path if self.source == "file" else "open_cifar"
        layout, _, height, width = image_geometry(model, where)
        images, labels = read_cifar(self.path) if self.source == "file" else generated_sample()
        count = take_percent(len(labels), self.request.data_percent, where)
        images, labels = images[:count], labels[:count]
        if (height, width) != (32, 32):
            from PIL import Image

            images = np.stack(
                [np.asarray(Image.fromarray(img).resize((width, height), Image.BILINEAR)) for img in images]
            )
        dtype = model.numpy_dtype(0)
        pixels = np.stack([normalize(img, CIFAR_MEAN, CIFAR_STD, layout, dtype) for img in images])
        self._labels = labels
        self._provenance.update(
            {
                "examples": int(count),
                "data_percent": self.request.data_percent,
                "layout": layout,
                "image_size": [height, width],
                "preprocessing": "[0,1], CIFAR-100 mean/std"
                + ("" if (height, width) == (32, 32) else f", resized to {height}x{width}"),
            }
        )
        if self.source == "file":
            self._provenance.update({"path": str(self.path), "sha256": file_sha256(self.path)})
        else:
            self._provenance["note"] = (
                f"generated sample ({SAMPLE_COUNT} images made at load time), not CIFAR-100: scores are not comparable"
            )
        return Features(
            inputs={model.names[0]: pixels},
            lengths=np.zeros(count, dtype=np.int64),
            provenance=self.provenance(),
            sequence=False,
        )
