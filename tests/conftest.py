"""Test isolation: every test session gets its own state folder (compiled models, caches, locks),
and nothing may reach the network."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# Set before any project import so every module sees the same private state folder.
os.environ.setdefault("PERFBENCH_HOME", tempfile.mkdtemp(prefix="perfbench-test-home-"))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["PERFBENCH_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT
