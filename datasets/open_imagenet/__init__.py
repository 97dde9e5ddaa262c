"""ImageNet-1k validation (ByteMLPerf's layout: JPEG folder + val_map.txt), Top-1/Top-5 accuracy."""

from datasets.open_imagenet.loader import ImagenetLoader

LOADER = ImagenetLoader
