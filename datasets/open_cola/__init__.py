"""GLUE CoLA dev: single sentences, linguistic acceptability; Matthews correlation."""

from datasets.glue.loader import GlueLoader

LOADER = GlueLoader.for_task("CoLA")
