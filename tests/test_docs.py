"""The README stays short, every relative link in it and in docs/ resolves (files and anchors), the
reference pages generated from the code leave nothing undescribed, and the guide's claims hold."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reference = _load(ROOT / "docs" / "hooks" / "reference.py")
GENERATED = {ROOT / "docs" / uri for uri in reference.PAGES}  # built by the hook, not on disk
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"```.*?```", re.DOTALL)


def slug(heading: str) -> str:
    """The anchor Markdown renderers (GitHub, MkDocs' toc) give a heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {slug(line.lstrip("#")) for line in text.splitlines() if line.startswith("#")}


def test_the_readme_is_at_most_200_lines():
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 200


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not ours to check offline
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if file in GENERATED and page.name != "README.md":  # GitHub shows the README without the built pages
            continue
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(target)
    assert not broken, f"{page.name}: broken links {broken}"


def test_the_slug_matches_the_renderers():
    assert slug("Choosing the engine: `engine: auto`, `precision: auto` (the CPU default)") == (
        "choosing-the-engine-engine-auto-precision-auto-the-cpu-default"
    )


# ---------------------------------------------------------------- references generated from the code
def test_every_configuration_key_has_a_description():
    assert reference.missing_config_descriptions() == []


def test_every_flag_of_every_command_has_help():
    assert reference.missing_flag_help() == []


def test_every_report_key_has_a_meaning_and_every_meaning_a_key():
    assert reference.missing_report_meanings() == []
    assert reference.stale_report_meanings() == []


def test_a_key_without_a_description_is_named(monkeypatch):
    """The check can fail: a model with an undescribed field, in a module the page covers, is reported by name."""
    from pydantic import BaseModel, Field

    module = type(sys)("fake_config")

    class Fake(BaseModel):
        described: int = Field(1, description="has one")
        bare: int = 2

    Fake.__module__ = module.__name__
    module.Fake = Fake
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(reference, "CONFIG_MODULES", ((module.__name__, "Fake"),))
    assert reference.missing_config_descriptions() == ["fake_config.Fake.bare"]
    with pytest.raises(reference.MissingDescription, match="fake_config.Fake.bare"):
        reference.config_page()


def test_every_workload_and_model_zoo_key_is_on_the_reference_page():
    from core.config.schema import ModelEntry, Workload

    page = reference.config_page()
    for model in (Workload, ModelEntry):
        for name, info in model.model_fields.items():
            assert f"| `{name}` |" in page, name
            assert f"| {reference._cell(info.description)} |" in page, name


def test_every_flag_and_report_key_is_on_its_reference_page():
    cli, report = reference.cli_page(), reference.report_page()
    for prog, parser in reference.command_parsers():
        assert f"## `{prog}`" in cli
        for action in reference._arguments(parser):
            assert f"`{(action.option_strings or [action.metavar or action.dest])[0]}`" in cli, (prog, action.dest)
    for section, keys in reference.report_keys():
        assert f"## {section}" in report
        for key in keys:
            assert f"| `{key}` |" in report, (section, key)


# ---------------------------------------------------------------- one meaning per term, pages that exist
GLOSSARY_TERMS = (
    "qps",
    "qps-interval",
    "unbacked-percentile",
    "clients",
    "drift",
    "agreement",
    "near-ties",
    "decisive-rows",
    "accuracy-gate",
    "candidate",
    "compute-roof",
    "memory-roof",
    "roof",
    "peak-share",
    "spec-peak-share",
    "achieved-gflops",
    "arithmetic-intensity",
    "time-budget",
    "synthetic-weights",
    "ttft",
    "tpot",
    "itl",
    "e2e",
    "token-throughput",
    "goodput",
)


def test_the_glossary_defines_every_term_the_console_shows():
    assert set(GLOSSARY_TERMS) <= anchors(ROOT / "docs" / "glossary.md")


def test_the_first_run_links_each_term_to_the_glossary():
    quickstart = (ROOT / "docs" / "quickstart.md").read_text(encoding="utf-8")
    section = quickstart.split("## A first run", 1)[1].split("\n## ", 1)[0]
    linked = set(re.findall(r"glossary\.md#([\w-]+)", section))
    assert {
        "drift",
        "agreement",
        "decisive-rows",
        "near-ties",
        "unbacked-percentile",
        "clients",
        "compute-roof",
        "peak-share",
    } <= linked


def test_peak_share_is_defined_once():
    """Other pages point at the glossary's definition instead of giving their own."""
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        assert "share of the hardware's peak" not in text, page.name
        assert "held against the engine's own" not in text, page.name


def test_the_pages_say_what_the_tool_does_not_how_it_was_built():
    history = re.compile(r"\bissue \d+|this session|session's additions", re.IGNORECASE)
    for page in PAGES:
        assert not history.findall(page.read_text(encoding="utf-8")), page.name


def test_snippets_named_by_pages_exist():
    for page in PAGES:
        for name in re.findall(r'^--8<-- "([^"]+)"', page.read_text(encoding="utf-8"), re.MULTILINE):
            assert (ROOT / "docs" / "snippets" / name).is_file(), (page.name, name)


def test_the_screenshots_show_the_pages_as_they_render_now():
    """docs/images/*.png were taken of the pages these digests name; run docs/screenshots.py when this fails."""
    screenshots = _load(ROOT / "docs" / "screenshots.py")
    recorded = json.loads(screenshots.RECORD.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        now = screenshots.digests(screenshots.render_pages(Path(tmp)))
    assert now == recorded, "the HTML report or dashboard changed: run .venv/bin/python docs/screenshots.py"
    for name in recorded:
        assert (screenshots.IMAGES / name).stat().st_size > 20_000


# ---------------------------------------------------------------- install claims
def test_requires_python_admits_no_python_the_pinned_packages_refuse():
    """Each installed pin's own Requires-Python must admit the oldest Python pyproject.toml claims."""
    import tomllib

    claim = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["requires-python"]
    oldest = Version(re.match(r">=\s*([\d.]+)", claim).group(1))
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==", (ROOT / "constraints.txt").read_text(encoding="utf-8"), re.MULTILINE)
    refused = []
    for name in pins:
        try:
            wants = metadata.metadata(name).get("Requires-Python")
        except metadata.PackageNotFoundError:
            continue  # an optional extra's pin (mutmut) that this environment lacks
        if wants and oldest not in SpecifierSet(wants):
            refused.append(f"{name} needs Python {wants}")
    assert len(pins) > 50 and not refused, refused
