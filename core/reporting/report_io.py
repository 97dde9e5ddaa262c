"""Reading reports people compare: ours (`perfbench-report/1`) and ByteMLPerf's, by path or run id.

Reports are untrusted input: anything may be missing or of the wrong type. `normalize_report` gives
one uniform view (numbers as float or None, performance rows keyed by batch size) so the compare,
summary and HTML code never touch the raw keys.
"""

from __future__ import annotations

import difflib
import json
import math
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from core.common.errors import UserError
from core.reporting.schema import (
    ACCURACY_COUNTS,
    ACCURACY_PROBLEMS,
    BS,
    COMPILE_MEMORY_KEYS,
    LOADGEN_KEYS,
    NUMERIC_KEYS,
    PERF_KEYS,
    QPS,
    ROW_KEYS,
    SCHEMA,
    PerfRow,
)

MAX_REPORT_BYTES = 16 << 20


def quality_metrics(accuracy: dict[str, Any]) -> dict[str, float]:
    """The task's quality numbers in an Accuracy section (EM, F1, accuracy…): no counts, drift or problems."""
    skip = (*NUMERIC_KEYS, *ACCURACY_COUNTS, *ACCURACY_PROBLEMS)
    return {
        key: float(value)
        for key, value in accuracy.items()
        if key not in skip and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    }


def run_files(reports_dir: Path) -> list[Path]:
    """Every kept run: `<reports_dir>/**/runs/<run id>.json`."""
    return sorted(Path(reports_dir).glob("**/runs/*.json"))


def resolve_report_path(path_or_id: str | Path, reports_dir: Path = Path("reports")) -> Path:
    """A report file from a path, a run id, or a unique prefix of a run id."""
    text = str(path_or_id)
    path = Path(text)
    if path.is_file():
        return path
    if path.exists():
        raise UserError("is not a file", file=path, fix="give a report .json file or a run id")
    if isinstance(path_or_id, Path) or "/" in text or os.sep in text or text.endswith(".json"):
        raise UserError("no such report file", file=path, fix="check the path, or give a run id")
    runs = run_files(reports_dir)
    exact = [p for p in runs if p.stem == text]
    found = exact or [p for p in runs if p.stem.startswith(text)]
    if len(found) == 1:
        return found[0]
    if found:
        listing = ", ".join(str(p) for p in found[:8])
        raise UserError(
            f"run id {text!r} is ambiguous: {listing}",
            file=reports_dir,
            fix="give the report's path or a longer run id",
        )
    close = difflib.get_close_matches(text, sorted({p.stem for p in runs}), n=5, cutoff=0.5)
    hint = f"close matches: {', '.join(close)}" if close else f"{len(runs)} runs kept there"
    raise UserError(
        f"no report file or run id {text!r}",
        file=reports_dir,
        field="runs",
        fix=f"{hint}; list them with `python -m core.summary {reports_dir} --all`",
    )


def read_report_file(path: Path) -> dict[str, Any]:
    """Load and check one report file; a file that is not a report is a UserError naming it."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_REPORT_BYTES:
            raise UserError(f"larger than {MAX_REPORT_BYTES >> 20} MiB, not a report", file=path)
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read: {err}", file=path) from err
    except json.JSONDecodeError as err:
        raise UserError(
            f"not valid JSON (line {err.lineno}, column {err.colno}): {err.msg}",
            file=path,
            fix="give a report written by perfbench or ByteMLPerf",
        ) from err
    check_report(data, source=path)
    return data


def load_report(path_or_id: str | Path, reports_dir: Path = Path("reports")) -> dict[str, Any]:
    """The raw report dict for a path or run id (see resolve_report_path), checked by check_report."""
    return read_report_file(resolve_report_path(path_or_id, reports_dir))


def check_report(data: Any, source: Path | None = None) -> None:
    """A report is an object with a `Model` and at least one result section; rows need a batch size."""
    fix = "give a report written by perfbench or ByteMLPerf (reports/<HW>/<model>/result-<precision>.json)"
    if not isinstance(data, dict):
        raise UserError(
            f"not a report: the top level is a JSON {type(data).__name__}, not an object", file=source, fix=fix
        )
    if "Model" not in data:
        raise UserError("not a report: no `Model` key", file=source, field="Model", fix=fix)
    if not any(key in data for key in ("Performance", "Accuracy", "Graph Compile")):
        raise UserError(
            "not a report: no `Performance`, `Accuracy` or `Graph Compile` section",
            file=source,
            field="Performance",
            fix=fix,
        )
    normalize_report(data, source=source)


def as_number(value: Any) -> float | None:
    """A finite float, or None for anything missing, non-numeric or NaN."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.strip().rstrip("%"))
        except ValueError:
            return None
    else:
        return None
    return result if math.isfinite(result) else None


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)


def _section(data: dict, key: str) -> dict:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _batch_size(value: Any, source: Path | None, field: str) -> int:
    number = as_number(value)
    if number is None or number < 1 or number != int(number):
        raise UserError(
            f"batch size {value!r} is not a positive integer",
            file=source,
            field=field,
            fix="every Performance row needs an integer BS",
        )
    return int(number)


def _perf_rows(data: dict, source: Path | None, notes: list[str] | None = None) -> dict[int, dict[str, Any]]:
    """Rows keyed by batch size; keys we cannot read are named in `notes` instead of silently reading as missing."""
    rows = data.get("Performance", [])
    if rows is None:
        return {}
    if not isinstance(rows, list):
        raise UserError(
            f"expected a list of rows, got a JSON {type(rows).__name__}",
            file=source,
            field="Performance",
            fix="Performance is [{BS, QPS, AVG Latency, P99 Latency, ...}]",
        )
    perf: dict[int, dict[str, Any]] = {}
    ignored: set[str] = set()
    for i, raw in enumerate(rows):
        if not isinstance(raw, dict):
            raise UserError("expected an object", file=source, field=f"Performance[{i}]")
        row = PerfRow.from_dict(raw)
        ignored.update(row.extra)
        bs = _batch_size(row.bs, source, f"Performance[{i}].{BS}")
        if bs in perf:
            raise UserError(f"batch size {bs} appears twice", file=source, field=f"Performance[{i}].{BS}")
        values: dict[str, Any] = {
            key: as_number(getattr(row, name)) for name, key in ROW_KEYS.items() if key in PERF_KEYS
        }
        values["Status"] = (_text(row.status) or ("ok" if values[QPS] is not None else "failed")).lower()
        values["Error"] = _text(row.error)
        perf[bs] = values
    if ignored and notes is not None:
        notes.append(f"Performance rows hold keys not read here: {', '.join(sorted(ignored))}")
    return dict(sorted(perf.items()))


def _date(value: Any) -> str | None:
    """ByteMLPerf's `Execution Date` ("2023-08-01 10:00:00") as ISO 8601 where it parses, else as written."""
    text = _text(value)
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.strip()).isoformat(timespec="seconds")
    except ValueError:
        return text


def _loadgen_entries(data: dict) -> dict[str, dict[str, Any]]:
    """The `LoadGen` list keyed by scenario; entries without a scenario name are left out."""
    entries = data.get("LoadGen")
    result: dict[str, dict[str, Any]] = {}
    for entry in entries if isinstance(entries, list) else []:
        scenario = _text(entry.get("Scenario")) if isinstance(entry, dict) else None
        if scenario and scenario not in result:
            values: dict[str, Any] = {key: as_number(entry.get(key)) for key in LOADGEN_KEYS}
            values.update(
                Result=_text(entry.get("Result")),
                Status=_text(entry.get("Status")) or "ok",
                Log=_text(entry.get("Log Summary")),
                Error=_text(entry.get("Error")),
            )
            result[scenario] = values
    return result


def _diff_histogram(accuracy: dict) -> dict[str, list[float]] | None:
    """Optional `Diff Histogram {edges, counts}` (len(edges) == len(counts) + 1), else None."""
    hist = accuracy.get("Diff Histogram")
    if not isinstance(hist, dict):
        return None
    edges = [as_number(v) for v in hist.get("edges") or []] if isinstance(hist.get("edges"), list) else []
    counts = [as_number(v) for v in hist.get("counts") or []] if isinstance(hist.get("counts"), list) else []
    if not counts or len(edges) != len(counts) + 1 or None in edges or None in counts:
        return None
    return {"edges": edges, "counts": counts}


def normalize_report(data: dict[str, Any], source: Path | None = None) -> dict[str, Any]:
    """One uniform view of either report format; missing numbers are None, never an error.

    Raises UserError (naming `source`) only for rows that cannot be keyed: a missing or bad BS.
    """
    run = _section(data, "Run")
    weights = _section(data, "Weights")
    host = _section(data, "Host")
    compile_ = _section(data, "Graph Compile")
    accuracy = _section(data, "Accuracy")
    config = _section(data, "Config")
    quality = {
        key: as_number(value)
        for key, value in accuracy.items()
        if key not in NUMERIC_KEYS and key not in ACCURACY_COUNTS and as_number(value) is not None
    }
    schema = _text(data.get("Schema"))
    notes: list[str] = []
    perf = _perf_rows(data, source, notes)
    return {
        "source": str(source) if source is not None else None,
        "format": "perfbench" if schema == SCHEMA else ("other" if schema else "bytemlperf"),
        "schema": schema,
        "model": _text(data.get("Model")),
        "backend": _text(data.get("Backend")) or _text(config.get("backend")),
        "engine": _text(compile_.get("Engine")),
        "dataset": _text(data.get("Dataset")),
        "precision": _text(compile_.get("Compile Precision")),
        "weights_kind": _text(weights.get("kind")),
        "weights_note": _text(weights.get("note")),
        "host_cpu": _text(host.get("cpu")) or _text(data.get("Host Info")),
        "run_id": _text(run.get("id")),
        "run_status": _text(run.get("status")),
        "started": _text(run.get("started")),
        "finished": _text(run.get("finished")),
        "execution_date": _date(data.get("Execution Date")),
        "data_percent": as_number(accuracy.get("Data Percent")),
        "perf": perf,
        "notes": notes,
        "loadgen": _loadgen_entries(data),
        "accuracy": quality,
        "numeric": {key: as_number(accuracy[key]) for key in NUMERIC_KEYS if key in accuracy},
        "compile_memory": {
            name: as_number(compile_[key])
            for key, name in COMPILE_MEMORY_KEYS.items()
            if as_number(compile_.get(key)) is not None
        },
        "diff_dist": _text(accuracy.get("Diff Dist")),
        "diff_histogram": _diff_histogram(accuracy),
    }


def find_report_files(root: Path, include_runs: bool = False) -> list[Path]:
    """Latest reports (`result*.json`) under root, plus every kept run if include_runs."""
    root = Path(root)
    if not root.is_dir():
        raise UserError("no such folder", file=root, fix="give the reports folder (default: reports)")
    files = {p for p in root.glob("**/result*.json") if p.parent.name != "runs"}
    if include_runs:
        files.update(run_files(root))
    return sorted(files)


def hardware_of(path: Path) -> str | None:
    """`<HW>` from reports/<HW>/<model>/result-*.json or reports/<HW>/<model>/runs/<id>.json."""
    parts = Path(path).parts
    depth = 4 if len(parts) >= 4 and parts[-2] == "runs" else 3
    return parts[-depth] if len(parts) >= depth else None
