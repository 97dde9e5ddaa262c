"""make's set-up (tools/venv.sh), in a copy of the project with stand-in interpreters that log what pip is
asked and answer the rest with this Python: a working .venv made by hand is installed into, never made
again; a broken one is made again; torch comes from PyTorch's CPU index where it can be reached, and from the
default index, said, where not; a Python older than 3.11 is refused in one line."""

from __future__ import annotations

import http.server
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PIN = next(
    line.split("==")[1] for line in (ROOT / "constraints.txt").read_text().splitlines() if line.startswith("torch==")
)

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")

# A venv's python: pip calls are logged, not run; everything else is this Python (-S: without site-packages,
# so without torch, when NO_SITE is set).
VENV_PYTHON = f"""#!/bin/sh
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then shift 2; echo "pip $*" >> "$LOG"; exit 0; fi
exec {sys.executable} ${{NO_SITE:+-S}} "$@"
"""
# An interpreter to make venvs with: logs `-m venv` and lays a VENV_PYTHON; OLD=1 makes it fail the version check.
MAKER_PYTHON = f"""#!/bin/sh
case "$*" in
  *"-m venv"*) echo "venv $*" >> "$LOG"; rm -rf .venv; mkdir -p .venv/bin; cp "$VENV_PYTHON" .venv/bin/python; exit 0;;
  *version_info*) [ -n "$OLD" ] && exit 1;;
esac
exec {sys.executable} "$@"
"""


def script(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.fixture
def project(tmp_path):
    repo = tmp_path / "repo"
    for name in ("Makefile", "constraints.txt", "pyproject.toml", "tools/venv.sh"):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, repo / name)
    script(tmp_path / "venv-python", VENV_PYTHON)
    script(tmp_path / "maker-python", MAKER_PYTHON)
    return repo


def make(repo: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, str]:
    log = repo.parent / "pip.log"
    log.touch()
    base = {"PATH": "/usr/bin:/bin", "LOG": str(log), "VENV_PYTHON": str(repo.parent / "venv-python")}
    done = subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=repo,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done, log.read_text()


def a_venv_made_by_hand(repo: Path) -> Path:
    return script(repo / ".venv" / "bin" / "python", (repo.parent / "venv-python").read_text())


def test_a_working_venv_made_by_hand_survives_make_docs(project):
    python = a_venv_made_by_hand(project)
    # No interpreter to make a venv with: the set-up must not try.
    done, pip = make(project, ".venv/.installed", "PYTHON=/nonexistent/python3", "TORCH_INDEX=http://127.0.0.1:9")
    assert done.returncode == 0, done.stderr
    assert "venv: using the existing .venv" in done.stdout
    assert f"torch: {PIN}" in done.stdout and "already installed, kept" in done.stdout  # this Python's torch
    assert "install -e .[dev] -c constraints.txt" in pip and "--index-url" not in pip
    assert python.read_text() == (project.parent / "venv-python").read_text()  # the same file, not a new venv
    assert (project / ".venv" / ".installed").exists()
    dry = subprocess.run(["make", "-n", "docs"], cwd=project, capture_output=True, text=True, timeout=60)
    assert "venv.sh" not in dry.stdout and ".venv/bin/mkdocs build --strict" in dry.stdout


def test_an_unreachable_cpu_index_falls_back_to_the_default_one_and_says_so(project):
    a_venv_made_by_hand(project)
    done, pip = make(project, ".venv/.installed", "TORCH_INDEX=http://127.0.0.1:9", NO_SITE="1")
    assert done.returncode == 0, done.stderr
    assert f"http://127.0.0.1:9 cannot be reached: torch {PIN} comes from the default index" in done.stdout
    assert "--index-url" not in pip and "install -e .[dev] -c constraints.txt" in pip


def test_a_reachable_cpu_index_gives_torch(project):
    class Index(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200 if self.path.rstrip("/") == "/whl/cpu/torch" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Index)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/whl/cpu"
    try:
        a_venv_made_by_hand(project)
        done, pip = make(project, ".venv/.installed", f"TORCH_INDEX={url}", NO_SITE="1")
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stderr
    assert f"install --no-deps --timeout 15 --retries 1 --index-url {url} torch=={PIN}" in pip
    assert pip.index("--index-url") < pip.index("install -e .[dev]")  # torch first: the rest then keeps it


def test_a_venv_whose_python_does_not_run_is_made_again(project):
    (project / ".venv" / "bin").mkdir(parents=True)
    (project / ".venv" / "bin" / "python").symlink_to(project / "gone")
    done, pip = make(project, ".venv/.installed", f"PYTHON={project.parent / 'maker-python'}", "TORCH_INDEX=")
    assert done.returncode == 0, done.stderr
    assert "venv: .venv/bin/python does not run: making .venv again" in done.stdout
    assert "venv -m venv --clear .venv" in pip and "install -e .[dev]" in pip


def test_a_python_older_than_the_pins_allow_is_refused_in_one_line(project):
    done, pip = make(project, ".venv/.installed", f"PYTHON={project.parent / 'maker-python'}", OLD="1")
    assert done.returncode != 0
    assert "older than Python 3.11; fix: make PYTHON=python3.11" in done.stderr
    assert "venv" not in pip and not (project / ".venv").exists()
