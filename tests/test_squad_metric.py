"""The official SQuAD v1.1 metric, hand-worked, and the stand-alone evaluator agreeing with it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from datasets.open_squad.evaluate import main
from datasets.open_squad.metric import exact_match_score, f1_score, normalize_answer, squad_scores

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "text, normalized",
    [
        ("The Eiffel Tower!", "eiffel tower"),  # lower case, punctuation, leading article
        ("  a   cat,  an owl ", "cat owl"),  # articles as whole words, whitespace collapsed
        ("Theater and another", "theater and another"),  # "the"/"an" inside words stay
        ("U.S.-based", "usbased"),  # punctuation removed, not replaced by spaces
        ("the the", ""),
    ],
)
def test_normalize_answer(text, normalized):
    assert normalize_answer(text) == normalized


def test_exact_match_and_f1_by_hand():
    assert exact_match_score("the Lazy dog.", "lazy   dog")
    assert not exact_match_score("over the lazy dog", "the lazy dog")
    # pred "over lazy dog" vs gold "lazy dog": overlap 2, precision 2/3, recall 1 -> F1 0.8
    assert f1_score("over the lazy dog", "the lazy dog") == pytest.approx(0.8)
    # repeated tokens count with multiplicity: pred "dog dog" vs gold "dog": overlap 1, P 1/2, R 1 -> 2/3
    assert f1_score("dog dog", "dog") == pytest.approx(2 / 3)
    assert f1_score("a", "the") == 0.0  # both normalize to nothing: no overlap


def test_scores_take_best_gold_and_average_over_questions():
    gold = {"q1": ["river bank", "the river bank"], "q2": ["1843", "in 1843"], "q3": ["blue glass"]}
    predictions = {"q1": "bank", "q2": "In 1843.", "q3": "red"}
    # q1: EM 0, F1 max(2/3 vs "river bank", 2/3) = 2/3; q2: EM 1 (second gold), F1 1; q3: 0 and 0
    scores = squad_scores(gold, predictions)
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * (2 / 3 + 1) / 3)
    # a question without a prediction scores 0 but still counts
    del predictions["q2"]
    assert squad_scores(gold, predictions)["exact_match"] == 0.0


def _squad_file(tmp_path: Path) -> Path:
    context = "The quick brown fox jumps over the lazy dog near the river bank."
    data = {
        "version": "1.1",
        "data": [
            {
                "title": "t",
                "paragraphs": [
                    {
                        "context": context,
                        "qas": [
                            {
                                "id": "q1",
                                "question": "Who is lazy?",
                                "answers": [{"text": "the lazy dog", "answer_start": 31}],
                            },
                            {
                                "id": "q2",
                                "question": "Where?",
                                "answers": [
                                    {"text": "river bank", "answer_start": 53},
                                    {"text": "the river bank", "answer_start": 49},
                                ],
                            },
                        ],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "data.json"
    path.write_text(json.dumps(data))
    return path


def test_evaluator_prints_official_scores(tmp_path, capsys):
    data = _squad_file(tmp_path)
    preds = tmp_path / "preds.json"
    preds.write_text(json.dumps({"q1": "over the lazy dog", "q2": "bank"}))
    assert main([str(data), str(preds)]) == 0
    printed = json.loads(capsys.readouterr().out)
    # hand-worked: EM 0 and 0; F1 0.8 and 2/3
    assert printed["exact_match"] == 0.0
    assert printed["f1"] == pytest.approx(100 * (0.8 + 2 / 3) / 2)


@pytest.mark.parametrize(
    "predictions, message",
    [
        ('{"q1": "dog", "nope": "x"}', "not in the dataset"),
        ("[1, 2]", "question id -> answer text"),
        ("{oops", "not valid JSON"),
    ],
)
def test_evaluator_rejects_bad_predictions(tmp_path, capsys, predictions, message):
    data = _squad_file(tmp_path)
    preds = tmp_path / "preds.json"
    preds.write_text(predictions)
    assert main([str(data), str(preds)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and str(preds) in err and "\n" not in err


def test_evaluator_runs_as_module(tmp_path):
    data = _squad_file(tmp_path)
    preds = tmp_path / "preds.json"
    preds.write_text(json.dumps({"q1": "the lazy dog"}))
    done = subprocess.run(
        [sys.executable, "-m", "datasets.open_squad.evaluate", str(data), str(preds)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"exact_match": 50.0, "f1": 50.0}
    assert "1 unanswered" in done.stderr
