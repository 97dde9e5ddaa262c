"""SQuAD v1.1 dev: features for QA models and the official EM/F1 over questions."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from core.common.arrays import load_or_build
from core.common.digest import file_sha256, json_digest
from core.common.errors import UserError
from datasets.base import DatasetLoader, DatasetRequest, Features, resolve_data_file, take_percent
from datasets.open_squad import features as squad_features
from datasets.open_squad.data import Question, read_squad
from datasets.open_squad.metric import squad_scores
from datasets.tokenization import input_roles, model_inputs, resolve_tokenizer

HERE = Path(__file__).resolve().parent
ENV_PATH = "PERFBENCH_OPEN_SQUAD_PATH"
DATA_FILE = "dev-v1.1.json"
SAMPLE = HERE / "sample" / "dev-sample.json"
_CACHE_VERSION = 1
DEFAULT_OUTPUTS = ("start_logits", "end_logits")
# ByteMLPerf's open_squad picks the tokenizer from the model name; its own entries name none. Checked in
# order ("albert", "roberta" and "deberta" all contain "bert"); any other BERT uses the dataset's vocab.txt.
NAMED_TOKENIZERS = (
    ("albert", "madlag/albert-base-v2-squad"),
    ("roberta", "csarron/roberta-base-squad-v1"),
    ("deberta", "Palak/microsoft_deberta-base_squad"),
)
VOCAB = HERE / "vocab.txt"


class SquadLoader(DatasetLoader):
    """Features in question order; evaluate() decodes spans and scores them per question."""

    name = "open_squad"

    def __init__(self, request: DatasetRequest):
        super().__init__(request)
        self.path, self.source = resolve_data_file(request.data_path, ENV_PATH, HERE / DATA_FILE, SAMPLE, DATA_FILE)
        # Set by load(): the questions kept (file order) and their features (offsets, question index).
        self.questions: list[Question] | None = None
        self.encoded: squad_features.EncodedFeatures | None = None
        self._provenance: dict[str, Any] = {"source": self.source, "path": str(self.path)}

    @classmethod
    def default_tokenizer(cls, model_name: str) -> str | None:
        name = model_name.lower()
        for word, tokenizer in NAMED_TOKENIZERS:
            if word in name:
                return tokenizer  # a hub id: found in the local HF cache or not at all (never downloaded here)
        if "bert" in name and VOCAB.is_file():  # installed by `core.prepare` with the dataset (open_squad.tar)
            return str(VOCAB)
        return None

    def load(self) -> Features:
        model = self.request.model
        input_roles(model, self.path)
        questions = read_squad(self.path)
        total = len(questions)
        sha = file_sha256(self.path)
        tokenizer, tok_prov = resolve_tokenizer(
            self.request.tokenizer,
            vocab_size=model.vocab_size,
            cache_dir=self.request.cache_dir,
            sample_texts=_texts(questions),
        )
        questions = questions[: take_percent(total, self.request.data_percent, self.path)]
        settings = squad_features.Settings.for_seq_len(model.seq_len)
        key = json_digest(
            {
                "v": _CACHE_VERSION,
                "tokenizer": tok_prov["identity"],
                "data": sha,
                "questions": len(questions),
                "settings": asdict(settings),
                "pad": model.pad_token_id,
                "types": model.type_vocab_size >= 2,
            },
            24,
        )
        cache = Path(self.request.cache_dir) / "open_squad" / f"features-{key}.npz"
        arrays, hit = load_or_build(
            cache,
            lambda: asdict(squad_features.encode(tokenizer, questions, model, settings)),
            {"key": key, "data": str(self.path)},
        )
        encoded = squad_features.EncodedFeatures(**arrays)
        self.questions, self.encoded = questions, encoded
        self._provenance.update(
            {
                "sha256": sha,
                "questions": len(questions),
                "questions_in_file": total,
                "features": len(encoded.lengths),
                "data_percent": self.request.data_percent,
                "tokenizer": tok_prov,
                "feature_cache": {"path": str(cache), "hit": hit},
                "settings": asdict(settings),
            }
        )
        if self.source == "bundled sample":
            self._provenance["note"] = (
                f"bundled sample ({total} generated questions), not SQuAD dev: "
                f"scores are not comparable to published ones"
            )
        inputs = model_inputs(encoded.token_ids, encoded.type_ids, encoded.lengths, model)
        return Features(inputs=inputs, lengths=encoded.lengths.copy(), provenance=self.provenance())

    def predict(self, outputs: dict[str, np.ndarray]) -> tuple[dict[str, str], int]:
        """({question id: answer text}, non-finite feature count) from the model's outputs."""
        if self.encoded is None:
            self.load()
        start, end = self._logits(outputs)
        contexts = [q.context for q in self.questions]
        answers, nonfinite = squad_features.decode_answers(start, end, self.encoded, contexts)
        return {q.qid: a for q, a in zip(self.questions, answers)}, nonfinite

    def evaluate(self, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
        predictions, nonfinite = self.predict(outputs)
        scores = squad_scores({q.qid: q.answers for q in self.questions}, predictions)
        return {
            "Exact Match": scores["exact_match"],
            "F1 Score": scores["f1"],
            "Questions": len(self.questions),
            "Features": len(self.encoded.lengths),
            "Non-finite Outputs": nonfinite,
            "Empty Predictions": sum(1 for text in predictions.values() if not text),
        }

    def _logits(self, outputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        names = self.request.model.outputs or DEFAULT_OUTPUTS
        arrays = []
        for name in names[:2]:
            if name not in outputs:
                raise UserError(
                    f"no output {name!r} among {sorted(outputs)}",
                    field="outputs",
                    fix="the model entry's outputs must name the start and end logits",
                )
            arrays.append(np.asarray(outputs[name]))
        if len(arrays) == 1 and arrays[0].ndim == 3 and arrays[0].shape[-1] == 2:
            arrays = [arrays[0][..., 0], arrays[0][..., 1]]  # one [N, L, 2] logits output
        if len(arrays) != 2:
            raise UserError(
                f"expected start and end logits, got outputs {list(names)}",
                field="outputs",
                fix="list both outputs (start_logits, end_logits) in the model entry",
            )
        n, longest = len(self.encoded.lengths), int(self.encoded.lengths.max())
        for name, array in zip(names, arrays):
            if array.ndim != 2 or array.shape[0] != n or array.shape[1] < longest:
                raise UserError(
                    f"shape {array.shape} does not cover {n} features of up to {longest} tokens",
                    field=f"outputs.{name}",
                    fix="return one row of logits per feature",
                )
        return arrays[0], arrays[1]

    def provenance(self) -> dict[str, Any]:
        return dict(self._provenance)


def _texts(questions: list[Question]):
    """Each distinct context once, then every question: the fallback tokenizer's training text."""
    seen: set[str] = set()
    for q in questions:
        if q.context not in seen:
            seen.add(q.context)
            yield q.context
    for q in questions:
        yield q.question
