"""Injected faults end in one line and exit 2, lose nothing measured, and leave no partial files."""

from __future__ import annotations

import errno

import pytest

from core import perf_engine

QUICK = (
    "model: tiny-bert-squad\niterations: 2\nbatch_sizes: [1]\nwarmup_iterations: 1\nmin_seconds: 0\n"
    "max_seconds: 0.2\ntest_accuracy: false\ntest_numeric: false\nengine: onnxruntime\nprecision: FP32\n"
)


@pytest.fixture
def quick(tmp_path):
    path = tmp_path / "quick.yaml"
    path.write_text(QUICK, encoding="utf-8")
    return path


def run(quick, out, capsys) -> tuple[int, str]:
    code = perf_engine.main(["--task", str(quick), "--output-dir", str(out)])
    return code, capsys.readouterr().err


def test_output_dir_under_a_file_is_refused_before_any_work(quick, tmp_path, capsys, monkeypatch):
    import core.run.runner

    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setattr(core.run.runner, "run_task", lambda *a, **k: pytest.fail("the run started"))
    code, err = run(quick, blocker / "reports", capsys)
    assert code == 2 and "--output-dir" in err and "not a folder" in err and "Traceback" not in err


def test_full_disk_while_writing_the_report(quick, tmp_path, capsys, monkeypatch):
    import core.common.atomic

    out = tmp_path / "reports"
    assert run(quick, out, capsys)[0] == 0
    latest = out / "CPU" / "tiny-bert-squad" / "result-fp32.json"
    before = latest.read_bytes()

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(core.common.atomic.os, "fsync", no_space)
    code, err = run(quick, out, capsys)
    assert code == 2 and "no space left" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 3
    assert latest.read_bytes() == before  # the earlier report survives whole
    leftovers = [p for p in out.rglob("*") if p.name.endswith(".tmp") or (p.is_file() and p.stat().st_size == 0)]
    assert leftovers == []


def test_a_failing_html_page_never_costs_the_json(quick, tmp_path, capsys, monkeypatch):
    import json

    import core.reporting.html_report

    def broken(*args, **kwargs):
        raise RuntimeError("plotting exploded")

    monkeypatch.setattr(core.reporting.html_report, "render_run_html", broken)
    out = tmp_path / "reports"
    code = perf_engine.main(["--task", str(quick), "--output-dir", str(out)])
    printed = capsys.readouterr().out
    latest = out / "CPU" / "tiny-bert-squad" / "result-fp32.json"
    assert code == 0 and json.loads(latest.read_text())["Performance"][0]["Status"] == "ok"
    assert "HTML page not written" in printed and not latest.with_suffix(".html").exists()
