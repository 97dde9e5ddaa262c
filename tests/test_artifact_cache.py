"""The compile cache verifies what it reuses, rebuilds damaged entries, and survives a lost race."""

from __future__ import annotations

import json

import pytest

from core.common.artifact_cache import META, cached_folder


def build_counting(calls: list[str], text: str = "model bytes"):
    def build(work):
        calls.append(work.name)
        (work / "model.onnx").write_text(text)
        return {"facts": 1}

    return build


def test_second_use_is_a_hit_and_a_new_payload_is_a_miss(tmp_path):
    calls: list[str] = []
    first = cached_folder(tmp_path, {"a": 1}, build_counting(calls))
    again = cached_folder(tmp_path, {"a": 1}, build_counting(calls))
    other = cached_folder(tmp_path, {"a": 2}, build_counting(calls))
    assert first.hit is False and again.hit is True and other.hit is False
    assert again.path == first.path != other.path and len(calls) == 2
    assert json.loads((first.path / META).read_text())["files"]["model.onnx"]


def test_a_truncated_artifact_is_rebuilt_with_a_notice(tmp_path, capsys):
    calls: list[str] = []
    entry = cached_folder(tmp_path, {"a": 1}, build_counting(calls))
    (entry.path / "model.onnx").write_text("model")  # truncated by a crash or a full disk
    healed = cached_folder(tmp_path, {"a": 1}, build_counting(calls))
    assert not healed.hit and len(calls) == 2
    assert (healed.path / "model.onnx").read_text() == "model bytes"
    assert "damaged" in capsys.readouterr().out


def test_a_missing_artifact_or_broken_meta_is_rebuilt(tmp_path):
    calls: list[str] = []
    entry = cached_folder(tmp_path, {"a": 1}, build_counting(calls))
    (entry.path / "model.onnx").unlink()
    assert not cached_folder(tmp_path, {"a": 1}, build_counting(calls)).hit
    (entry.path / META).write_text("{not json")
    assert not cached_folder(tmp_path, {"a": 1}, build_counting(calls)).hit
    assert len(calls) == 3


def test_a_build_that_loses_the_race_uses_the_winners_entry(tmp_path, caplog):
    """Deterministic interleaving: while one build runs, another finishes the same key first."""
    calls: list[str] = []

    def slow_build(work):
        calls.append(work.name)
        if len(calls) == 1:
            cached_folder(tmp_path, {"a": 1}, slow_build)  # the other run: builds and renames first
        (work / "model.onnx").write_text(f"built by {work.name}")
        return {}

    with caplog.at_level("INFO", logger="core.common.artifact_cache"):
        loser = cached_folder(tmp_path, {"a": 1}, slow_build)
    assert len(calls) == 2 and loser.hit is False
    assert caplog.messages == [f"another run cached {loser.path.name} first; using its entry"]
    assert (loser.path / "model.onnx").read_text() == f"built by {calls[1]}"  # the winner's, complete
    assert [p.name for p in tmp_path.iterdir()] == [loser.path.name]  # no private build folder left


def test_keys_and_code_digests_are_short_stable_and_sensitive(tmp_path):
    from core.common.artifact_cache import cache_key, code_digest

    key = cache_key({"a": 1, "b": [2, 3]})
    assert len(key) == 20 and int(key, 16) >= 0
    assert key == cache_key({"b": [2, 3], "a": 1}) and key != cache_key({"a": 1, "b": [3, 2]})
    one, two = tmp_path / "one.py", tmp_path / "two.py"
    one.write_text("x = 1")
    two.write_text("y = 2")
    digest = code_digest(one, two)
    assert len(digest) == 16 and digest == code_digest(one, two) != code_digest(two, one)
    one.write_text("x = 2")
    assert code_digest(one, two) != digest


def test_the_meta_records_facts_and_every_file_but_itself(tmp_path):
    def build(work):
        (work / "model.onnx").write_bytes(b"graph")
        (work / "sub").mkdir()  # folders are the builder's business: only files are hashed
        return {"where": tmp_path, "n": 3}

    entry = cached_folder(tmp_path / "cache", {"a": 1}, build)
    meta = json.loads((entry.path / META).read_text(encoding="utf-8"))
    assert meta["where"] == str(tmp_path) and meta["n"] == 3  # a Path fact is written as its text
    import hashlib

    assert meta["files"] == {"model.onnx": hashlib.sha256(b"graph").hexdigest()}
    assert entry.meta == meta and entry.path.parent == tmp_path / "cache"
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [entry.path.name]  # no build folder left


def test_the_damage_notice_says_which_file_and_that_it_is_rebuilt(tmp_path, capsys):
    calls: list[str] = []
    entry = cached_folder(tmp_path, {"a": 1}, build_counting(calls))
    (entry.path / "model.onnx").write_text("model")
    cached_folder(tmp_path, {"a": 1}, build_counting(calls))
    out = " ".join(capsys.readouterr().out.split())
    assert f"warning: cache entry {entry.path} is damaged (model.onnx does not match its recorded sha256); " in out
    assert "rebuilding it" in out


def test_a_build_happens_in_a_hidden_folder_beside_the_entry_created_on_demand(tmp_path):
    works = []

    def build(work):
        works.append(work)
        (work / "b.onnx").write_bytes(b"second")
        (work / "a.onnx").write_bytes(b"first")
        return {"ü": "non-ascii facts"}

    parent = tmp_path / "deep" / "cache"  # neither folder exists yet
    entry = cached_folder(parent, {"a": 1}, build)
    # Renaming is atomic only within one file system: the build folder sits in the entry's parent, and it
    # is hidden (a leading dot) so a listing of entries never shows half a build.
    assert works[0].parent == parent and works[0].name.startswith(".build-")
    meta = {"ü": "non-ascii facts", "files": {"a.onnx": sha256(b"first"), "b.onnx": sha256(b"second")}}
    assert (entry.path / META).read_text(encoding="utf-8") == json.dumps(meta, indent=2)
    assert entry.meta == meta and cached_folder(parent, {"a": 1}, build).meta == meta


def sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("meta_text", ["[]", "{}", '{"files": 3}', '{"files": {"model.onnx": 3}}'])
def test_a_meta_of_the_wrong_shape_is_damage_not_a_crash(tmp_path, capsys, meta_text):
    calls: list[str] = []
    entry = cached_folder(tmp_path, {"a": 1}, build_counting(calls))
    (entry.path / META).write_text(meta_text)
    healed = cached_folder(tmp_path, {"a": 1}, build_counting(calls))
    assert not healed.hit and len(calls) == 2 and "damaged" in capsys.readouterr().out


def test_a_plain_miss_says_nothing(tmp_path, capsys):
    cached_folder(tmp_path, {"a": 1}, build_counting([]))
    assert capsys.readouterr().out == ""


def test_a_failed_rename_with_no_winner_is_raised_and_leaves_nothing(tmp_path, monkeypatch):
    import errno

    import core.common.artifact_cache as artifact_cache

    def no_space(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(artifact_cache.os, "replace", no_space)
    with pytest.raises(OSError, match="No space left"):
        cached_folder(tmp_path, {"a": 1}, build_counting([]))
    assert list(tmp_path.iterdir()) == []
