"""The loader every GLUE task's dataset package uses (`LOADER = GlueLoader.for_task("CoLA")`): the task's
dev file(s), their features, and the official metrics.

Data: the workload's data_path (a task folder as download_glue_data.py lays it out, or its dev file),
else $PERFBENCH_<DATASET>_PATH, else the files installed by `core.prepare`, else the bundled sample (generated
rows in the task's real layout: its scores mean nothing). MNLI has two dev files, matched and mismatched:
read in that order, each scored on its own too.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from core.common.arrays import load_or_build
from core.common.digest import file_sha256, json_digest
from core.common.errors import UserError
from datasets.base import DatasetLoader, DatasetRequest, Features, resolve_data_file, take_percent
from datasets.glue.metrics import scores
from datasets.glue.tasks import TASKS, Example, GlueTask, read_dev_file
from datasets.tokenization import input_roles, model_inputs, pad_tokens, resolve_tokenizer

DATASETS_DIR = Path(__file__).resolve().parent.parent
# How a split's own scores are named: "Accuracy Matched" (MNLI's, as open_mnli always wrote them).
SPLIT_NAMES = {"dev_matched": "Matched", "dev_mismatched": "Mismatched"}
_CACHE_VERSION = 2


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
        first = f"{self.spec.splits[0]}.tsv"
        path, self.source = resolve_data_file(
            request.data_path,
            f"PERFBENCH_{self.spec.dataset.upper()}_PATH",
            folder / first,
            folder / "sample" / first,
            first,
        )
        self.paths = {split: path.with_name(f"{split}.tsv") for split in self.spec.splits}
        self.labels = tuple(label.lower() for label in (request.labels or self.spec.labels))
        self._splits: dict[str, list[Example]] | None = None
        self._provenance: dict[str, Any] = {
            "source": self.source,
            "task": self.spec.name,
            "paths": {split: str(p) for split, p in self.paths.items()},
            "labels": list(self.labels),
        }

    def load(self) -> Features:
        model = self.request.model
        input_roles(model, self.paths[self.spec.splits[0]])
        spec = self.spec if self.labels == self.spec.labels else _relabelled(self.spec, self.labels)
        files = {split: read_dev_file(spec, path) for split, path in self.paths.items()}
        splits = {
            split: dev.examples[: take_percent(len(dev.examples), self.request.data_percent, self.paths[split])]
            for split, dev in files.items()
        }
        examples = [example for split in spec.splits for example in splits[split]]
        tokenizer, tok_prov = resolve_tokenizer(
            self.request.tokenizer,
            vocab_size=model.vocab_size,
            cache_dir=self.request.cache_dir,
            sample_texts=(text for dev in files.values() for example in dev.examples for text in example.texts),
        )
        # An MRPC folder may hold only the files its dev rows are derived from: those rows are the data.
        digests = {
            split: file_sha256(path) if path.exists() else json_digest([e.texts for e in files[split].examples])
            for split, path in self.paths.items()
        }
        key = json_digest(
            {
                "v": _CACHE_VERSION,
                "task": spec.name,
                "tokenizer": tok_prov["identity"],
                "data": digests,
                "rows": {split: len(rows) for split, rows in splits.items()},
                "seq_len": model.seq_len,
                "pad": model.pad_token_id,
                "types": model.type_vocab_size >= 2,
            },
            24,
        )
        cache = Path(self.request.cache_dir) / spec.dataset / f"features-{key}.npz"

        def encode() -> dict[str, np.ndarray]:
            columns = list(zip(*(example.texts for example in examples)))  # one sentence, or a pair
            enc = tokenizer(
                *columns, truncation=True, max_length=model.seq_len, return_token_type_ids=True, padding=False
            )
            token_ids, type_ids, lengths = pad_tokens(enc["input_ids"], enc["token_type_ids"], model)
            return {"token_ids": token_ids, "type_ids": type_ids, "lengths": lengths}

        arrays, hit = load_or_build(cache, encode, {"key": key})
        self._splits = splits
        self._provenance.update(
            {
                "sha256": digests,
                "examples": {split: len(rows) for split, rows in splits.items()},
                "examples_in_files": {split: len(dev.examples) for split, dev in files.items()},
                "data_percent": self.request.data_percent,
                "tokenizer": tok_prov,
                "feature_cache": {"path": str(cache), "hit": hit},
            }
        )
        skipped = {split: dev.skipped_lines for split, dev in files.items() if dev.skipped_lines}
        if skipped:
            self._provenance["skipped_rows"] = {
                "count": sum(len(lines) for lines in skipped.values()),
                "lines": {split: lines[:20] for split, lines in skipped.items()},
                "why": "missing fields (GLUE's processors skip them too)",
            }
        if self.source == "bundled sample":
            self._provenance["note"] = (
                f"bundled sample (generated rows in {spec.name}'s layout), not GLUE dev: scores mean nothing"
            )
        inputs = model_inputs(arrays["token_ids"], arrays["type_ids"], arrays["lengths"], model)
        return Features(inputs=inputs, lengths=arrays["lengths"].copy(), provenance=self.provenance())

    def evaluate(self, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
        if self._splits is None:
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
        examples = [example for split in spec.splits for example in self._splits[split]]
        count = len(examples)
        expected = (count, 1 if spec.regression else len(self.labels))
        if values.ndim == 0 or values.reshape(values.shape[0], -1).shape != expected:
            raise UserError(
                f"shape {values.shape}, expected {expected}",
                field=f"outputs.{name}",
                fix="one row of class logits per example (STS-B: one score)",
            )
        values = values.reshape(expected)
        gold = np.array([float(e.label) if spec.regression else self.labels.index(e.label) for e in examples])
        result: dict[str, Any] = {}
        start = 0
        for split in spec.splits if len(spec.splits) > 1 else ():
            end = start + len(self._splits[split])
            for metric in spec.metrics:
                result[f"{metric} {SPLIT_NAMES[split]}"] = scores(spec, values[start:end], gold[start:end])[metric]
            start = end
        return {**result, **scores(spec, values, gold), "Examples": count}

    def provenance(self) -> dict[str, Any]:
        return dict(self._provenance)


def _relabelled(spec: GlueTask, labels: tuple[str, ...]) -> GlueTask:
    """The task with the model's label order (a checkpoint trained with another one)."""
    if sorted(labels) != sorted(spec.labels):
        raise UserError(
            f"labels {list(labels)} are not {spec.name}'s {list(spec.labels)}",
            field="labels",
            fix=f"list {spec.name}'s labels in the order the model's outputs use",
        )
    return replace(spec, labels=labels)
