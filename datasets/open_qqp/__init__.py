"""GLUE QQP dev: question pairs, duplicates; F1 and accuracy."""

from datasets.glue.loader import GlueLoader

LOADER = GlueLoader.for_task("QQP")
