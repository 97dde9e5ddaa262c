"""Where things live: the repository root and the runtime state folder."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# Set when HF_HUB_OFFLINE=1 was set by `core` (core/__init__.py), not by the user: core.prepare lifts it.
HUB_OFFLINE_DEFAULT = "PERFBENCH_HUB_OFFLINE_DEFAULT"


def state_dir() -> Path:
    """Caches, locks and downloads: $PERFBENCH_HOME, else <repo>/.perfbench."""
    return Path(os.environ.get("PERFBENCH_HOME") or REPO_ROOT / ".perfbench")
