"""Stand-alone SQuAD v1.1 evaluator with the official script's interface.

    python -m datasets.open_squad.evaluate DATA.json PREDICTIONS.json
prints {"exact_match": ..., "f1": ...}. PREDICTIONS.json maps question ids to answer texts; questions
without a prediction score 0, as in the official script.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.common.cli import prog, run_command
from core.common.errors import UserError
from datasets.open_squad.data import read_squad
from datasets.open_squad.metric import squad_scores


def read_predictions(path: Path, known_ids: set[str]) -> dict[str, str]:
    try:
        predictions = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise UserError("file not found", file=path, fix="check the predictions path") from err
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"not valid JSON: {err}", file=path, fix='write {"question id": "answer text", ...}') from err
    if not isinstance(predictions, dict) or not all(isinstance(v, str) for v in predictions.values()):
        raise UserError(
            "expected an object of question id -> answer text",
            file=path,
            fix='write {"question id": "answer text", ...}',
        )
    unknown = sorted(set(predictions) - known_ids)
    if unknown:
        raise UserError(
            f"{len(unknown)} question ids are not in the dataset, e.g. {unknown[0]!r}",
            file=path,
            fix="evaluate predictions against the data file they were made for",
        )
    return predictions


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog("datasets.open_squad.evaluate", "evaluate squad"),
        description="Official SQuAD v1.1 exact match and F1.",
    )
    parser.add_argument("dataset_file", type=Path, help="SQuAD v1.1 JSON, e.g. dev-v1.1.json")
    parser.add_argument("prediction_file", type=Path, help="JSON object: question id -> answer text")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: _evaluate(args))


def _evaluate(args: argparse.Namespace) -> int:
    questions = read_squad(args.dataset_file)
    predictions = read_predictions(args.prediction_file, {q.qid for q in questions})
    missing = len(questions) - len(predictions)
    if missing:
        print(f"{missing} unanswered questions will receive score 0.", file=sys.stderr)
    print(json.dumps(squad_scores({q.qid: q.answers for q in questions}, predictions)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
