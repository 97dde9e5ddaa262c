"""Install a hardware-type plugin the way a separately installed package would: a module plus a
dist-info folder registering it in the `perfbench.backends` entry-point group."""

from __future__ import annotations

from pathlib import Path


def install_plugin(root: Path, module: str, hardware_type: str, source: str) -> Path:
    """Write package `module` (its __init__ is `source`) under `root`; put `root` on sys.path to use it."""
    (root / module).mkdir()
    (root / module / "__init__.py").write_text(source, encoding="utf-8")
    dist = root / f"{module}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 0.1\n", encoding="utf-8"
    )
    (dist / "entry_points.txt").write_text(f"[perfbench.backends]\n{hardware_type} = {module}\n", encoding="utf-8")
    return root
