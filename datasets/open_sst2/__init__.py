"""GLUE SST-2 dev: single sentences, sentiment; accuracy."""

from datasets.glue.loader import GlueLoader

LOADER = GlueLoader.for_task("SST-2")
