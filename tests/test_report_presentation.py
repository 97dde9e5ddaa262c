"""What people read: numbers never cut on a narrow terminal, banners said once, scores not over-precise."""

from __future__ import annotations

from core.reporting.tables import Cell, TextTable


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
