"""SQuAD loader: features from the HF recipe, span decoding, per-question scores, subsets, caching, errors.

A fake runtime turns character spans into logits through the features' offsets, so the tests exercise
tokenization, overflow windows, decoding and the metric together, with the fallback tokenizer.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from core.common.errors import UserError
from datasets.base import DatasetRequest, ModelInputs
from datasets.open_squad import LOADER, features
from datasets.open_squad.loader import SAMPLE, SquadLoader
from datasets.tokenization import resolve_tokenizer

SEQ_LEN = 64
WORDS = (
    "harbor",
    "lantern",
    "copper",
    "meadow",
    "violet",
    "granite",
    "willow",
    "ember",
    "falcon",
    "orchid",
    "river",
    "saddle",
    "thistle",
    "pebble",
    "cobalt",
    "juniper",
)


def model(**overrides) -> ModelInputs:
    fields = dict(
        names=("input_ids.1", "attention_mask.1", "token_type_ids.1"),
        dtypes=("LONG",) * 3,
        seq_len=SEQ_LEN,
        vocab_size=500,
        type_vocab_size=2,
        pad_token_id=0,
        outputs=("start_logits", "end_logits"),
    )
    return ModelInputs(**{**fields, **overrides})


def long_context(n_words: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n_words)) + "."


def write_squad(path: Path, items: list[tuple[str, list[tuple[str, str, str]]]]) -> Path:
    """items: (context, [(qid, question, answer)]). Each answer becomes a sentence "Note qid: answer.",
    put first in the context for odd-numbered qids and last otherwise, so answers sit in first and
    last windows and their starts are known exactly."""
    paragraphs = []
    for context, qas in items:
        out = []
        for qid, question, answer in qas:
            note = f"Note {qid}: {answer}."
            context = f"{note} {context}" if qid.endswith(("1", "3")) else f"{context} {note}"
            start = context.index(note) + len(note) - len(answer) - 1
            out.append({"id": qid, "question": question, "answers": [{"text": answer, "answer_start": start}]})
        paragraphs.append({"context": context, "qas": out})
    path.write_text(json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": paragraphs}]}))
    return path


def request(tmp_path: Path, data: Path, **kw) -> DatasetRequest:
    return DatasetRequest(model=kw.pop("model", model()), data_path=data, cache_dir=tmp_path / "cache", **kw)


def span_logits(loader: SquadLoader, spans: dict[str, tuple[int, int]], width: int = SEQ_LEN):
    """Logits peaked (10) at the tokens covering each question's character span [start, end)."""
    enc = loader.encoded
    start = np.zeros((len(enc.lengths), width), dtype=np.float32)
    end = np.zeros_like(start)
    qids = [q.qid for q in loader.questions]
    for i, q in enumerate(enc.example_index):
        char_start, char_end = spans[qids[q]]
        offs = enc.offsets[i]
        inside = np.flatnonzero(
            (offs[:, 0] >= char_start) & (offs[:, 1] <= char_end) & (offs[:, 0] >= 0) & (offs[:, 1] > offs[:, 0])
        )
        if inside.size and offs[inside[0], 0] == char_start and offs[inside[-1], 1] == char_end:
            start[i, inside[0]] = end[i, inside[-1]] = 10.0
    return {"start_logits": start, "end_logits": end}


def gold_spans(loader: SquadLoader, data: Path) -> dict[str, tuple[int, int]]:
    doc = json.loads(data.read_text())
    return {
        qa["id"]: (qa["answers"][0]["answer_start"], qa["answers"][0]["answer_start"] + len(qa["answers"][0]["text"]))
        for p in doc["data"][0]["paragraphs"]
        for qa in p["qas"]
    }


@pytest.fixture
def multi(tmp_path):
    """Two long contexts (several 64-token features each) and one short one."""
    return write_squad(
        tmp_path / "multi.json",
        [
            (
                long_context(120, 1),
                [
                    ("a1", "What is the first note?", "golden lighthouse keeper"),
                    ("a2", "What is the second note?", "silver fox"),
                ],
            ),
            (long_context(90, 2), [("b1", "Which note?", "crimson kite")]),
            ("A short context.", [("c1", "Short?", "tiny answer")]),
        ],
    )


def test_peaked_logits_score_100_over_several_features(tmp_path, multi):
    loader = LOADER(request(tmp_path, multi))
    feats = loader.load()
    per_question = np.bincount(loader.encoded.example_index)
    assert per_question[:3].min() >= 3 and per_question[3] == 1  # long contexts need several windows
    assert feats.inputs["input_ids.1"].shape == (len(feats), SEQ_LEN)
    assert all(a.dtype == np.int64 for a in feats.inputs.values())
    assert (feats.inputs["attention_mask.1"].sum(axis=1) == feats.lengths).all()
    assert set(np.unique(feats.inputs["token_type_ids.1"])) == {0, 1}  # question 0, context 1
    result = loader.evaluate(span_logits(loader, gold_spans(loader, multi)))
    assert result["Exact Match"] == 100.0 and result["F1 Score"] == 100.0
    assert result["Questions"] == 4 and result["Features"] == len(feats)
    assert result["Non-finite Outputs"] == 0


def test_wrong_spans_get_hand_computed_scores(tmp_path):
    context = "The quick brown fox jumps over the lazy dog near the river bank."
    data = tmp_path / "d.json"
    data.write_text(
        json.dumps(
            {
                "data": [
                    {
                        "paragraphs": [
                            {
                                "context": context,
                                "qas": [
                                    {
                                        "id": "q1",
                                        "question": "Who?",
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
                        ]
                    }
                ]
            }
        )
    )
    loader = LOADER(request(tmp_path, data))
    loader.load()
    # predict "over the lazy dog" (26..43) and "bank" (59..63)
    predictions, _ = loader.predict(span_logits(loader, {"q1": (26, 43), "q2": (59, 63)}))
    assert predictions == {"q1": "over the lazy dog", "q2": "bank"}
    outputs = span_logits(loader, {"q1": (26, 43), "q2": (59, 63)})
    for logits in outputs.values():
        logits[:, :2] = 50.0  # [CLS] and the question's first token are never answers
    result = loader.evaluate(outputs)
    # q1: EM 0, F1 0.8 ("over lazy dog" vs "lazy dog"); q2: EM 0, F1 2/3 ("bank" vs "river bank")
    assert result["Exact Match"] == 0.0
    assert result["F1 Score"] == pytest.approx(100 * (0.8 + 2 / 3) / 2)


def test_scores_average_over_questions_not_features(tmp_path):
    data = write_squad(
        tmp_path / "d.json",
        [
            (long_context(150, 3), [("long", "Long?", "amber owl")]),
            ("Short one.", [("short", "Short?", "green door")]),
        ],
    )
    loader = LOADER(request(tmp_path, data))
    loader.load()
    spans = gold_spans(loader, data)
    spans["short"] = (0, 5)  # "Short": wrong
    result = loader.evaluate(span_logits(loader, spans))
    assert result["Features"] >= 4 and result["Questions"] == 2
    assert result["Exact Match"] == 50.0  # 1 of 2 questions; per feature it would be 1/Features


def test_data_percent_keeps_first_questions(tmp_path):
    data = write_squad(tmp_path / "d.json", [(long_context(30, k), [(f"q{k}", "Q?", f"answer {k}")]) for k in range(5)])
    loader = LOADER(request(tmp_path, data, data_percent=50))
    loader.load()
    assert [q.qid for q in loader.questions] == ["q0", "q1", "q2"]  # ceil(2.5)
    assert set(loader.encoded.example_index) == {0, 1, 2}
    result = loader.evaluate(span_logits(loader, gold_spans(loader, data)))
    assert result["Questions"] == 3 and result["Exact Match"] == 100.0
    assert loader.provenance()["questions_in_file"] == 5
    with pytest.raises(UserError, match="data_percent"):
        LOADER(request(tmp_path, data, data_percent=0)).load()


def test_feature_cache_hit_and_invalidation(tmp_path, multi, monkeypatch):
    first = LOADER(request(tmp_path, multi))
    expected = first.load()
    assert first.provenance()["feature_cache"]["hit"] is False

    calls = []
    real_encode = features.encode
    monkeypatch.setattr(features, "encode", lambda *a, **k: calls.append(1) or real_encode(*a, **k))
    second = LOADER(request(tmp_path, multi))
    again = second.load()
    assert calls == [] and second.provenance()["feature_cache"]["hit"] is True
    for name, array in expected.inputs.items():
        np.testing.assert_array_equal(again.inputs[name], array)
        assert again.inputs[name].dtype == array.dtype

    doc = json.loads(multi.read_text())
    short = doc["data"][0]["paragraphs"][2]
    short["context"] = short["context"].replace("A short", "A new")
    multi.write_text(json.dumps(doc))
    third = LOADER(request(tmp_path, multi))
    third.load()
    assert calls == [1] and third.provenance()["feature_cache"]["hit"] is False


def test_non_finite_outputs_counted_and_predict_empty(tmp_path, multi):
    loader = LOADER(request(tmp_path, multi))
    feats = loader.load()
    outputs = span_logits(loader, gold_spans(loader, multi))
    short = int(np.flatnonzero(loader.encoded.example_index == 3)[0])
    outputs["start_logits"][short, 2] = np.nan
    # beyond a feature's length the runner may leave anything: not counted
    padded = int(np.flatnonzero(feats.lengths < SEQ_LEN)[0])
    if padded != short:
        outputs["end_logits"][padded, SEQ_LEN - 1] = np.inf
    result = loader.evaluate(outputs)
    assert result["Non-finite Outputs"] == 1
    assert result["Empty Predictions"] == 1
    assert result["Exact Match"] == pytest.approx(75.0)


def test_trimmed_outputs_and_two_input_models(tmp_path, multi):
    loader = LOADER(
        request(tmp_path, multi, model=model(names=("ids", "mask"), dtypes=("INT32", "INT32"), type_vocab_size=0))
    )
    feats = loader.load()
    assert list(feats.inputs) == ["ids", "mask"] and feats.inputs["ids"].dtype == np.int32
    width = int(feats.lengths.max())
    outputs = span_logits(loader, gold_spans(loader, multi), width=width)
    assert loader.evaluate(outputs)["Exact Match"] == 100.0
    with pytest.raises(UserError, match="outputs.start_logits"):
        loader.evaluate({k: v[:, : width - 1] for k, v in outputs.items()})


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ('{"version": "1.1"}', '"data"'),
        ('{"data": [{"paragraphs": [{"qas": []}]}]}', "data[0].paragraphs[0].context"),
        (
            '{"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "x", "question": "q", "answers": []}]}]}]}',
            "no gold answers",
        ),
        ('{"data": []}', "no questions"),
    ],
)
def test_malformed_files_raise_user_error(tmp_path, content, message):
    data = tmp_path / "bad.json"
    data.write_text(content)
    with pytest.raises(UserError, match="bad.json") as err:
        LOADER(request(tmp_path, data)).load()
    assert message in str(err.value)


def test_path_resolution(tmp_path, multi, monkeypatch):
    monkeypatch.setenv("PERFBENCH_OPEN_SQUAD_PATH", str(multi))
    assert LOADER(request(tmp_path, None)).path == multi
    with pytest.raises(UserError, match="missing.json"):
        LOADER(request(tmp_path, tmp_path / "missing.json"))
    monkeypatch.delenv("PERFBENCH_OPEN_SQUAD_PATH")
    loader = LOADER(request(tmp_path, None))
    if loader.source == "bundled sample":  # unless a real dev-v1.1.json was put in the package folder
        assert loader.path == SAMPLE


def test_bundled_sample_is_realistic():
    doc = json.loads(SAMPLE.read_text())
    paragraphs = [p for article in doc["data"] for p in article["paragraphs"]]
    words = sorted(len(p["context"].split()) for p in paragraphs)
    questions = [qa for p in paragraphs for qa in p["qas"]]
    assert 35 <= len(questions) <= 45 and 10 <= len(paragraphs) <= 14
    assert sum(100 <= w <= 250 for w in words) >= len(words) // 2 and words[-1] > 400
    for p in paragraphs:
        for qa in p["qas"]:
            for ans in qa["answers"]:
                assert p["context"][ans["answer_start"] : ans["answer_start"] + len(ans["text"])] == ans["text"]
    assert math.isclose(len({qa["id"] for qa in questions}), len(questions))


def test_bundled_sample_is_reproducible(tmp_path):
    from datasets.open_squad.make_sample import main

    main([str(tmp_path / "sample.json")])
    assert (tmp_path / "sample.json").read_bytes() == SAMPLE.read_bytes()


# --- the tokenizer of ByteMLPerf's own entries, which name none ----------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("albert-torch-fp32", "madlag/albert-base-v2-squad"),
        ("roberta-torch-fp32", "csarron/roberta-base-squad-v1"),
        ("deberta-torch-fp32", "Palak/microsoft_deberta-base_squad"),
        ("bert-torch-fp32", None),  # open_squad's vocab.txt, absent here
        ("gpt2-torch-fp32", None),
    ],
)
def test_tokenizer_from_the_model_name(name, expected):
    assert SquadLoader.default_tokenizer(name) == expected


def test_bytemlperf_entries_without_a_tokenizer_field_get_the_one_their_name_implies(tmp_path, monkeypatch):
    """albert -> its hub id (resolved offline by the tokenization module); bert -> the dataset's vocab.txt,
    which then tokenizes (kind 'local'), not the fallback."""
    from core.config import registry
    from core.run.context import make_loader
    from datasets.open_squad import loader as squad_loader

    albert = registry.load_task("albert-torch-fp32")
    bare = albert.model.model_copy(update={"tokenizer": None})
    made = make_loader(registry.Task(albert.workload, albert.workload_file, bare, albert.model_file), model())
    assert made.request.tokenizer == "madlag/albert-base-v2-squad"

    tok, _ = resolve_tokenizer(None, vocab_size=300, sample_texts=[long_context(200, 0)], cache_dir=tmp_path)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(sorted(tok.get_vocab(), key=tok.get_vocab().get)) + "\n", encoding="utf-8")
    monkeypatch.setattr(squad_loader, "VOCAB", vocab)
    bert = registry.load_task("bert-torch-fp32")
    entry = bert.model.model_copy(update={"tokenizer": None})
    workload = bert.workload.model_copy(update={"data_path": str(SAMPLE)})
    made = make_loader(registry.Task(workload, bert.workload_file, entry, bert.model_file), model())
    assert made.request.tokenizer == str(vocab)
    assert made.load().provenance["tokenizer"]["kind"] == "local"
