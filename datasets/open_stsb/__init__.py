"""GLUE STS-B dev: sentence pairs, similarity 0-5 (a regression head); Pearson and Spearman."""

from datasets.glue.loader import GlueLoader

LOADER = GlueLoader.for_task("STS-B")
