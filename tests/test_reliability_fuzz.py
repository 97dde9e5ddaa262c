"""Property tests over the config loaders: any input gives a valid config or one clean UserError line."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.common.errors import UserError
from core.config.schema import ModelEntry, Workload, read_config_file, validate

# Bounded and reproducible: a few seconds, the same examples on every machine, nothing written to the repo.
FUZZ = settings(
    max_examples=200, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)

SCALARS = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
# Mostly real field names, so the examples reach the field and model validators, plus random keys.
KEYS = st.sampled_from(sorted(set(Workload.model_fields) | set(ModelEntry.model_fields))) | st.text(max_size=12)
# A plausible model entry to mutate: most random dicts fail at "field required" before the interesting checks.
ENTRY = {
    "model": "m",
    "inputs": "a,b",
    "outputs": "o",
    "input_type": "LONG,LONG",
    "input_shape": {"a": [1, 8], "b": [1, 8]},
}


@pytest.fixture(scope="module")
def scratch():
    with tempfile.TemporaryDirectory(prefix="fuzz-") as folder:
        yield Path(folder)


def outcome(model_cls, load):
    """The model, or the UserError text; anything else escapes and fails the test."""
    try:
        return model_cls, load()
    except UserError as err:
        text = str(err)
        assert len(text.splitlines()) == 1 and text.strip(), repr(text)
        return None, text


@FUZZ
@given(data=st.dictionaries(KEYS, VALUES, max_size=8), base=st.booleans(), cls=st.sampled_from([Workload, ModelEntry]))
def test_any_mapping_validates_or_fails_cleanly(data, base, cls):
    if base:
        data = {**(ENTRY if cls is ModelEntry else {"model": "m"}), **data}
    kind, result = outcome(cls, lambda: validate(cls, data, "w.json"))
    if kind is not None:
        assert isinstance(result, cls)
    else:
        assert result.startswith("w.json: ")


@FUZZ
@given(data=st.dictionaries(KEYS, VALUES, max_size=8), suffix=st.sampled_from([".json", ".yaml", ".yml"]))
def test_any_mapping_written_to_a_file_loads_or_fails_cleanly(scratch, data, suffix):
    path = scratch / f"w{suffix}"
    text = json.dumps(data) if suffix == ".json" else yaml.safe_dump(data, allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    for cls in (Workload, ModelEntry):
        kind, result = outcome(cls, lambda: validate(cls, read_config_file(path), path))
        if kind is None:
            assert result.startswith(str(path))


@FUZZ
@given(
    raw=st.binary(max_size=300) | st.text(max_size=300).map(str.encode),
    suffix=st.sampled_from([".json", ".yaml", ".yml"]),
)
def test_any_bytes_parse_or_fail_cleanly(scratch, raw, suffix):
    path = scratch / f"raw{suffix}"
    path.write_bytes(raw)
    kind, result = outcome(dict, lambda: read_config_file(path))
    if kind is not None:
        assert isinstance(result, dict)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("deep.json", "[" * 100_000),
        ("deep-object.json", '{"a":' * 100_000),
        ("deep.yaml", "[" * 100_000),
    ],
)
def test_deep_nesting_is_a_clean_error(tmp_path, name, text):
    (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(UserError, match="nested too deeply"):
        read_config_file(tmp_path / name)
