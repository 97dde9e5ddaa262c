"""GLUE MNLI dev, matched and mismatched: sentence pairs, 3-way entailment; accuracy per split and overall."""

from datasets.glue.loader import GlueLoader

LOADER = GlueLoader.for_task("MNLI")
