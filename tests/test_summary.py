"""The leaderboard: grouping by model, ranking, dedup of kept runs, skipping files that are not reports."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from core.reporting.leaderboard import collect
from core.reporting.summary import main

FIXTURES = Path(__file__).parent / "fixtures" / "reports"


def test_groups_by_model_case_insensitively_and_ranks_by_qps():
    groups, warnings = collect(FIXTURES)
    assert warnings == []
    by_model = {g.model.lower(): g for g in groups}
    assert set(by_model) == {"albert-torch-fp32", "deberta-v3-mnli-torch-fp32", "roberta-torch-fp32"}
    albert = by_model["albert-torch-fp32"]
    # ByteMLPerf's ALBERT-TORCH-FP32 (IXRT) and ours (CPU) are one model; the faster ranks first.
    assert [e.hardware for e in albert.entries] == ["IXRT", "CPU"]
    assert albert.batch_sizes == [1, 4, 8, 16]
    assert albert.entries[1].qps == {1: 2.25, 4: 2.41, 8: 2.43}
    # A failed batch size has no QPS to rank.
    assert by_model["roberta-torch-fp32"].entries[0].qps == {1: 2.1}


def test_all_adds_kept_runs_once():
    groups, _ = collect(FIXTURES, include_runs=True)
    albert = next(g for g in groups if g.model.lower() == "albert-torch-fp32")
    # result-fp32.json is a copy of run a1b2c3: listed once.
    assert sorted(e.run_id or "-" for e in albert.entries) == ["-", "20261121T120000-d4e5f6", "20261122T031500-a1b2c3"]


def test_skips_files_that_are_not_reports(tmp_path):
    root = tmp_path / "reports"
    shutil.copytree(FIXTURES, root)
    bad = root / "CPU" / "broken" / "result-fp32.json"
    bad.parent.mkdir()
    bad.write_text("{ truncated")
    groups, warnings = collect(root)
    assert len(warnings) == 1 and "broken" in warnings[0]
    assert len(groups) == 3


def test_markdown_shows_accuracy_kinds(capsys):
    assert main([str(FIXTURES), "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    assert "EM 80.24 / F1 87.61" in out and "M 33.10 / MM 32.80" in out
    assert "### deberta-v3-mnli-torch-fp32" in out and "(incomplete)" in out


def test_json_output(capsys):
    assert main([str(FIXTURES), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    albert = next(m for m in data["models"] if m["model"].lower() == "albert-torch-fp32")
    assert albert["entries"][0]["best_qps"] == 512.6 and albert["entries"][0]["qps"]["16"] == 512.6
    assert albert["entries"][1]["weights_kind"] == "model_file"


def test_table_and_missing_folder(tmp_path, capsys):
    assert main([str(FIXTURES)]) == 0
    assert "albert-torch-fp32" in capsys.readouterr().out
    assert main([str(tmp_path / "nowhere")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_accuracy_summary_hides_bookkeeping_and_zero_problem_counts():
    from core.reporting.leaderboard import accuracy_text

    text = accuracy_text({"Exact Match": 80.5, "F1 Score": 88.0, "Non-finite Outputs": 0, "Empty Predictions": 0})
    assert text == "EM 80.50 / F1 88.00"
    assert "Non-finite Outputs 3" in accuracy_text({"Exact Match": 80.5, "Non-finite Outputs": 3})


def test_bytemlperf_execution_date_is_the_date_shown(tmp_path):
    folder = tmp_path / "STC" / "albert-torch-fp32"
    folder.mkdir(parents=True)
    report = {
        "Model": "ALBERT-TORCH-FP32",
        "Backend": "STC",
        "Execution Date": "2023-08-01 10:20:30",
        "Performance": [{"BS": 8, "QPS": 700.0, "AVG_Latency": 11.4, "P99_Latency": 12.0}],
    }
    (folder / "result-fp16.json").write_text(json.dumps(report))
    (groups, warnings) = collect(tmp_path)
    entry = groups[0].entries[0]
    assert entry.date == "2023-08-01T10:20:30" and entry.qps == {8: 700.0}
    assert warnings == []  # underscore keys are known keys


def test_loadgen_results_get_a_column_where_a_run_has_them(tmp_path, capsys):
    root = tmp_path / "reports"
    shutil.copytree(FIXTURES, root)
    path = next(root.glob("CPU/albert-torch-fp32/result-*.json"))
    report = json.loads(path.read_text())
    report["LoadGen"] = [
        {"Scenario": "Offline", "Result": "VALID", "QPS": 9.1},
        {"Scenario": "Server", "Result": "INVALID", "QPS": 2.0, "Peak QPS": 2.4},
    ]
    path.write_text(json.dumps(report))
    assert main([str(root), "--format", "markdown"]) == 0
    out = capsys.readouterr().out
    sections = out.split("### ")[1:]
    assert "Offline 9.10 QPS VALID; Server peak 2.40 QPS INVALID" in out
    assert sum("| LoadGen |" in section for section in sections) == 1  # only the model whose run has scenarios


def test_the_dashboard_shows_every_run_flags_the_regression_and_links_each_runs_page(tmp_path, capsys):
    import html
    import re

    from tests.dashboard_helpers import three_runs_of_two_models

    root = tmp_path / "reports"
    three_runs_of_two_models(root)
    out = tmp_path / "site" / "dashboard.html"
    assert main([str(root), "--html", str(out)]) == 0
    assert "dashboard: 6 runs of 2 models" in capsys.readouterr().out
    page = out.read_text()
    assert "default-src 'none'" in page and "http://" not in page and "https://" not in page  # no network
    # compare's rule between consecutive runs: only the third albert night, bs 4 (30.3 -> 24.0, -20.8%)
    regressions = re.findall(r'<li class="bad">(.*?)</li>', page)
    assert len(regressions) == 1 and "(20261103T010000-cccccc)" in regressions[0], regressions  # that night only
    text = html.unescape(regressions[0])
    assert "batch size 4 QPS drop 20.8% (30.30 -> 24.00) beyond 5.0%" in text, text
    assert "batch size 1" not in text  # bs 1 moved 1%; bs 4's latencies rose with its QPS drop
    assert page.count('<img class="plot"') == 2  # one QPS-over-time plot per model
    assert "Offline 81.00 QPS INVALID" in page and "Offline 80.00 QPS VALID" in page
    hrefs = re.findall(r'href="([^"]+)"', page)
    assert len(hrefs) == 6 and all((out.parent / href).is_file() for href in hrefs)
    assert "../reports/IPU/albert-torch-fp32/result-fp16.json" in hrefs  # ByteMLPerf's report has no page
    assert "3,088" in page and "IPU" in page  # on the leaderboard beside ours


def test_the_dashboard_flags_nothing_when_runs_only_wobble(tmp_path):
    from tests.dashboard_helpers import write_run

    root = tmp_path / "reports"
    for day, qps in enumerate((10.0, 9.7, 10.1), 1):
        write_run(root, "m", f"2026110{day}T000000-00000{day}", f"2026-11-0{day}T00:00:00+00:00", {1: qps})
    out = tmp_path / "d.html"
    assert main([str(root), "--html", str(out), "--threshold", "5%"]) == 0
    assert "None between consecutive runs." in out.read_text()
    assert main([str(root), "--html", str(out), "--threshold", "2%"]) == 0  # 10.0 -> 9.7 is a 3% drop
    assert "QPS drop 3.0%" in out.read_text()
