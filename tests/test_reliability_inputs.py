"""The catalogue of bad inputs: each gives one line naming the file, the field and the fix, and exit code 2.

Already covered elsewhere (not repeated here): malformed JSON/YAML, wrong types, batch size 0, data_percent
out of range, unknown keys with did-you-mean, the alias bomb (tests/test_config.py); unknown task and
hardware type, task names with '/' or '..', batch size above max_batch_size, --debug tracebacks
(tests/test_registry_cli.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core import perf_engine
from core.common.errors import EXIT_USAGE, UserError
from core.config import registry
from core.config.schema import load_workload
from core.model.source import resolve_source

TINY_ENTRY = json.loads((registry.MODEL_ZOO_DIR / "tiny-bert-squad.json").read_text(encoding="utf-8"))


@pytest.fixture
def zoo(private_zoo):
    """A private model zoo of tiny-bert variants; returns a function adding an entry + workload."""

    def add(name: str, entry: dict | None = None, **workload_fields) -> Path:
        data = {**TINY_ENTRY, "model": name, **(entry or {})}
        return private_zoo(
            {k: v for k, v in data.items() if v is not None},
            {
                "iterations": 2,
                "warmup_iterations": 1,
                "min_seconds": 0,
                "max_seconds": 1,
                "batch_sizes": [1],
                "test_accuracy": False,
                "test_numeric": False,
                **workload_fields,
            },
        )

    return add


def cli(capsys, tmp_path: Path, *argv: str) -> tuple[int, str]:
    """Run the CLI in-process; returns (exit code, stderr)."""
    code = perf_engine.main([*argv, "--output-dir", str(tmp_path / "reports")])
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, *words: str) -> None:
    assert code == EXIT_USAGE, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for word in words:
        assert word in lines[0], lines[0]


# --- values the schema must refuse ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ('"warmup_seconds": -1', "warmup_seconds", "greater than 0"),
        ('"min_seconds": -0.5', "min_seconds", "greater than or equal to 0"),
        ('"max_seconds": Infinity, "min_seconds": Infinity', "min_seconds", "finite"),  # would measure forever
        ('"data_percent": NaN', "data_percent", "finite"),
        ('"seed": 123456789012345678901234567890', "seed", "less than or equal to 4294967295"),
        ('"batch_sizes": [-4]', "batch_sizes", "at least 1"),
    ],
)
def test_out_of_range_values(tmp_path, text, field, words):
    path = tmp_path / "w.json"
    path.write_text('{"model": "tiny-bert-squad", ' + text + "}", encoding="utf-8")
    with pytest.raises(UserError) as err:
        load_workload(path)
    assert str(err.value).startswith(f"{path}: {field}: ") and words in str(err.value)


def test_keys_with_markup_or_control_characters_print_as_one_safe_line(capsys, tmp_path):
    """An untrusted file's text is printed escaped: no rich markup crash, no terminal control codes."""
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"model": "tiny-bert-squad", "[/x]": 1}), encoding="utf-8")
    code, err = cli(capsys, tmp_path, "--task", str(path))
    assert_one_line_error(code, err, "[/x]: unknown field")
    path.write_text(json.dumps({"model": "tiny-bert-squad", "a\x1b[2J\rb": 1}), encoding="utf-8")
    code, err = cli(capsys, tmp_path, "--task", str(path))
    assert_one_line_error(code, err, r"a\x1b[2J\rb: unknown field")
    assert "\x1b" not in err


@pytest.mark.parametrize("kind", ["directory.json", "notes.txt"])
def test_task_that_is_neither_a_name_nor_a_config_file(capsys, tmp_path, monkeypatch, kind):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "directory.json").mkdir()
    (tmp_path / "notes.txt").write_text("model: tiny-bert-squad\n", encoding="utf-8")
    code, err = cli(capsys, tmp_path, "--task", kind)
    expected = "workload file not found" if kind.endswith(".json") else "unknown task 'notes.txt'"
    assert_one_line_error(code, err, expected)


# --- model files ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "words"),
    [(b"\x08\x07garbage\xff" * 50, "not a readable ONNX model"), (b"", "the ONNX file holds no graph")],
    ids=["garbage", "empty"],
)
def test_corrupted_onnx_model_file(capsys, tmp_path, zoo, content, words):
    model = tmp_path / "model.onnx"
    model.write_bytes(content)
    task = zoo("bad-onnx", {"model_path": str(model), "model_format": "onnx"})
    code, err = cli(capsys, tmp_path, "--task", str(task), "--compile_only")
    assert_one_line_error(code, err, f"{model}: model_path: {words}", "re-download")


@pytest.mark.parametrize("engine", ["onnxruntime", "pytorch"])
def test_corrupted_torchscript_file(capsys, tmp_path, zoo, engine):
    model = tmp_path / "model.pt"
    model.write_bytes(b"PK\x03\x04" + b"not a zip archive" * 20)
    task = zoo("bad-pt", {"model_path": str(model)}, engine=engine)
    code, err = cli(capsys, tmp_path, "--task", str(task), "--compile_only")
    assert_one_line_error(code, err, f"{model}: model_path: not a loadable TorchScript file", "torch.jit.save")


def test_missing_model_file_without_fallback_is_an_error(capsys, tmp_path, zoo):
    task = zoo("no-file", {"model_path": str(tmp_path / "absent.pt"), "architecture": None})
    code, err = cli(capsys, tmp_path, "--task", str(task), "--compile_only")
    # The entry declares no download, so the fix names the file to put in place rather than core.prepare.
    assert_one_line_error(
        code, err, "no-file.json: model_path: no file at", f"put the model file at {tmp_path / 'absent.pt'}"
    )
    assert "core.prepare" not in err


def test_missing_model_file_with_an_architecture_falls_back_to_synthetic_loudly(tmp_path, zoo):
    zoo("fallback", {"model_path": str(tmp_path / "absent.pt")})
    entry = registry.load_task(str(tmp_path / "fallback.json"))
    source = resolve_source(entry.model, model_file=entry.model_file)
    assert source.synthetic and "SYNTHETIC WEIGHTS" in source.note


# --- datasets -------------------------------------------------------------------------------------


def test_missing_dataset_path_on_the_command_line(capsys, tmp_path):
    missing = tmp_path / "nowhere" / "dev-v1.1.json"
    code, err = cli(capsys, tmp_path, "--task", "tiny-bert-squad", "--data-path", str(missing))
    assert_one_line_error(code, err, f"{missing}: data_path: data file not found", "dev-v1.1.json")


def test_missing_dataset_path_in_the_workload(capsys, tmp_path, zoo):
    task = zoo("tiny-copy", test_accuracy=True, data_path=str(tmp_path / "gone"))
    code, err = cli(capsys, tmp_path, "--task", str(task))
    assert_one_line_error(code, err, "gone: data_path: data file not found")
    assert not (tmp_path / "home" / "compiled").exists()  # refused before compiling anything


def test_unknown_dataset_lists_the_known_ones(capsys, tmp_path, zoo):
    task = zoo("odd-data", {"dataset_name": "open_squad2"}, test_accuracy=True)
    code, err = cli(capsys, tmp_path, "--task", str(task))
    assert_one_line_error(
        code, err, "odd-data.json: dataset_name: unknown dataset 'open_squad2'", "did you mean open_squad", "open_mnli"
    )
