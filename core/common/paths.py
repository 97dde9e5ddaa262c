"""Where things live: the repository root and the runtime state folder."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def state_dir() -> Path:
    """Caches, locks and downloads: $PERFBENCH_HOME, else <repo>/.perfbench."""
    return Path(os.environ.get("PERFBENCH_HOME") or REPO_ROOT / ".perfbench")
