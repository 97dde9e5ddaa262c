"""The run report: ByteMLPerf's keys plus ours, written atomically, with every run kept.

Latest run:  <out>/<HW>/<model>/result-<precision>.json
Every run:   <out>/<HW>/<model>/runs/<run id>.json
"""

from __future__ import annotations

import json
import secrets
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from core.common.atomic import atomic_write_text
from core.common.errors import UserError
from core.reporting.llm_rows import LlmRow, is_llm_row
from core.reporting.schema import BS, QPS, SCHEMA, PerfRow, as_number, as_text
from core.reporting.sections import (
    COMPILE_MEMORY,
    Accuracy,
    GraphCompile,
    HostInfo,
    LoadGenResult,
    Weights,
)


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return f"{now:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_json_atomic(path: Path, data: Any) -> Path:
    """JSON through a temporary file and a rename: readers never see half a report."""
    return atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False, default=str) + "\n")


def _json_safe(value: Any) -> Any:
    """NaN/Inf are not JSON: report them as strings rather than as numbers nobody measured."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


# Top-level keys the typed fields hold; every other top-level key is kept in `sections` as written.
TYPED_KEYS = (
    "Schema",
    "Model",
    "Backend",
    "Host Info",
    "Dataset",
    "Instance Count",
    "Device Count",
    "Graph Compile",
    "Accuracy",
    "Performance",
    "Host",
    "Weights",
    "LoadGen",
    "Run",
)


@dataclass
class RunReport:
    """A run's report, ours or ByteMLPerf's: filled in as a run goes (so an interrupted run can still be
    written with what it measured), and what compare, summary and the HTML page read back."""

    model: str
    backend: str
    precision: str
    dataset: str | None
    run_id: str = field(default_factory=new_run_id)
    started: str | None = field(default_factory=now_iso)
    graph_compile: GraphCompile | None = None
    accuracy: Accuracy | None = None
    performance: list[PerfRow] = field(default_factory=list)
    llm_rows: list[LlmRow] = field(default_factory=list)  # an LLM run's Performance: one row per load point
    loadgen: list[LoadGenResult] = field(default_factory=list)
    host: HostInfo | None = None
    weights: Weights | None = None
    sections: dict[str, Any] = field(default_factory=dict)  # the others: Config, Software, Assets, Runtime, ...
    status: str | None = "running"  # None: a report that does not say (ByteMLPerf's)
    notes: list[str] = field(default_factory=list)
    replaces_latest: bool = True  # False: kept under runs/ only (a compile-only run measured nothing to show)
    instance_count: int = 1  # runtime instances that ran at once (clients on their own instances)
    device_count: int = 1  # devices the backend ran on
    finished: str | None = None  # set when read back; a report being written is stamped with the time
    command: list[str] = field(default_factory=lambda: list(sys.argv))
    written: Path | None = None  # where write() put the report people read (the latest, or the kept run)
    # Set when read back (from_dict): where from, which format, what could not be read.
    source: Path | None = None
    schema: str | None = SCHEMA
    host_info: str | None = None  # ByteMLPerf's one-line Host Info, where no Host section says more
    execution_date: str | None = None  # ByteMLPerf's Execution Date
    read_notes: list[str] = field(default_factory=list)
    # Every timed call's latency (ns) per batch size, as measured: written beside the kept run, not into it.
    samples: dict[int, tuple[int, ...]] = field(default_factory=dict, repr=False)
    # An LLM run's per-request figures per load point ("tp1-bs4-in128-out32" -> {"ttft_ns": ..., "tpot_ns": ...,
    # "e2e_ns": ..., "token_ns": every token's time from the window's start}): kept beside the run like `samples`.
    llm_samples: dict[str, dict[str, tuple[int, ...]]] = field(default_factory=dict, repr=False)
    # The runs this report stands for, as one side of a comparison (reporting.pooled); empty for one run.
    repeats: tuple[RunReport, ...] = field(default=(), repr=False)

    @property
    def failed_batch_sizes(self) -> list[int]:
        return [row.bs for row in self.performance if not row.ok] + [
            row.batch_size for row in self.llm_rows if not row.ok
        ]

    @property
    def is_llm(self) -> bool:
        return bool(self.llm_rows) or self.sections.get("Kind") == "llm"

    @property
    def format(self) -> str:
        return "perfbench" if self.schema == SCHEMA else ("other" if self.schema else "bytemlperf")

    @property
    def perf_by_bs(self) -> dict[int, PerfRow]:
        return {row.bs: row for row in sorted(self.performance, key=lambda row: row.bs)}

    def run_values(self, bs: int, metric: str) -> tuple[float, ...] | None:
        """The values of `metric` at `bs` of the runs this report pools (those that measured it), or None
        for a report of one run (compare tests its kept samples instead)."""
        if not self.repeats:
            return None
        rows = (r.perf_by_bs.get(bs) for r in self.repeats)
        values = (row.number(metric) for row in rows if row is not None and row.ok)
        return tuple(v for v in values if v is not None)

    def llm_run_values(self, point: tuple, metric: str) -> tuple[float, ...] | None:
        """As run_values, for an LLM load point (LlmRow.point) and figure (LlmRow.figure)."""
        if not self.repeats:
            return None
        rows = (row for r in self.repeats for row in r.llm_rows if row.point == point and row.ok)
        return tuple(v for row in rows if (v := row.figure(metric)) is not None)

    @property
    def loadgen_by_scenario(self) -> dict[str, LoadGenResult]:
        found: dict[str, LoadGenResult] = {}
        for entry in self.loadgen:
            if entry.scenario and entry.scenario not in found:
                found[entry.scenario] = entry
        return found

    @property
    def engine(self) -> str | None:
        return as_text(self.graph_compile.engine) if self.graph_compile else None

    @property
    def precision_ran(self) -> str | None:
        return as_text(self.graph_compile.compile_precision) if self.graph_compile else None

    @property
    def host_cpu(self) -> str | None:
        return (as_text(self.host.cpu) if self.host else None) or self.host_info

    @property
    def host_processor(self) -> str | None:
        """The readable processor line ('AMD EPYC (family 25 model 17, Zen 4)'), else the model name."""
        return (as_text(self.host.processor) if self.host else None) or self.host_cpu

    @property
    def host_identity(self) -> str | None:
        """What makes two runs' hosts the same kind: the fingerprint where the report has one (processors that
        share a name differ in it), else the processor's name (older reports, ByteMLPerf's)."""
        fingerprint = as_text(self.host.fingerprint) if self.host else None
        return f"{self.host_processor} [{fingerprint}]" if fingerprint else self.host_cpu

    @property
    def host_device(self) -> str | None:
        """The accelerator that ran, where one did (its one-line summary)."""
        return as_text(self.host.accelerator) if self.host else None

    @property
    def host_line(self) -> str:
        """ByteMLPerf's one-line Host Info: the processor, and the accelerator where one ran."""
        return "; ".join(part for part in (self.host_cpu, self.host_device) if part)

    @property
    def weights_kind(self) -> str | None:
        return as_text(self.weights.kind) if self.weights else None

    @property
    def data_percent(self) -> float | None:
        return as_number(self.accuracy.data_percent) if self.accuracy else None

    @property
    def quality(self) -> dict[str, float]:
        """The task's quality metrics, then the counts of outputs that did not score."""
        return {**self.accuracy.quality(), **self.accuracy.problems()} if self.accuracy else {}

    @property
    def against_published(self) -> dict[str, float]:
        """Ours minus the published figure per metric, with real weights (Accuracy.against_published)."""
        return self.accuracy.against_published() if self.accuracy else {}

    @property
    def published_differences(self) -> dict[str, tuple[float, float]]:
        """metric -> (published figure, ours minus it), with real weights (Accuracy.published_differences)."""
        return self.accuracy.published_differences() if self.accuracy else {}

    @property
    def numeric(self) -> dict[str, float]:
        return self.accuracy.drift.statistics() if self.accuracy and self.accuracy.drift else {}

    @property
    def compile_memory(self) -> dict[str, float]:
        if self.graph_compile is None:
            return {}
        values = {shown: as_number(getattr(self.graph_compile, name)) for name, shown in COMPILE_MEMORY.items()}
        return {shown: value for shown, value in values.items() if value is not None}

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "Schema": SCHEMA,
            "Model": self.model,
            "Backend": self.backend,
            "Host Info": self.host_line,
            "Dataset": self.dataset,
            "Instance Count": self.instance_count,
            "Device Count": self.device_count,
        }
        if self.graph_compile is not None:
            data["Graph Compile"] = self.graph_compile.to_dict()
        if self.accuracy is not None:
            data["Accuracy"] = self.accuracy.to_dict()
        if self.is_llm:  # llm_perf's Version and Execution Date, and its rows
            data["Version"] = self.sections.get("Software", {}).get("perfbench")
            data["Execution Date"] = self.started
            data["Performance"] = [row.to_dict() for row in self.llm_rows]
        else:
            data["Performance"] = uniform_rows([row.to_dict() for row in self.performance])
        if self.host is not None:
            data["Host"] = self.host.to_dict()
        if self.weights is not None:
            data["Weights"] = self.weights.to_dict()
        if self.loadgen:
            data["LoadGen"] = [entry.to_dict() for entry in self.loadgen]
        for key, value in self.sections.items():
            data.setdefault(key, value)
        data["Run"] = {
            "id": self.run_id,
            "status": self.status,
            "started": self.started,
            "finished": self.finished or (now_iso() if self.status != "running" else None),
            "command": self.command,
            "notes": self.notes,
            "precision": self.precision,
        }
        return _json_safe(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: Path | None = None) -> RunReport:
        """A report as we or ByteMLPerf (and its vendors) write it. Reports are untrusted: a section of the
        wrong type reads as absent; only rows that cannot be keyed (a missing, bad or repeated BS) are a
        UserError naming `source`."""
        run = data.get("Run") if isinstance(data.get("Run"), dict) else {}
        config = data.get("Config") if isinstance(data.get("Config"), dict) else {}
        read_notes: list[str] = []
        rows = data.get("Performance")
        llm = isinstance(rows, list) and any(is_llm_row(row) for row in rows)
        notes = run.get("notes")
        report = cls(
            model=as_text(data.get("Model")) or "",
            backend=as_text(data.get("Backend")) or as_text(config.get("backend")) or "",
            precision=as_text(run.get("precision")) or "",
            dataset=as_text(data.get("Dataset")),
            run_id=as_text(run.get("id")) or "",
            started=as_text(run.get("started")),
            finished=as_text(run.get("finished")),
            status=as_text(run.get("status")),
            notes=[str(note) for note in notes] if isinstance(notes, list) else [],
            command=[str(part) for part in run.get("command")] if isinstance(run.get("command"), list) else [],
            instance_count=_count(data.get("Instance Count")),
            device_count=_count(data.get("Device Count")),
            graph_compile=GraphCompile.from_dict(data["Graph Compile"]) if "Graph Compile" in data else None,
            accuracy=Accuracy.from_dict(data["Accuracy"]) if "Accuracy" in data else None,
            performance=[] if llm else _perf_rows(rows, source, read_notes),
            llm_rows=_llm_rows(rows, source) if llm else [],
            loadgen=[LoadGenResult.from_dict(entry) for entry in data.get("LoadGen") or [] if isinstance(entry, dict)]
            if isinstance(data.get("LoadGen"), list)
            else [],
            host=HostInfo.from_dict(data["Host"]) if isinstance(data.get("Host"), dict) else None,
            weights=Weights.from_dict(data["Weights"]) if isinstance(data.get("Weights"), dict) else None,
            sections={key: value for key, value in data.items() if key not in TYPED_KEYS},
            source=Path(source) if source is not None else None,
            schema=as_text(data.get("Schema")),
            host_info=as_text(data.get("Host Info")) or None,
            execution_date=_date(data.get("Execution Date")),
            read_notes=read_notes,
        )
        return report

    def folder(self, out_dir: Path) -> Path:
        return out_dir / self.backend / self.model


def uniform_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every row with the same keys, in the same order: a value a row could not have is null, and the row says
    why (`Error` for a failed row, `Tail Backing` for an unbacked bound, `Energy Note`). ByteMLPerf's
    build_pdf.py takes its table header from the first row's keys."""
    keys = list(dict.fromkeys(key for row in rows for key in row))
    return [{key: row.get(key) for key in keys} for row in rows]


def _count(value: Any) -> int:
    number = as_number(value)
    return int(number) if number is not None and number >= 1 and number == int(number) else 1


def _batch_size(value: Any, source: Path | None, where: str) -> int:
    number = as_number(value)
    if number is None or number < 1 or number != int(number):
        raise UserError(
            f"batch size {value!r} is not a positive integer",
            file=source,
            field=where,
            fix="every Performance row needs an integer BS",
        )
    return int(number)


def _perf_rows(rows: Any, source: Path | None, notes: list[str]) -> list[PerfRow]:
    """The rows, each keyed by a whole batch size; keys we cannot read are named in `notes`, never dropped silently."""
    if rows is None:
        return []
    if not isinstance(rows, list):
        raise UserError(
            f"expected a list of rows, got a JSON {type(rows).__name__}",
            file=source,
            field="Performance",
            fix="Performance is [{BS, QPS, AVG Latency, P99 Latency, ...}]",
        )
    found: list[PerfRow] = []
    seen: set[int] = set()
    ignored: set[str] = set()
    for i, raw in enumerate(rows):
        if not isinstance(raw, dict):
            raise UserError("expected an object", file=source, field=f"Performance[{i}]")
        row = PerfRow.from_dict(raw)
        ignored.update(row.extra)
        row.bs = _batch_size(row.bs, source, f"Performance[{i}].{BS}")
        if row.bs in seen:
            raise UserError(f"batch size {row.bs} appears twice", file=source, field=f"Performance[{i}].{BS}")
        seen.add(row.bs)
        row.status = (as_text(row.status) or "").lower() or ("ok" if row.number(QPS) is not None else "failed")
        found.append(row)
    if ignored:
        notes.append(f"Performance rows hold keys not read here: {', '.join(sorted(ignored))}")
    return found


def _llm_rows(rows: list, source: Path | None) -> list[LlmRow]:
    """LLM rows, each keyed by its load point; a repeated point is a UserError naming `source`."""
    found: list[LlmRow] = []
    seen: set[tuple] = set()
    for i, raw in enumerate(rows):
        if not isinstance(raw, dict):
            raise UserError("expected an object", file=source, field=f"Performance[{i}]")
        row = LlmRow.from_dict(raw)
        row.status = (as_text(row.status) or "ok").lower()
        for name in ("tp_size", "batch_size", "input_tokens", "output_tokens"):
            number = as_number(getattr(row, name))
            setattr(row, name, int(number) if number is not None and number == int(number) else None)
        if row.batch_size is None or row.batch_size < 1:
            raise UserError("an LLM row needs a positive integer Batch Size", file=source, field=f"Performance[{i}]")
        if row.point in seen:
            raise UserError(f"load point {row.label} appears twice", file=source, field=f"Performance[{i}]")
        seen.add(row.point)
        found.append(row)
    return found


def _date(value: Any) -> str | None:
    """ByteMLPerf's `Execution Date` ("2023-08-01 10:00:00") as ISO 8601 where it parses, else as written."""
    text = as_text(value)
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.strip()).isoformat(timespec="seconds")
    except ValueError:
        return text
