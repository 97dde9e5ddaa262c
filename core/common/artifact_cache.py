"""A cache of built folders (exported, optimized, converted models), keyed by what went into them.

Each entry is `<parent>/<key>/` with a `compile.json` that records, next to the builder's facts,
the sha256 of every file in the folder. A reuse verifies those digests first: a truncated or edited
artifact is rebuilt with a one-line notice instead of failing every later run. Builds happen in a
private folder that is renamed into place, so a concurrent run never sees half an entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.common.digest import file_sha256, json_digest

log = logging.getLogger(__name__)

META = "compile.json"


@dataclass(frozen=True)
class CachedFolder:
    path: Path
    meta: dict[str, Any]
    hit: bool


def cache_key(payload: dict[str, Any]) -> str:
    return json_digest(payload, 20)


def code_digest(*files: Path) -> str:
    """Digest of source files, so changed build code never reuses an artifact the old code wrote."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:16]


def verified_meta(folder: Path) -> dict[str, Any] | None:
    """The entry's facts if every recorded file is present with its digest; None when absent or damaged."""
    meta_path = folder / META
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        files = meta["files"]
        for name, digest in files.items():
            if file_sha256(folder / name) != digest:
                raise ValueError(f"{name} does not match its recorded sha256")
        return meta
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:  # any malformed compile.json
        from core.common import console

        console.warn(f"cache entry {folder} is damaged ({err}); rebuilding it")
        shutil.rmtree(folder, ignore_errors=True)
        return None


def cached_folder(parent: Path, payload: dict[str, Any], build: Callable[[Path], dict[str, Any]]) -> CachedFolder:
    """The verified entry for `payload`, built by `build(work_folder) -> facts` when missing or damaged."""
    target = Path(parent) / cache_key(payload)
    meta = verified_meta(target)
    if meta is not None:
        return CachedFolder(target, meta, hit=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    try:
        meta = dict(build(work))
        meta["files"] = {p.name: file_sha256(p) for p in sorted(work.iterdir()) if p.is_file() and p.name != META}
        (work / META).write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
        try:
            os.replace(work, target)
        except OSError:
            if verified_meta(target) is None:  # not a concurrent winner: a real failure
                raise
            log.info("another run cached %s first; using its entry", target.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return CachedFolder(target, json.loads((target / META).read_text(encoding="utf-8")), hit=False)


def folder_mb(folder: Path) -> float:
    """The size of a cached artifact's files (a converted model's copy of the weights), in MiB."""
    return round(sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) / 2**20, 1)
