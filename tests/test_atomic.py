"""Atomic writes, each way out: the content lands whole or not at all, modes are kept, a full disk is one
exact line, and no temporary file is left behind."""

from __future__ import annotations

import errno
import os
import stat

import pytest

import core.common.atomic as atomic
from core.common.errors import UserError


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_a_new_file_is_readable_by_all_and_its_folders_are_made(tmp_path):
    path = tmp_path / "a" / "b" / "report.json"
    assert atomic.atomic_write_text(path, "välue") == path
    assert path.read_bytes() == "välue".encode()
    assert stat.S_IMODE(path.stat().st_mode) == 0o644 and leftovers(path.parent) == []


def test_a_replaced_file_keeps_its_mode(tmp_path):
    path = tmp_path / "private.json"
    path.write_text("old")
    path.chmod(0o600)
    atomic.atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new" and stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_a_full_disk_is_one_exact_line_and_the_old_file_stays(tmp_path, monkeypatch, code):
    path = tmp_path / "result.json"
    path.write_text("previous")

    def full(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(UserError) as caught:
        atomic.atomic_write_text(path, "next")
    assert str(caught.value) == (
        f"{path}: no space left on the device; nothing was written "
        "(free disk space or write elsewhere (--output-dir, PERFBENCH_HOME))"
    )
    assert caught.value.__suppress_context__  # one line: the OSError is not chained into the message
    assert path.read_text() == "previous" and leftovers(tmp_path) == []


def test_another_os_error_is_raised_as_it_is_and_leaves_nothing(tmp_path, monkeypatch):
    path = tmp_path / "result.json"

    def denied(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(atomic.os, "replace", denied)
    with pytest.raises(PermissionError):
        atomic.atomic_write_text(path, "x")
    assert not path.exists() and leftovers(tmp_path) == []


def test_an_interruption_inside_the_block_writes_nothing(tmp_path):
    path = tmp_path / "result.json"
    path.write_text("previous")
    with pytest.raises(KeyboardInterrupt):
        with atomic.atomic_writer(path) as handle:
            handle.write(b"half")
            raise KeyboardInterrupt
    assert path.read_text() == "previous" and leftovers(tmp_path) == []


def test_the_temporary_file_sits_beside_the_target_until_the_rename(tmp_path):
    path = tmp_path / "result.json"
    with atomic.atomic_writer(path) as handle:
        handle.write(b"x")
        (tmp,) = leftovers(tmp_path)
        assert tmp.startswith(".result.json.") and not path.exists()
    assert path.read_bytes() == b"x" and leftovers(tmp_path) == []
