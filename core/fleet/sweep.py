"""Sweeps: `python -m core.sweep SWEEP.yaml [--output-dir DIR] [--address ADDRESS] [--resume]`.

A sweep file lists `tasks` (names or workload files) and `hardware_types`; every other key is an
override applied to every workload (any workload field: batch_sizes, engine, precision, ...). Each
task x hardware type is one job, run in its own process (core.fleet.job), so a native crash in an
engine ends only its job. Without --address jobs run here, one at a time; with --address they run on
an existing Ray cluster, at most one per node, each on a node that declares its hardware type.

Everything is checked before the first job starts. DIR/sweep.json is rewritten after every job;
reports land under DIR in the usual layout. Exit 0 when every job is ok (or skipped by --resume),
1 otherwise, 2 for a bad sweep file, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import Field

from core.common.atomic import atomic_write_bytes
from core.common.cli import EXIT_INTERRUPTED, prog, run_command
from core.common.errors import UserError
from core.config.schema import CONFIG_SUFFIXES, Workload, _Strict, read_config_file, validate
from core.reporting.report import now_iso, write_json_atomic

SCHEMA = "perfbench-sweep/1"
SWEEP_JSON = "sweep.json"
SLOT_RESOURCE = "perfbench_slot"  # every node declares 1: at most one benchmark per machine
HW_PREFIX = "hw:"  # a node with hardware type X declares the Ray resource "hw:X"
EXIT_FAILED = 1
OUTPUT_TAIL_CHARS = 2000
# perf_engine's exit codes (core.perf_engine); anything else, or no report, is a crash.
ENGINE_OK, ENGINE_BATCH_FAILED, ENGINE_USAGE, ENGINE_INTERRUPTED = 0, 1, 2, 130
NODE_CHECK_SECONDS = 5.0
PROBE_SECONDS = 5.0


def hw_resource(hardware_type: str) -> str:
    return HW_PREFIX + hardware_type


class SweepConfig(_Strict):
    """The sweep file's own fields; the remaining keys are workload overrides (checked separately)."""

    tasks: list[str] = Field(
        min_length=1, description="workload names or .json/.yaml files (relative to the sweep file)"
    )
    hardware_types: list[str] = Field(min_length=1, description="hardware types, e.g. [CPU]")
    job_timeout_seconds: float | None = Field(
        None, gt=0, description="a job running longer is killed and recorded as crashed"
    )


# Overrides may set any workload field but the model, which is what a task names.
OVERRIDABLE = tuple(name for name in Workload.model_fields if name != "model")


@dataclass
class Job:
    id: str
    task: str
    hardware_type: str
    workload_name: str
    workload_text: str
    digest: str  # of the derived workload: --resume only trusts a report of the same job
    entry: dict[str, Any] = field(default_factory=dict)

    def spec(self, timeout: float | None) -> dict[str, Any]:
        return {
            "id": self.id,
            "hardware_type": self.hardware_type,
            "workload_name": self.workload_name,
            "workload_text": self.workload_text,
            "timeout": timeout,
        }


# ---------------------------------------------------------------- reading and checking the sweep file
def load_sweep(path: Path) -> tuple[SweepConfig, dict[str, Any]]:
    data = read_config_file(path)
    own = set(SweepConfig.model_fields)
    overrides = {k: v for k, v in data.items() if k not in own}
    for key in overrides:
        if key not in OVERRIDABLE:
            close = difflib.get_close_matches(str(key), [*own, *OVERRIDABLE], n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise UserError(
                "unknown field",
                file=path,
                field=str(key),
                fix=f"{hint}sweep fields: {', '.join(own)}; overrides: workload fields {', '.join(OVERRIDABLE)}",
            )
    config = validate(SweepConfig, {k: v for k, v in data.items() if k in own}, path)
    return config, overrides


def _safe(text: str) -> str:
    """A file-name-safe rendering of a name (names are never trusted as path parts)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "job"


def _resolve_task(task: str, index: int, sweep_path: Path):
    from core.config import registry

    argument = task
    if Path(task).suffix.lower() in CONFIG_SUFFIXES and not Path(task).is_absolute():
        argument = str(sweep_path.parent / task)  # files are relative to the sweep file, like its other paths
    try:
        return registry.load_task(argument)
    except UserError as err:
        if err.file:  # the workload file itself is wrong: it is named
            raise
        raise UserError(err.message, file=sweep_path, field=f"tasks[{index}]", fix=err.fix) from None


def plan_jobs(
    config: SweepConfig, overrides: dict[str, Any], sweep_path: Path, known_hardware: Sequence[str]
) -> list[Job]:
    """Every job, each workload validated with the overrides applied; raises before anything runs."""
    import backends
    from core.config.overrides import Overrides, apply_overrides

    for i, hw in enumerate(config.hardware_types):
        if hw not in known_hardware:
            close = difflib.get_close_matches(hw, list(known_hardware), n=3)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise UserError(
                f"unknown hardware type '{hw}'",
                file=sweep_path,
                field=f"hardware_types[{i}]",
                fix=f"{hint}known: {', '.join(known_hardware) or 'none'}",
            )
    installed = backends.hardware_types()
    jobs: list[Job] = []
    seen: set[str] = set()
    for i, name in enumerate(config.tasks):
        task = _resolve_task(name, i, sweep_path)
        task = apply_overrides(task, Overrides(overrides, source=sweep_path))  # the overrides are what can break it now
        workload = task.workload
        text = json.dumps(workload.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
        for hw in config.hardware_types:
            if hw in installed:  # a fleet's driver need not have every backend installed
                backends.load_backend(hw).make_config(workload.engine, workload.engine_options, source=sweep_path)
            job_id, n = f"{_safe(task.workload_file.stem)}@{_safe(hw)}", 1
            while job_id in seen:
                n += 1
                job_id = f"{_safe(task.workload_file.stem)}@{_safe(hw)}-{n}"
            seen.add(job_id)
            digest = hashlib.sha256(f"{hw}\n{text}".encode()).hexdigest()[:16]
            jobs.append(Job(job_id, name, hw, f"{job_id}.json", text, digest))
    return jobs


# ---------------------------------------------------------------- outcomes
def _report_path(files: dict[str, bytes]) -> str | None:
    """The kept run `<HW>/<model>/runs/<id>.json` among a job's files (one run per job)."""
    runs = [
        p
        for p in files
        if len(PurePosixPath(p).parts) == 4 and PurePosixPath(p).parts[2] == "runs" and p.endswith(".json")
    ]
    return runs[0] if len(runs) == 1 else None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def classify(result: dict[str, Any], timeout: float | None) -> dict[str, Any]:
    """status, error, returncode, signal and output tail from a job's outcome."""
    rc = result["returncode"]
    report = _report_path(result["files"])
    tail = result["log"].decode("utf-8", "replace")[-OUTPUT_TAIL_CHARS:]
    last_line = next((line for line in reversed(tail.splitlines()) if line.strip()), "")
    entry: dict[str, Any] = {"returncode": rc, "signal": _signal_name(-rc) if rc < 0 else None, "report": report}
    if result["timed_out"]:
        status, error = "crashed", f"timed out after {timeout:g} s and was killed"
    elif rc < 0:
        status, error = "crashed", f"killed by {entry['signal']}"
    elif report is None and rc != ENGINE_USAGE:
        status, error = "crashed", f"exited with code {rc} without a report"
    elif rc == ENGINE_OK:
        status, error = "ok", None
    elif rc == ENGINE_BATCH_FAILED:
        status, error = "failed", "some batch sizes failed: see the report's Performance rows"
    elif rc == ENGINE_USAGE:
        status, error = "failed", f"refused its input: {last_line}"
    elif rc == ENGINE_INTERRUPTED:
        status, error = "failed", "interrupted: the report is partial"
    else:
        status, error = "crashed", f"exited with code {rc}"
    entry.update(status=status, error=error, output_tail=tail if status == "crashed" else None)
    return entry


def store_files(out_dir: Path, files: dict[str, bytes]) -> None:
    """A job's report files into DIR, in the usual layout. Paths come from another machine: checked."""
    root = out_dir.resolve()
    for name, data in files.items():
        target = (root / name).resolve()
        if PurePosixPath(name).is_absolute() or ".." in PurePosixPath(name).parts or root not in target.parents:
            raise ValueError(f"a job returned a file outside its report folder: {name!r}")
        atomic_write_bytes(target, data)


# ---------------------------------------------------------------- the sweep
class Sweep:
    """The sweep's state and its sweep.json, rewritten after every job so a killed sweep can resume."""

    def __init__(self, sweep_path: Path, out_dir: Path, jobs: list[Job], address: str | None, timeout: float | None):
        self.sweep_path, self.out_dir, self.jobs, self.address, self.timeout = (
            sweep_path,
            out_dir,
            jobs,
            address,
            timeout,
        )
        self.started = now_iso()
        self.status = "running"
        for job in jobs:
            job.entry = {
                "id": job.id,
                "task": job.task,
                "hardware_type": job.hardware_type,
                "status": "pending",
                "report": None,
                "error": None,
                "workload": f"workloads/{job.workload_name}",
                "digest": job.digest,
            }

    def resume(self) -> None:
        """Jobs that were ok (or already skipped) with the same workload and whose report is still there."""
        path = self.out_dir / SWEEP_JSON
        if not path.is_file():
            return
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
            entries = {e["id"]: e for e in previous["jobs"] if isinstance(e, dict)}
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise UserError(f"cannot resume from it: {err}", file=path, fix="remove it or leave out --resume") from None
        for job in self.jobs:
            old = entries.get(job.id) or {}
            report = old.get("report")
            if (
                old.get("status") in ("ok", "skipped")
                and old.get("digest") == job.digest
                and isinstance(report, str)
                and (self.out_dir / report).is_file()
            ):
                job.entry.update(
                    status="skipped",
                    report=report,
                    error=None,
                    note=f"report from an earlier run: {old.get('finished', 'unknown time')}",
                )

    def write(self) -> Path:
        return write_json_atomic(
            self.out_dir / SWEEP_JSON,
            {
                "schema": SCHEMA,
                "sweep_file": str(self.sweep_path),
                "address": self.address,
                "status": self.status,
                "started": self.started,
                "finished": None if self.status == "running" else now_iso(),
                "jobs": [job.entry for job in self.jobs],
            },
        )

    def record(self, job: Job, result: dict[str, Any] | None, error: str | None = None) -> None:
        """A job's outcome: its files into DIR, its entry into sweep.json, one line on the terminal."""
        if result is None:  # the job never reported back (a node lost, a worker killed)
            job.entry.update(status="crashed", error=error, report=None)
        else:
            job.entry.update(
                classify(result, self.timeout), seconds=result["seconds"], host=result["host"], node=result["node"]
            )
            try:
                store_files(self.out_dir, result["files"])
            except ValueError as err:
                job.entry.update(status="crashed", error=str(err), report=None)
            log = self.out_dir / "logs" / f"{job.id}.log"
            atomic_write_bytes(log, result["log"])
            job.entry["log"] = log.relative_to(self.out_dir).as_posix()
        job.entry["finished"] = now_iso()
        self.write()
        done = sum(j.entry["status"] != "pending" for j in self.jobs)
        where = f" on {job.entry['host']}" if self.address and job.entry.get("host") else ""
        detail = job.entry["report"] if job.entry["status"] == "ok" else job.entry["error"]
        print(f"[{done}/{len(self.jobs)}] {job.entry['status']:<7} {job.id}{where}: {detail}", flush=True)

    def pending(self) -> list[Job]:
        return [job for job in self.jobs if job.entry["status"] == "pending"]


def run_local(sweep: Sweep) -> None:
    from core.fleet.job import run_job

    for job in sweep.pending():
        print(f"running {job.id}", flush=True)
        sweep.record(job, run_job(job.spec(sweep.timeout)))


def _alive_hardware(ray) -> dict[str, list[str]]:
    """Hardware type -> the alive nodes (ids) that declare it and a benchmark slot."""
    found: dict[str, list[str]] = {}
    for node in ray.nodes():
        resources = node.get("Resources") or {}
        if node.get("Alive") and resources.get(SLOT_RESOURCE, 0) >= 1:
            for name in resources:
                if name.startswith(HW_PREFIX):
                    found.setdefault(name[len(HW_PREFIX) :], []).append(node["NodeID"])
    return found


def connect(address: str):
    """Join an existing Ray cluster as a driver: no dashboard, no usage reporting."""
    host, _, port = address.rpartition(":")
    if host and port.isdigit():  # Ray retries an unreachable address for minutes: ask once, quickly
        try:
            socket.create_connection((host, int(port)), timeout=PROBE_SECONDS).close()
        except OSError as err:
            raise UserError(
                f"cannot reach the Ray head at {address}: {err.strerror or err}",
                field="--address",
                fix="start it with `ray start --head --port=6379 ...` and pass HEAD_IP:6379",
            ) from None
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    try:
        ray.init(address=address, logging_level="WARNING", log_to_driver=False)
    except (ConnectionError, ValueError, RuntimeError) as err:
        raise UserError(
            f"cannot connect to the Ray cluster: {str(err).splitlines()[0] if str(err) else type(err).__name__}",
            field="--address",
            fix="start one with `ray start --head ...` and pass its address (host:6379)",
        ) from None
    return ray


def run_on_cluster(sweep: Sweep, ray) -> None:
    from ray.exceptions import RayError

    from core.fleet.job import run_job

    remote = ray.remote(run_job)
    running: dict[Any, Job] = {}
    for job in sweep.pending():
        options = remote.options(
            resources={hw_resource(job.hardware_type): 1, SLOT_RESOURCE: 1},
            num_cpus=0,
            max_retries=0,
            name=f"perfbench:{job.id}",
        )
        running[options.remote(job.spec(sweep.timeout))] = job
    while running:
        ready, _ = ray.wait(list(running), num_returns=1, timeout=NODE_CHECK_SECONDS)
        if not ready:
            _fail_stranded(sweep, ray, running)
            continue
        job = running.pop(ready[0])
        try:
            sweep.record(job, ray.get(ready[0]))
        except RayError as err:  # the node died, the worker was killed, the object was lost
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            sweep.record(job, None, f"lost: {type(err).__name__}: {first}"[:500])


def _fail_stranded(sweep: Sweep, ray, running: dict) -> None:
    """Jobs whose hardware type no alive node declares any more would wait forever: crash them."""
    alive = _alive_hardware(ray)
    for ref, job in list(running.items()):
        if job.hardware_type not in alive:
            ray.cancel(ref, force=True)
            running.pop(ref)
            sweep.record(job, None, f"no alive node declares hardware type {job.hardware_type} any more")


# ---------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog("core.sweep", "sweep"),
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="sweep file: tasks: [...], hardware_types: [...], optional job_timeout_seconds and workload overrides",
    )
    parser.add_argument(
        "sweep_file", type=Path, metavar="SWEEP.yaml", help="the sweep: tasks, hardware types, workload overrides"
    )
    parser.add_argument(
        "--output-dir",
        "--output_dir",
        dest="output_dir",
        type=Path,
        default=Path("reports"),
        help="where reports, logs and sweep.json go (default reports/)",
    )
    parser.add_argument(
        "--address",
        default=None,
        help="a Ray cluster to run on (host:port, or auto); without it jobs run here, one at a time",
    )
    parser.add_argument(
        "--resume", action="store_true", help="skip jobs that finished ok in an earlier sweep into the same folder"
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: _sweep(args), debug=args.debug)


def _plan(args: argparse.Namespace, ray) -> Sweep:
    """Every job checked before the first one starts: a bad sweep is one line, exit 2."""
    import backends

    config, overrides = load_sweep(args.sweep_file)
    known = backends.hardware_types()
    if ray is not None:
        alive = _alive_hardware(ray)
        for i, hw in enumerate(config.hardware_types):
            if hw not in alive:
                raise UserError(
                    f"no alive node of the cluster declares hardware type '{hw}'",
                    file=args.sweep_file,
                    field=f"hardware_types[{i}]",
                    fix=f'join one with: ray start --address=HEAD --resources=\'{{"{hw_resource(hw)}": 1, '
                    f'"{SLOT_RESOURCE}": 1}}\'; declared: {", ".join(sorted(alive)) or "none"}',
                )
        known = sorted(set(known) | set(alive))
    jobs = plan_jobs(config, overrides, args.sweep_file, known)
    sweep = Sweep(args.sweep_file, args.output_dir, jobs, args.address, config.job_timeout_seconds)
    if args.resume:
        sweep.resume()
    return sweep


def _sweep(args: argparse.Namespace) -> int:
    ray = None
    try:
        ray = connect(args.address) if args.address else None
        sweep = _plan(args, ray)
        for job in sweep.jobs:
            atomic_write_bytes(args.output_dir / "workloads" / job.workload_name, job.workload_text.encode())
        sweep.write()
        skipped = len(sweep.jobs) - len(sweep.pending())
        print(
            f"sweep: {len(sweep.jobs)} jobs ({skipped} skipped), "
            + (f"on the Ray cluster at {args.address}" if ray else "here, one at a time"),
            flush=True,
        )
        started = time.monotonic()
        try:
            run_on_cluster(sweep, ray) if ray else run_local(sweep)
            sweep.status = "complete"
        except KeyboardInterrupt:
            sweep.status = "interrupted"
            sweep.write()
            print("interrupted: sweep.json lists what finished; --resume goes on from there", file=sys.stderr)
            return EXIT_INTERRUPTED
        sweep.write()
    finally:
        if ray is not None:
            ray.shutdown()
    _print_summary(sweep, time.monotonic() - started)
    return 0 if all(job.entry["status"] in ("ok", "skipped") for job in sweep.jobs) else EXIT_FAILED


def _print_summary(sweep: Sweep, seconds: float) -> None:
    from core.reporting.leaderboard import collect, leaderboard_tables
    from core.reporting.tables import render_text

    groups, warnings = collect(sweep.out_dir)
    sys.stdout.write(
        render_text(leaderboard_tables(groups), [("warning", w) for w in warnings], "table", color=sys.stdout.isatty())
    )
    counts: dict[str, int] = {}
    for job in sweep.jobs:
        counts[job.entry["status"]] = counts.get(job.entry["status"], 0) + 1
    shown = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    print(f"sweep: {shown} in {seconds:.1f} s; {sweep.out_dir / SWEEP_JSON}")
    for job in sweep.jobs:
        if job.entry["status"] in ("failed", "crashed"):
            print(f"  {job.entry['status']}: {job.id}: {job.entry['error']}")


if __name__ == "__main__":
    sys.exit(main())
