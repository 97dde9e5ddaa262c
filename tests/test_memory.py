"""Memory figures: the peak-RSS tracker, artifact sizes, and the report keys compare and the HTML show."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.measure import memory
from core.measure.memory import size_on_disk
from core.reporting.comparison import build_comparison, comparison_tables
from core.reporting.html_report import render_run_html
from core.reporting.report import RunReport

REPO = Path(__file__).resolve().parent.parent
BLOCK = 64 << 20


# Run in a fresh interpreter: in the test process, memory freed by earlier tests (engine arenas, a
# malloc that keeps large blocks) can serve the block without the resident set growing.
CHILD = """
import json, sys
import numpy as np
from core.measure import memory
from core.measure.memory import PeakRss

BLOCK = 64 << 20


def touched_block():
    block = np.empty(BLOCK, dtype=np.uint8)
    block.fill(1)  # untouched pages are not resident
    return block


if sys.argv[1] == "phases":
    with PeakRss() as big:
        block = touched_block()
        del block
    with PeakRss() as small:
        pass
    print(json.dumps({"method": big.method, "big": big.peak_mb, "small": small.peak_mb}))
else:
    memory._reset_hwm = lambda: False  # the fallback: sampled RSS
    before = memory.current_rss()
    with PeakRss(interval=0.001) as peak:
        block = touched_block()
    print(json.dumps({"method": peak.method, "peak": peak.peak_bytes, "before": before}))
"""


def child(mode: str) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, mode], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.skipif(not memory._reset_hwm(), reason="needs Linux's resettable VmHWM")
def test_peak_of_a_phase_sees_a_freed_allocation_and_the_next_phase_does_not():
    result = child("phases")
    assert result["method"] == "VmHWM"
    assert result["big"] - result["small"] > 0.75 * BLOCK / memory.MB


def test_sampled_fallback_covers_what_is_resident_at_the_end():
    result = child("sampled")
    assert result["method"].startswith("psutil")
    assert result["peak"] >= result["before"] + 0.75 * BLOCK


def test_artifact_size_counts_sidecars_and_folders(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"x" * 1000)
    (tmp_path / "model.onnx.data").write_bytes(b"x" * 500)
    (tmp_path / "compile.json").write_bytes(b"x" * 7)
    assert size_on_disk(tmp_path / "model.onnx") == 1500
    assert size_on_disk(tmp_path) == 1507
    assert size_on_disk(tmp_path / "absent.onnx") is None and size_on_disk(None) is None


def test_peak_rss_grows_with_batch_size_on_a_tiny_model(tmp_path):
    # Its own process: the figure is the process's, so a test runner's other allocations stay out of it.
    workload = tmp_path / "w.json"
    workload.write_text(
        json.dumps(
            {
                "model": "tiny-bert-squad",
                "batch_sizes": [1, 16],
                "iterations": 2,
                "warmup_iterations": 1,
                "min_seconds": 0,
                "max_seconds": 0.5,
                "test_accuracy": False,
                "test_numeric": False,
                # Pinned: after engine auto's tuning, freed allocator memory can absorb batch size 16's few
                # extra MB of a model this small, and both rows read the same peak.
                "engine": "onnxruntime",
                "precision": "FP32",
            }
        ),
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-m", "core.perf_engine", "--task", str(workload), "--output-dir", str(tmp_path / "reports")],
        cwd=REPO,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads((tmp_path / "reports/CPU/tiny-bert-squad/result-fp32.json").read_text(encoding="utf-8"))
    peak = {row["BS"]: row["Peak RSS MB"] for row in report["Performance"]}
    assert peak[16] > peak[1] > 50  # a Python process with torch and onnxruntime loaded is far above 50 MB
    compiled = report["Graph Compile"]
    assert compiled["Peak RSS MB"] > 50 and compiled["Artifact Size MB"] > 0


def report(peaks: dict[int, float], device: float | None = None, compile_peak: float = 400.0) -> dict:
    rows = [
        {
            "BS": bs,
            "QPS": 10.0 * bs,
            "Status": "ok",
            "Peak RSS MB": mb,
            **({"Device Memory MB": device} if device is not None else {}),
        }
        for bs, mb in peaks.items()
    ]
    return {"Model": "m", "Graph Compile": {"Peak RSS MB": compile_peak, "Artifact Size MB": 12.5}, "Performance": rows}


def test_compare_shows_memory_without_calling_it_a_regression():
    base = RunReport.from_dict(report({1: 400.0, 8: 500.0}))
    other = RunReport.from_dict(report({1: 800.0, 8: 900.0}, 64.0))
    cmp = build_comparison([base, other], ["a", "b"], threshold=0.05)
    rows = {(row.bs, row.metric): row for row in cmp.perf}
    assert rows[(8, "Peak RSS MB")].ratios[1] == pytest.approx(1.8)
    assert rows[(1, "Device Memory MB")].values == [None, 64.0]
    assert not cmp.regressions  # memory doubled, QPS equal: shown, not gated
    titles = {t.title: t for t in comparison_tables(cmp)}
    memory_table = next(t for title, t in titles.items() if title.startswith("Compile memory"))
    assert [c.text for c in memory_table.rows[0]][:2] == ["Compile Peak RSS MB", "400.0"]


def test_run_page_shows_memory():
    page = render_run_html(report({1: 431.5}, device=2048.0, compile_peak=777.0))
    for text in ("Peak RSS MB", "431.5", "Device Memory MB", "2,048", "Compile Peak RSS MB", "777", "12.5"):
        assert text in page
