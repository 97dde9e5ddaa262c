"""Backends: one package per hardware type (backends/<HW>/) exposing `BACKEND`, a BackendSpec.

A separately installed package can add a hardware type through the entry-point group
`perfbench.backends` (name = hardware type, value = a module or object providing BACKEND).
Names are looked up in these listings, never joined into paths.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from pathlib import Path

from core.common.errors import UserError
from core.config.registry import NAME, unknown_name

BACKENDS_DIR = Path(__file__).resolve().parent
BACKEND_ENTRY_POINT_GROUP = "perfbench.backends"


def _folder_backends() -> dict[str, str]:
    return {
        p.name: f"backends.{p.name}"
        for p in sorted(BACKENDS_DIR.iterdir())
        if (p / "__init__.py").is_file() and NAME.match(p.name) and not p.name.startswith("_")
    }


def _plugin_backends() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=BACKEND_ENTRY_POINT_GROUP)}


def hardware_types() -> list[str]:
    return sorted(set(_folder_backends()) | set(_plugin_backends()))


def load_backend(hardware_type: str):
    """The BackendSpec for a hardware type: a package under backends/, or an installed plugin."""
    from backends.base import BackendSpec

    folders, plugins = _folder_backends(), _plugin_backends()
    if hardware_type in folders:
        spec = getattr(importlib.import_module(folders[hardware_type]), "BACKEND", None)
        origin = folders[hardware_type]
    elif hardware_type in plugins:
        loaded = plugins[hardware_type].load()
        spec = getattr(loaded, "BACKEND", loaded)
        origin = f"entry point {plugins[hardware_type].value}"
    else:
        raise unknown_name("hardware type", hardware_type, hardware_types())
    if not isinstance(spec, BackendSpec):
        raise UserError(f"backend '{hardware_type}' ({origin}) does not provide a BackendSpec named BACKEND")
    return spec
