"""The loader every GLUE task package uses (`LOADER = GlueLoader.for_task("CoLA")`): the task's dev file,
its features, and its official metrics. MNLI keeps its own loader (datasets/open_mnli).

Data: the workload's data_path (a task folder as download_glue_data.py lays it out, or its dev.tsv),
else $PERFBENCH_<DATASET>_PATH, else the file installed by `core.prepare`, else the bundled sample (a
generated file in the task's real layout: its scores mean nothing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from core.common.arrays import load_or_build
from core.common.digest import file_sha256, json_digest
from core.common.errors import UserError
from datasets.base import DatasetLoader, DatasetRequest, Features, resolve_data_file, take_percent
from datasets.glue.metrics import scores
from datasets.glue.tasks import TASKS, DevFile, GlueTask, read_dev_file
from datasets.tokenization import input_roles, model_inputs, pad_tokens, resolve_tokenizer

DATASETS_DIR = Path(__file__).resolve().parent.parent
_CACHE_VERSION = 1


class GlueLoader(DatasetLoader):
    spec: ClassVar[GlueTask]

    @classmethod
    def for_task(cls, name: str) -> type[GlueLoader]:
        spec = TASKS[name]
        name = f"{spec.dataset.title().replace('_', '')}Loader"
        return type(name, (cls,), {"spec": spec, "name": spec.dataset, "__module__": __name__, "__qualname__": name})

    def __init__(self, request: DatasetRequest):
        super().__init__(request)
        folder = DATASETS_DIR / self.spec.dataset
        self.path, self.source = resolve_data_file(
            request.data_path,
            f"PERFBENCH_{self.spec.dataset.upper()}_PATH",
            folder / "dev.tsv",
            folder / "sample" / "dev.tsv",
            "dev.tsv",
        )
        self.labels = tuple(label.lower() for label in (request.labels or self.spec.labels))
        self._dev: DevFile | None = None
        self._examples: list | None = None

    def load(self) -> Features:
        model = self.request.model
        input_roles(model, self.path)
        spec = self.spec if self.labels == self.spec.labels else _relabelled(self.spec, self.labels)
        dev = read_dev_file(spec, self.path)
        examples = dev.examples[: take_percent(len(dev.examples), self.request.data_percent, self.path)]
        tokenizer, tok_prov = resolve_tokenizer(
            self.request.tokenizer,
            vocab_size=model.vocab_size,
            cache_dir=self.request.cache_dir,
            sample_texts=(text for example in dev.examples for text in example.texts),
        )
        digest = file_sha256(self.path) if self.path.exists() else json_digest([e.texts for e in dev.examples])
        key = json_digest(
            {
                "v": _CACHE_VERSION,
                "task": spec.name,
                "tokenizer": tok_prov["identity"],
                "data": digest,
                "rows": len(examples),
                "seq_len": model.seq_len,
                "pad": model.pad_token_id,
                "types": model.type_vocab_size >= 2,
            },
            24,
        )
        cache = Path(self.request.cache_dir) / spec.dataset / f"features-{key}.npz"

        def encode() -> dict[str, np.ndarray]:
            columns = list(zip(*(example.texts for example in examples)))
            enc = tokenizer(
                *columns,
                truncation=True,
                max_length=model.seq_len,
                return_token_type_ids=True,
                padding=False,
            )
            token_ids, type_ids, lengths = pad_tokens(enc["input_ids"], enc["token_type_ids"], model)
            return {"token_ids": token_ids, "type_ids": type_ids, "lengths": lengths}

        arrays, hit = load_or_build(cache, encode, {"key": key})
        self._dev, self._examples = dev, examples
        provenance = {
            "source": self.source,
            "path": str(self.path),
            "task": spec.name,
            "sha256": digest,
            "examples": len(examples),
            "examples_in_file": len(dev.examples),
            "data_percent": self.request.data_percent,
            "labels": list(self.labels),
            "tokenizer": tok_prov,
            "feature_cache": {"path": str(cache), "hit": hit},
        }
        if dev.skipped_lines:
            provenance["skipped_rows"] = {
                "count": len(dev.skipped_lines),
                "lines": dev.skipped_lines[:20],
                "why": "missing fields (GLUE's processors skip them too)",
            }
        if self.source == "bundled sample":
            provenance["note"] = (
                f"bundled sample (generated rows in {spec.name}'s layout), not GLUE dev: scores mean nothing"
            )
        self._provenance = provenance
        inputs = model_inputs(arrays["token_ids"], arrays["type_ids"], arrays["lengths"], model)
        return Features(inputs=inputs, lengths=arrays["lengths"].copy(), provenance=self.provenance())

    def evaluate(self, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
        if self._examples is None:
            self.load()
        spec = self.spec
        name = (self.request.model.outputs or ("logits",))[0]
        if name not in outputs:
            raise UserError(
                f"no output {name!r} among {sorted(outputs)}",
                field="outputs",
                fix="the model entry's outputs must name the classification logits (or the STS-B score)",
            )
        values = np.asarray(outputs[name])
        count = len(self._examples)
        if spec.regression:
            expected = (count, 1)
            gold = np.array([float(e.label) for e in self._examples])
        else:
            expected = (count, len(self.labels))
            gold = np.array([self.labels.index(e.label) for e in self._examples])
        if values.ndim == 0 or values.reshape(values.shape[0], -1).shape != expected:
            raise UserError(
                f"shape {values.shape}, expected {expected}",
                field=f"outputs.{name}",
                fix="one row of class logits per example (STS-B: one score)",
            )
        return {**scores(spec, values.reshape(expected), gold), "Examples": count}

    def provenance(self) -> dict[str, Any]:
        return dict(getattr(self, "_provenance", {"source": self.source, "path": str(self.path)}))


def _relabelled(spec: GlueTask, labels: tuple[str, ...]) -> GlueTask:
    """The task with the model's label order (a checkpoint trained with another one)."""
    from dataclasses import replace

    if sorted(labels) != sorted(spec.labels):
        raise UserError(
            f"labels {list(labels)} are not {spec.name}'s {list(spec.labels)}",
            field="labels",
            fix=f"list {spec.name}'s labels in the order the model's outputs use",
        )
    return replace(spec, labels=labels)
