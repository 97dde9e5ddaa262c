"""Stand-alone GLUE evaluator: a task's official metrics on predictions for its dev file.

    python -m datasets.glue.evaluate TASK DEV.tsv PREDICTIONS
prints the metrics as JSON, e.g. {"Matthews Correlation": 61.2, "Examples": 1043}. TASK is CoLA, SST-2,
MRPC, STS-B, QQP, MNLI (one of its dev_matched/dev_mismatched files), QNLI or RTE. PREDICTIONS holds one
prediction per line in dev order (a label as the file writes it, or its index in the task's label order;
STS-B: a score), or a JSON object from the example's 0-based position in the dev file to its prediction.
Every example needs a prediction; rows the reader skips (QQP's rows missing fields) take none.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from core.common.cli import prog, run_command
from core.common.errors import UserError
from datasets.glue.metrics import classification_scores, regression_scores
from datasets.glue.tasks import GlueTask, read_dev_file, task


def read_predictions(path: Path, count: int) -> list[str]:
    """The predictions as text, one per example in dev order."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise UserError("file not found", file=path, fix="check the predictions path") from err
    except UnicodeDecodeError as err:
        raise UserError(f"not UTF-8 text: {err}", file=path, fix="write one prediction per line") from err
    if text.lstrip().startswith("{"):
        try:
            keyed = json.loads(text)
        except json.JSONDecodeError as err:
            raise UserError(f"not valid JSON: {err}", file=path, fix='write {"0": prediction, ...}') from err
        wanted = {str(i) for i in range(count)}
        if set(keyed) != wanted:
            extra, missing = sorted(set(keyed) - wanted), sorted(wanted - set(keyed), key=int)
            detail = f"no prediction for example {missing[0]}" if missing else f"unknown key {extra[0]!r}"
            raise UserError(
                f"{detail} (the dev file has {count} examples, keyed 0..{count - 1})", file=path, fix="key by position"
            )
        return [str(keyed[str(i)]).strip() for i in range(count)]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) != count:
        raise UserError(
            f"{len(lines)} predictions for {count} examples",
            file=path,
            fix="one prediction per line, in the dev file's order",
        )
    return lines


def predicted_classes(spec: GlueTask, predictions: list[str], path: Path) -> np.ndarray:
    classes = []
    for line, value in enumerate(predictions, start=1):
        label = value.lower()
        if label in spec.labels:
            classes.append(spec.labels.index(label))
        elif label.isdigit() and int(label) < len(spec.labels):
            classes.append(int(label))
        else:
            raise UserError(
                f"prediction {value!r} is not one of {list(spec.labels)} or their index",
                file=path,
                field=f"prediction {line}",
                fix=f"write {spec.name}'s labels",
            )
    return np.array(classes)


def evaluate(spec: GlueTask, dev_path: Path, predictions_path: Path) -> dict:
    dev = read_dev_file(spec, dev_path)
    predictions = read_predictions(predictions_path, len(dev.examples))
    if spec.regression:
        try:
            scores = np.array([float(p) for p in predictions])
        except ValueError as err:
            raise UserError(f"not a score: {err}", file=predictions_path, fix="one number per line") from None
        result = regression_scores(scores, np.array([float(e.label) for e in dev.examples]))
    else:
        gold = np.array([spec.labels.index(e.label) for e in dev.examples])
        result = classification_scores(spec, predicted_classes(spec, predictions, predictions_path), gold)
    result["Examples"] = len(dev.examples)
    if dev.skipped_lines:
        result["Skipped Rows"] = len(dev.skipped_lines)
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog("datasets.glue.evaluate", "evaluate glue"), description="GLUE's official metrics."
    )
    parser.add_argument("task", help="CoLA, SST-2, MRPC, STS-B, QQP, MNLI, QNLI or RTE")
    parser.add_argument("dev_file", type=Path, help="the task's dev.tsv (MNLI: dev_matched.tsv or dev_mismatched.tsv)")
    parser.add_argument("prediction_file", type=Path, help="one prediction per line, or JSON keyed by position")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def body() -> int:
        print(json.dumps(evaluate(task(args.task), args.dev_file, args.prediction_file), allow_nan=True))
        return 0

    return run_command(body)


if __name__ == "__main__":
    sys.exit(main())
