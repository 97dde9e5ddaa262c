"""GLUE: each task's dev file read in GLUE's real layout (awkward rows included), the official metrics
against independent formulas, the evaluator, the loaders, the asset specs, the workloads, the published
figures, and a tiny DeBERTa end to end on two tasks offline."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.common.errors import UserError
from core.config import registry
from datasets.glue import evaluate as glue_evaluate
from datasets.glue.metrics import classify, scores
from datasets.glue.tasks import TASKS, derive_mrpc_dev, read_dev_file, task

ROOT = Path(__file__).resolve().parents[1]


def write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- readers, on files laid out as GLUE distributes them ----------------------------------------------------


def test_cola_has_no_header_and_keeps_quotes_as_written(tmp_path):
    path = write(
        tmp_path / "dev.tsv",
        ["gj04\t1\t\tThe sailors rode the breeze clear of the rocks.", 'gj04\t0\t*\tThe "weather" rained.', ""],
    )
    dev = read_dev_file(TASKS["CoLA"], path)
    assert [(e.texts, e.label, e.line) for e in dev.examples] == [
        (("The sailors rode the breeze clear of the rocks.",), "1", 1),
        (('The "weather" rained.',), "0", 2),
    ]


@pytest.mark.parametrize(
    ("name", "lines", "texts", "labels"),
    [
        (
            "SST-2",
            ["sentence\tlabel", "it 's a charming and often affecting journey . \t1"],
            [("it 's a charming and often affecting journey . ",)],
            ["1"],
        ),
        (
            "MRPC",
            ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String", '1\t1355540\t1355592\tHe said "yes" .\tHe said yes .'],
            [('He said "yes" .', "He said yes .")],
            ["1"],
        ),
        (
            "STS-B",
            [
                "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore",
                "0\tmain-captions\tMSRvid\t2012test\t0000\tnone\tnone\t"
                "A man with a hard hat is dancing.\tA man wearing a hard hat is dancing.\t5.000",
            ],
            [("A man with a hard hat is dancing.", "A man wearing a hard hat is dancing.")],
            ["5.000"],
        ),
        (
            "QNLI",
            [
                "index\tquestion\tsentence\tlabel",
                "0\tWhat came into force after the new constitution?\tThe law came.\tentailment",
            ],
            [("What came into force after the new constitution?", "The law came.")],
            ["entailment"],
        ),
        (
            "RTE",
            [
                "index\tsentence1\tsentence2\tlabel",
                "0\tDana Reeve died.\tChristopher Reeve had an accident.\tnot_entailment",
            ],
            [("Dana Reeve died.", "Christopher Reeve had an accident.")],
            ["not_entailment"],
        ),
    ],
)
def test_headed_tasks_read_their_columns(tmp_path, name, lines, texts, labels):
    dev = read_dev_file(TASKS[name], write(tmp_path / "dev.tsv", lines))
    assert [e.texts for e in dev.examples] == texts and [e.label for e in dev.examples] == labels
    assert dev.skipped_lines == []


def test_qqp_rows_missing_fields_are_skipped_and_counted(tmp_path):
    path = write(
        tmp_path / "dev.tsv",
        [
            "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate",
            "201359\t303345\t303346\tWhy are African-Americans so beautiful?\tWhy are hispanics so beautiful?\t0",
            "3\t4\t5\tA question with no pair?",
            "263843\t69383\t380476\tI want to pursue PhD in Computer Science?\tI handle a phd?\t1",
        ],
    )
    dev = read_dev_file(TASKS["QQP"], path)
    assert [e.label for e in dev.examples] == ["0", "1"] and dev.skipped_lines == [3]


def test_other_tasks_refuse_short_rows_naming_the_line(tmp_path):
    path = write(tmp_path / "dev.tsv", ["index\tsentence1\tsentence2\tlabel", "0\tonly one sentence"])
    with pytest.raises(UserError) as err:
        read_dev_file(TASKS["RTE"], path)
    assert err.value.field == "line 2" and "2 fields" in err.value.message


def test_bad_headers_labels_and_scores_are_one_line_errors(tmp_path):
    with pytest.raises(UserError) as err:
        read_dev_file(TASKS["SST-2"], write(tmp_path / "a.tsv", ["text\tlabel", "x\t1"]))
    assert err.value.field == "header" and "'sentence'" in err.value.message
    with pytest.raises(UserError) as err:
        read_dev_file(TASKS["RTE"], write(tmp_path / "b.tsv", ["index\tsentence1\tsentence2\tlabel", "0\ta\tb\tmaybe"]))
    assert err.value.field == "line 2: label"
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"
    with pytest.raises(UserError) as err:
        read_dev_file(TASKS["STS-B"], write(tmp_path / "c.tsv", [header, "0\tg\tf\ty\to\tn\tn\ta\tb\t5.5"]))
    assert "from 0 to 5" in err.value.message
    with pytest.raises(UserError, match="file not found"):
        read_dev_file(TASKS["CoLA"], tmp_path / "absent.tsv")


def test_mrpc_dev_is_derived_from_the_msr_train_file_and_glue_dev_ids(tmp_path):
    header = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"
    write(tmp_path / "msr_paraphrase_train.txt", [header, "1\t10\t11\ta\tb", "0\t20\t21\tc\td", "1\t30\t31\te\tf"])
    write(tmp_path / "mrpc_dev_ids.tsv", ["30\t31", "10\t11"])
    assert derive_mrpc_dev(tmp_path) == [header.split("\t"), ["1", "10", "11", "a", "b"], ["1", "30", "31", "e", "f"]]
    dev = read_dev_file(TASKS["MRPC"], tmp_path / "dev.tsv")  # no dev.tsv: derived, in the train file's order
    assert [e.texts for e in dev.examples] == [("a", "b"), ("e", "f")]


def test_task_names_are_read_the_way_people_write_them():
    assert task("sts-b") is TASKS["STS-B"] and task("SST2") is TASKS["SST-2"] and task("mnli") is TASKS["MNLI"]
    with pytest.raises(UserError) as err:
        task("WNLI")
    assert "CoLA" in err.value.fix


# --- metrics against independent formulas ---------------------------------------------------------------------


def hand_matthews(gold, predicted):
    tp = sum(g == 1 and p == 1 for g, p in zip(gold, predicted))
    tn = sum(g == 0 and p == 0 for g, p in zip(gold, predicted))
    fp = sum(g == 0 and p == 1 for g, p in zip(gold, predicted))
    fn = sum(g == 1 and p == 0 for g, p in zip(gold, predicted))
    return 100 * (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))


def hand_f1(gold, predicted):
    tp = sum(g == 1 and p == 1 for g, p in zip(gold, predicted))
    precision = tp / sum(p == 1 for p in predicted)
    recall = tp / sum(g == 1 for g in gold)
    return 100 * 2 * precision * recall / (precision + recall)


def ranks(values):
    """Average ranks (ties share the mean of their positions), 1-based."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def hand_pearson(x, y):
    mx, my = sum(x) / len(x), sum(y) / len(y)
    cov = sum((a - mx) * (b - my) for a, b in zip(x, y))
    return 100 * cov / math.sqrt(sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y))


def logits_for(predicted, classes=2):
    return np.eye(classes)[predicted] * 3.0 - 1.0


GOLD = [1, 1, 0, 1, 0, 0, 1, 1, 0, 1]
PRED = [1, 0, 0, 1, 1, 0, 1, 1, 0, 0]


def test_matthews_f1_and_accuracy_match_their_formulas():
    gold = np.array(GOLD)
    cola = scores(TASKS["CoLA"], logits_for(PRED), gold)
    assert cola["Matthews Correlation"] == pytest.approx(hand_matthews(GOLD, PRED))
    mrpc = scores(TASKS["MRPC"], logits_for(PRED), gold)
    assert mrpc["F1 Score"] == pytest.approx(hand_f1(GOLD, PRED))
    assert mrpc["Accuracy"] == pytest.approx(100 * sum(g == p for g, p in zip(GOLD, PRED)) / len(GOLD))
    assert list(mrpc) == ["F1 Score", "Accuracy", "Non-finite Outputs"]  # the headline metric first


def test_pearson_and_spearman_match_their_formulas_with_ties():
    gold = [0.0, 1.2, 2.5, 2.5, 3.8, 4.0, 5.0, 1.2]
    predicted = [0.3, 1.0, 2.0, 3.1, 3.1, 4.5, 4.2, 0.9]
    stsb = scores(TASKS["STS-B"], np.array(predicted)[:, None], np.array(gold))
    assert stsb["Pearson Correlation"] == pytest.approx(hand_pearson(predicted, gold))
    assert stsb["Spearman Correlation"] == pytest.approx(hand_pearson(ranks(predicted), ranks(gold)))


def test_non_finite_outputs_are_counted_and_never_scored_right():
    logits = logits_for(GOLD)  # every row right
    logits[2] = np.nan
    logits[5, 1] = np.inf
    predicted, finite = classify(logits, np.array(GOLD))
    assert list(finite) == [True, True, False, True, True, False, True, True, True, True]
    assert predicted[2] != GOLD[2] and predicted[5] != GOLD[5]
    result = scores(TASKS["SST-2"], logits, np.array(GOLD))
    assert result == {"Accuracy": 80.0, "Non-finite Outputs": 2}
    regression = scores(TASKS["STS-B"], np.array([1.0, np.nan, 3.0, 4.0]), np.array([1.0, 2.0, 3.0, 5.0]))
    assert regression["Non-finite Outputs"] == 1
    assert regression["Pearson Correlation"] == pytest.approx(hand_pearson([1.0, 3.0, 4.0], [1.0, 3.0, 5.0]))
    constant = scores(TASKS["STS-B"], np.array([2.0, 2.0, 2.0]), np.array([1.0, 2.0, 3.0]))
    assert math.isnan(constant["Pearson Correlation"])  # a constant prediction correlates with nothing
    assert math.isnan(constant["Spearman Correlation"])
    flat_gold = scores(TASKS["STS-B"], np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 2.0]))
    assert math.isnan(flat_gold["Pearson Correlation"]) and math.isnan(flat_gold["Spearman Correlation"])
    two = scores(TASKS["STS-B"], np.array([1.0, 4.0, np.nan]), np.array([0.5, 3.0, 1.0]))  # two finite points
    assert two["Pearson Correlation"] == pytest.approx(100.0) and two["Spearman Correlation"] == pytest.approx(100.0)
    one = scores(TASKS["STS-B"], np.array([1.0, np.nan]), np.array([0.5, 3.0]))
    assert math.isnan(one["Pearson Correlation"]) and one["Non-finite Outputs"] == 1


# --- the stand-alone evaluator ------------------------------------------------------------------------------------


def test_the_evaluator_takes_lines_or_json_keyed_by_position(tmp_path):
    dev = write(
        tmp_path / "dev.tsv",
        ["index\tsentence1\tsentence2\tlabel", "0\ta\tb\tentailment", "1\tc\td\tnot_entailment", "2\te\tf\tentailment"],
    )
    lines = write(tmp_path / "p.txt", ["entailment", "1", "not_entailment"])
    assert glue_evaluate.evaluate(TASKS["RTE"], dev, lines) == {"Accuracy": pytest.approx(200 / 3), "Examples": 3}
    keyed = tmp_path / "p.json"
    keyed.write_text(json.dumps({"2": "entailment", "0": "entailment", "1": "not_entailment"}))
    assert glue_evaluate.evaluate(TASKS["RTE"], dev, keyed)["Accuracy"] == 100.0
    keyed.write_text(json.dumps({"0": "entailment", "1": "entailment"}))
    with pytest.raises(UserError, match="no prediction for example 2"):
        glue_evaluate.evaluate(TASKS["RTE"], dev, keyed)


def test_the_evaluator_cli_prints_json_and_refuses_bad_input_in_one_line(tmp_path):
    sample = ROOT / "datasets/open_qqp/sample/dev.tsv"
    gold = [e.label for e in read_dev_file(TASKS["QQP"], sample).examples]
    predictions = write(tmp_path / "p.txt", gold)
    run = subprocess.run(
        [sys.executable, "-m", "datasets.glue.evaluate", "QQP", str(sample), str(predictions)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"F1 Score": 100.0, "Accuracy": 100.0, "Examples": len(gold), "Skipped Rows": 1}
    write(tmp_path / "short.txt", gold[:-1])
    run = subprocess.run(
        [sys.executable, "-m", "datasets.glue.evaluate", "QQP", str(sample), str(tmp_path / "short.txt")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert f"{len(gold) - 1} predictions for {len(gold)} examples" in run.stderr


# --- loaders, datasets, assets, workloads ---------------------------------------------------------------------------


GLUE_DATASETS = ("open_cola", "open_sst2", "open_mrpc", "open_stsb", "open_qqp", "open_qnli", "open_rte")


def test_each_task_is_a_dataset_and_the_shared_package_is_not():
    names = registry.DATASETS.names()
    assert set(GLUE_DATASETS) <= set(names) and "open_mnli" in names and "glue" not in names
    assert {TASKS[t].dataset for t in TASKS} == {*GLUE_DATASETS, "open_mnli"}


@pytest.mark.parametrize("dataset", GLUE_DATASETS)
def test_each_loader_reads_its_bundled_sample_and_scores_perfect_outputs(dataset, tmp_path):
    from datasets.base import DatasetRequest, ModelInputs

    loader_class = registry.dataset_loader_class(dataset)
    spec = loader_class.spec
    model = ModelInputs(
        names=("input_ids", "attention_mask"),
        dtypes=("LONG", "LONG"),
        seq_len=32,
        vocab_size=500,
        type_vocab_size=0,
        outputs=("logits",),
    )
    loader = loader_class(DatasetRequest(model=model, cache_dir=tmp_path, labels=spec.labels))
    features = loader.load()
    examples = read_dev_file(spec, ROOT / "datasets" / dataset / "sample" / "dev.tsv").examples
    assert len(features) == len(examples) and features.inputs["input_ids"].shape == (len(examples), 32)
    assert features.provenance["source"] == "bundled sample" and "scores mean nothing" in features.provenance["note"]
    if spec.regression:
        perfect = np.array([[float(e.label)] for e in examples])
    else:
        perfect = logits_for([spec.labels.index(e.label) for e in examples])
    result = loader.evaluate({"logits": perfect})
    assert result[spec.metrics[0]] == pytest.approx(100.0) and result["Examples"] == len(examples)
    with pytest.raises(UserError, match="expected"):
        loader.evaluate({"logits": perfect[:-1]})


def test_a_checkpoints_own_label_order_is_honoured(tmp_path):
    from datasets.base import DatasetRequest, ModelInputs

    model = ModelInputs(
        names=("input_ids", "attention_mask"),
        dtypes=("LONG", "LONG"),
        seq_len=32,
        vocab_size=500,
        type_vocab_size=0,
        outputs=("logits",),
    )
    loader_class = registry.dataset_loader_class("open_rte")
    flipped = loader_class(DatasetRequest(model=model, cache_dir=tmp_path, labels=("not_entailment", "entailment")))
    flipped.load()
    examples = read_dev_file(TASKS["RTE"], ROOT / "datasets/open_rte/sample/dev.tsv").examples
    logits = logits_for([("not_entailment", "entailment").index(e.label) for e in examples])
    assert flipped.evaluate({"logits": logits})["Accuracy"] == 100.0
    with pytest.raises(UserError, match="labels"):
        loader_class(DatasetRequest(model=model, cache_dir=tmp_path, labels=("yes", "no"))).load()


def test_the_glue_asset_specs_install_from_a_loopback_server(asset_env):
    from core.assets import AssetSpec, ensure_assets
    from tests.assets_helpers import FAST, Served, http_server, make_zip, tree

    root, _ = asset_env
    [cola] = [AssetSpec.model_validate(i) for i in json.loads((ROOT / "datasets/open_cola/assets.json").read_text())]
    mrpc = [AssetSpec.model_validate(i) for i in json.loads((ROOT / "datasets/open_mrpc/assets.json").read_text())]
    archive = make_zip([("CoLA/dev.tsv", b"gj04\t1\t\tA sentence.\n"), ("CoLA/train.tsv", b"x\n")])
    served = {"/glue/data/CoLA.zip": archive, "/msr_paraphrase_train.txt": b"Quality\n", "/mrpc_dev_ids.tsv": b"1\t2\n"}
    with http_server(Served(served)) as url:
        local = [cola.model_copy(update={"url": f"{url}/glue/data/CoLA.zip"})] + [
            spec.model_copy(update={"url": f"{url}/{spec.url.rsplit('/', 1)[1]}"}) for spec in mrpc
        ]
        statuses = ensure_assets(local, allow_network=True, root=root, net=FAST)
    assert [s.state for s in statuses] == ["installed"] * 3
    assert tree(root) == {
        "datasets/open_cola/dev.tsv": b"gj04\t1\t\tA sentence.\n",
        "datasets/open_mrpc/msr_paraphrase_train.txt": b"Quality\n",
        "datasets/open_mrpc/mrpc_dev_ids.tsv": b"1\t2\n",
    }


from tests.assets_helpers import asset_env  # noqa: E402, F401 - the fixture


@pytest.mark.parametrize("size", ["base", "large"])
def test_deberta_glue_workloads_cover_every_task_at_seq_128_with_the_right_head(size):
    heads = {"mnli": 3, "stsb": 1}
    for key, spec_name in (
        ("cola", "CoLA"),
        ("sst2", "SST-2"),
        ("mrpc", "MRPC"),
        ("stsb", "STS-B"),
        ("qqp", "QQP"),
        ("mnli", "MNLI"),
        ("qnli", "QNLI"),
        ("rte", "RTE"),
    ):
        loaded = registry.load_task(f"deberta-{size}-glue-{key}")
        model = loaded.model
        assert model.seq_len == 128 and model.dataset_name == TASKS[spec_name].dataset
        assert model.num_labels == heads.get(key, 2) and model.tokenizer == f"microsoft/deberta-{size}"
        assert len(model.labels) == (0 if key == "stsb" else model.num_labels)
        if size == "large":  # the README's figures for large cover all eight tasks
            assert model.published and set(model.published.figures) <= {
                "Accuracy",
                "Accuracy Matched",
                "Accuracy Mismatched",
                "Matthews Correlation",
                "Pearson Correlation",
            }
    assert registry.load_task("deberta-base-glue-mnli").model.published.figures == {
        "Accuracy Matched": 88.8,
        "Accuracy Mismatched": 88.5,
    }


def test_the_synthetic_head_follows_num_labels():
    from core.model.source import resolve_source

    for name, classes in (("deberta-large-glue-stsb", 1), ("deberta-base-glue-mnli", 3)):
        loaded = registry.load_task(name)
        source = resolve_source(loaded.model, model_file=loaded.model_file, seed=0)
        assert source.hf_config["num_labels"] == classes and "id2label" not in source.hf_config
    large = resolve_source(registry.load_task("deberta-large-glue-rte").model, model_file=None, seed=0)
    assert large.hf_config["hidden_size"] == 1024 and large.hf_config["num_hidden_layers"] == 24


# --- published figures --------------------------------------------------------------------------------------------


def test_published_figures_are_compared_only_when_our_accuracy_means_something():
    from core.config.schema import Published
    from core.reporting.sections import Accuracy
    from core.run.accuracy import published_section

    published = Published(source="DeBERTa README", figures={"Accuracy Matched": 91.2, "Accuracy Mismatched": 91.0})
    ours = Accuracy(metrics={"Accuracy Matched": 90.9, "Accuracy Mismatched": 91.3, "Accuracy": 91.1})
    real = published_section(published, ours, meaningful=True)
    assert real == {
        "Source": "DeBERTa README",
        "Figures": {"Accuracy Matched": 91.2, "Accuracy Mismatched": 91.0},
        "Difference": {"Accuracy Matched": pytest.approx(-0.3), "Accuracy Mismatched": pytest.approx(0.3)},
    }
    ours.published = real
    assert ours.against_published() == {
        "Accuracy Matched vs published (91.2)": pytest.approx(-0.3),
        "Accuracy Mismatched vs published (91)": pytest.approx(0.3),
    }
    synthetic = published_section(published, ours, meaningful=False)
    assert "Difference" not in synthetic and "not compared" in synthetic["Note"]
    partial = published_section(Published(source="s", figures={"F1 Score": 90.0}), ours, meaningful=True)
    assert partial["Difference"] == {} and "F1 Score" in partial["Note"]


def test_compare_and_summary_show_the_distance_to_the_published_figure():
    from core.reporting.comparison import build_comparison, comparison_tables
    from core.reporting.leaderboard import accuracy_text
    from core.reporting.report import RunReport
    from core.reporting.sections import Accuracy

    def report(matched):
        r = RunReport(model="deberta-large-glue-mnli", backend="CPU", precision="FP32", dataset="open_mnli")
        r.accuracy = Accuracy(
            metrics={"Accuracy Matched": matched},
            published={
                "Source": "s",
                "Figures": {"Accuracy Matched": 91.2},
                "Difference": {"Accuracy Matched": matched - 91.2},
            },
        )
        return RunReport.from_dict(r.to_dict())

    base, new = report(91.0), report(90.5)
    cmp = build_comparison([base, new], ["a", "b"])
    [row] = cmp.published
    assert row.metric == "Accuracy Matched vs published (91.2)" and row.values == [
        pytest.approx(-0.2),
        pytest.approx(-0.7),
    ]
    assert any(t.title.startswith("Accuracy against the published figure") for t in comparison_tables(cmp))
    assert accuracy_text(base.quality, base.published_differences) == "M 91.00 (-0.20 vs published 91.2)"


# --- end to end, offline ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "metric"), [("tiny-deberta-cola", "Matthews Correlation"), ("tiny-deberta-stsb", "Pearson Correlation")]
)
def test_a_tiny_deberta_runs_a_glue_task_end_to_end(tmp_path, name, metric):
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "core.perf_engine",
            "--task",
            name,
            "--engine",
            "pytorch",
            "--precision",
            "FP32",
            "--output-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((tmp_path / "CPU" / name / "result-fp32.json").read_text())
    accuracy = report["Accuracy"]
    assert metric in accuracy and accuracy["Examples"] == 24 and accuracy["Non-finite Outputs"] == 0
    assert accuracy["Dataset Provenance"]["task"] == ("CoLA" if "cola" in name else "STS-B")
    assert accuracy["Max Diff"] == 0  # FP32 pytorch against the FP32 reference
    assert [row["BS"] for row in report["Performance"]] == [1, 4]
    assert report["Weights"]["kind"] == "synthetic"
