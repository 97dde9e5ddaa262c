"""Workload and model-zoo files: ByteMLPerf's formats load unchanged; bad files give one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.common.errors import UserError
from core.config.schema import ModelEntry, Workload, load_model_entry, load_workload, read_config_file

# Exactly ByteMLPerf's field sets (general_perf/workloads/bert-torch-fp32.json, model_zoo/albert-torch-fp32.json).
BYTEMLPERF_WORKLOAD = {
    "model": "bert-torch-fp32",
    "test_perf": True,
    "test_accuracy": True,
    "test_numeric": True,
    "clients": 3,
    "iterations": 100,
    "batch_sizes": [1, 4, 8, 16, 24, 64, 128, 256, 512, 1024],
    "data_percent": 100,
    "compile_only": False,
}
BYTEMLPERF_MODEL = {
    "model": "albert-torch-fp32",
    "model_path": "general_perf/model_zoo/popular/open_albert/albert-base-squad.pt",
    "framework": "Pytorch",
    "framework_version": "1.9.1",
    "model_format": "pt",
    "model_precision": "FP32",
    "inputs": "input_ids.1,attention_mask.1,token_type_ids.1",
    "outputs": "start_logits,end_logits",
    "input_shape": {"input_ids.1": [1, 384], "attention_mask.1": [1, 384], "token_type_ids.1": [1, 384]},
    "input_type": "LONG,LONG,LONG",
    "dataset_name": "open_squad",
    "max_batch_size": 64,
    "is_quantized": False,
}


def dump(path: Path, data) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_bytemlperf_workload_loads_unchanged(tmp_path):
    workload = load_workload(dump(tmp_path / "bert-torch-fp32.json", BYTEMLPERF_WORKLOAD))
    assert workload.model == "bert-torch-fp32"
    assert workload.iterations == 100 and workload.clients == 3
    assert workload.batch_sizes == [1, 4, 8, 16, 24, 64, 128, 256, 512, 1024]
    assert workload.test_accuracy and workload.test_numeric and not workload.compile_only


def test_bytemlperf_model_entry_loads_unchanged(tmp_path):
    entry = load_model_entry(dump(tmp_path / "albert-torch-fp32.json", BYTEMLPERF_MODEL))
    assert entry.input_names == ["input_ids.1", "attention_mask.1", "token_type_ids.1"]
    assert entry.output_names == ["start_logits", "end_logits"]
    assert entry.input_types == ["LONG", "LONG", "LONG"]
    assert entry.seq_len == 384 and entry.max_batch_size == 64


def test_yaml_and_json_twins_resolve_identically(tmp_path):
    yaml_text = "\n".join(
        [
            "model: bert-torch-fp32",
            "test_perf: true",
            "test_accuracy: true",
            "test_numeric: true",
            "clients: 3",
            "iterations: 100",
            "batch_sizes: [1, 4, 8, 16, 24, 64, 128, 256, 512, 1024]",
            "data_percent: 100",
            "compile_only: false",
        ]
    )
    (tmp_path / "w.yaml").write_text(yaml_text, encoding="utf-8")
    from_yaml = load_workload(tmp_path / "w.yaml")
    from_json = load_workload(dump(tmp_path / "w.json", BYTEMLPERF_WORKLOAD))
    assert from_yaml == from_json
    assert from_yaml.model_dump() == from_json.model_dump()


def test_unknown_key_suggests_the_close_field(tmp_path):
    bad = dict(BYTEMLPERF_WORKLOAD, batch_size=[1])
    with pytest.raises(UserError) as err:
        load_workload(dump(tmp_path / "w.json", bad))
    text = str(err.value)
    assert "w.json" in text and "batch_size" in text and "did you mean 'batch_sizes'" in text


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"batch_sizes": [0, 4]}, "batch_sizes", "at least 1"),
        ({"data_percent": 150}, "data_percent", "less than or equal to 100"),
        ({"data_percent": 0}, "data_percent", "greater than 0"),
        ({"iterations": "many"}, "iterations", "integer"),
        ({"max_seconds": -1}, "max_seconds", "greater than 0"),
        ({"min_seconds": 30, "max_seconds": 10}, "", "below min_seconds"),
        ({"clients": 0}, "clients", "greater than or equal to 1"),
    ],
)
def test_invalid_values_name_file_field_and_problem(tmp_path, change, field, words):
    with pytest.raises(UserError) as err:
        load_workload(dump(tmp_path / "w.json", dict(BYTEMLPERF_WORKLOAD, **change)))
    text = str(err.value)
    assert text.startswith(str(tmp_path / "w.json"))
    assert field in text and words in text
    assert "\n" not in text


def test_model_entry_inconsistent_inputs(tmp_path):
    bad = dict(BYTEMLPERF_MODEL, input_type="LONG,LONG")
    with pytest.raises(UserError, match="3 names but input_type lists 2"):
        load_model_entry(dump(tmp_path / "m.json", bad))
    bad = dict(BYTEMLPERF_MODEL, input_type="LONG,LONG,WORDS")
    with pytest.raises(UserError, match="unknown input_type WORDS"):
        load_model_entry(dump(tmp_path / "m.json", bad))


def test_malformed_json_gives_line_and_column(tmp_path):
    (tmp_path / "w.json").write_text('{"model": "x",\n  "iterations": }', encoding="utf-8")
    with pytest.raises(UserError, match=r"invalid JSON at line 2 column"):
        read_config_file(tmp_path / "w.json")


def test_malformed_yaml_and_non_mapping(tmp_path):
    (tmp_path / "w.yaml").write_text("model: [unclosed\n", encoding="utf-8")
    with pytest.raises(UserError, match="invalid YAML"):
        read_config_file(tmp_path / "w.yaml")
    (tmp_path / "l.yaml").write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(UserError, match="expected a mapping"):
        read_config_file(tmp_path / "l.yaml")


def test_yaml_alias_bomb_is_refused(tmp_path):
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    prev = "a"
    for i in range(12):
        name = f"l{i}"
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
        prev = name
    (tmp_path / "bomb.yaml").write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(UserError, match="expansion bomb"):
        read_config_file(tmp_path / "bomb.yaml")


def test_a_few_yaml_anchors_are_fine(tmp_path):
    (tmp_path / "w.yaml").write_text(
        "model: m\nbatch_sizes: &b [1, 2]\nengine_options: {sizes: *b}\n", encoding="utf-8"
    )
    assert read_config_file(tmp_path / "w.yaml")["engine_options"] == {"sizes": [1, 2]}


def test_defaults_bound_measuring_time():
    workload = Workload(model="m")
    assert workload.max_seconds >= workload.min_seconds > 0
    assert workload.warmup_iterations >= 1
    entry = ModelEntry.model_validate(BYTEMLPERF_MODEL)
    assert entry.architecture is None and entry.assets == []
