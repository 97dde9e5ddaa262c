"""The eight GLUE tasks as `download_glue_data.py` lays them out (`glue_tasks/<TASK>/dev.tsv`), and the
one reader of their dev files.

The files differ per task: CoLA has no header row (source, label, original label, sentence); the others
name their columns in a header; MRPC's dev.tsv is derived from the MSR train file and GLUE's dev ids
when only those are present; QQP has rows with missing fields, which GLUE's own processors skip (so
does this reader, counting them). Every file is tab-separated without quoting: sentences keep their
quote characters as written.

Label order: Hugging Face's GLUE processors (transformers' `glue_processors`), which most fine-tuned
checkpoints use; MNLI's is DeBERTa's own task order ("contradiction", "neutral", "entailment", from
microsoft/DeBERTa apps/tasks/glue_tasks.py), which the DeBERTa MNLI checkpoints use. A checkpoint trained
with another order (GLUE through Hugging Face datasets: entailment, neutral, contradiction) sets its
model entry's `labels`.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from core.common.errors import UserError

# What each metric is called in reports (ByteMLPerf-style names, as the SQuAD and MNLI loaders write them).
ACCURACY = "Accuracy"
F1 = "F1 Score"
MATTHEWS = "Matthews Correlation"
PEARSON = "Pearson Correlation"
SPEARMAN = "Spearman Correlation"


@dataclass(frozen=True)
class GlueTask:
    name: str  # as GLUE spells it: "CoLA", "SST-2", ...
    dataset: str  # our dataset package
    text_columns: tuple[str | int, ...]  # header names, or field indexes in a file without a header
    label_column: str | int
    labels: tuple[str, ...]  # class labels in the model's output order; () for a regression task
    metrics: tuple[str, ...]  # the official metrics, the headline first
    header: bool = True
    splits: tuple[str, ...] = ("dev",)  # dev file stems, read in this order
    skip_short_rows: bool = False  # QQP: rows missing fields are skipped (and counted), as GLUE's processors do

    @property
    def regression(self) -> bool:
        return not self.labels


TASKS = {
    task.name: task
    for task in (
        GlueTask("CoLA", "open_cola", (3,), 1, ("0", "1"), (MATTHEWS,), header=False),
        GlueTask("SST-2", "open_sst2", ("sentence",), "label", ("0", "1"), (ACCURACY,)),
        GlueTask("MRPC", "open_mrpc", ("#1 String", "#2 String"), "Quality", ("0", "1"), (F1, ACCURACY)),
        GlueTask("STS-B", "open_stsb", ("sentence1", "sentence2"), "score", (), (PEARSON, SPEARMAN)),
        GlueTask(
            "QQP",
            "open_qqp",
            ("question1", "question2"),
            "is_duplicate",
            ("0", "1"),
            (F1, ACCURACY),
            skip_short_rows=True,
        ),
        GlueTask(
            "MNLI",
            "open_mnli",
            ("sentence1", "sentence2"),
            "gold_label",
            ("contradiction", "neutral", "entailment"),
            (ACCURACY,),
            splits=("dev_matched", "dev_mismatched"),
        ),
        GlueTask("QNLI", "open_qnli", ("question", "sentence"), "label", ("entailment", "not_entailment"), (ACCURACY,)),
        GlueTask("RTE", "open_rte", ("sentence1", "sentence2"), "label", ("entailment", "not_entailment"), (ACCURACY,)),
    )
}
# MRPC's dev.tsv as download_glue_data.py builds it: the MSR train rows whose id pair is a GLUE dev id pair.
MRPC_TRAIN, MRPC_DEV_IDS = "msr_paraphrase_train.txt", "mrpc_dev_ids.tsv"
STSB_RANGE = (0.0, 5.0)


@dataclass(frozen=True)
class Example:
    texts: tuple[str, ...]  # one sentence, or a pair
    label: str  # as written: a class label, or STS-B's score
    line: int  # where in its file, for errors


@dataclass(frozen=True)
class DevFile:
    examples: list[Example]
    skipped_lines: list[int]  # rows left out (QQP's short rows)


def task(name: str) -> GlueTask:
    found = {key.lower().replace("-", ""): value for key, value in TASKS.items()}.get(name.lower().replace("-", ""))
    if found is None:
        raise UserError(f"unknown GLUE task {name!r}", field="TASK", fix=f"use one of {', '.join(TASKS)}")
    return found


def _rows(path: Path) -> list[list[str]]:
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    except FileNotFoundError as err:
        raise UserError("file not found", file=path, fix="point data_path at the GLUE task folder (dev.tsv)") from err
    except UnicodeDecodeError as err:
        raise UserError(f"not UTF-8 text: {err}", file=path, fix="use the GLUE dev TSV as distributed") from err
    except csv.Error as err:
        raise UserError(
            f"not a tab-separated file: {err}", file=path, fix="use the GLUE dev TSV as distributed"
        ) from err


def read_dev_file(spec: GlueTask, path: Path) -> DevFile:
    """A task's dev TSV: its examples in file order, and the lines skipped. An MRPC folder holding only
    the MSR train file and GLUE's dev ids gives the dev rows download_glue_data.py would have written."""
    if spec.name == "MRPC" and not path.exists() and (path.parent / MRPC_TRAIN).exists():
        return parse_rows(spec, derive_mrpc_dev(path.parent), path.parent / MRPC_TRAIN)
    return parse_rows(spec, _rows(path), path)


def parse_rows(spec: GlueTask, rows: list[list[str]], path: Path) -> DevFile:
    start = 1
    columns: list[int] = []
    wanted = (*spec.text_columns, spec.label_column)
    if spec.header:
        header = [name.strip() for name in rows[0]] if rows else []
        missing = [name for name in wanted if name not in header]
        if missing:
            raise UserError(
                f"missing columns {missing}",
                file=path,
                field="header",
                fix=f"use GLUE's {spec.name} dev.tsv (columns {', '.join(map(str, wanted))})",
            )
        columns = [header.index(name) for name in wanted]
        start = 2
    else:
        columns = [int(index) for index in wanted]
    needed = max(columns) + 1
    examples, skipped = [], []
    for line, row in enumerate(rows[start - 1 :], start=start):
        if not row or row == [""]:
            continue
        if len(row) < needed:
            if spec.skip_short_rows:
                skipped.append(line)
                continue
            raise UserError(
                f"{len(row)} fields, {spec.name} rows have at least {needed}",
                file=path,
                field=f"line {line}",
                fix="fields are tab-separated, one row per line, as GLUE distributes them",
            )
        *texts, label = (row[i] for i in columns)
        examples.append(Example(tuple(texts), _label(spec, label.strip(), path, line), line))
    if not examples:
        raise UserError("no rows", file=path, fix=f"use GLUE's {spec.name} dev.tsv with at least one row")
    return DevFile(examples, skipped)


def _label(spec: GlueTask, label: str, path: Path, line: int) -> str:
    if spec.regression:
        try:
            score = float(label)
        except ValueError:
            score = float("nan")
        if not STSB_RANGE[0] <= score <= STSB_RANGE[1]:
            raise UserError(
                f"score {label!r} is not a number from {STSB_RANGE[0]:g} to {STSB_RANGE[1]:g}",
                file=path,
                field=f"line {line}: {spec.label_column}",
                fix="use GLUE's STS-B dev.tsv",
            )
        return label
    if label.lower() not in spec.labels:
        raise UserError(
            f"label {label!r} is not one of {list(spec.labels)}",
            file=path,
            field=f"line {line}: {spec.label_column}",
            fix="use GLUE's dev.tsv, or set the model entry's labels",
        )
    return label.lower()


def derive_mrpc_dev(folder: Path) -> list[list[str]]:
    """MRPC's dev rows from the MSR train file and GLUE's dev id pairs (download_glue_data.py's rule),
    header first, in the train file's order."""
    ids = {tuple(row[:2]) for row in _rows(folder / MRPC_DEV_IDS) if len(row) >= 2}
    train = _rows(folder / MRPC_TRAIN)
    if not train:
        raise UserError("no rows", file=folder / MRPC_TRAIN, fix="use the MSR paraphrase corpus' train file")
    return [train[0], *(row for row in train[1:] if len(row) >= 3 and (row[1], row[2]) in ids)]
