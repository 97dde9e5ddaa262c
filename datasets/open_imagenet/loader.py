"""ImageNet-1k validation in ByteMLPerf's layout: a folder of JPEG images and `val_map.txt`.

`val_map.txt` holds one "FILE LABEL" line per image (FILE relative to the folder of val_map.txt, or to
ILSVRC2012_img_val/ beside it as in ByteMLPerf's open_imagenet.tar; LABEL the class index 0..999).
Preprocessing, as ByteMLPerf's ResNet-50: shorter side resized to
256/224 of the model's input size (256 for 224), center crop to the input size, RGB scaled to [0, 1],
normalized with ImageNet's mean and std, NCHW float32 (NHWC where the model entry's layout says so).
Without the data, a bundled generated sample of 16 small images is used (not ImageNet).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from core.common.digest import file_sha256, json_digest
from core.common.errors import UserError
from datasets.base import DatasetRequest, Features, resolve_data_file, take_percent
from datasets.images import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageClassificationLoader,
    cached_images,
    image_geometry,
    normalize,
)

HERE = Path(__file__).resolve().parent
ENV_PATH = "PERFBENCH_OPEN_IMAGENET_PATH"
MAP_FILE = "val_map.txt"
IMAGES_DIR = "ILSVRC2012_img_val"
SAMPLE_DIR = HERE / "sample"
RESIZE_RATIO = 256 / 224
_CACHE_VERSION = 1


def read_val_map(path: Path) -> list[tuple[str, int]]:
    """(relative file, label) per line of a val_map.txt; a one-line UserError on anything else."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise UserError(
            "file not found", file=path, fix="the ImageNet folder needs val_map.txt and the images"
        ) from err
    except UnicodeDecodeError as err:
        raise UserError(f"not UTF-8 text: {err.reason}", file=path, fix="val_map.txt holds 'FILE LABEL' lines") from err
    entries = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            raise UserError(
                f"expected 'FILE LABEL', got {line.strip()[:80]!r}",
                file=path,
                field=f"line {line_no}",
                fix="one image file and its integer class (0..999) per line",
            )
        name = PurePosixPath(parts[0].replace("\\", "/"))
        if name.is_absolute() or ".." in name.parts or not name.parts:
            raise UserError(
                f"image path {parts[0]!r} leaves the dataset folder",
                file=path,
                field=f"line {line_no}",
                fix="image paths are relative to the folder of val_map.txt, without '..'",
            )
        entries.append((name.as_posix(), int(parts[1])))
    if not entries:
        raise UserError("no images listed", file=path, fix="val_map.txt holds one 'FILE LABEL' line per image")
    return entries


def image_folder(map_path: Path, first: str) -> Path:
    """Where val_map.txt's names live: beside it, or in ILSVRC2012_img_val/ (ByteMLPerf's open_imagenet.tar)."""
    nested = map_path.parent / IMAGES_DIR
    if not (map_path.parent / first).exists() and (nested / first).exists():
        return nested
    return map_path.parent


def preprocess(path: Path, height: int, width: int) -> np.ndarray:
    """One image file -> uint8 RGB [height, width, 3]: shorter side to size*256/224, center crop."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            scale = round(min(height, width) * RESIZE_RATIO) / min(img.size)
            size = (max(width, round(img.size[0] * scale)), max(height, round(img.size[1] * scale)))
            img = img.resize(size, Image.BILINEAR)
            left, top = (size[0] - width) // 2, (size[1] - height) // 2
            return np.asarray(img.crop((left, top, left + width, top + height)), dtype=np.uint8)
    except FileNotFoundError:
        raise UserError(
            "image not found", file=path, field=MAP_FILE, fix="every file val_map.txt lists must exist next to it"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise UserError(
            f"not a readable image: {str(err)[:120]}",
            file=path,
            fix="replace the file with the original JPEG, or remove its line from val_map.txt",
        ) from None


class ImagenetLoader(ImageClassificationLoader):
    """Features: images in val_map.txt order. evaluate(): Top-1 and Top-5 accuracy (%)."""

    name = "open_imagenet"

    def __init__(self, request: DatasetRequest):
        super().__init__(request)
        self.map_path, self.source = resolve_data_file(
            request.data_path, ENV_PATH, HERE / MAP_FILE, SAMPLE_DIR / MAP_FILE, MAP_FILE
        )
        self._labels: np.ndarray | None = None
        self._provenance: dict[str, Any] = {"source": self.source, "path": str(self.map_path)}

    def load(self) -> Features:
        model = self.request.model
        layout, channels, height, width = image_geometry(model, self.map_path)
        entries = read_val_map(self.map_path)
        kept = entries[: take_percent(len(entries), self.request.data_percent, self.map_path)]
        folder = image_folder(self.map_path, kept[0][0])
        files = [folder / name for name, _ in kept]
        stats = []
        for path in files:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                raise UserError(
                    "image not found",
                    file=path,
                    field=MAP_FILE,
                    fix="every file val_map.txt lists must exist next to it",
                ) from None
            stats.append((st.st_size, st.st_mtime_ns))
        key = json_digest(
            {
                "v": _CACHE_VERSION,
                "map": file_sha256(self.map_path),
                "files": stats,
                "layout": layout,
                "hw": [height, width],
                "dtype": model.dtypes[0],
                "count": len(kept),
            },
            24,
        )
        cache = Path(self.request.cache_dir) / "open_imagenet" / f"images-{key}.npy"
        shape = (channels, height, width) if layout == "NCHW" else (height, width, channels)
        dtype = model.numpy_dtype(0)

        def image(i: int) -> np.ndarray:
            return normalize(preprocess(files[i], height, width), IMAGENET_MEAN, IMAGENET_STD, layout, dtype)

        pixels, hit = cached_images(cache, len(kept), shape, dtype, image)
        self._labels = np.array([label for _, label in kept], dtype=np.int64)
        self._provenance.update(
            {
                "sha256": file_sha256(self.map_path),
                "examples": len(kept),
                "examples_in_file": len(entries),
                "data_percent": self.request.data_percent,
                "layout": layout,
                "image_size": [height, width],
                "preprocessing": f"resize shorter side {round(min(height, width) * RESIZE_RATIO)}, center crop "
                f"{height}x{width}, [0,1], ImageNet mean/std",
                "feature_cache": {"path": str(cache), "hit": hit},
            }
        )
        if self.source == "bundled sample":
            self._provenance["note"] = "bundled sample (16 generated images), not ImageNet: scores are not comparable"
        return Features(
            inputs={model.names[0]: pixels},
            lengths=np.zeros(len(kept), dtype=np.int64),
            provenance=self.provenance(),
            sequence=False,
        )
