"""The asset lock file, `state_dir()/assets.lock.json`: digests of downloads whose spec gives none
(trust on first use) and what each installed asset put where. Written atomically under a file lock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.common.atomic import atomic_write_text
from core.common.errors import UserError
from core.common.paths import state_dir

SCHEMA = "perfbench-assets-lock/1"
LOCK_TIMEOUT_S = 60


def lock_path() -> Path:
    return state_dir() / "assets.lock.json"


def read_lock() -> dict[str, Any]:
    path = lock_path()
    if not path.is_file():
        return {"schema": SCHEMA, "downloads": {}, "installed": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise UserError(
            f"unreadable lock file: {err}",
            file=path,
            fix="fix or delete it; digests are recorded again on the next download",
        ) from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise UserError(
            f"not a {SCHEMA} file", file=path, fix="delete it; digests are recorded again on the next download"
        )
    data.setdefault("downloads", {})
    data.setdefault("installed", {})
    return data


@contextmanager
def file_lock(name: str, timeout: float = -1) -> Iterator[None]:
    """An inter-process lock under state_dir()/locks (timeout -1: wait as long as it takes)."""
    from filelock import FileLock, Timeout

    folder = state_dir() / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / f"{name}.lock"))
    try:
        with lock.acquire(timeout=timeout):
            yield
    except Timeout:
        raise UserError(
            "another perfbench process holds this lock",
            file=lock.lock_file,
            fix="wait for it to finish, or delete the .lock file if no such process runs",
        ) from None


def update_lock(section: str, key: str, value: dict[str, Any] | None) -> None:
    """Set (or with None, remove) one entry of the lock file, atomically."""
    with file_lock("assets.lock.json", LOCK_TIMEOUT_S):
        data = read_lock()
        if value is None:
            data[section].pop(key, None)
        else:
            data[section][key] = value
        atomic_write_text(lock_path(), json.dumps(data, indent=2, sort_keys=True) + "\n")
