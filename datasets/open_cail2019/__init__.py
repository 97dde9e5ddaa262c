"""CAIL2019-SCM similar-case matching: which of two cases is closer to a third (pairwise Top-1)."""

from datasets.open_cail2019.loader import Cail2019Loader

LOADER = Cail2019Loader
