"""MNLI loader: TSV reading, pair features, label order and accuracy per split."""

from __future__ import annotations

import numpy as np
import pytest

from core.common.errors import UserError
from datasets.base import DatasetRequest, ModelInputs
from datasets.glue.tasks import TASKS
from datasets.open_mnli import LOADER
from datasets.open_mnli.make_sample import HEADER, OUT

DEFAULT_LABELS, SAMPLE_DIR = TASKS["MNLI"].labels, OUT

MODEL = ModelInputs(
    names=("input_ids", "input_mask"),
    dtypes=("INT32", "INT32"),
    seq_len=32,
    vocab_size=400,
    type_vocab_size=0,
    outputs=("logits",),
)


def write_split(path, gold_labels, header=HEADER):
    lines = ["\t".join(header)]
    for i, gold in enumerate(gold_labels):
        s1, s2 = f"The cat {i} sat on the warm mat near the door.", f"A cat {i} sat somewhere."
        lines.append(
            "\t".join(
                [
                    str(i),
                    str(100 + i),
                    f"{100 + i}e",
                    "fiction",
                    "(x)",
                    "(y)",
                    "(X)",
                    "(Y)",
                    s1,
                    s2,
                    gold,
                    gold,
                    gold,
                    gold,
                    gold,
                    gold,
                ][: len(header)]
            )
        )
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def folder(tmp_path):
    write_split(tmp_path / "dev_matched.tsv", ["entailment", "neutral", "contradiction", "entailment"])
    write_split(tmp_path / "dev_mismatched.tsv", ["contradiction", "contradiction"])
    return tmp_path


def request(tmp_path, data, **kw):
    return DatasetRequest(model=MODEL, data_path=data, cache_dir=tmp_path / "cache", **kw)


def one_hot(indexes, n=3):
    logits = np.zeros((len(indexes), n), dtype=np.float32)
    logits[np.arange(len(indexes)), indexes] = 5.0
    return logits


def test_features_and_accuracy_with_default_label_order(tmp_path, folder):
    loader = LOADER(request(tmp_path, folder))
    feats = loader.load()
    assert list(feats.inputs) == ["input_ids", "input_mask"] and len(feats) == 6
    assert all(a.dtype == np.int32 and a.shape == (6, 32) for a in feats.inputs.values())
    assert (feats.inputs["input_mask"].sum(axis=1) == feats.lengths).all()
    order = {label: i for i, label in enumerate(DEFAULT_LABELS)}
    assert DEFAULT_LABELS == ("contradiction", "neutral", "entailment")
    gold = ["entailment", "neutral", "contradiction", "entailment", "contradiction", "contradiction"]
    predicted = [order[g] for g in gold]
    predicted[1] = order["entailment"]  # one matched mistake
    predicted[5] = order["neutral"]  # one mismatched mistake
    result = loader.evaluate({"logits": one_hot(predicted)})
    assert result["Accuracy Matched"] == pytest.approx(75.0)
    assert result["Accuracy Mismatched"] == pytest.approx(50.0)
    assert result["Accuracy"] == pytest.approx(100 * 4 / 6)
    assert result["Examples"] == 6 and result["Non-finite Outputs"] == 0


def test_configured_label_order_and_non_finite(tmp_path, folder):
    loader = LOADER(request(tmp_path, folder, labels=("Entailment", "Neutral", "Contradiction")))
    loader.load()
    logits = one_hot([0, 1, 2, 0, 2, 2])
    logits[3, 1] = np.nan
    result = loader.evaluate({"logits": logits})
    assert result["Non-finite Outputs"] == 1
    assert result["Accuracy Matched"] == pytest.approx(75.0)  # the NaN row counts as wrong
    assert result["Accuracy Mismatched"] == 100.0


def test_data_percent_per_split(tmp_path, folder):
    loader = LOADER(request(tmp_path, folder, data_percent=50))
    assert len(loader.load()) == 2 + 1
    assert loader.provenance()["examples"] == {"dev_matched": 2, "dev_mismatched": 1}


def test_wrong_columns_and_unknown_label(tmp_path, folder):
    bad = [c for c in HEADER if c != "sentence2"]
    write_split(folder / "dev_mismatched.tsv", ["neutral"], header=bad)
    with pytest.raises(UserError, match=r"dev_mismatched.tsv: header: missing columns \['sentence2'\]"):
        LOADER(request(tmp_path, folder)).load()
    write_split(folder / "dev_mismatched.tsv", ["maybe"])
    with pytest.raises(UserError, match="line 2: gold_label"):
        LOADER(request(tmp_path, folder)).load()


def test_bundled_sample(tmp_path, monkeypatch):
    monkeypatch.delenv("PERFBENCH_OPEN_MNLI_PATH", raising=False)
    loader = LOADER(request(tmp_path, SAMPLE_DIR))
    feats = loader.load()
    assert len(feats) == 80
    assert loader.provenance()["tokenizer"]["kind"] == "fallback"
    # All-zero logits pick the first label for every example: accuracy is that label's share of the gold
    # labels, counted here straight from the TSV files.
    result = loader.evaluate({"logits": np.zeros((80, 3), dtype=np.float32)})
    shares = []
    for split in ("dev_matched.tsv", "dev_mismatched.tsv"):
        rows = (SAMPLE_DIR / split).read_text(encoding="utf-8").splitlines()[1:]
        gold = [row.split("\t")[-1] for row in rows]
        shares.append(100 * gold.count(loader.labels[0]) / len(gold))
    assert result["Accuracy Matched"] == pytest.approx(shares[0]) and result["Examples"] == 80
    assert result["Accuracy Mismatched"] == pytest.approx(shares[1])
    assert 0 < shares[0] < 100  # the sample holds more than one label, so the check can fail


def test_bundled_sample_is_reproducible(tmp_path):
    from datasets.open_mnli.make_sample import main

    main([str(tmp_path)])
    for split in ("dev_matched", "dev_mismatched"):
        assert (tmp_path / f"{split}.tsv").read_bytes() == (SAMPLE_DIR / f"{split}.tsv").read_bytes()
