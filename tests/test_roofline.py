"""Work per sample, the peaks, each row's share of them, the profiles and compare's operator table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.measure.operators import ATTENTION, CONVOLUTION, MATMUL, OUTSIDE, OpEvent, RawProfile, normalize, op_type
from core.measure.work import WorkCount, count_onnx, count_torch
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
        ("aten::_scaled_mm", MATMUL),
        ("aten::bmm", ATTENTION),  # attention's QK^T and AV, as the work counter files them
        ("baddbmm", ATTENTION),
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
        # ggml's op names (llama.cpp)
        ("MUL_MAT", MATMUL),
        ("FLASH_ATTN_EXT", ATTENTION),
        ("SOFT_MAX", "softmax"),
        ("RMS_NORM", "layer norm"),
        ("GET_ROWS", "data movement"),
        ("SET_ROWS", "data movement"),
        ("CPY", "data movement"),
        ("ROPE", "elementwise"),
        ("SWIGLU", "elementwise"),
        ("MUL", "elementwise"),
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
    # The roof is the host's: every engine's probe ran, and the fastest of them is the roof, whichever engine ran.
    roof = peak["FP32"]
    assert set(roof["Engines"]) == {"onnxruntime", "openvino", "pytorch"}
    assert roof["GFLOP/s"] == max(rate for rate in roof["Engines"].values() if isinstance(rate, float))
    library = {"onnxruntime": "onnxruntime", "openvino": "openvino", "pytorch": "torch"}[roof["Engine"]]
    assert roof["Method"].startswith(library)
    assert peak["Memory"]["GB/s"] > 0
    for row in data["Performance"]:
        assert row["Achieved GFLOP/s"] == pytest.approx(0.0084 * row["QPS"], rel=0.03)
        assert 0 < row["Peak Share"] < 1 and row["Roof"] in ("compute", "memory")
        assert row["Roof"] == "memory" or row["Roof Engine"] == roof["Engine"]
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

    def probe():  # built each time (its code is part of the key), run only when measured
        return peak.PeakProbe("fake", "FP32", 1e9, lambda: calls.append(1))

    first = peak.gemm_peak({"engine": "x"}, probe)
    timed = len(calls)
    second = peak.gemm_peak({"engine": "x"}, probe)
    assert timed > 0 and len(calls) == timed and first["Cached"] is False and second["Cached"] is True
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


def test_the_roof_is_the_fastest_engine_s_probe_and_each_row_names_it():
    from core.run.roofline import host_roof

    figures = {
        "onnxruntime": {"GFLOP/s": 157.6, "Method": "onnxruntime MatMul"},
        "openvino": {"GFLOP/s": 174.3, "Method": "openvino MatMul"},
        "pytorch": {"GFLOP/s": None, "Reason": "no probe"},
    }
    theoretical = {"GFLOP/s": 160.0, "Assumes": "2 cores x 32 FP32 FLOP/cycle (Zen 3) x 2.5 GHz"}
    roof = host_roof(figures, "onnxruntime", theoretical)
    assert roof["GFLOP/s"] == 174.3 and roof["Engine"] == "openvino" and roof["Method"] == "openvino MatMul"
    assert roof["Engines"] == {"onnxruntime": 157.6, "openvino": 174.3, "pytorch": "no probe"}
    assert roof["Theoretical"]["GFLOP/s"] == 160.0 and "exceeds" in roof["Theoretical"]["Note"]
    # Two engines doing the same work (159.7 and 157.6 GFLOP/s achieved) read shares against one roof.
    work = WorkCount(70.7, "torch.utils.flop_counter", "")
    shares = []
    for achieved in (159.7, 157.6):
        roofline = Roofline(work, "FP32", roof["GFLOP/s"], None, roof_engine=roof["Engine"])
        fields = roofline.row_fields(_row(1, achieved / 70.7))
        assert fields["roof_engine"] == "openvino" and fields["roof_gflops"] == 174.3
        shares.append(fields["peak_share"])
    assert shares == pytest.approx([159.7 / 174.3, 157.6 / 174.3], abs=1e-4)
    nothing = host_roof({"pytorch": {"GFLOP/s": None, "Reason": "no probe"}}, "pytorch", None)
    assert nothing["GFLOP/s"] is None and nothing["Engine"] is None and "Theoretical" not in nothing


@pytest.mark.parametrize("remeasured, above", [(180.0, False), (110.0, True)])
def test_a_row_above_its_roof_remeasures_it_once_and_says_why(remeasured, above):
    work = WorkCount(1.0, "c", "")
    calls = []

    def remeasure():
        calls.append(1)
        return remeasured, "openvino", None

    roofline = Roofline(work, "FP32", 100.0, None, roof_engine="onnxruntime", remeasure=remeasure)
    fine = roofline.row_fields(_row(1, 90.0))
    assert not calls and "roof_note" not in fine and fine["roof_engine"] == "onnxruntime"
    fields = roofline.row_fields(_row(2, 120.0))
    assert calls == [1] and fields["roof_gflops"] == remeasured and fields["roof_engine"] == "openvino"
    assert (fields["peak_share"] > 1.0) == above and fields["roof_note"]
    assert ("above its compute roof (every probe re-measured" in fields["roof_note"]) == above
    again = roofline.row_fields(_row(4, 130.0))  # re-measured once a run: a later row keeps the new roof
    assert calls == [1] and again["roof_gflops"] == remeasured
    assert (again["peak_share"] > 1.0) == (130.0 > remeasured) and ("roof_note" in again) == (130.0 > remeasured)
    unmeasurable = Roofline(work, "FP32", 100.0, None).row_fields(_row(1, 120.0))
    assert unmeasurable["peak_share"] == 1.2 and "not re-measured" in unmeasurable["roof_note"]


def test_the_work_counter_and_the_profile_share_one_vocabulary():
    import torch

    class EagerAttention(torch.nn.Module):
        def forward(self, q):
            return torch.bmm(torch.softmax(torch.bmm(q, q.transpose(1, 2)), -1), q)

    work = count_torch(EagerAttention().eval(), {"q": np.ones((2, 8, 4), np.float32)})
    assert set(work.by_type) == {op_type("aten::bmm")} == {ATTENTION}


def test_a_fusion_is_typed_by_what_it_fuses():
    from core.measure.operators import fused_type

    assert fused_type(["Multiply", "Softmax", "MatMul", "Add"]) == ATTENTION
    assert fused_type(["MatMul", "Add"]) == MATMUL
    assert fused_type(["Multiply", "Add", "Convert"]) == "elementwise"
    assert fused_type(["Power", "Tanh", "Multiply"]) == "elementwise"
    assert fused_type(["Range"]) == "other"


def test_openvino_s_fused_attention_subgraph_is_attention(tmp_path):
    import openvino as ov
    import openvino.opset13 as ops

    from backends.base import CompiledModel
    from backends.CPU.config import CpuConfig
    from backends.CPU.openvino_engine import OpenVinoBackend

    names = ("q", "k", "v")
    q, k, v = (ops.parameter([1, 4, 64, 32], np.float32, name=name) for name in names)
    scores = ops.multiply(ops.matmul(q, k, False, True), ops.constant(np.float32(0.17)))
    context = ops.matmul(ops.softmax(scores, -1), v, False, False)
    path = tmp_path / "attention.xml"
    ov.save_model(ov.Model([ops.add(context, ops.constant(np.float32(1.0)))], [q, k, v], "attention"), path)
    compiled = CompiledModel("openvino", "FP32", path, list(names), ["out"], 0.0, False)
    compiled.details["inference_precision"] = "f32"
    runtime = OpenVinoBackend(compiled, CpuConfig(intra_op_threads=1))
    runtime.load(1)
    feeds = {name: np.ones((1, 4, 64, 32), np.float32) for name in names}
    raw = runtime.profile(feeds, 2, tmp_path / "profile")
    subgraphs = [event for event in raw.events if event.op == "Subgraph"]
    if not subgraphs:
        pytest.skip("this OpenVINO did not fuse the attention into a Snippets subgraph")
    assert ATTENTION in {event.type for event in subgraphs}
    section = normalize(raw, batch_size=1, timed_ms=None, work_gflop=None)
    assert ATTENTION in {row["Type"] for row in section["Types"]}


def test_a_profiled_call_much_slower_than_the_timed_one_is_unrepresentative():
    events = [OpEvent("mm0", "MatMul", 6000.0, 4, 4e9)]
    raw = RawProfile("pytorch", "test", calls=4, wall_seconds=0.008, events=events)  # 2 ms a call
    assert normalize(raw, batch_size=1, timed_ms=1.9, work_gflop=1.0)["Representative"] is True
    slow = normalize(raw, batch_size=1, timed_ms=1.5, work_gflop=1.0)  # 1.33x
    assert slow["Representative"] is False and "1.33x" in slow["Warning"]
    assert "Representative" not in normalize(raw, batch_size=1, timed_ms=None, work_gflop=1.0)


def test_matrix_rate_leaves_out_work_whose_time_is_filed_under_another_type():
    # Attention's FLOPs were counted, but the profile shows its time as softmax/elementwise (a fused subgraph):
    # counting them over the matmul time alone would inflate the rate.
    events = [OpEvent("mm", "MatMul", 4000.0, 4), OpEvent("fused", "Subgraph", 4000.0, 4)]
    raw = RawProfile("openvino", "test", calls=4, wall_seconds=0.008, events=events)
    by_type = {MATMUL: 0.8, ATTENTION: 0.2}
    section = normalize(raw, batch_size=1, timed_ms=2.0, work_gflop=1.0, work_by_type=by_type)
    assert section["Matrix GFLOP/s"] == pytest.approx(0.8 / 1e-3, rel=1e-3) and "attention" in section["Matrix Note"]
    events[1].kind = ATTENTION  # typed by what it fuses: all the work over all the matrix time
    section = normalize(raw, batch_size=1, timed_ms=2.0, work_gflop=1.0, work_by_type=by_type)
    assert section["Matrix GFLOP/s"] == pytest.approx(1.0 / 2e-3, rel=1e-3) and "Matrix Note" not in section


def test_with_several_clients_the_profile_runs_as_the_timed_rows_did(tmp_path):
    from core.config import registry
    from core.run.runner import RunOptions, run_task

    workload = tmp_path / "w.yaml"
    workload.write_text(f"model: tiny-bert-squad\nbatch_sizes: [1]\nclients: 2\n{SHORT}", encoding="utf-8")
    report = run_task(
        registry.load_task(str(workload)),
        RunOptions(hardware_type="CPU", output_dir=tmp_path, engine="pytorch", precision="FP32", profile=True),
    )
    data = json.loads(report.written.read_text(encoding="utf-8"))
    profiled = data["Profile"]["Runtime"]
    assert profiled["instances"] == data["Runtime"]["instances"] == 2 and profiled["torch_threads"] >= 1
    assert profiled["torch_threads"] == max(1, profiled["intra_op_threads"] // 2)
    assert data["Profile"]["Timed ms per Call"] == data["Performance"][0]["P50 Latency"]


def test_the_theoretical_peak_names_every_factor_and_the_clock(monkeypatch):
    from core.measure import host, peak

    facts = {"microarchitecture": "Zen 4", "mhz": 2600, "physical_cores": 2, "threads": 4}
    monkeypatch.setattr(host, "processor_facts", lambda: facts)
    monkeypatch.setattr(host, "usable_cores", lambda: 4)  # two cores, two hyperthreads each: two cores' pipes
    monkeypatch.setattr(peak, "_max_clock_ghz", lambda: None)
    figure = peak.theoretical_peak("FP32")
    assert (
        figure["GFLOP/s"] == pytest.approx(2 * 32 * 2.6) and "2 cores x 32 FP32 FLOP/cycle (Zen 4)" in figure["Assumes"]
    )
    assert "2.6 GHz" in figure["Assumes"] and "/proc/cpuinfo" in figure["Assumes"]
    monkeypatch.setattr(peak, "_max_clock_ghz", lambda: 3.7)
    assert peak.theoretical_peak("BF16")["GFLOP/s"] == pytest.approx(2 * 64 * 3.7)
    assert peak.theoretical_peak("FP16") is None  # no native kernel counted for it
    facts["microarchitecture"] = None
    assert peak.theoretical_peak("FP32") is None


def test_compare_sets_achieved_rates_against_each_other_never_shares():
    from core.reporting.comparison import build_comparison, comparison_notes

    reports = []
    for qps, roof in ((2.0, 157.6), (2.0, 184.0)):  # the same work; the roof re-measured between the runs
        report = RunReport(model="m", backend="CPU", precision="FP32", dataset=None)
        achieved = 70.7 * qps
        report.performance = [
            PerfRow(bs=1, qps=qps, achieved_gflops=achieved, roof_gflops=roof, peak_share=round(achieved / roof, 4))
        ]
        reports.append(report)
    cmp = build_comparison(reports, ["a", "b"], threshold=0.05)
    rows = {row.metric: row for row in cmp.perf}
    assert rows["Achieved GFLOP/s"].ratios == [1.0, 1.0]
    assert rows["Peak Share"].ratios == [None, None] and rows["Roof GFLOP/s"].ratios == [None, None]
    assert rows["Peak Share"].values[0] != rows["Peak Share"].values[1] and not cmp.regressions
    assert any("a peak share has no ratio" in text for _, text in comparison_notes(cmp))


def test_openvino_counters_give_each_call_its_own_times_not_the_request_s_running_average():
    """The CPU plugin reports each node's average over every infer of its request: a 80 ms prefill followed by
    10 ms decode steps reads 45, then 33.3, ...; a profiled step must come out at 10 ms, not at the average."""
    from datetime import timedelta
    from types import SimpleNamespace

    from backends.CPU.openvino_engine import PerfCounters

    class Request:
        def __init__(self):
            self.times: list[float] = []  # ms of each infer so far

        def infer(self, ms: float) -> None:
            self.times.append(ms)

        def get_profiling_info(self):
            average = sum(self.times) / len(self.times)
            executed = SimpleNamespace(
                node_name="MatMul_1",
                node_type="FullyConnected",
                status="Status.EXECUTED",
                exec_type="brgemm",
                real_time=timedelta(microseconds=round(average * 1000)),
            )
            skipped = SimpleNamespace(
                node_name="Reshape_2",
                node_type="Reshape",
                status="Status.NOT_RUN",
                exec_type="undef",
                real_time=timedelta(0),
            )
            return [executed, skipped]

    request = Request()
    request.infer(80.0)  # the prefill, outside the profile
    counters = PerfCounters()
    offset = 0.0
    for call, ms in enumerate([10.0, 12.0, 10.0]):
        counters.mark(request, len(request.times))
        request.infer(ms)
        offset = counters.add(request, len(request.times), call, offset)
    (event,) = counters.events.values()
    assert event.microseconds == pytest.approx(32_000, abs=5) and event.count == 3
    assert [round(e["dur"] / 1000, 2) for e in counters.trace] == [10.0, 12.0, 10.0]
    with pytest.raises(ValueError, match="not marked"):
        PerfCounters().add(request, len(request.times), 0, 0.0)
