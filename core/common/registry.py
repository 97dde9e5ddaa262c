"""One registry for every kind of named thing: hardware types, CPU engines, datasets, tasks, models.

A registry maps names to entries found by a discovery function (folders, files, modules), plus
installed plugins of an entry-point group. Entries load lazily: a "module:attribute" string is
imported only when that name is asked for, so listings stay fast. Names are looked up in the
listing, never joined into a path.
"""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any, Generic, TypeVar

from core.common.errors import UserError

T = TypeVar("T")

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")  # what a task, model, dataset or backend name may be


def unknown_name(
    kind: str, name: str, known: list[str], *, file: object = None, field: str | None = None, fix_extra: str = ""
) -> UserError:
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    listing = ", ".join(known) if known else "none"
    return UserError(f"unknown {kind} '{name}'", file=file, field=field, fix=f"{hint}known: {listing}{fix_extra}")


def file_listing(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """stem -> file for files directly in `folder` with one of `suffixes` (an earlier suffix wins a tie)."""
    found: dict[str, Path] = {}
    if folder.is_dir():
        rank = {suffix: i for i, suffix in enumerate(suffixes)}
        for path in sorted(folder.iterdir(), key=lambda p: (p.stem, rank.get(p.suffix.lower(), 99))):
            if path.is_file() and path.suffix.lower() in rank and NAME.match(path.stem):
                found.setdefault(path.stem, path)
    return found


def package_listing(folder: Path, package: str, attribute: str) -> dict[str, str]:
    """name -> "package.name:attribute" for each sub-package of `folder` whose __init__.py assigns `attribute`
    (read as text, nothing imported): a package of shared code beside them (datasets/glue) is not an entry."""
    if not folder.is_dir():
        return {}
    assigns = re.compile(rf"^{re.escape(attribute)}\s*(:[^=]*)?=", re.MULTILINE)
    return {
        p.name: f"{package}.{p.name}:{attribute}"
        for p in sorted(folder.iterdir())
        if (p / "__init__.py").is_file()
        and NAME.match(p.name)
        and not p.name.startswith("_")
        and assigns.search((p / "__init__.py").read_text(encoding="utf-8", errors="replace"))
    }


def module_listing(folder: Path, package: str, suffix: str, attribute: str) -> dict[str, str]:
    """name -> "package.<name><suffix>:attribute" for each module `<name><suffix>.py` in `folder`."""
    return {
        p.name[: -len(suffix) - 3]: f"{package}.{p.stem}:{attribute}"
        for p in sorted(folder.glob(f"*{suffix}.py"))
        if NAME.match(p.name[: -len(suffix) - 3])
    }


class Registry(Generic[T]):
    """Named entries of one kind. `discover()` returns name -> entry, where an entry is the object itself,
    a "module:attribute" string loaded on first use, or a Path (for file-backed kinds: tasks, models)."""

    def __init__(
        self,
        kind: str,
        discover: Callable[[], dict[str, Any]],
        *,
        entry_point_group: str | None = None,
        base: type | None = None,
        module_attribute: str | None = None,
    ):
        self.kind = kind
        self._discover = discover
        self.entry_point_group = entry_point_group
        self.base = base  # loaded entries must be instances (or subclasses) of it
        self.module_attribute = module_attribute  # a plugin naming a module means this attribute of it
        self._loaded: dict[tuple[str, str], Any] = {}

    def entries(self) -> dict[str, Any]:
        found = dict(self._discover())
        if self.entry_point_group:
            for point in metadata.entry_points(group=self.entry_point_group):
                found.setdefault(point.name, point)
        return found

    def names(self) -> list[str]:
        return sorted(self.entries())

    def get(self, name: str, *, file: object = None, field: str | None = None, fix_extra: str = "") -> T:
        """The entry for `name`, loaded; an unknown name is a UserError naming `file` and `field`."""
        entries = self.entries()
        if name not in entries:
            raise unknown_name(self.kind, name, sorted(entries), file=file, field=field, fix_extra=fix_extra)
        return self._load(name, entries[name])

    def _load(self, name: str, entry: Any) -> T:
        if isinstance(entry, metadata.EntryPoint):
            key = (name, entry.value)
            origin = f"entry point {entry.value}"
            if key not in self._loaded:
                self._loaded[key] = entry.load()
        elif isinstance(entry, str) and ":" in entry:
            key, origin = (name, entry), entry
            if key not in self._loaded:
                module, _, attribute = entry.partition(":")
                self._loaded[key] = getattr(importlib.import_module(module), attribute, None)
        else:
            return entry
        value = self._loaded[key]
        if isinstance(value, ModuleType) and self.module_attribute:
            value = getattr(value, self.module_attribute, None)
        if self.base is not None and not (
            isinstance(value, self.base) or (isinstance(value, type) and issubclass(value, self.base))
        ):
            what = f"a {self.base.__name__}" + (f" named {self.module_attribute}" if self.module_attribute else "")
            raise UserError(f"{self.kind} '{name}' ({origin}) does not provide {what}")
        return value
