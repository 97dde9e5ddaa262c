"""HTML pages: escaping of untrusted strings, embedded plots, no outside resources, atomic writes."""

from __future__ import annotations

import base64
import copy
import json
import re
import stat
from pathlib import Path

from core.reporting.html_report import render_compare_html, render_run_html, write_run_html

FIXTURES = Path(__file__).parent / "fixtures" / "reports"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EVIL = '<script>alert("x")</script> $\\frac{1}{$ & "quote"'


def report(rel: str) -> dict:
    return json.loads((FIXTURES / rel).read_text())


def embedded_pngs(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


def assert_self_contained(page: str) -> None:
    assert 'http-equiv="Content-Security-Policy"' in page
    # Every src/href is inline data; no stylesheet imports, no url() fetches, no scripts.
    for ref in re.findall(r'(?:src|href)\s*=\s*["\']?([^"\'\s>]*)', page, flags=re.I):
        assert ref.startswith("data:"), ref
    assert "<script" not in page.lower() and "url(" not in page and "@import" not in page


def test_run_page_escapes_untrusted_strings():
    data = report("CPU/albert-torch-fp32/result-fp32.json")
    data["Model"] = EVIL
    data["Run"]["id"] = EVIL  # also the plot legend label: `$` must not break matplotlib's math text
    data["Weights"]["note"] = EVIL
    data["Performance"][0]["Error"] = EVIL
    page = render_run_html(data)
    assert "<script>" not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert_self_contained(page)
    assert len(embedded_pngs(page)) == 2


def test_run_page_has_plots_tables_and_provenance():
    page = render_run_html(report("CPU/albert-torch-fp32/result-fp32.json"))
    pngs = embedded_pngs(page)
    assert len(pngs) == 2 and all(p.startswith(PNG_MAGIC) and len(p) > 5000 for p in pngs)
    for text in (
        "QPS vs batch size",
        "Latency percentiles",
        "P90 Latency",
        "1,690",
        "ORT_ENABLE_ALL",
        "AMD EPYC 7B13",
        "onnxruntime",
        "95aa6a52d5d6a735",
    ):
        assert text in page, text
    # A URL in a report is text, never a link or a resource.
    assert "https://rajpurkar.github.io" in page
    assert_self_contained(page)
    assert "SYNTHETIC WEIGHTS" not in page


def test_synthetic_and_incomplete_are_labelled():
    page = render_run_html(report("CPU/roberta-torch-fp32/result-fp32.json"))
    assert "SYNTHETIC WEIGHTS" in page and "run status is incomplete" in page
    assert "out of memory while allocating" in page


def test_bytemlperf_report_renders():
    page = render_run_html(report("IXRT/albert-torch-fp32/result-fp16.json"))
    assert "ALBERT-TORCH-FP32" in page and "ByteMLPerf" in page and len(embedded_pngs(page)) == 2
    assert "albert-torch-fp32.png" in page and "was not found" in page


def test_report_without_performance_renders():
    page = render_run_html({"Model": "m", "Accuracy": {"Exact Match": 1.0}})
    assert "No performance rows" in page and embedded_pngs(page) == []


def test_diff_dist_png_is_embedded_but_other_files_are_not(tmp_path):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot([0, 1], [1, 0])
    fig.savefig(tmp_path / "diff.png")
    (tmp_path / "secret.png").write_bytes(b"SECRET-NOT-A-PNG" * 10)
    data = report("CPU/albert-torch-fp32/result-fp32.json")
    data["Accuracy"]["Diff Dist"] = "diff.png"
    out = write_run_html(data, tmp_path / "run.html")
    assert (tmp_path / "diff.png").read_bytes() in embedded_pngs(out.read_text())

    data["Accuracy"]["Diff Dist"] = "secret.png"
    page = render_run_html(data, base_dir=tmp_path)
    assert "SECRET" not in "".join(p.decode("latin-1") for p in embedded_pngs(page)) and "was not found" in page


def test_diff_histogram_data_is_plotted():
    data = report("CPU/albert-torch-fp32/result-fp32.json")
    data["Accuracy"]["Diff Histogram"] = {"edges": [0, 1e-6, 2e-6, 4e-6], "counts": [900, 80, 20]}
    page = render_run_html(data)
    assert len(embedded_pngs(page)) == 3 and "Numeric diff histogram" in page


def test_write_is_atomic_and_readable(tmp_path):
    out = write_run_html(report("CPU/deberta-v3-mnli-torch-fp32/result-fp32.json"), tmp_path / "sub" / "r.html")
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in out.parent.iterdir()) == ["r.html"]  # no temporary file left behind
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


def test_compare_page_overlays_runs():
    older = report("CPU/albert-torch-fp32/runs/20261121T120000-d4e5f6.json")
    newer = report("CPU/albert-torch-fp32/result-fp32.json")
    evil = copy.deepcopy(newer)
    evil["Run"]["id"] = EVIL
    page = render_compare_html([older, newer, evil], threshold=0.05)
    assert_self_contained(page)
    assert "<script>" not in page
    # QPS, latency, accuracy bars and numeric-diff bars: every run on the same four plots.
    assert len(embedded_pngs(page)) == 4
    assert "regression" in page and "batch size 4 QPS drop" in page
    assert page.count("20261121T120000-d4e5f6") >= 2


def test_compare_page_with_no_common_batch_size_shows_both_with_a_note():
    other = report("CPU/albert-torch-fp32/result-fp32.json")
    other["Performance"] = [dict(other["Performance"][0], BS=64)]
    page = render_compare_html([report("CPU/albert-torch-fp32/result-fp32.json"), other])
    assert_self_contained(page)
    assert "shares no batch size" in page and "64" in page
