"""Concurrent clients and MLPerf LoadGen scenarios.

A plugin backend (installed through the entry-point group) sleeps in every call and counts the
calls in flight, so concurrency shows as structure (overlap, calls in flight), never as a timing.
The LoadGen runs use short minimum durations; accuracy mode runs the tiny BERT on onnxruntime.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
from plugin_helpers import install_plugin

from core.common.errors import UserError
from core.config import registry
from core.run.runner import RunOptions, run_task

pytest.importorskip("mlperf_loadgen")

PLUGIN = textwrap.dedent(
    '''
    """Test hardware: each call sleeps DELAY seconds; counts the calls in flight."""
    import threading
    import time

    import numpy as np
    from pydantic import BaseModel, ConfigDict

    from backends.base import BackendSpec, CompileBackend, CompiledModel, RuntimeBackend

    STATE = {"delay": 0.01, "multi": True, "in_flight": 0, "max_in_flight": 0, "calls": 0}
    LOCK = threading.Lock()


    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        engine: str = "sleepy"


    class Compile(CompileBackend):
        def compile(self, request):
            return CompiledModel(engine="sleepy", precision=request.precision, artifact=None,
                                 input_names=request.model.input_names, output_names=request.model.output_names,
                                 compile_seconds=0.0, cache_hit=False, optimizations=[])


    class Runtime(RuntimeBackend):
        def load(self, batch_size):
            self.batch_size = batch_size

        def instances(self, count):
            return [self] * count if STATE["multi"] else [self]

        def predict(self, feeds):
            with LOCK:
                STATE["in_flight"] += 1
                STATE["calls"] += 1
                STATE["max_in_flight"] = max(STATE["max_in_flight"], STATE["in_flight"])
            try:
                time.sleep(STATE["delay"])
            finally:
                with LOCK:
                    STATE["in_flight"] -= 1
            first = next(iter(feeds.values()))
            return {name: np.zeros(first.shape, np.float32) for name in self.compiled.output_names}


    BACKEND = BackendSpec(name="SLEEPY", description="test plugin", config_class=Options,
                          compile_backend=Compile, runtime_backend=Runtime)
    '''
)


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory):
    root = install_plugin(tmp_path_factory.mktemp("plugin"), "sleepy_backend", "SLEEPY", PLUGIN)
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(root))
        yield root
    sys.modules.pop("sleepy_backend", None)


@pytest.fixture
def plugin(plugin_dir):
    import sleepy_backend

    sleepy_backend.STATE.update(delay=0.01, multi=True, in_flight=0, max_in_flight=0, calls=0)
    return sleepy_backend


def workload(tmp_path: Path, **fields) -> Path:
    data = {
        "model": "tiny-bert-squad",
        "iterations": 3,
        "warmup_iterations": 1,
        "min_seconds": 0,
        "max_seconds": 2,
        "test_accuracy": False,
        "test_numeric": False,
        "batch_sizes": [1],
        **fields,
    }
    path = tmp_path / "w.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def run(tmp_path: Path, hardware: str = "SLEEPY", **fields) -> tuple[dict, Path]:
    task = registry.load_task(str(workload(tmp_path, **fields)))
    path = run_task(task, RunOptions(hardware_type=hardware, output_dir=tmp_path / "reports")).written
    return json.loads(path.read_text(encoding="utf-8")), path.parent


# --- clients --------------------------------------------------------------------------------------


def test_clients_run_concurrently_on_their_own_instances(plugin, tmp_path):
    plugin.STATE["delay"] = 0.02
    report, _ = run(tmp_path, clients=3, iterations=12, min_seconds=0.3)
    row = report["Performance"][0]
    assert report["Instance Count"] == 3 and row["Clients"] == 3
    assert plugin.STATE["max_in_flight"] == 3
    # Overlap: the calls' summed latency is about three times the window they ran in (one client: once).
    busy_seconds = row["AVG Latency"] * row["Iterations"] / 1e3
    assert busy_seconds > 2 * row["Measured Seconds"]


def test_one_client_is_one_call_at_a_time(plugin, tmp_path):
    report, _ = run(tmp_path, clients=1, iterations=5)
    assert report["Instance Count"] == 1 and "Clients" not in report["Performance"][0]
    assert plugin.STATE["max_in_flight"] == 1


def test_a_backend_without_instances_serializes_clients_and_says_so(plugin, tmp_path):
    plugin.STATE["multi"] = False
    report, _ = run(tmp_path, clients=3, iterations=6)
    assert plugin.STATE["max_in_flight"] == 1
    assert report["Instance Count"] == 1
    assert report["Clients"]["Instances"] == 1 and "serialized" in report["Clients"]["Note"]
    assert any("serialized" in note for note in report["Run"]["notes"])
    assert report["Performance"][0]["Status"] == "ok"


# --- LoadGen scenarios ----------------------------------------------------------------------------

# Enough queries for LoadGen's early-stopping estimate (p99: 662 MultiStream queries; Server ~460).
ENOUGH = {"min_duration_s": 0.3, "min_query_count": 700}


def test_every_scenario_is_valid_and_its_summary_log_is_kept(plugin, tmp_path):
    plugin.STATE["delay"] = 0.001
    report, folder = run(
        tmp_path,
        clients=2,
        batch_sizes=[1, 4],
        scenario=["SingleStream", "MultiStream", "Offline", "Server"],
        target_qps=300,
        target_latency_ms=200,
        **ENOUGH,
    )
    entries = {entry["Scenario"]: entry for entry in report["LoadGen"]}
    assert list(entries) == ["SingleStream", "MultiStream", "Offline", "Server"]
    for name, entry in entries.items():
        assert entry["Result"] == "VALID", (name, entry)
        assert entry["QPS"] > 0 and 0 < entry["P50 Latency"] <= entry["P90 Latency"] <= entry["P99 Latency"]
        summary = folder / entry["Log Summary"]
        assert summary.is_file() and f"Scenario : {name}" in summary.read_text()
        assert (summary.parent / "mlperf_log_detail.txt").is_file()
        assert summary.parent.parent.name.startswith(report["Run"]["id"])
        assert entry["Instance Count"] == 2 and entry["Max Batch Size"] == 4
    assert entries["Server"]["Target QPS"] == 300 and entries["Server"]["Target Latency"] == 200
    assert entries["MultiStream"]["Samples Per Query"] == 8
    assert plugin.STATE["max_in_flight"] == 2  # two batching workers, one per instance
    html = (folder / "result-fp32.html").read_text(encoding="utf-8")
    assert "LoadGen" in html and entries["Server"]["Log Summary"] in html


def test_an_impossible_server_target_is_judged_invalid(plugin, tmp_path):
    plugin.STATE["delay"] = 0.002
    report, _ = run(
        tmp_path, scenario="Server", target_qps=100, target_latency_ms=0.001, min_duration_s=0.2, min_query_count=10
    )
    (entry,) = report["LoadGen"]
    assert entry["Result"] == "INVALID" and "latency bound" in entry["Unmet"]
    assert entry["P99 Latency"] > entry["Target Latency"]
    assert "First Attempt" not in entry  # a latency bound is the result, not a sizing error: never re-run


def test_a_run_short_of_min_duration_is_run_again_as_loadgen_recommends(plugin, tmp_path, monkeypatch):
    from core.scenarios import loadgen

    plugin.STATE["delay"] = 0.002
    # An expectation far below the machine: Offline's one query ends well before min_duration (INVALID).
    monkeypatch.setattr(loadgen, "estimate_speed", lambda *args: loadgen.Estimate(0.1, 10.0))
    report, folder = run(tmp_path, scenario="Offline", min_duration_s=0.3, min_query_count=1)
    (entry,) = report["LoadGen"]
    first = entry["First Attempt"]
    assert first["Result"] == "INVALID" and first["Unmet"] == ["min duration"]
    assert "increase the expected QPS" in first["Recommendation"]
    assert entry["Result"] == "VALID" and entry["Target QPS"] >= loadgen.EXPECTATION_MARGIN * first["QPS"] * 0.99
    assert (folder / first["Log Summary"]).is_file() and (folder / entry["Log Summary"]).is_file()
    assert first["Log Summary"] != entry["Log Summary"]


def test_the_expected_speed_has_headroom_above_the_measured_one():
    import mlperf_loadgen as lg

    from core.scenarios.loadgen import Estimate, ScenarioSpec, _settings

    estimate = Estimate(single_latency_s=0.01, throughput_qps=400.0)
    spec = ScenarioSpec("Offline", min_duration_s=1.0, min_query_count=1, max_batch=4)
    settings = _settings(lg, spec, estimate, "PerformanceOnly")
    # 1.69x is what Offline's batching beat the rows by on a Zen 3 host: the headroom must cover it.
    assert settings.offline_expected_qps >= 1.7 * estimate.throughput_qps
    assert settings.single_stream_expected_latency_ns <= estimate.single_latency_s * 1e9 / 1.7


def test_find_peak_reports_the_peak_loadgen_found(plugin, tmp_path):
    plugin.STATE["delay"] = 0.004  # one instance, batches of up to 4: a few hundred QPS at most
    report, _ = run(
        tmp_path,
        batch_sizes=[4],
        scenario="Server",
        find_peak=True,
        target_latency_ms=50,
        min_duration_s=0.15,
        min_query_count=5,
    )
    (entry,) = report["LoadGen"]
    assert entry["Mode"] == "FindPeakPerformance" and entry["Peak Search"]
    assert entry["Peak QPS"] is not None and entry["Peak QPS"] > 0
    assert (
        entry["Target QPS"] == entry["Peak QPS"] > entry["Peak Search Start"] > 0
    )  # LoadGen's final run is at the peak
    summary = (tmp_path / "reports" / "SLEEPY" / "tiny-bert-squad" / entry["Log Summary"]).read_text()
    assert "FindPeakPerformance" in summary
    assert entry["Peak QPS"] < 4 / 0.004 * 3  # short runs overshoot a little, never by much


def test_a_failing_runtime_fails_its_scenario_not_the_harness(plugin, tmp_path, monkeypatch):
    import sleepy_backend

    def broken(self, feeds):
        raise RuntimeError("engine exploded")

    report, _ = run(tmp_path, test_perf=True, scenario="Offline", **{"min_duration_s": 0.1, "min_query_count": 5})
    assert report["LoadGen"][0]["Status"] == "ok"
    monkeypatch.setattr(sleepy_backend.Runtime, "predict", broken)
    monkeypatch.setattr(sleepy_backend.Runtime, "bind", lambda self, feeds: lambda: None)
    report, _ = run(tmp_path, scenario="Offline", min_duration_s=0.1, min_query_count=5)
    (entry,) = report["LoadGen"]
    assert entry["Status"] == "failed" and entry["Result"] == "INVALID" and "engine exploded" in entry["Error"]


def test_accuracy_mode_scores_what_the_plain_accuracy_pass_scores(tmp_path):
    report, folder = run(
        tmp_path,
        hardware="CPU",
        engine="onnxruntime",
        precision="FP32",
        clients=2,
        batch_sizes=[1, 4],
        test_accuracy=True,
        scenario="Offline",
        min_duration_s=0.2,
        min_query_count=10,
    )
    plain, loadgen = report["Accuracy"], report["LoadGen Accuracy"]
    assert loadgen["Mode"] == "AccuracyOnly" and loadgen["Samples"] == plain["Features"]
    for metric in ("Exact Match", "F1 Score", "Questions", "Features"):
        assert loadgen[metric] == plain[metric], metric
    assert (folder / loadgen["Accuracy Log"]).is_file()
    # Accuracy mode's timings never appear as performance.
    assert [entry["Mode"] for entry in report["LoadGen"]] == ["PerformanceOnly"]
    assert report["Instance Count"] == 2 and report["Runtime"]["instances"] == 2


# --- bad input --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"scenario": "Streaming"}, "scenario", "unknown scenario"),
        ({"scenario": ["Offline", 3]}, "scenario", "unknown scenario"),
        ({"scenario": "Server"}, None, "needs target_qps"),
        ({"scenario": "Server", "target_qps": -5}, "target_qps", "greater than 0"),
        ({"scenario": "Server", "target_qps": 5, "target_latency_ms": 0}, "target_latency_ms", "greater than 0"),
        ({"min_duration_s": 0}, "min_duration_s", "greater than 0"),
        ({"min_query_count": 0}, "min_query_count", "greater than or equal to 1"),
        ({"find_peak": True, "scenario": "Offline"}, None, "add Server"),
    ],
)
def test_bad_scenario_fields_are_one_line_errors(tmp_path, fields, field, words):
    with pytest.raises(UserError) as caught:
        registry.load_task(str(workload(tmp_path, **fields)))
    message = str(caught.value)
    assert "\n" not in message and "w.json" in message and words in message
    if field:
        assert f"{field}:" in message


def test_scenario_names_are_matched_case_insensitively(tmp_path):
    task = registry.load_task(str(workload(tmp_path, scenario=["offline", "SINGLESTREAM", "Offline"])))
    assert task.workload.scenario == ["Offline", "SingleStream"]


@pytest.mark.parametrize(("value", "words"), [("Streaming", "unknown scenario"), ("Server", "needs target_qps")])
def test_the_scenario_flag_exits_2_on_bad_input(tmp_path, capsys, value, words):
    from core.perf_engine import main

    with pytest.raises(SystemExit) if value == "Streaming" else _no_raise() as caught:
        code = main(["--task", str(workload(tmp_path)), "--scenario", value, "--output-dir", str(tmp_path / "r")])
    code = caught.value.code if value == "Streaming" else code
    assert code == 2
    assert words in capsys.readouterr().err


class _no_raise:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# --- compare ----------------------------------------------------------------------------------------


def _report(run_id: str, result: str, qps: float, p99: float) -> dict:
    return {
        "Schema": "perfbench-report/1",
        "Model": "m",
        "Run": {"id": run_id, "status": "complete"},
        "Performance": [{"BS": 1, "QPS": 10.0, "P99 Latency": 5.0, "Status": "ok"}],
        "LoadGen": [
            {
                "Scenario": "Server",
                "Result": result,
                "QPS": qps,
                "P50 Latency": 1.0,
                "P90 Latency": 2.0,
                "P99 Latency": p99,
                "Target QPS": 20.0,
                "Target Latency": 100.0,
                "Log Summary": f"runs/{run_id}-loadgen/Server/mlperf_log_summary.txt",
            }
        ],
    }


def test_compare_shows_loadgen_and_flags_valid_to_invalid():
    from core.reporting.comparison import build_comparison, comparison_tables
    from core.reporting.html_report import render_compare_html
    from core.reporting.report import RunReport

    raw = [_report("a", "VALID", 20.0, 50.0), _report("b", "INVALID", 19.9, 150.0)]
    cmp = build_comparison([RunReport.from_dict(r) for r in raw], ["a", "b"], threshold=0.05)
    messages = [r.message for r in cmp.regressions]
    assert any("LoadGen Server is INVALID" in m for m in messages)
    assert any("P99 Latency rise" in m for m in messages)
    assert not any("QPS drop" in m for m in messages)  # 0.5% is within the threshold
    table = next(t for t in comparison_tables(cmp) if t.title.startswith("LoadGen"))
    assert ["Server", "Result", "VALID", "INVALID"] == [c.text for c in table.rows[0]]
    assert "LoadGen scenarios" in render_compare_html(raw, ["a", "b"])
    same = build_comparison([RunReport.from_dict(r) for r in raw[:1] * 2], ["a", "a2"], threshold=0.05)
    assert not same.regressions
