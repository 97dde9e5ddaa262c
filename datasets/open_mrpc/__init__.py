"""GLUE MRPC dev: sentence pairs, paraphrase; F1 and accuracy."""

from datasets.glue.loader import GlueLoader

LOADER = GlueLoader.for_task("MRPC")
