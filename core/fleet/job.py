"""One sweep job in its own process: `core.perf_engine` as a child, its files returned as data.

The same function runs on the driver (local sweeps) and inside a Ray task on a node (cluster sweeps):
it needs nothing but the job's description, writes only to a private temporary folder, and returns
the report files as bytes, so no shared filesystem is assumed. A child that crashes (a signal, an
abort, the OOM killer) ends only itself; the caller reads what happened from the returned outcome.

Kept apart from core.sweep so Ray ships this function by reference (core.sweep is __main__ when run
with -m) and a node imports nothing it does not need.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from core.common.paths import REPO_ROOT

MAX_LOG_BYTES = 1 << 20  # the tail of a job's output that comes back (a chatty engine can write a lot)
MAX_FILE_BYTES = 64 << 20  # a report folder's file larger than this is not a report, and not shipped


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run `job` = {id, hardware_type, workload_name, workload_text, timeout} in a child process.

    Returns {returncode, timed_out, seconds, files: {relative path: bytes}, log: bytes, host, node}.
    """
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="perfbench-job-") as tmp:
        folder = Path(tmp)
        workload = folder / job["workload_name"]
        workload.write_text(job["workload_text"], encoding="utf-8")
        out = folder / "reports"
        log_path = folder / "job.log"
        command = [
            sys.executable,
            "-m",
            "core.perf_engine",
            "--task",
            str(workload),
            "--hardware_type",
            job["hardware_type"],
            "--output-dir",
            str(out),
        ]
        # Unbuffered: the output's tail is the last thing it said. The private folder as working directory:
        # a crash's core file is discarded with it; the checkout stays importable without an install.
        path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=path)
        timed_out = False
        with open(log_path, "wb") as log:
            child = subprocess.Popen(
                command, cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
            try:
                returncode = child.wait(timeout=job.get("timeout"))
            except subprocess.TimeoutExpired:
                child.kill()
                returncode = child.wait()
                timed_out = True
            except BaseException:  # Ctrl-C or a cancelled Ray task: never leave the benchmark running
                child.kill()
                child.wait()
                raise
        return {
            "returncode": returncode,
            "timed_out": timed_out,
            "seconds": round(time.monotonic() - started, 3),
            "files": _collect(out),
            "log": _tail(log_path),
            "host": socket.gethostname(),
            "node": _ray_node_id(),
        }


def _collect(root: Path) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    if root.is_dir():
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink() and path.stat().st_size <= MAX_FILE_BYTES:
                files[path.relative_to(root).as_posix()] = path.read_bytes()
    return files


def _tail(path: Path) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(max(0, fh.seek(0, os.SEEK_END) - MAX_LOG_BYTES))
        return fh.read()


def _ray_node_id() -> str | None:
    """The Ray node this ran on, when it ran in a Ray task (ray is already imported there)."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    return ray.get_runtime_context().get_node_id()
