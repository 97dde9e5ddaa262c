"""Hugging Face `datasets` installed beside the project never replaces our `datasets` package."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

PROBE = """
import core
import datasets
from core.config import registry
print(datasets.__file__)
print(registry.dataset_loader_class("open_squad").__module__)
print(getattr(datasets, "IMPOSTOR", False))
"""


def impostor_site(tmp_path: Path) -> Path:
    """A stand-in for Hugging Face `datasets` in a site folder that comes first on sys.path."""
    site = tmp_path / "site"
    (site / "datasets").mkdir(parents=True)
    (site / "datasets" / "__init__.py").write_text("IMPOSTOR = True\n")
    return site


def run(code_or_args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(impostor_site(tmp_path)), str(REPO)]))
    return subprocess.run(
        [sys.executable, *code_or_args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )


def test_ours_wins_outside_the_repository_root(tmp_path):
    result = run(["-c", PROBE], tmp_path)
    assert result.returncode == 0, result.stderr
    file, loader_module, impostor = result.stdout.split()
    assert Path(file).resolve() == REPO / "datasets" / "__init__.py"
    assert loader_module.startswith("datasets.open_squad") and impostor == "False"


def test_already_imported_hugging_face_datasets_is_refused_with_a_message(tmp_path):
    result = run(["-c", "import datasets; import core"], tmp_path)
    assert result.returncode != 0 and "is not perfbench's" in result.stderr
