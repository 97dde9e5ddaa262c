"""Test isolation: every test session gets its own state folder (compiled models, caches, locks),
and nothing may reach the network."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests that run whole workloads draw a few cases in the suite; `--hypothesis-profile long` draws
# hundreds (tests that set their own max_examples keep it).
settings.register_profile("suite", max_examples=8)
settings.register_profile("long", max_examples=40)
settings.load_profile("suite")

REPO_ROOT = Path(__file__).resolve().parent.parent

# Set before any project import so every module sees the same private state folder, removed when the session
# ends (each one is ~10 MB of compiled tiny models).
if "PERFBENCH_HOME" not in os.environ:
    os.environ["PERFBENCH_HOME"] = tempfile.mkdtemp(prefix="perfbench-test-home-")
    atexit.register(shutil.rmtree, os.environ["PERFBENCH_HOME"], ignore_errors=True)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["PERFBENCH_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def private_zoo(tmp_path, monkeypatch):
    """A model zoo of the test's own (architectures stay the bundled ones) and a private state folder.

    Returns write(entry, workload) -> the workload file, the entry going into the zoo under its model name.
    """
    import json

    from core.config import registry

    folder = tmp_path / "zoo"
    folder.mkdir()
    monkeypatch.setattr(registry, "MODEL_ZOO_DIR", folder)
    monkeypatch.setenv("PERFBENCH_HOME", str(tmp_path / "home"))

    def write(entry: dict, workload: dict) -> Path:
        name = entry["model"]
        (folder / f"{name}.json").write_text(json.dumps(entry), encoding="utf-8")
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"model": name, **workload}), encoding="utf-8")
        return path

    return write
