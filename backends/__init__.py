"""Backends: one package per hardware type (backends/<HW>/) exposing `BACKEND`, a BackendSpec.

A separately installed package can add a hardware type through the entry-point group
`perfbench.backends` (name = hardware type, value = a module or object providing BACKEND).
Names are looked up in the registry's listing, never joined into paths.
"""

from __future__ import annotations

from pathlib import Path

from backends.base import BackendSpec
from core.common.registry import Registry, package_listing

BACKENDS_DIR = Path(__file__).resolve().parent
BACKEND_ENTRY_POINT_GROUP = "perfbench.backends"

BACKENDS: Registry[BackendSpec] = Registry(
    "hardware type",
    lambda: package_listing(BACKENDS_DIR, "backends", "BACKEND"),
    entry_point_group=BACKEND_ENTRY_POINT_GROUP,
    base=BackendSpec,
    module_attribute="BACKEND",
)


def hardware_types() -> list[str]:
    return BACKENDS.names()


def load_backend(hardware_type: str, *, file: object = None, field: str | None = None) -> BackendSpec:
    """The BackendSpec for a hardware type: a package under backends/, or an installed plugin."""
    return BACKENDS.get(hardware_type, file=file, field=field)
