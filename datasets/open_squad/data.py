"""Reading SQuAD v1.1 JSON files: {"version", "data": [{"title", "paragraphs": [{"context", "qas"}]}]}."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from core.common.errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Question:
    qid: str
    question: str
    context: str
    answers: tuple[str, ...]  # gold answer texts; the metric takes the best match over them


def read_squad(path: Path, *, need_answers: bool = True) -> list[Question]:
    """All questions in file order. Raises UserError naming the file and the bad field."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise UserError("file not found", file=path, fix="check the SQuAD data path") from err
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"not valid JSON: {err}", file=path, fix="use SQuAD v1.1 JSON (dev-v1.1.json)") from err
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise UserError(
            'missing the top-level "data" list', file=path, field="data", fix="use SQuAD v1.1 JSON (dev-v1.1.json)"
        )
    if str(doc.get("version", "1.1")) != "1.1":
        log.warning("%s: version %r, the metric is SQuAD v1.1's", path, doc.get("version"))
    questions: list[Question] = []
    seen: set[str] = set()
    for a, article in enumerate(doc["data"]):
        for p, paragraph in enumerate(_list(article, "paragraphs", path, f"data[{a}]")):
            where = f"data[{a}].paragraphs[{p}]"
            context = _text(paragraph, "context", path, where)
            for q, qa in enumerate(_list(paragraph, "qas", path, where)):
                qwhere = f"{where}.qas[{q}]"
                qid = _text(qa, "id", path, qwhere)
                if qid in seen:
                    raise UserError(
                        f"duplicate question id {qid!r}",
                        file=path,
                        field=f"{qwhere}.id",
                        fix="question ids must be unique",
                    )
                seen.add(qid)
                answers = tuple(
                    _text(ans, "text", path, f"{qwhere}.answers[{i}]")
                    for i, ans in enumerate(_list(qa, "answers", path, qwhere))
                )
                if need_answers and not answers:
                    raise UserError(
                        "question has no gold answers",
                        file=path,
                        field=f"{qwhere}.answers",
                        fix="SQuAD v1.1 dev lists at least one answer per question",
                    )
                questions.append(Question(qid, _text(qa, "question", path, qwhere), context, answers))
    if not questions:
        raise UserError(
            "no questions in the file", file=path, field="data", fix="use a SQuAD v1.1 file with at least one question"
        )
    return questions


def _list(node: object, key: str, path: Path, where: str) -> list:
    value = node.get(key) if isinstance(node, dict) else None
    if not isinstance(value, list):
        raise UserError(
            f'missing or not a list: "{key}"',
            file=path,
            field=f"{where}.{key}",
            fix="use SQuAD v1.1 JSON (dev-v1.1.json)",
        )
    return value


def _text(node: object, key: str, path: Path, where: str) -> str:
    value = node.get(key) if isinstance(node, dict) else None
    if not isinstance(value, str):
        raise UserError(
            f'missing or not a string: "{key}"',
            file=path,
            field=f"{where}.{key}",
            fix="use SQuAD v1.1 JSON (dev-v1.1.json)",
        )
    return value
