"""GLUE MNLI matched/mismatched sentence-pair classification."""

from datasets.open_mnli.loader import MnliLoader

LOADER = MnliLoader
