"""Open generated pages in headless Chromium: no console errors, every plot decodes, a real screenshot.

Drives Chromium over the DevTools protocol on a pipe (--remote-debugging-pipe: fds 3 and 4, no
port), so errors are read as structured events rather than scraped from logs. Skips only when no
Chromium is installed (`apt-get install chromium`; PERFBENCH_CHROMIUM may name another binary), and
never in CI (CI=true): there a missing Chromium fails, since .ci/run installs it.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.reporting.html_report import render_compare_html, write_run_html
from core.reporting.schema import PERF_KEYS

FIXTURES = Path(__file__).parent / "fixtures" / "reports"
CHROMIUM = os.environ.get("PERFBENCH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-pipe",
)
TIMEOUT_S = 30

IN_CI = os.environ.get("CI", "").lower() == "true"
ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not IN_CI,
    reason="chromium is not installed (apt-get install -y chromium); browser test skipped",
)


class Browser:
    """A minimal DevTools-protocol client: JSON messages separated by NUL bytes on a pipe pair."""

    def __init__(self, profile: Path):
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # Chromium reads commands on fd 3 and writes on fd 4: move our ends above 4 first so dup2 cannot clobber them.
        high_r = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
        high_w = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
        os.close(to_chrome_r)
        os.close(from_chrome_w)

        def child_fds():
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            preexec_fn=child_fds,
            pass_fds=(3, 4),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(high_r)
        os.close(high_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []
        try:
            target = self.call("Target.createTarget", url="about:blank")["targetId"]
            self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                self.call(f"{domain}.enable", session=self.session)
        except BaseException:
            self.close()
            raise

    def _read(self, wanted, deadline: float) -> dict:
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                if wanted(message):
                    return message
                self.events.append(message)
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_chrome], [], [], left)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise EOFError("chromium closed the pipe")
            self._buffer += chunk

    def call(self, method: str, session: str | None = None, **params) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        answer = self._read(lambda m, i=self._next_id: m.get("id") == i, time.monotonic() + TIMEOUT_S)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def open(self, page: Path) -> None:
        self.call("Page.navigate", session=self.session, url=page.resolve().as_uri())
        self._loaded()

    def _loaded(self) -> None:
        self._read(lambda m: m.get("method") == "Page.loadEventFired", time.monotonic() + TIMEOUT_S)

    def follow(self, selector: str) -> None:
        """Click the first link `selector` matches, as a reader would, and wait for the page it opens."""
        self.evaluate(f"document.querySelector({json.dumps(selector)}).click() || true")
        self._loaded()

    def set_width(self, pixels: int) -> None:
        """A window `pixels` wide, as a user's browser would be."""
        self.call(
            "Emulation.setDeviceMetricsOverride",
            session=self.session,
            width=pixels,
            height=900,
            deviceScaleFactor=1,
            mobile=False,
        )

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", session=self.session, expression=expression, returnByValue=True)["result"][
            "value"
        ]

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions, and browser log errors (CSP refusals, failed loads)."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(json.dumps(params.get("exceptionDetails", {}))[:300])
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                found.append(json.dumps(params.get("args", []))[:300])
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                found.append(params["entry"].get("text", "")[:300])
        return found

    def screenshot(self, path: Path) -> Path:
        shot = self.call("Page.captureScreenshot", session=self.session, format="png", captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self) -> None:
        try:
            self.call("Browser.close")
            self.proc.wait(timeout=10)
        except (OSError, RuntimeError, TimeoutError, EOFError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        finally:
            os.close(self._to_chrome)
            os.close(self._from_chrome)


@pytest.fixture
def browser(tmp_path):
    if CHROMIUM is None:  # only in CI: elsewhere the module is skipped
        pytest.fail("CI=true but no chromium: .ci/run installs it (apt-get install -y chromium)", pytrace=False)
    b = Browser(tmp_path / "profile")
    yield b
    b.close()


PLOTS_JS = (
    "JSON.stringify([...document.querySelectorAll('img.plot')].map(i => [i.complete, i.naturalWidth, i.naturalHeight]))"
)


def assert_page_ok(browser: Browser, page: Path, plots: int, screenshot: Path) -> None:
    browser.open(page)
    assert browser.errors() == []
    images = json.loads(browser.evaluate(PLOTS_JS))
    assert len(images) == plots
    assert all(done and width > 100 and height > 100 for done, width, height in images), images
    from PIL import Image

    browser.screenshot(screenshot)
    assert screenshot.stat().st_size > 20_000
    with Image.open(screenshot) as img:
        assert img.width > 300 and img.height > 1000  # the whole page, not a blank viewport
        low, high = img.convert("L").getextrema()
        assert high - low > 100  # there is ink on it


def test_run_page_in_chromium(browser, tmp_path):
    report = json.loads((FIXTURES / "CPU/albert-torch-fp32/result-fp32.json").read_text())
    page = write_run_html(report, tmp_path / "run.html")
    assert_page_ok(browser, page, plots=2, screenshot=tmp_path / "run.png")
    title = browser.evaluate("document.querySelector('h1').textContent")
    assert title == "perfbench report: albert-torch-fp32"


def test_compare_page_in_chromium(browser, tmp_path):
    reports = [
        json.loads((FIXTURES / rel).read_text())
        for rel in ("CPU/albert-torch-fp32/runs/20261121T120000-d4e5f6.json", "IXRT/albert-torch-fp32/result-fp16.json")
    ]
    page = tmp_path / "compare.html"
    page.write_text(render_compare_html(reports))
    assert_page_ok(browser, page, plots=4, screenshot=tmp_path / "compare.png")


def test_the_check_sees_outside_resources(browser, tmp_path):
    """The error check can fail: a page that reaches out is caught by its own CSP and reported."""
    report = json.loads((FIXTURES / "CPU/albert-torch-fp32/result-fp32.json").read_text())
    page = tmp_path / "leaky.html"
    html = write_run_html(report, tmp_path / "run.html").read_text()
    page.write_text(html.replace("</body>", '<img src="https://example.invalid/x.png"></body>'))
    browser.open(page)
    assert any("example.invalid" in e for e in browser.errors())


def test_a_wide_run_page_fits_1300_pixels_with_its_tables_scrolling_in_their_box(browser, tmp_path):
    """Many batch sizes and every column: the page stays 1300 px wide, the tables scroll inside it; the
    command reads as a shell line with paths relative to the repository; empty sections are not shown."""
    from core.common.paths import REPO_ROOT

    report = json.loads((FIXTURES / "CPU/albert-torch-fp32/result-fp32.json").read_text())
    row = dict(report["Performance"][0])
    report["Performance"] = [{**row, "BS": bs, "Error": None} for bs in (1, 2, 4, 8, 16, 24, 32, 64, 128, 256)]
    for entry in report["Performance"]:  # every number at its widest: a 14-column table of 13-digit figures
        entry.update({key: 1234567890123.0 for key in PERF_KEYS})
    report["Run"]["notes"] = []
    report["Run"]["command"] = [str(REPO_ROOT / "core/perf_engine.py"), "--task", str(REPO_ROOT / "workloads/x.yaml")]
    page = write_run_html(report, tmp_path / "wide.html")
    html = page.read_text()
    assert "python -m core.perf_engine --task workloads/x.yaml" in html
    assert "Run notes" not in html and str(REPO_ROOT) not in html
    browser.set_width(1300)
    browser.open(page)
    assert browser.errors() == []
    assert browser.evaluate("document.documentElement.scrollWidth") <= 1300
    boxes = json.loads(
        browser.evaluate(
            "JSON.stringify([...document.querySelectorAll('.scroll')].map(b => [b.scrollWidth, b.clientWidth]))"
        )
    )
    assert boxes and all(client <= 1300 for _, client in boxes)
    assert any(scroll > client for scroll, client in boxes), boxes  # something is wider than the window: it scrolls


def test_the_dashboard_renders_offline_and_every_link_opens(browser, tmp_path):
    from core.reporting.summary import main
    from tests.dashboard_helpers import three_runs_of_two_models

    root = tmp_path / "reports"
    three_runs_of_two_models(root)
    page = tmp_path / "site" / "dashboard.html"
    assert main([str(root), "--html", str(page)]) == 0
    browser.set_width(1300)
    assert_page_ok(browser, page, plots=2, screenshot=tmp_path / "dashboard.png")
    assert browser.evaluate("document.documentElement.scrollWidth") <= 1300
    hrefs = json.loads(browser.evaluate("JSON.stringify([...document.querySelectorAll('a')].map(a => a.href))"))
    assert len(hrefs) == 6
    for href in (h for h in hrefs if h.endswith(".html")):  # each run's own page opens, without errors
        browser.open(Path(href.removeprefix("file://")))
        assert browser.evaluate("document.querySelector('h1').textContent") == "run page"
        assert browser.errors() == []


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The user guide, built as `make docs` builds it."""
    folder = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(folder)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=True,
        timeout=300,
    )
    return folder


def test_the_guide_opens_from_disk_follows_its_links_and_searches_offline(browser, site):
    browser.open(site / "index.html")
    assert browser.errors() == []
    outside = "[...document.querySelectorAll('script[src], link[href]')].map(e => e.src || e.href)"
    assert json.loads(browser.evaluate(f"JSON.stringify({outside}.filter(u => !u.startsWith('file:')))")) == []
    # The navigation's links name pages, not folders: from file:// a folder shows a listing.
    hrefs = json.loads(browser.evaluate("JSON.stringify([...document.querySelectorAll('nav a')].map(a => a.href))"))
    pages = [h.split("#")[0] for h in hrefs if h.startswith("file:")]
    assert pages and all(h.endswith(".html") for h in pages), pages
    browser.follow("nav a[href='quickstart.html']")
    assert browser.evaluate("document.querySelector('h1').textContent").startswith("Quickstart")
    browser.follow("article a[href='glossary.html#drift']")
    assert browser.evaluate("location.hash") == "#drift"
    assert browser.evaluate("document.getElementById('drift').textContent").startswith("Drift")
    # Search, from the index inlined for file:// (no server, no network).
    browser.evaluate(
        "(() => { const box = document.querySelector('input.md-search__input'); box.focus(); box.value = 'compare';"
        " return box.dispatchEvent(new Event('input', {bubbles: true})); })()"
    )
    found: list[str] = []
    deadline = time.monotonic() + TIMEOUT_S
    while not found and time.monotonic() < deadline:
        time.sleep(0.2)
        found = json.loads(
            browser.evaluate(
                "JSON.stringify([...document.querySelectorAll('.md-search-result__item a')].map(a => a.href))"
            )
        )
    assert any("compare.html" in href for href in found), found
    assert browser.errors() == []
