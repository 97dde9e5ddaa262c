"""`python -m core.prepare`: listing, offline reports, installs, and one-line errors with exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from core import prepare
from core.assets import AssetSpec
from core.config import registry
from tests.assets_helpers import Served, asset_env, http_server, make_tar  # noqa: F401

REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL = AssetSpec(
    name="open_tiny",
    kind="archive",
    url="{base_url}/open_tiny.tar",
    dest="model_zoo/popular",
    provides=["model_zoo/popular/open_tiny/tiny.pt"],
)
DATA = AssetSpec(
    name="tiny_data",
    kind="archive",
    url="{base_url}/tiny_data.tar",
    dest="datasets/tiny",
    provides=["datasets/tiny/dev.json"],
)
SERVED = {"/open_tiny.tar": make_tar([("open_tiny/tiny.pt", b"pt")]), "/tiny_data.tar": make_tar([("dev.json", b"{}")])}


@pytest.fixture
def fake_registry(monkeypatch, asset_env):
    """One task, 'tiny-task', whose model and dataset each declare an asset."""

    def load_task(name):
        if name != "tiny-task":
            raise prepare.UserError(f"unknown task '{name}'", fix="known: tiny-task")
        return SimpleNamespace(model=SimpleNamespace(assets=[MODEL], dataset_name="tiny"), model_file=Path("tiny.json"))

    monkeypatch.setattr(registry, "load_task", load_task)
    monkeypatch.setattr(registry, "dataset_assets", lambda name: [DATA] if name == "tiny" else [])
    monkeypatch.setattr(registry, "task_names", lambda: ["tiny-task"])
    return asset_env[0]


def test_list_offline_then_install(fake_registry, capsys):
    root = fake_registry
    assert prepare.main(["--list"], root=root) == prepare.EXIT_MISSING
    out = capsys.readouterr().out
    assert "open_tiny" in out and "tiny_data" in out and out.count("missing") == 2

    served = Served(dict(SERVED))
    with http_server(served) as url:
        assert prepare.main(["--task", "tiny-task", "--offline", "--base-url", url], root=root) == prepare.EXIT_MISSING
        assert "offline" in capsys.readouterr().out and served.requests == []

        assert prepare.main(["--task", "tiny-task", "--base-url", url], root=root) == 0
        assert capsys.readouterr().out.count("installed") == 2
    assert (root / "model_zoo/popular/open_tiny/tiny.pt").read_bytes() == b"pt"
    assert (root / "datasets/tiny/dev.json").read_bytes() == b"{}"

    assert prepare.main(["--list", "--verify"], root=root) == 0
    assert capsys.readouterr().out.count("verified") == 2


@pytest.mark.parametrize(
    "argv,message",
    [
        ([], "nothing to do"),
        (["--task", "tiny-task", "--verify"], "--verify only applies to --list"),
        (["--task", "tiny-task", "--base-url", "ftp://mirror"], "is not an http(s) URL"),
        (["--task", "no-such-task"], "unknown task 'no-such-task'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(fake_registry, capsys, argv, message):
    assert prepare.main(argv, root=fake_registry) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_debug_shows_the_exception(fake_registry):
    with pytest.raises(prepare.UserError, match="nothing to do"):
        prepare.main(["--debug"], root=fake_registry)


def test_duplicate_asset_names_are_refused(fake_registry, monkeypatch, capsys):
    other = MODEL.model_copy(update={"url": "{base_url}/elsewhere.tar"})
    monkeypatch.setattr(registry, "dataset_assets", lambda name: [other])
    assert prepare.main(["--list"], root=fake_registry) == 2
    assert "two different assets are named 'open_tiny'" in capsys.readouterr().err


def test_command_line_process_exit_code(tmp_path):
    """The real entry point and registry, as a user runs it: one line, exit 2, no traceback."""
    result = subprocess.run(
        [sys.executable, "-m", "core.prepare", "--task", "no-such-task", "--offline"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PERFBENCH_HOME": str(tmp_path), "PERFBENCH_OFFLINE": "1"},
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "no-such-task" in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1


def test_list_shows_every_task_marks_unsupported_ones_and_survives_tasks_without_assets(
    fake_registry, monkeypatch, capsys
):
    """One unsupported task (unknown dataset) must not abort the listing; a task with no assets and a
    message holding rich markup ('[/]') print as plain text."""

    def load_task(name):
        if name == "resnet50-tf-fp32":
            raise prepare.UserError(
                "unknown dataset 'open_imagenet'",
                file="model_zoo/resnet50-tf-fp32.json",
                field="dataset_name",
                fix="known: [/]open_squad",
            )
        if name == "bare":
            return SimpleNamespace(model=SimpleNamespace(assets=[], dataset_name=None), model_file=Path("bare.json"))
        return SimpleNamespace(model=SimpleNamespace(assets=[MODEL], dataset_name="tiny"), model_file=Path("tiny.json"))

    monkeypatch.setattr(registry, "load_task", load_task)
    monkeypatch.setattr(registry, "task_names", lambda: ["bare", "resnet50-tf-fp32", "tiny-task"])
    monkeypatch.setenv("COLUMNS", "400")  # one table row per line, notes unfolded
    assert prepare.main(["--list"], root=fake_registry) == prepare.EXIT_MISSING  # tiny-task's assets are missing
    out = capsys.readouterr().out
    assert "bare" in out and "no assets declared" in out
    assert "unsupported" in out and "unknown dataset 'open_imagenet'" in out and "[/]open_squad" in out
    assert "open_tiny" in out and "1 task(s) cannot run here" in out
    # Asked for by name, the same task is bad input.
    assert prepare.main(["--list", "--task", "resnet50-tf-fp32"], root=fake_registry) == 2
