"""Work per sample, the peaks, each row's share of them, the profiles and compare's operator table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.measure.operators import OUTSIDE, OpEvent, RawProfile, normalize, op_type
from core.measure.work import ATTENTION, CONVOLUTION, MATMUL, WorkCount, count_onnx, count_torch
from core.reporting.report import RunReport
from core.reporting.schema import PerfRow
from core.run.roofline import Roofline


def test_a_linear_layer_an_attention_and_a_convolution_counted_by_hand():
    import torch

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(64, 32)
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)

        def forward(self, tokens, image):
            hidden = self.linear(tokens)  # [1, 10, 32]
            heads = hidden.view(1, 10, 2, 16).transpose(1, 2)  # 2 heads of 16
            attended = torch.nn.functional.scaled_dot_product_attention(heads, heads, heads)
            return attended, self.conv(image)

    feeds = {"tokens": np.ones((1, 10, 64), np.float32), "image": np.ones((1, 3, 16, 16), np.float32)}
    work = count_torch(Block().eval(), feeds)
    linear = 2 * 10 * 64 * 32
    attention = 2 * (2 * 10 * 10 * 16) * 2  # QK^T and AV, 2 heads, multiply-add = 2
    conv = 2 * (8 * 16 * 16) * 3 * 3 * 3
    assert work.by_type == pytest.approx(
        {MATMUL: linear / 1e9, ATTENTION: attention / 1e9, CONVOLUTION: conv / 1e9}, abs=1e-4
    )
    assert work.gflop_per_sample == pytest.approx(round((linear + attention + conv) / 1e9, 4))
    assert work.counter == "torch.utils.flop_counter" and work.reason is None
    assert work.parameter_mb == pytest.approx(((64 * 32 + 32) + (8 * 3 * 9 + 8)) * 4 / 1e6, abs=0.01)


def test_the_tiny_bert_count_is_its_hand_computed_work():
    from core.config.registry import load_task
    from core.model.source import resolve_source
    from core.run.context import model_inputs
    from datasets.fake_dataset import fake_inputs

    task = load_task("tiny-bert-squad")
    source = resolve_source(task.model, model_file=task.model_file)
    work = count_torch(source.torch_module(), fake_inputs(model_inputs(task, source), 1))
    seq, hidden, inner, layers = 128, 32, 64, 2
    linear = layers * 2 * seq * (4 * hidden * hidden + 2 * hidden * inner) + 2 * seq * hidden * 2  # + the QA head
    attention = layers * 2 * 2 * seq * seq * hidden
    assert work.by_type[MATMUL] == pytest.approx(linear / 1e9, abs=1e-4)
    assert work.by_type[ATTENTION] == pytest.approx(attention / 1e9, abs=1e-4)


def test_an_onnx_graph_is_counted_like_the_module_it_came_from(tmp_path):
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1, groups=1)
            self.linear = torch.nn.Linear(8 * 16 * 16, 10)

        def forward(self, image):
            return self.linear(self.conv(image).flatten(1))

    module = Net().eval()
    path = tmp_path / "net.onnx"
    torch.onnx.export(
        module,
        (torch.ones(1, 3, 16, 16),),
        str(path),
        input_names=["image"],
        dynamic_axes={"image": {0: "n"}},
        dynamo=False,
    )
    feeds = {"image": np.ones((1, 3, 16, 16), np.float32)}
    from_onnx, from_torch = count_onnx(path, feeds), count_torch(module, feeds)
    assert from_onnx.counter == "onnx shape inference"
    assert from_onnx.gflop_per_sample == pytest.approx(from_torch.gflop_per_sample, rel=1e-3)
    assert from_onnx.by_type[CONVOLUTION] == pytest.approx(from_torch.by_type[CONVOLUTION], rel=1e-3)


def test_an_onnx_graph_with_unknown_shapes_is_null_with_a_reason(tmp_path):
    from onnx import TensorProto, helper

    # MatMul against an input whose shape nothing fixes: inference cannot size it.
    node = helper.make_node("MatMul", ["a", "b"], ["y"], name="mystery")
    graph = helper.make_graph(
        [node],
        "g",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 4]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, None),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    path = tmp_path / "g.onnx"
    path.write_bytes(helper.make_model(graph).SerializeToString())
    work = count_onnx(path, {"a": np.ones((1, 4), np.float32)})
    assert work.gflop_per_sample is None and "mystery" in work.reason


def _row(bs: int, qps: float) -> PerfRow:
    return PerfRow(bs=bs, qps=qps)


def test_a_row_is_held_against_the_lower_roof_at_its_intensity():
    work = WorkCount(2.0, "torch.utils.flop_counter", "", parameter_mb=100.0)  # 2 GFLOP a sample, 100 MB of weights
    roofline = Roofline(work, "FP32", compute_gflops=200.0, bandwidth_gbs=10.0, input_bytes_per_sample=0)
    # bs 1: 2 GFLOP over 100 MB = 20 FLOP/byte; memory roof 10 GB/s x 20 = 200 = compute; bs 4 is compute-bound.
    low = roofline.row_fields(_row(1, 25.0))
    assert low["achieved_gflops"] == 50.0 and low["arithmetic_intensity"] == 20.0
    high = roofline.row_fields(_row(4, 50.0))
    assert high == {
        "achieved_gflops": 100.0,
        "arithmetic_intensity": 80.0,
        "roof": "compute",
        "roof_gflops": 200.0,
        "peak_share": 0.5,
    }
    # INT8 reads a quarter of the bytes: four times the intensity.
    int8 = Roofline(work, "INT8", compute_gflops=None, bandwidth_gbs=1.0, spec_gflops=400.0)
    fields = int8.row_fields(_row(1, 1.0))
    assert fields["arithmetic_intensity"] == 80.0 and fields["roof"] == "memory" and fields["roof_gflops"] == 80.0
    assert fields["peak_share"] == pytest.approx(2.0 / 80.0, abs=1e-4) and fields["spec_peak_share"] == 0.005


def test_a_failed_row_or_an_uncounted_model_gets_no_derived_numbers():
    roofline = Roofline(WorkCount(None, "none", "", reason="x"), "FP32", 100.0, 10.0)
    assert roofline.row_fields(_row(1, 5.0)) == {}
    counted = Roofline(WorkCount(1.0, "c", "", parameter_mb=None), "FP32", 100.0, 10.0)
    assert counted.row_fields(PerfRow(bs=1, status="failed")) == {}
    # no parameter size: no intensity, so only the compute roof applies
    assert counted.row_fields(_row(1, 10.0)) == {
        "achieved_gflops": 10.0,
        "roof": "compute",
        "roof_gflops": 100.0,
        "peak_share": 0.1,
    }


@pytest.mark.parametrize(
    "name, kind",
    [
        ("MatMul", MATMUL),
        ("FullyConnected", MATMUL),
        ("aten::addmm", MATMUL),
        ("Attention", ATTENTION),
        ("aten::_scaled_dot_product_flash_attention_for_cpu", ATTENTION),
        ("SkipLayerNormalization", "layer norm"),
        ("MVN", "layer norm"),
        ("BiasGelu", "GELU"),
        ("aten::_softmax", "softmax"),
        ("Convolution", CONVOLUTION),
        ("Convert", "data movement"),
        ("Reorder", "data movement"),
        ("Add", "elementwise"),
        ("Subgraph", "elementwise"),
        ("Range", "other"),
    ],
)
def test_every_engine_s_op_names_land_in_one_vocabulary(name, kind):
    assert op_type(name) == kind


def test_shares_add_up_with_the_time_outside_operators_on_its_own_line():
    events = [OpEvent("mm0", "MatMul", 6000.0, 4, 4e9), OpEvent("sm", "Softmax", 2000.0, 4)]
    raw = RawProfile("onnxruntime", "test", calls=4, wall_seconds=0.010, events=events)
    section = normalize(raw, batch_size=2, timed_ms=2.0, work_gflop=1.0)
    types = {row["Type"]: row for row in section["Types"]}
    assert types[MATMUL]["ms per Call"] == 1.5 and types["softmax"]["ms per Call"] == 0.5
    assert types[OUTSIDE]["ms per Call"] == 0.5 and sum(row["Share"] for row in section["Types"]) == pytest.approx(1)
    assert types[MATMUL]["GFLOP/s"] == pytest.approx(4e9 / 6e-3 / 1e9, rel=1e-3)
    assert section["Profiled ms per Call"] == 2.5 and section["Profiler Overhead"] == 0.25
    # 1 GFLOP a sample x 2 samples over 1.5 ms of matrix time
    assert section["Matrix GFLOP/s"] == pytest.approx(2 / 1.5e-3, rel=1e-3)
    assert [node["Node"] for node in section["Top Nodes"]] == ["mm0", "sm"]


def _profiled(types: dict[str, float], bs: int = 1) -> RunReport:
    report = RunReport(model="m", backend="CPU", precision="FP32", dataset=None)
    report.sections["Profile"] = {
        "Batch Size": bs,
        "Types": [{"Type": kind, "ms per Call": ms} for kind, ms in types.items()],
    }
    return report


def test_compare_says_which_operator_type_explains_the_change():
    from core.reporting.comparison import build_comparison, comparison_tables

    before = _profiled({ATTENTION: 10.0, MATMUL: 50.0, OUTSIDE: 2.0})
    after = _profiled({ATTENTION: 51.0, MATMUL: 59.0, OUTSIDE: 4.0})  # +41 of +52
    cmp = build_comparison([before, after], ["a", "b"])
    rows = {row.type: row for row in cmp.operators.rows}
    assert rows[ATTENTION].explains[1] == pytest.approx(41 / 52) and rows[MATMUL].explains[1] == pytest.approx(9 / 52)
    table = comparison_tables(cmp)[-1]
    shown = {row[0].text: row[2].text for row in table.rows}
    assert shown[ATTENTION] == "51.00 (5.10x), +41 ms: 79% of the slowdown"
    assert table.rows[-1][0].text == "total profiled"


def test_profiles_at_different_batch_sizes_are_compared_per_sample():
    from core.reporting.comparison import build_comparison

    cmp = build_comparison([_profiled({MATMUL: 10.0}, bs=1), _profiled({MATMUL: 40.0}, bs=4)], ["a", "b"])
    assert cmp.operators.unit == "ms per sample" and cmp.operators.rows[0].values == [10.0, 10.0]
    assert "per sample" in cmp.operators.note


def test_no_operator_table_unless_every_side_was_profiled():
    from core.reporting.comparison import build_comparison

    plain = RunReport(model="m", backend="CPU", precision="FP32", dataset=None)
    assert build_comparison([_profiled({MATMUL: 1.0}), plain], ["a", "b"]).operators is None


SHORT = "iterations: 3\nmin_seconds: 0.05\nmax_seconds: 0.5\nwarmup_iterations: 1\n"


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino", "pytorch"])
def test_each_cpu_engine_profiles_and_every_row_says_how_close_it_came(engine, tmp_path):
    from core.config import registry
    from core.run.runner import RunOptions, run_task

    workload = tmp_path / "w.yaml"
    workload.write_text(f"model: tiny-bert-squad\nbatch_sizes: [1, 2]\n{SHORT}", encoding="utf-8")
    report = run_task(
        registry.load_task(str(workload)),
        RunOptions(hardware_type="CPU", output_dir=tmp_path, engine=engine, precision="FP32", profile=True),
    )
    data = json.loads(report.written.read_text(encoding="utf-8"))
    assert data["Work"]["GFLOP per Sample"] == pytest.approx(0.0084, abs=2e-4)
    peak = data["Host"]["Peak"]
    library = {"onnxruntime": "onnxruntime", "openvino": "openvino", "pytorch": "torch"}[engine]
    assert peak["FP32"]["GFLOP/s"] > 0 and peak["FP32"]["Method"].startswith(library)
    assert peak["Memory"]["GB/s"] > 0
    for row in data["Performance"]:
        assert row["Achieved GFLOP/s"] == pytest.approx(0.0084 * row["QPS"], rel=0.03)
        assert 0 < row["Peak Share"] < 1 and row["Roof"] in ("compute", "memory")
    profile = data["Profile"]
    assert profile["Batch Size"] == 1 and profile["Engine"] == engine
    assert sum(row["Share"] for row in profile["Types"]) == pytest.approx(1, abs=0.01)
    assert MATMUL in {row["Type"] for row in profile["Types"]} and profile["Top Nodes"]
    trace = report.written.parent / profile["Trace"]
    assert trace.is_file() and json.loads(trace.read_text(encoding="utf-8"))  # Chrome trace JSON
    page = report.written.with_suffix(".html").read_text(encoding="utf-8")
    assert "Where the time went" in page and "Roofline" in page


def test_a_profile_batch_size_that_is_not_measured_is_refused_before_measuring(tmp_path):
    from core.common.errors import UserError
    from core.config import registry
    from core.run.runner import RunOptions, run_task

    workload = tmp_path / "w.yaml"
    workload.write_text(f"model: tiny-bert-squad\n{SHORT}", encoding="utf-8")
    with pytest.raises(UserError) as caught:
        run_task(
            registry.load_task(str(workload)),
            RunOptions(
                hardware_type="CPU",
                output_dir=tmp_path,
                engine="onnxruntime",
                precision="FP32",
                profile=True,
                profile_batch_size=8,
            ),
        )
    assert caught.value.field == "--profile-batch-size"
    assert not (tmp_path / "CPU" / "tiny-bert-squad" / "result-fp32.json").exists()


def test_a_runtime_without_a_profiler_leaves_a_note():
    from backends.base import RuntimeBackend

    class Bare(RuntimeBackend):
        def load(self, batch_size):
            pass

        def predict(self, feeds):
            return {}

    with pytest.raises(NotImplementedError, match="Bare runtime has no profiler"):
        Bare(None, None).profile({}, 3, Path("."))


@pytest.mark.parametrize("precision", ["FP32", "INT8"])
def test_the_engines_own_matrix_multiplies_measure_a_rate(precision):
    from backends.CPU.config import CpuConfig
    from backends.CPU.onnxruntime_engine import OnnxRuntimeBackend
    from backends.CPU.openvino_engine import OpenVinoBackend
    from core.measure.peak import time_probe

    for runtime_class in (OnnxRuntimeBackend, OpenVinoBackend):
        probe = runtime_class(None, CpuConfig(intra_op_threads=1)).peak_probe(precision)
        rate, calls = time_probe(probe.run, probe.flops, seconds=0.2)
        assert rate > 1e9 and calls >= 1 and probe.precision == precision


def test_a_peak_is_measured_once_per_host_and_versions(monkeypatch, tmp_path):
    from core.measure import peak

    monkeypatch.setenv("PERFBENCH_HOME", str(tmp_path))
    calls = []

    def probe():
        calls.append(1)
        return peak.PeakProbe("fake", "FP32", 1e9, lambda: None)

    first = peak.gemm_peak({"engine": "x"}, probe)
    second = peak.gemm_peak({"engine": "x"}, probe)
    assert len(calls) == 1 and first["Cached"] is False and second["Cached"] is True
    assert second["GFLOP/s"] == first["GFLOP/s"] > 0
    broken = peak.gemm_peak({"engine": "y"}, lambda: (_ for _ in ()).throw(RuntimeError("no int8 here")))
    assert broken["GFLOP/s"] is None and "no int8 here" in broken["Reason"]


def test_the_gpu_runtime_measures_its_peak_and_profiles_on_the_device(tmp_path, monkeypatch):
    """Through the fakes: the matmul probe and the copy end by synchronizing the device; the profile is torch's."""
    from dataclasses import replace

    from backends import load_backend
    from backends.base import CompileRequest
    from backends.GPU.compile import GpuCompileBackend
    from backends.GPU.nvml import Nvml
    from backends.GPU.runtime import GpuRuntime, Shared
    from core.common.paths import state_dir
    from core.config.registry import load_task
    from core.model.source import resolve_source
    from core.run.context import model_inputs
    from datasets.fake_dataset import fake_inputs
    from tests.gpu_fakes import FakeCuda, FakeDevice, FakeNvml

    monkeypatch.setenv("PERFBENCH_HOME", str(tmp_path / "home"))
    task = load_task("tiny-bert-squad")
    source = resolve_source(task.model, model_file=task.model_file)
    inputs = model_inputs(task, source)
    request = CompileRequest(task.model, source, "FP16", [1], state_dir(), lambda bs: fake_inputs(inputs, bs))
    config = load_backend("GPU").make_config("eager", {"device": "cpu"}, source="test")
    compiled = GpuCompileBackend(config).compile(replace(request, precision="FP16"))
    cuda = FakeCuda()
    runtime = GpuRuntime(compiled, config, shared=Shared.open(FakeDevice(cuda), nvml=Nvml.open(FakeNvml())))
    runtime.load(1)
    probe = runtime.peak_probe("FP16")
    syncs = cuda.device_syncs
    probe.run()
    assert cuda.device_syncs == syncs + 1 and probe.flops == 2 * 512**3 and probe.precision == "FP16"
    bandwidth = runtime.peak_bandwidth()
    assert bandwidth["GB/s"] > 0 and "device copy" in bandwidth["Method"]
    raw = runtime.profile(fake_inputs(inputs, 1), 3, tmp_path / "profile")
    assert raw.calls == 3 and raw.trace.is_file() and any(op_type(e.op) == MATMUL for e in raw.events)


def test_the_leaderboard_shows_each_run_s_best_share_of_the_roof(tmp_path):
    from core.reporting.leaderboard import collect, leaderboard_tables
    from core.reporting.writer import write_report

    report = RunReport(model="m", backend="CPU", precision="FP32", dataset=None)
    report.performance = [PerfRow(bs=1, qps=2.0, peak_share=0.42), PerfRow(bs=8, qps=9.0, peak_share=0.84)]
    write_report(report, tmp_path)
    table = leaderboard_tables(collect(tmp_path)[0])[0]
    column = table.headers.index("peak share")
    assert table.rows[0][column].text == "84% at BS 8"


def test_a_probe_that_fails_to_run_is_a_null_peak_with_its_reason(monkeypatch, tmp_path):
    from core.measure import peak

    monkeypatch.setenv("PERFBENCH_HOME", str(tmp_path))

    def boom():
        raise RuntimeError("MatMulInteger not implemented")

    figure = peak.gemm_peak({"engine": "z"}, lambda: peak.PeakProbe("fake", "INT8", 1e9, boom))
    assert figure["GFLOP/s"] is None and "MatMulInteger not implemented" in figure["Reason"]


def test_a_failing_roofline_is_a_note_not_a_failed_run(monkeypatch):
    from core.run import roofline

    def broken(run, runtime):
        raise RuntimeError("no counter today")

    monkeypatch.setattr(roofline, "prepare", broken)
    report = RunReport(model="m", backend="CPU", precision="FP32", dataset=None)
    run = type("Run", (), {"report": report})()
    assert roofline.prepare_or_note(run, None) is None
    assert report.notes == ["work and peak not measured: RuntimeError: no counter today"]
