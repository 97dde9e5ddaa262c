"""GLUE QNLI dev: question-sentence pairs, entailment; accuracy."""

from datasets.glue.loader import GlueLoader

LOADER = GlueLoader.for_task("QNLI")
