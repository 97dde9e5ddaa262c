"""CIFAR-100 test set (python version), Top-1/Top-5 accuracy; read through a restricted unpickler."""

from datasets.open_cifar.loader import CifarLoader

LOADER = CifarLoader
