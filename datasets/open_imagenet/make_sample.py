"""Write the bundled open_imagenet sample: 16 small generated JPEGs and val_map.txt. Not ImageNet.

    python -m datasets.open_imagenet.make_sample [OUT_DIR]

Each image is a deterministic pattern (gradients, stripes, a disc) of varied size and aspect ratio,
so resizing and center cropping are exercised; labels are spread over 0..999.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

SEED = 1111
COUNT = 16
OUT = Path(__file__).resolve().parent / "sample"


def image(rng: np.random.Generator) -> np.ndarray:
    width, height = int(rng.integers(48, 97)), int(rng.integers(48, 97))
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(0, 255, size=3).astype(np.float32)
    period = float(rng.uniform(4, 16))
    stripes = 60 * np.sin(2 * np.pi * (x * rng.uniform(-1, 1) + y * rng.uniform(-1, 1)) / period)
    cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(8, 30)
    disc = ((y - cy) ** 2 + (x - cx) ** 2 < r * r) * rng.uniform(-120, 120, size=3)[:, None, None]
    pixels = base[:, None, None] + stripes[None] + disc + 40 * x[None] / width
    return np.clip(pixels, 0, 255).astype(np.uint8).transpose(1, 2, 0)


def main(argv: list[str] | None = None) -> int:
    from PIL import Image

    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else OUT
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    lines = []
    for i in range(COUNT):
        name = f"ILSVRC2012_val_{i + 1:08d}.JPEG"
        Image.fromarray(image(rng)).save(out / name, format="JPEG", quality=90)
        lines.append(f"{name} {int(rng.integers(0, 1000))}")
    (out / "val_map.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
