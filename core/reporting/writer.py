"""Writing a run's report: the latest `result-<precision>.json` and the kept `runs/<run id>.json`, each
with its HTML page. The JSON holds the measurements and is written first, atomically; the page is best
effort (a plotting failure costs the page, with a warning, never the results)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.common.arrays import save_arrays
from core.common.atomic import atomic_write_text
from core.reporting.report import RunReport, write_json_atomic
from core.reporting.report_io import LATENCY_SAMPLES, LLM_SAMPLES


def write_report(report: RunReport, out_dir: Path) -> Path:
    """Keep the run under runs/ and make it the latest result (unless it replaces none); returns the file
    people read: the latest report, or the kept run when it does not replace the latest."""
    folder = report.folder(out_dir)
    data = report.to_dict()
    latest = folder / f"result-{report.precision.lower()}.json"
    kept = folder / "runs" / f"{report.run_id}.json"
    targets = (kept, latest) if report.replaces_latest else (kept,)
    for path in targets:
        write_json_atomic(path, data)
    written = report.written = latest if report.replaces_latest else kept
    if report.samples:  # compact and pickle-free: one int64 array of nanoseconds per batch size
        arrays = {f"bs{bs}": np.asarray(values, dtype=np.int64) for bs, values in report.samples.items()}
        # A folder of its own, like LoadGen's logs: runs/*.json stays one file per kept run.
        save_arrays(
            kept.parent / f"{report.run_id}-samples" / LATENCY_SAMPLES,
            arrays,
            {"unit": "ns", "what": "latency of every timed call, in completion order", "run": report.run_id},
        )
    if report.llm_samples:  # per load point and figure: tp1-bs4-in128-out32/ttft_ns, ...
        arrays = {
            f"{point}/{name}": np.asarray(values, dtype=np.int64)
            for point, figures in report.llm_samples.items()
            for name, values in figures.items()
        }
        save_arrays(
            kept.parent / f"{report.run_id}-samples" / LLM_SAMPLES,
            arrays,
            {
                "unit": "ns",
                "what": "per request in completion order: TTFT, TPOT, E2E; token_ns: every token's time from the "
                "window's start",
                "run": report.run_id,
            },
        )
    try:
        from core.reporting.html_report import render_run_html

        # Plots are inlined, so one rendering serves both copies (plotting is the slow part).
        page = render_run_html(data, base_dir=folder)
        for path in targets:
            atomic_write_text(path.with_suffix(".html"), page)
    except Exception as err:  # any plotting/rendering failure; the JSON is already safe
        from core.common import console

        console.warn(f"HTML page not written ({type(err).__name__}: {err}); the JSON report is complete: {written}")
    return written
