"""Content digests: the one place files are hashed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def json_digest(payload: Any, length: int | None = None) -> str:
    """sha256 of a JSON-able payload in canonical form (sorted keys): the one way cache keys are made."""
    text = json.dumps(payload, sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()
    return digest[:length] if length else digest
