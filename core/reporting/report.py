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
from core.reporting.schema import SCHEMA, PerfRow


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


@dataclass
class RunReport:
    """Filled in as the run goes, so an interrupted run can still be written with what it measured."""

    model: str
    backend: str
    precision: str
    dataset: str | None
    run_id: str = field(default_factory=new_run_id)
    started: str = field(default_factory=now_iso)
    sections: dict[str, Any] = field(default_factory=dict)  # every other top-level key: Host, Accuracy, ...
    performance: list[PerfRow] = field(default_factory=list)
    status: str = "running"
    notes: list[str] = field(default_factory=list)
    replaces_latest: bool = True  # False: kept under runs/ only (a compile-only run measured nothing to show)
    instance_count: int = 1  # runtime instances that ran at once (clients on their own instances)
    finished: str | None = None  # set when read back; a report being written is stamped with the time
    command: list[str] = field(default_factory=lambda: list(sys.argv))
    written: Path | None = None  # where write() put the report people read (the latest, or the kept run)

    @property
    def failed_batch_sizes(self) -> list[int]:
        return [row.bs for row in self.performance if not row.ok]

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "Schema": SCHEMA,
            "Model": self.model,
            "Backend": self.backend,
            "Host Info": self.sections.get("Host", {}).get("cpu", ""),
            "Dataset": self.dataset,
            "Instance Count": self.instance_count,
            "Device Count": 1,
        }
        for key in ("Graph Compile", "Accuracy"):
            if key in self.sections:
                data[key] = self.sections[key]
        data["Performance"] = [row.to_dict() for row in self.performance]
        for key, value in self.sections.items():
            if key not in data:
                data[key] = value
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
    def from_dict(cls, data: dict[str, Any]) -> RunReport:
        """A report as to_dict wrote it (ByteMLPerf's reports read through report_io.normalize_report instead)."""
        run = data.get("Run") or {}
        fixed = (
            "Schema",
            "Model",
            "Backend",
            "Host Info",
            "Dataset",
            "Instance Count",
            "Device Count",
            "Performance",
            "Run",
        )
        return cls(
            model=data["Model"],
            backend=data["Backend"],
            precision=run.get("precision", ""),
            dataset=data.get("Dataset"),
            run_id=run.get("id", ""),
            started=run.get("started", ""),
            finished=run.get("finished"),
            status=run.get("status", "running"),
            notes=list(run.get("notes", [])),
            command=list(run.get("command", [])),
            instance_count=data.get("Instance Count", 1),
            performance=[PerfRow.from_dict(row) for row in data.get("Performance", [])],
            sections={key: value for key, value in data.items() if key not in fixed},
        )

    def folder(self, out_dir: Path) -> Path:
        return out_dir / self.backend / self.model

    def write(self, out_dir: Path) -> Path:
        """Keep this run under runs/ and make it the latest result-<precision>.json, each with an HTML page.

        The JSON holds the measurements and is written first; the HTML page is best effort (a plotting
        failure costs the page, with a warning, never the results). Returns the latest report's path, or
        the kept run's when this run does not replace the latest.
        """
        folder = self.folder(out_dir)
        data = self.to_dict()
        latest = folder / f"result-{self.precision.lower()}.json"
        kept = folder / "runs" / f"{self.run_id}.json"
        for path in (kept, latest) if self.replaces_latest else (kept,):
            write_json_atomic(path, data)
        written = self.written = latest if self.replaces_latest else kept
        try:
            from core.reporting.html_report import render_run_html

            # Plots are inlined, so one rendering serves both copies (plotting is the slow part).
            page = render_run_html(data, base_dir=folder)
            for path in (kept, latest) if self.replaces_latest else (kept,):
                atomic_write_text(path.with_suffix(".html"), page)
        except Exception as err:  # noqa: BLE001 - any plotting/rendering failure; the JSON is already safe
            from core.common import console

            console.warn(f"HTML page not written ({type(err).__name__}: {err}); the JSON report is complete: {written}")
        return written
