"""Arrays on disk without pickle: an .npz of plain arrays plus a JSON sidecar with names and facts."""

from __future__ import annotations

import json
import logging
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from core.common.atomic import atomic_write_text, atomic_writer

log = logging.getLogger(__name__)

_META_SUFFIX = ".json"


def save_arrays(path: Path, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> Path:
    """Write arrays to `path` (.npz, no pickled objects) and `meta` to a JSON sidecar, each atomically.

    Array names go in the sidecar, so any name (dots, slashes) round-trips.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(arrays)
    stored = {f"a{i}": np.asarray(arrays[name]) for i, name in enumerate(names)}
    for key, value in stored.items():
        if value.dtype == object:
            raise ValueError(f"array {names[int(key[1:])]!r} has dtype object; it cannot be stored without pickle")
    with atomic_writer(path) as fh:
        np.savez(fh, **stored)
    atomic_write_text(_sidecar(path), json.dumps({"arrays": names, "meta": dict(meta)}, indent=1))
    return path


def load_arrays(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read what save_arrays wrote. Raises FileNotFoundError when either file is missing."""
    path = Path(path)
    header = json.loads(_sidecar(path).read_text())
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[f"a{i}"] for i, name in enumerate(header["arrays"])}
    return arrays, header["meta"]


def load_or_build(
    path: Path, build: Callable[[], Mapping[str, np.ndarray]], meta: Mapping[str, Any]
) -> tuple[dict[str, np.ndarray], bool]:
    """A cache of arrays: (arrays, hit). Reads `path` when readable, else builds and stores them."""
    try:
        return load_arrays(path)[0], True
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        log.warning("rebuilding unreadable cache %s: %s", path, err)
    arrays = dict(build())
    save_arrays(path, arrays, meta)
    return arrays, False


def _sidecar(path: Path) -> Path:
    return path.with_suffix(_META_SUFFIX)
