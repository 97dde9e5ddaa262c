"""One `perfbench` command with subcommands, and the small things a newcomer meets first."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from core import cli

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "command, words",
    [
        ("run", "--hardware_type"),
        ("compare", "--threshold"),
        ("summary", "--html"),
        ("sweep", "SWEEP.yaml"),
        ("prepare", "--task"),
    ],
)
def test_each_subcommand_has_its_own_help(command, words, capsys):
    with pytest.raises(SystemExit) as done:
        cli.main([command, "--help"])
    assert done.value.code == 0 and words in capsys.readouterr().out


def test_version_and_the_command_list(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.startswith("perfbench ")
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in cli.COMMANDS)


def test_a_subcommand_passes_its_arguments_and_exit_code_through(tmp_path, capsys):
    code = cli.main(["compare", str(tmp_path / "missing.json"), str(tmp_path / "other.json")])
    assert code == 2 and capsys.readouterr().err.startswith("error:")
    assert cli.main(["run", "--task", "no-such-task"]) == 2


def test_evaluate_chooses_the_official_scorer(tmp_path, capsys):
    import json

    qa = {"id": "q", "question": "Capital?", "answers": [{"text": "Paris", "answer_start": 0}]}
    data = {"data": [{"title": "t", "paragraphs": [{"context": "Paris is it.", "qas": [qa]}]}], "version": "1.1"}
    (tmp_path / "dev.json").write_text(json.dumps(data), encoding="utf-8")
    (tmp_path / "pred.json").write_text(json.dumps({"q": "paris"}), encoding="utf-8")
    assert cli.main(["evaluate", "squad", str(tmp_path / "dev.json"), str(tmp_path / "pred.json")]) == 0
    assert '"exact_match": 100.0' in capsys.readouterr().out


def test_the_installed_command_names_itself_in_help():
    script = Path(sys.executable).parent / "perfbench"
    if not script.exists():
        pytest.skip("perfbench is not installed in this environment")
    result = subprocess.run([str(script), "compare", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("usage: perfbench compare")


def test_the_task_list_is_grouped_with_a_line_each(capsys):
    from core.perf_engine import main

    assert main(["--show_task_list"]) == 0
    out = capsys.readouterr().out.splitlines()
    groups = [line for line in out if not line.startswith(" ")]
    assert groups[0] == "ByteMLPerf general_perf:" and "tiny (tests and smoke checks):" in groups
    albert = next(line for line in out if line.split()[0] == "albert-torch-fp32")
    assert "open_squad; batch sizes 1,4,8,16,24" in albert


def test_a_model_with_one_run_shows_that_day_on_the_time_axis():
    from matplotlib.dates import num2date
    from matplotlib.figure import Figure

    from core.reporting.dashboard import time_axis

    when = datetime(2026, 12, 4, 7, 30, tzinfo=timezone.utc)
    ax = Figure().add_subplot()
    ax.plot([when], [3.0])
    time_axis(ax, [when])
    low, high = (num2date(x) for x in ax.get_xlim())
    assert (high - low).total_seconds() == 24 * 3600 and low < when < high
    ax.figure.canvas.draw() if hasattr(ax.figure.canvas, "draw") else None
    assert [label.get_text() for label in ax.get_xticklabels()] == ["2026-12-04 07:30"]
