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


# --- config files read at their bounds, every refusal's exact words and file ------------------------------------


def _refusal(path):
    from core.config.schema import read_config_file

    with pytest.raises(UserError) as err:
        read_config_file(path)
    assert err.value.file == str(path)  # every refusal names the file
    return err.value.message


def test_config_files_are_refused_in_exact_words_naming_the_file(tmp_path):
    from core.config.schema import read_config_file

    (tmp_path / "a.txt").write_text("model: x\n")
    assert _refusal(tmp_path / "a.txt") == "not a .json/.yaml/.yml file"
    assert _refusal(tmp_path / "absent.yaml") == "cannot read file: No such file or directory"
    (tmp_path / "latin.yaml").write_bytes("model: caf\xe9\n".encode("latin-1"))
    assert _refusal(tmp_path / "latin.yaml") == "file is not UTF-8 text"
    (tmp_path / "bad.json").write_text('{"model": }')
    assert _refusal(tmp_path / "bad.json") == "invalid JSON at line 1 column 11: Expecting value"
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    assert _refusal(tmp_path / "deep.json") == "nested too deeply to be a config file"
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    assert _refusal(tmp_path / "list.yaml") == "expected a mapping of fields at the top level, got list"
    (tmp_path / "null.json").write_text("null")
    assert _refusal(tmp_path / "null.json") == "expected a mapping of fields at the top level, got NoneType"
    (tmp_path / "bad.yaml").write_text("model: [x\n")
    assert _refusal(tmp_path / "bad.yaml").startswith("invalid YAML at line 2 column 1: ")
    (tmp_path / "utf8.yml").write_text("model: café\n", encoding="utf-8")
    assert read_config_file(tmp_path / "utf8.yml") == {"model": "café"}  # read as UTF-8 whatever the locale


def test_config_file_size_and_yaml_aliases_are_bounded_at_the_bound(tmp_path):
    from core.config.schema import MAX_CONFIG_BYTES, MAX_YAML_ALIASES, read_config_file

    at = tmp_path / "at.json"
    at.write_text('{"a": "' + "x" * (MAX_CONFIG_BYTES - 9) + '"}')
    assert at.stat().st_size == MAX_CONFIG_BYTES and read_config_file(at)["a"].startswith("x")
    over = tmp_path / "over.json"
    over.write_text('{"a": "' + "x" * (MAX_CONFIG_BYTES - 8) + '"}')
    assert _refusal(over) == f"file is larger than {MAX_CONFIG_BYTES} bytes"

    def aliases(count):
        return "base: &b 1\n" + "".join(f"k{i}: *b\n" for i in range(count))

    (tmp_path / "ok.yaml").write_text(aliases(MAX_YAML_ALIASES))
    assert len(read_config_file(tmp_path / "ok.yaml")) == MAX_YAML_ALIASES + 1
    assert len(read_config_file(tmp_path / "ok.yaml")) == MAX_YAML_ALIASES + 1  # the count is per file read
    (tmp_path / "bomb.yaml").write_text(aliases(MAX_YAML_ALIASES + 1))
    assert _refusal(tmp_path / "bomb.yaml") == (
        f"more than {MAX_YAML_ALIASES} YAML aliases; refusing a possible expansion bomb"
    )


def test_scenario_names_in_loadgens_spelling_without_repeats():
    from core.config.schema import scenario_names

    assert scenario_names("offline") == ["Offline"]
    assert scenario_names([" server ", "Offline", "SERVER"]) == ["Server", "Offline"]
    with pytest.raises(ValueError) as err:
        scenario_names("Ofline")
    assert str(err.value) == (
        "unknown scenario 'Ofline'; did you mean 'Offline'? (known: SingleStream, MultiStream, Offline, Server)"
    )
    with pytest.raises(ValueError) as err:
        scenario_names(["x" * 60])
    assert str(err.value) == f"unknown scenario {'x' * 40!r} (known: SingleStream, MultiStream, Offline, Server)"
    for empty in ([], None, 3):
        with pytest.raises(ValueError) as err:
            scenario_names(empty)
        assert (
            str(err.value) == "expected a scenario name or a list of them (SingleStream, MultiStream, Offline, Server)"
        )
    with pytest.raises(ValueError, match="unknown scenario '7'"):
        scenario_names([7])


def _validation(cls, data):
    from core.config.schema import validate

    with pytest.raises(UserError) as err:
        validate(cls, data, "w.yaml")
    assert err.value.file == "w.yaml"
    return err.value.message, err.value.field, err.value.fix


def test_validation_errors_name_the_field_and_what_it_expects():
    assert _validation(Workload, {"model": "m", "iteratons": 5}) == (
        "unknown field",
        "iteratons",
        "did you mean 'iterations'?",
    )
    message, field, fix = _validation(Workload, {"model": "m", "zzzzqq": 5})
    assert (message, field) == ("unknown field", "zzzzqq")
    assert fix == "known fields: " + ", ".join(Workload.model_fields)
    assert _validation(Workload, {"model": "m", "iterations": "many"}) == (
        "Input should be a valid integer, unable to parse string as an integer",
        "iterations",
        "expected int: " + Workload.model_fields["iterations"].description,
    )
    # A validator's own words, without pydantic's "Value error, " prefix; the type as written.
    assert _validation(Workload, {"model": "m", "batch_sizes": [0]})[:2] == (
        "batch size 0 must be at least 1",
        "batch_sizes",
    )
    assert _validation(Workload, {"model": "m", "batch_sizes": [0]})[2] == (
        "expected list[int]: " + Workload.model_fields["batch_sizes"].description
    )
    assert _validation(Workload, {"model": "m", "precision": "FP8"})[2].startswith(
        "expected Literal['FP32', 'TF32', 'FP16', 'BF16', 'INT8', 'auto'] | None: compile precision"
    )
    # A rule across fields names no single field.
    assert _validation(Workload, {"model": "m", "max_seconds": 1, "min_seconds": 2}) == (
        "max_seconds (1.0) is below min_seconds (2.0)",
        None,
        None,
    )


def test_yaml_errors_say_where(tmp_path):
    (tmp_path / "a.yaml").write_text("a: b: c\n")
    assert _refusal(tmp_path / "a.yaml") == "invalid YAML at line 1 column 5: mapping values are not allowed here"
    (tmp_path / "b.yaml").write_text("a: 'x\n")
    assert _refusal(tmp_path / "b.yaml") == "invalid YAML at line 2 column 1: found unexpected end of stream"
    (tmp_path / "deep.yaml").write_text("a: " + "[" * 5000 + "]" * 5000)
    assert _refusal(tmp_path / "deep.yaml") == "nested too deeply to be a config file"
    (tmp_path / "c.yaml").write_text("base: &b {x: 1}\nother: *b\n")
    from core.config.schema import read_config_file

    assert read_config_file(tmp_path / "c.yaml") == {"base": {"x": 1}, "other": {"x": 1}}  # aliases resolve
