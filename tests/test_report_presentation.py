"""What people read: numbers never cut on a narrow terminal, banners said once, scores not over-precise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from core.reporting.tables import Cell, TextTable, fmt


def test_numbers_survive_an_80_column_terminal(monkeypatch):
    from core.reporting.tables import render_text

    monkeypatch.setenv("COLUMNS", "80")
    headers = ["model", "backend", "engine", "precision", "weights", *(f"metric {i}" for i in range(7))]
    table = TextTable("Leaderboard", headers, text_columns=5)
    table.rows.append(
        [
            Cell("albert-torch-fp32-with-a-long-name"),
            Cell("CPU"),
            Cell("onnxruntime"),
            Cell("FP32"),
            Cell("synthetic"),
            *(Cell(f"{11212.34 + i:,.2f}") for i in range(7)),
        ]
    )
    text = render_text([table], [], "table", color=True)
    for i in range(7):
        assert f"{11212.34 + i:,.2f}" in text
    assert "…" not in text


def test_synthetic_banner_says_it_once_and_scores_are_rounded():
    from core.reporting.html_report import render_run_html

    report = {
        "Model": "m",
        "Weights": {"kind": "synthetic", "note": "SYNTHETIC WEIGHTS: seeded random values"},
        "Accuracy": {"F1 Score": 87.56789012345678},
        "Performance": [{"BS": 1, "QPS": 10.0, "Status": "ok"}],
    }
    page = render_run_html(report)
    banner = page[page.index('<div class="banner synthetic">') :]
    banner = banner[: banner.index("</div>")]
    assert banner.count("SYNTHETIC WEIGHTS") == 1
    assert "87.5679" in page and "87.56789012345678" not in page


def test_a_logged_run_prints_every_number_whole_paths_on_their_own_line_and_each_warning_once(tmp_path):
    """Piped to a file (not a terminal) and told the log is 60 columns wide, nothing is cut or repeated."""
    repo = Path(__file__).resolve().parent.parent
    home = tmp_path / "home"
    env = dict(os.environ, COLUMNS="60", PERFBENCH_HOME=str(home), PERFBENCH_OFFLINE="1")
    args = [sys.executable, "-m", "core.perf_engine", "--task", "tiny-bert-squad", "--output-dir", str(tmp_path / "r")]
    done = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    out = done.stdout + done.stderr
    assert "…" not in out  # no number or path cut short
    lines = out.splitlines()
    report = Path(lines[lines.index("report:") + 1].strip())
    assert report.is_file() and report.name == "result-fp32.json"
    fallback = [line for line in lines if "fallback tokenizer (not the model's)" in line and "WARNING" in line]
    assert len(fallback) == 1, fallback
    report_data = json.loads(report.read_text())
    for row in report_data["Performance"]:  # the end-of-run table shows each row's QPS whole
        assert any(line.startswith("│") and f"│{fmt(row['QPS'])}[" in line.replace(" ", "") for line in lines)


def test_numbers_survive_a_dumb_terminal_too(monkeypatch):
    """TERM=dumb (emacs shells, some CI logs): rich then ignores a width set alone and stays at 80 columns."""
    import io

    from rich.console import Console

    from core.reporting.tables import print_table, render_text

    monkeypatch.setenv("TERM", "dumb")
    monkeypatch.setenv("COLUMNS", "80")
    table = TextTable("Wide", ["model", *(f"metric {i}" for i in range(9))], text_columns=1)
    table.rows.append([Cell("albert-torch-fp32"), *(Cell(f"{22206.75 + i:,.2f}") for i in range(9))])
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, highlight=False)
    print_table(console, table)
    for text in (render_text([table], [], "table", color=True), buffer.getvalue()):
        assert all(f"{22206.75 + i:,.2f}" in text for i in range(9)) and "…" not in text
    assert console.width == 80  # the shared console is back to its own width afterwards
