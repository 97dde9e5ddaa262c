"""Screenshots of a run's HTML page and of the dashboard for the guide, from the reports in tests/fixtures.

    .venv/bin/python docs/screenshots.py      # needs headless Chromium (apt-get install chromium)

Each PNG in docs/images/ is recorded in docs/images/screenshots.json with the digest of the page it shows;
tests/test_docs.py renders the pages again and fails when a digest changed: then run this again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "reports" / "CPU"  # ours only: their dates come from the reports
IMAGES = ROOT / "docs" / "images"
RECORD = IMAGES / "screenshots.json"


def render_pages(folder: Path) -> dict[str, Path]:
    """The pages the screenshots show, rendered into `folder`: {png name: html page}."""
    from core.reporting.html_report import write_run_html
    from core.reporting.summary import main as summary

    reports = folder / "reports"
    shutil.copytree(FIXTURES, reports / "CPU")
    report = json.loads((reports / "CPU/albert-torch-fp32/result-fp32.json").read_text(encoding="utf-8"))
    run_page = write_run_html(report, reports / "CPU/albert-torch-fp32/result-fp32.html")
    # Relative paths, as a user types them: the page names the folder, and the digest holds on any machine.
    with contextlib.chdir(folder), open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        summary(["reports", "--html", "reports/dashboard.html"])
    return {"run-report.png": run_page, "dashboard.png": reports / "dashboard.html"}


def digests(pages: dict[str, Path]) -> dict[str, str]:
    return {name: hashlib.sha256(page.read_bytes()).hexdigest() for name, page in pages.items()}


def main() -> int:
    chromium = os.environ.get("PERFBENCH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("error: no chromium to take screenshots with; fix: apt-get install -y chromium", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        pages = render_pages(Path(tmp))
        for name, page in pages.items():
            subprocess.run(
                [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                 "--window-size=1300,1400", f"--user-data-dir={tmp}/profile", f"--screenshot={IMAGES / name}",
                 page.as_uri()],
                check=True, capture_output=True, timeout=120,
            )  # fmt: skip
            print(f"{IMAGES / name}")
        RECORD.write_text(json.dumps(digests(pages), indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
