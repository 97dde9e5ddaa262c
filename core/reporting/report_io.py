"""Reading reports people compare: ours (`perfbench-report/1`) and ByteMLPerf's, by path or run id.

Reports are untrusted input: anything may be missing or of the wrong type. `read_report` gives the
typed `RunReport` of either format (sections typed, numbers read through `number()`), so compare,
summary and the HTML page never touch the raw keys.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import zipfile
from pathlib import Path
from typing import Any

from core.common.errors import UserError
from core.reporting.report import RunReport

MAX_REPORT_BYTES = 16 << 20


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


def check_report(data: Any, source: Path | None = None) -> RunReport:
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
    return RunReport.from_dict(data, source=source)


def read_report(path: Path) -> tuple[dict[str, Any], RunReport]:
    """One report file: its JSON as written (for pages that show every section) and its typed report,
    with the run's kept latency samples where they are beside it."""
    data = read_report_file(path)
    report = RunReport.from_dict(data, source=Path(path))
    report.samples = read_samples(report)
    report.llm_samples = read_llm_samples(report)
    return data, report


# What new_run_id makes: a run id read from a file is checked against it before it names a path.
RUN_ID = re.compile(r"\d{8}T\d{6}-[0-9a-f]{6}")


# The files of a run's samples folder: per-call latencies, and an LLM run's per-request figures.
LATENCY_SAMPLES = "latency.npz"
LLM_SAMPLES = "llm.npz"


def samples_file(report: RunReport, name: str = LATENCY_SAMPLES) -> Path | None:
    """Where the writer kept this run's samples: `runs/<run id>-samples/<name>` next to the kept run,
    whether `report` was read from the kept run or from the latest result."""
    if report.source is None or not RUN_ID.fullmatch(report.run_id or ""):
        return None
    runs = report.source.parent if report.source.parent.name == "runs" else report.source.parent / "runs"
    return runs / f"{report.run_id}-samples" / name


def read_samples(report: RunReport) -> dict[int, tuple[int, ...]]:
    """The run's latencies (ns) per batch size, where kept and consistent with its rows; a file that is
    there but unreadable, or does not match the report's iteration counts, is noted and ignored."""
    from core.common.arrays import load_arrays

    path = samples_file(report)
    if path is None or not path.is_file():
        return {}
    try:
        arrays, _ = load_arrays(path)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        report.read_notes.append(f"latency samples unreadable, ignored ({path}: {err})")
        return {}
    samples: dict[int, tuple[int, ...]] = {}
    for bs, row in report.perf_by_bs.items():
        array = arrays.get(f"bs{bs}")
        if array is None or not row.ok:
            continue
        if array.ndim != 1 or array.dtype.kind not in "iu" or len(array) != row.number("Iterations"):
            report.read_notes.append(
                f"latency samples of batch size {bs} do not match its row ({len(array)} vs "
                f"{row.iterations} iterations), ignored ({path})"
            )
            continue
        samples[bs] = tuple(int(v) for v in array)
    return samples


def read_llm_samples(report: RunReport) -> dict[str, dict[str, tuple[int, ...]]]:
    """An LLM run's per-request figures (ns) per load point, where kept and consistent with its rows (as many
    TTFTs as the row's Request Number); anything else is noted and ignored."""
    from core.common.arrays import load_arrays

    path = samples_file(report, LLM_SAMPLES)
    if not report.llm_rows or path is None or not path.is_file():
        return {}
    try:
        arrays, _ = load_arrays(path)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        report.read_notes.append(f"LLM samples unreadable, ignored ({path}: {err})")
        return {}
    samples: dict[str, dict[str, tuple[int, ...]]] = {}
    for row in report.llm_rows:
        prefix = f"{row.key}/"
        figures = {name[len(prefix) :]: array for name, array in arrays.items() if name.startswith(prefix)}
        if not figures or not row.ok:
            continue
        ttft = figures.get("ttft_ns")
        if (
            ttft is None
            or len(ttft) != row.request_number
            or any(a.ndim != 1 or a.dtype.kind not in "iu" for a in figures.values())
        ):
            report.read_notes.append(f"LLM samples of {row.label} do not match its row ({path}), ignored")
            continue
        samples[row.key] = {name: tuple(int(v) for v in array) for name, array in figures.items()}
    return samples


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
