"""GLUE MNLI dev (matched + mismatched): sentence-pair features and accuracy.

Label order: the model's (`request.labels`), else DeBERTa's own MNLI task order
("contradiction", "neutral", "entailment", from microsoft/DeBERTa apps/tasks/glue_tasks.py), which
the DeBERTa-v3 MNLI checkpoints use. Models fine-tuned with other scripts often use another order
(GLUE via Hugging Face datasets: entailment, neutral, contradiction): set the model entry's labels.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.common.arrays import load_or_build
from core.common.digest import file_sha256, json_digest
from core.common.errors import UserError
from datasets.base import DatasetLoader, DatasetRequest, Features, resolve_data_file, take_percent
from datasets.tokenization import input_roles, model_inputs, pad_tokens, resolve_tokenizer

HERE = Path(__file__).resolve().parent
ENV_PATH = "PERFBENCH_OPEN_MNLI_PATH"
SPLITS = ("dev_matched", "dev_mismatched")
SAMPLE_DIR = HERE / "sample"
DEFAULT_LABELS = ("contradiction", "neutral", "entailment")
COLUMNS = (
    "index",
    "promptID",
    "pairID",
    "genre",
    "sentence1_binary_parse",
    "sentence2_binary_parse",
    "sentence1_parse",
    "sentence2_parse",
    "sentence1",
    "sentence2",
)
_CACHE_VERSION = 1


@dataclass(frozen=True)
class Pair:
    premise: str
    hypothesis: str
    label: str


def read_mnli_tsv(path: Path) -> list[Pair]:
    """Rows of a GLUE MNLI dev TSV (header: COLUMNS, label1..label5, gold_label)."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    except FileNotFoundError as err:
        raise UserError(
            "file not found", file=path, fix="the MNLI folder needs dev_matched.tsv and dev_mismatched.tsv"
        ) from err
    except UnicodeDecodeError as err:
        raise UserError(f"not UTF-8 text: {err}", file=path, fix="use the GLUE MNLI TSV files") from err
    header = rows[0] if rows else []
    missing = [c for c in (*COLUMNS, "gold_label") if c not in header]
    if missing:
        raise UserError(
            f"missing columns {missing}",
            file=path,
            field="header",
            fix="use GLUE MNLI dev TSV (index, promptID, ..., sentence1, sentence2, ..., gold_label)",
        )
    s1, s2, gold = header.index("sentence1"), header.index("sentence2"), header.index("gold_label")
    pairs = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise UserError(
                f"{len(row)} fields, the header has {len(header)}",
                file=path,
                field=f"line {line}",
                fix="fields are tab-separated, one row per line",
            )
        pairs.append(Pair(row[s1], row[s2], row[gold].strip().lower()))
    if not pairs:
        raise UserError("no rows", file=path, fix="use GLUE MNLI dev TSV files with at least one row")
    return pairs


class MnliLoader(DatasetLoader):
    """Features: matched rows, then mismatched rows. evaluate() gives accuracy per split and overall."""

    name = "open_mnli"

    def __init__(self, request: DatasetRequest):
        super().__init__(request)
        first, self.source = resolve_data_file(
            request.data_path, ENV_PATH, HERE / f"{SPLITS[0]}.tsv", SAMPLE_DIR / f"{SPLITS[0]}.tsv", f"{SPLITS[0]}.tsv"
        )
        self.paths = {split: first.with_name(f"{split}.tsv") for split in SPLITS}
        self.labels = tuple(label.lower() for label in (request.labels or DEFAULT_LABELS))
        self._splits: dict[str, list[Pair]] | None = None
        self._provenance: dict[str, Any] = {
            "source": self.source,
            "paths": {k: str(v) for k, v in self.paths.items()},
            "labels": list(self.labels),
        }

    def load(self) -> Features:
        model = self.request.model
        input_roles(model, self.paths[SPLITS[0]])
        full = {split: read_mnli_tsv(path) for split, path in self.paths.items()}
        for split, pairs in full.items():
            for row, pair in enumerate(pairs, start=2):
                if pair.label not in self.labels:
                    raise UserError(
                        f"gold label {pair.label!r} is not one of {list(self.labels)}",
                        file=self.paths[split],
                        field=f"line {row}: gold_label",
                        fix="check the model's labels setting",
                    )
        splits = {
            split: pairs[: take_percent(len(pairs), self.request.data_percent, self.paths[split])]
            for split, pairs in full.items()
        }
        pairs = [pair for split in SPLITS for pair in splits[split]]
        tokenizer, tok_prov = resolve_tokenizer(
            self.request.tokenizer,
            vocab_size=model.vocab_size,
            cache_dir=self.request.cache_dir,
            sample_texts=(text for rows in full.values() for p in rows for text in (p.premise, p.hypothesis)),
        )
        shas = {split: file_sha256(path) for split, path in self.paths.items()}
        key = json_digest(
            {
                "v": _CACHE_VERSION,
                "tokenizer": tok_prov["identity"],
                "data": shas,
                "rows": {s: len(p) for s, p in splits.items()},
                "seq_len": model.seq_len,
                "pad": model.pad_token_id,
                "types": model.type_vocab_size >= 2,
            },
            24,
        )
        cache = Path(self.request.cache_dir) / "open_mnli" / f"features-{key}.npz"

        def encode() -> dict[str, np.ndarray]:
            enc = tokenizer(
                [p.premise for p in pairs],
                [p.hypothesis for p in pairs],
                truncation=True,
                max_length=model.seq_len,
                return_token_type_ids=True,
                padding=False,
            )
            token_ids, type_ids, lengths = pad_tokens(enc["input_ids"], enc["token_type_ids"], model)
            return {"token_ids": token_ids, "type_ids": type_ids, "lengths": lengths}

        arrays, hit = load_or_build(cache, encode, {"key": key})
        self._splits = splits
        self._provenance.update(
            {
                "sha256": shas,
                "examples": {s: len(p) for s, p in splits.items()},
                "examples_in_files": {s: len(p) for s, p in full.items()},
                "data_percent": self.request.data_percent,
                "tokenizer": tok_prov,
                "feature_cache": {"path": str(cache), "hit": hit},
            }
        )
        if self.source == "bundled sample":
            self._provenance["note"] = (
                "bundled sample (generated sentence pairs), not MNLI dev: scores are not comparable"
            )
        inputs = model_inputs(arrays["token_ids"], arrays["type_ids"], arrays["lengths"], model)
        return Features(inputs=inputs, lengths=arrays["lengths"].copy(), provenance=self.provenance())

    def evaluate(self, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
        if self._splits is None:
            self.load()
        name = (self.request.model.outputs or ("logits",))[0]
        if name not in outputs:
            raise UserError(
                f"no output {name!r} among {sorted(outputs)}",
                field="outputs",
                fix="the model entry's outputs must name the classification logits",
            )
        logits = np.asarray(outputs[name])
        gold = np.array([self.labels.index(p.label) for split in SPLITS for p in self._splits[split]])
        if logits.shape != (len(gold), len(self.labels)):
            raise UserError(
                f"shape {logits.shape}, expected ({len(gold)}, {len(self.labels)})",
                field=f"outputs.{name}",
                fix="one row of class logits per example",
            )
        finite = np.isfinite(logits).all(axis=1)
        correct = finite & (np.argmax(np.where(finite[:, None], logits, 0), axis=1) == gold)
        n_matched = len(self._splits[SPLITS[0]])
        return {
            "Accuracy Matched": 100.0 * float(correct[:n_matched].mean()),
            "Accuracy Mismatched": 100.0 * float(correct[n_matched:].mean()),
            "Accuracy": 100.0 * float(correct.mean()),
            "Examples": len(gold),
            "Non-finite Outputs": int((~finite).sum()),
        }

    def provenance(self) -> dict[str, Any]:
        return dict(self._provenance)
