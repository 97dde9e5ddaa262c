"""Hosts that share a name told apart, one row shape, duplicate keys refused, compare naming every
configuration difference, a disturbed window saying so, and the workload that used to crash."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.common.errors import UserError
from core.measure import host
from core.reporting.comparison import build_comparison
from core.reporting.report import RunReport
from core.reporting.schema import PerfRow
from core.reporting.sections import HostInfo

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "family, model, line",
    [
        (25, 17, "AMD EPYC (family 25 model 17, Zen 4)"),
        (23, 1, "AMD EPYC (family 23 model 1, Zen)"),
        (25, 1, "AMD EPYC (family 25 model 1, Zen 3)"),
        (25, 250, "AMD EPYC (family 25 model 250)"),
    ],
)
def test_the_processor_line_names_family_model_and_microarchitecture(family, model, line):
    arch = host.MICROARCHITECTURES.get(("AuthenticAMD", family, model))
    facts = {"family": family, "model_number": model, "microarchitecture": arch}
    assert host.processor_line("AMD EPYC", facts) == line
    assert host.processor_line("AMD EPYC", {}) == "AMD EPYC"


def test_three_processors_named_alike_have_three_fingerprints(monkeypatch):
    seen = set()
    for family, model in ((23, 1), (25, 1), (25, 17)):
        facts = {"vendor": "AuthenticAMD", "family": family, "model_number": model, "stepping": 1}
        monkeypatch.setattr(host, "processor_facts", lambda facts=facts: facts)
        monkeypatch.setattr(host, "cpu_model", lambda: "AMD EPYC")
        seen.add(host.fingerprint_digest(host.host_fingerprint()))
    assert len(seen) == 3


def test_this_host_s_facts_are_recorded(monkeypatch):
    info = host.host_info()
    assert info["fingerprint"] == host.fingerprint_digest(host.host_fingerprint())
    assert info["processor"].startswith(info["cpu"])
    if Path("/proc/cpuinfo").is_file():
        assert isinstance(info["family"], int) and info["vendor"] and info["threads"] >= 1


def report_on(processor: str, fingerprint: str | None, **config) -> RunReport:
    report = RunReport(model="m", backend="CPU", precision="FP32", dataset=None)
    report.host = HostInfo(cpu="AMD EPYC", processor=processor, fingerprint=fingerprint)
    report.performance = [PerfRow(bs=1, qps=10.0, avg_latency=100.0)]
    if config:
        report.sections["Config"] = config
    return RunReport.from_dict(report.to_dict())


def test_compare_tells_hosts_of_one_name_apart_and_reads_old_reports():
    zen3, zen4 = report_on("AMD EPYC (family 25 model 1, Zen 3)", "aaa"), report_on("AMD EPYC (…Zen 4)", "bbb")
    warnings = build_comparison([zen3, zen4], ["a", "b"]).warnings
    assert any(w.startswith("host differs: a=AMD EPYC (family 25 model 1, Zen 3) [aaa]") for w in warnings)
    same = build_comparison([zen3, report_on("AMD EPYC (family 25 model 1, Zen 3)", "aaa")], ["a", "b"])
    assert not any("host differs" in w for w in same.warnings)
    old = RunReport.from_dict({"Model": "m", "Host": {"cpu": "AMD EPYC"}, "Performance": [{"BS": 1, "QPS": 9.0}]})
    assert old.host_identity == "AMD EPYC" and old.host.fingerprint is None


def test_compare_names_every_configuration_field_that_differs():
    a = report_on("p", "f", workload={"clients": 3, "batch_sizes": [1]}, backend={"engine": "openvino"})
    b = report_on("p", "f", workload={"clients": 1, "batch_sizes": [1]}, backend={"engine": "onnxruntime"})
    warnings = build_comparison([a, b], ["a", "b"]).warnings
    line = next(w for w in warnings if w.startswith("configuration differs"))
    assert line == ("configuration differs: workload.clients (a=3, b=1); backend.engine (a=openvino, b=onnxruntime)")


def test_every_row_carries_the_same_keys():
    report = RunReport(model="m", backend="CPU", precision="FP32", dataset=None)
    report.performance = [
        PerfRow(bs=1, qps=10.0, p99_upper=None, tail_backing="10 samples: …"),
        PerfRow(bs=2, status="failed", error="OOM"),
        PerfRow(bs=4, qps=30.0, p99_upper=5.0, achieved_gflops=1.0),
    ]
    rows = report.to_dict()["Performance"]
    assert [list(row) for row in rows[1:]] == [list(rows[0])] * 2
    assert rows[1]["QPS"] is None and rows[1]["Error"] == "OOM" and rows[0]["Achieved GFLOP/s"] is None
    back = RunReport.from_dict(report.to_dict())
    assert [row.status for row in back.performance] == ["ok", "failed", "ok"]


@pytest.mark.parametrize(
    "text, suffix, message",
    [
        ("model: tiny-bert-squad\nbatch_sizes: [1]\ntest_perf: true\nbatch_sizes: [2]\n", ".yaml", "lines 2 and 4"),
        ('{"model": "tiny-bert-squad", "iterations": 3, "iterations": 5}', ".json", "appears twice"),
    ],
)
def test_a_key_written_twice_is_refused_naming_it(tmp_path, text, suffix, message):
    from core.config.schema import read_config_file

    path = tmp_path / f"w{suffix}"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError) as caught:
        read_config_file(path)
    assert message in caught.value.message and caught.value.fix == "keep one of them"
    nested = tmp_path / "nested.yaml"
    nested.write_text("model: m\nengine_options:\n  a: 1\n  a: 2\n", encoding="utf-8")
    with pytest.raises(UserError, match="'a' appears twice"):
        read_config_file(nested)


def test_a_disturbed_window_reports_its_drift_and_a_quiet_one_none():
    from core.measure.timing import LatencyStats, Measurement

    def measured(gaps_ms):
        completions = np.cumsum(np.asarray(gaps_ms) * 1e6).astype(int)
        return Measurement(
            1,
            LatencyStats.from_ns(list(np.diff(completions, prepend=0))),
            completions[-1] / 1e9,
            1,
            0.0,
            "x",
            completions_ns=tuple(completions),
        )

    rng = np.random.default_rng(0)
    quiet = measured(rng.normal(10, 0.2, 400))
    disturbed = measured(np.concatenate([rng.normal(10, 0.2, 200), rng.normal(20, 0.2, 200)]))
    assert quiet.perf_row().drift == 0.0
    row = disturbed.perf_row()
    assert row.drift > 0.2
    from core.run.performance import drift_text

    assert "moved ±" in drift_text(row) and "rerun on a quiet machine" in drift_text(row)
    assert drift_text(quiet.perf_row()) == ""


def test_pinned_precision_with_accuracy_off_runs_instead_of_crashing(tmp_path):
    """The workload of the issue: FP32 pinned, the engine left to choose, no accuracy check."""
    workload = tmp_path / "that.yaml"
    workload.write_text(
        "model: tiny-bert-squad\nbatch_sizes: [1]\nprecision: FP32\ntest_accuracy: false\ntest_numeric: false\n"
        "iterations: 3\nmin_seconds: 0\nmax_seconds: 0.5\nwarmup_iterations: 1\n",
        encoding="utf-8",
    )
    out = tmp_path / "reports"
    run = subprocess.run(
        [sys.executable, "-m", "core.perf_engine", "--task", str(workload), "--output-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    report = json.loads((out / "CPU" / "tiny-bert-squad" / "result-fp32.json").read_text(encoding="utf-8"))
    selection = report["Graph Compile"]["Engine Selection"]
    assert len(selection["Candidates"]) > 1 and all(c["Precision"] == "FP32" for c in selection["Candidates"])


def test_min_seconds_on_the_command_line_raises_the_file_s_cap(tmp_path):
    from core.config import registry
    from core.config.overrides import apply_overrides
    from core.run.context import RunOptions

    task = registry.load_task("tiny-bert-squad")
    changed = apply_overrides(task, RunOptions(hardware_type="CPU", min_seconds=60).overrides())
    assert changed.workload.min_seconds == 60 and changed.workload.max_seconds == 60


def test_bf16_pytorch_feeds_images_in_bf16():
    from core.config.registry import load_task
    from datasets.fake_dataset import fake_inputs
    from tests.test_cpu_engines import compile_and_load

    task = load_task("tiny-resnet-imagenet")
    _, runtime, inputs = compile_and_load(task, "pytorch", precision="BF16")
    out = runtime.predict(fake_inputs(inputs, 2))
    assert all(np.isfinite(v).all() for v in out.values())
