"""The GPU backend without a GPU: the whole path on `device: cpu` (casting, binding, the gate, selection,
report fields), and its CUDA-only parts (events, streams, graphs, memory, NVML energy) through the fakes
of tests/gpu_fakes.py. The one test that needs a real device says so and is skipped without one."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

import backends
from backends.base import CompileRequest
from backends.GPU import compile as gpu_compile
from backends.GPU.device import device_facts, fingerprint, listing_note, unavailable_reason
from backends.GPU.meters import DeviceMemory, DeviceTimer, EnergyMeter
from backends.GPU.nvml import Nvml
from backends.GPU.runtime import GpuRuntime, Shared
from core.common.errors import UserError
from core.common.paths import state_dir
from core.config import registry
from core.measure.dataset_pass import run_features
from core.measure.timing import MeasurePolicy, measure, measure_clients
from core.model.source import resolve_source
from core.run.context import model_inputs
from datasets.base import Features
from datasets.fake_dataset import fake_inputs
from tests.gpu_fakes import FakeCuda, FakeDevice, FakeNvml

ROOT = Path(__file__).resolve().parents[1]
QUICK = MeasurePolicy(warmup_iterations=2, warmup_seconds=1.0, min_iterations=6, min_seconds=0.0, max_seconds=5.0)
SPEC = backends.load_backend("GPU")


@pytest.fixture(scope="module")
def task():
    return registry.load_task("tiny-bert-squad")


@pytest.fixture(scope="module")
def prepared(task):
    source = resolve_source(task.model, model_file=task.model_file, seed=0)
    inputs = model_inputs(task, source)
    request = CompileRequest(
        model=task.model,
        source=source,
        precision="FP32",
        batch_sizes=[2],
        cache_dir=state_dir(),
        sample_feeds=lambda bs: fake_inputs(inputs, bs, seed=1),
    )
    return source, inputs, request


def gpu_config(**options):
    return SPEC.make_config(options.pop("engine", None), options, source="test")


def compiled_for(request, engine: str, precision: str, **options):
    config = gpu_config(engine=engine, device="cpu", **options)
    return gpu_compile.GpuCompileBackend(config).compile(replace(request, precision=precision)), config


def reference(source, feeds):
    with torch.inference_mode():
        outputs = source.torch_module()(*(torch.from_numpy(feeds[n]) for n in source.convention.input_names))
    return [o.numpy() for o in (outputs.values() if isinstance(outputs, dict) else outputs)]


# --- configuration and candidates ---------------------------------------------------------------------------


def test_config_refuses_bad_device_and_engine_naming_the_field():
    with pytest.raises(UserError) as err:
        gpu_config(device="tpu:0")
    assert err.value.field == "engine_options.device" and "tpu:0" in err.value.message
    with pytest.raises(UserError) as err:
        gpu_config(engine="tensorrt")
    assert err.value.field == "engine" and "eager" in err.value.message


def test_auto_candidates_on_the_host_drop_cuda_graphs_and_read_tf32_as_fp32(prepared):
    _, _, request = prepared
    candidates = gpu_compile.GpuCompileBackend(gpu_config(device="cpu")).candidates(replace(request, precision="auto"))
    assert [c.label for c in candidates] == [
        "eager FP16",
        "eager BF16",
        "eager FP32",
        "compile FP16",
        "compile BF16",
        "compile FP32",
    ]
    assert all(c.config.engine == c.engine for c in candidates)
    pinned = gpu_compile.GpuCompileBackend(gpu_config(device="cpu", engine="compile"))
    assert [c.label for c in pinned.candidates(replace(request, precision="FP16"))] == ["compile FP16"]  # no tuning


def test_candidates_on_a_device_follow_its_capability(prepared, monkeypatch):
    _, _, request = prepared
    cuda = FakeCuda()
    monkeypatch.setattr(gpu_compile, "Device", lambda name: FakeDevice(cuda))
    labels = [
        c.label for c in gpu_compile.GpuCompileBackend(gpu_config()).candidates(replace(request, precision="auto"))
    ]
    assert labels == [f"{e} {p}" for e in ("eager", "cuda-graph", "compile") for p in ("FP16", "BF16", "TF32")]
    cuda.get_device_capability = lambda device=None: (7, 0)  # a V100: no native BF16 or TF32
    backend = gpu_compile.GpuCompileBackend(gpu_config(engine="cuda-graph"))
    assert [c.label for c in backend.candidates(replace(request, precision="auto"))] == ["cuda-graph FP16"]
    with pytest.raises(UserError) as err:
        backend.candidates(replace(request, precision="BF16"))
    assert "compute capability 7.0" in err.value.message and err.value.field == "precision"


def test_pinned_choices_the_backend_cannot_run_are_refused(prepared):
    _, _, request = prepared
    with pytest.raises(UserError) as err:
        gpu_compile.GpuCompileBackend(gpu_config(device="cpu")).candidates(replace(request, precision="INT8"))
    assert err.value.field == "precision" and "FP16" in err.value.fix
    with pytest.raises(UserError) as err:
        gpu_compile.GpuCompileBackend(gpu_config(device="cpu", engine="cuda-graph")).candidates(request)
    assert "CUDA device" in err.value.message
    onnx = replace(request, source=replace(request.source, kind="onnx"))
    with pytest.raises(UserError) as err:
        gpu_compile.GpuCompileBackend(gpu_config(device="cpu")).candidates(onnx)
    assert err.value.field == "model_path"


# --- compile and run on the host ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("precision", "dtype", "tolerance"),
    [("FP32", torch.float32, 1e-5), ("FP16", torch.float16, 2e-2), ("BF16", torch.bfloat16, 1e-1)],
)
def test_weights_cast_to_the_precision_and_outputs_follow_the_reference(prepared, precision, dtype, tolerance):
    source, inputs, request = prepared
    compiled, config = compiled_for(request, "eager", precision)
    assert {p.dtype for p in compiled.module.parameters()} == {dtype}
    assert {p.dtype for p in source.torch_module().parameters()} == {torch.float32}  # the reference is untouched
    runtime = GpuRuntime(compiled, config)
    runtime.load(3)
    feeds = fake_inputs(inputs, 3, seed=4)
    out = runtime.predict(feeds)
    for got, want in zip(out.values(), reference(source, feeds)):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, atol=tolerance * max(1.0, np.abs(want).max()))


def test_bound_inputs_are_copied_once_unless_transfers_are_timed(prepared, monkeypatch):
    from backends.GPU import runtime as gpu_runtime

    _, inputs, request = prepared
    feeds = fake_inputs(inputs, 2, seed=5)
    copies = []
    to_device = gpu_runtime.device_tensors
    monkeypatch.setattr(gpu_runtime, "device_tensors", lambda *args: copies.append(1) or to_device(*args))
    for transfers, expected in ((False, 1), (True, 4)):
        copies.clear()
        compiled, config = compiled_for(request, "eager", "FP32", include_transfers=transfers)
        runtime = GpuRuntime(compiled, config)
        runtime.load(2)
        call = runtime.bind(feeds)
        results = [call() for _ in range(4)]
        assert len(copies) == expected  # host-to-device copies: once at bind, or inside every timed call
        timed = runtime.settings()["timed_call"]
        assert ("include_transfers" in timed) == transfers and ("already on the device" in timed) != transfers
        if transfers:  # the outputs came back to the host inside the call
            assert all(out.device.type == "cpu" for result in results for out in result)


def test_compile_engine_compiles_at_the_first_batch_size_and_records_recompiles(prepared):
    source, inputs, request = prepared
    compiled, config = compiled_for(request, "compile", "FP32")
    assert compiled.details["first_call_seconds"] > 0 and "torch.compile" in " ".join(compiled.optimizations)
    runtime = GpuRuntime(compiled, config)
    assert runtime.static_shapes
    runtime.load(3)
    feeds = fake_inputs(inputs, 3, seed=6)
    out = runtime.predict(feeds)
    for got, want in zip(out.values(), reference(source, feeds)):
        np.testing.assert_allclose(got, want, atol=1e-4)
    by_shape = runtime.settings()["first_call_seconds_by_shape"]
    assert list(by_shape) == [f"2x{inputs.seq_len}", f"3x{inputs.seq_len}"]  # compiled at bs 2, then again at 3
    assert by_shape[f"2x{inputs.seq_len}"] == compiled.details["first_call_seconds"]


def test_static_shape_runtimes_get_full_batches_and_the_padding_rows_are_dropped():
    class StaticRuntime:
        static_shapes = True
        shapes: list = []

        def load(self, batch_size):
            self.batch_size = batch_size

        def predict(self, feeds):
            ids = feeds["input_ids"]
            self.shapes.append(ids.shape)
            return {"logits": ids[:, :2].astype(np.float32)}

    count, seq = 11, 16
    ids = np.arange(count * seq).reshape(count, seq)
    lengths = np.array([3, 16, 5, 9, 2, 16, 7, 8, 12, 4, 6])
    features = Features(inputs={"input_ids": ids}, lengths=lengths, sequence=True)
    runtime = StaticRuntime()
    outputs, _ = run_features(runtime, features, 4, length_aware=True)
    assert set(runtime.shapes) == {(4, seq)}  # never trimmed, the last batch of 3 padded to 4
    np.testing.assert_array_equal(outputs["logits"], ids[:, :2])  # every row in feature order, none padded


# --- CUDA paths through the fakes -----------------------------------------------------------------------------


def fake_runtime(compiled, config, cuda=None, nvml=None):
    device = FakeDevice(cuda)
    return GpuRuntime(compiled, config, shared=Shared.open(device, nvml=nvml or Nvml.open(FakeNvml())))


def test_timed_calls_record_events_on_their_stream_and_end_synchronized(prepared):
    _, inputs, request = prepared
    compiled, config = compiled_for(request, "eager", "FP16")
    cuda = FakeCuda()
    runtime = fake_runtime(compiled, config, cuda)
    runtime.load(2)
    assert cuda.peak_resets == 1  # device memory is per batch size
    result = measure(runtime.bind(fake_inputs(inputs, 2, seed=1)), QUICK, 2, meters=runtime.meters())
    timed = result.latency.count
    assert (
        cuda.recorded == 2 * (timed + result.warmup_iterations) and cuda.event_syncs == timed + result.warmup_iterations
    )
    timer = runtime.shared.timer
    assert len(timer.times_ms) == timed  # warm-up calls are not device-timed
    row = {}
    for meter in runtime.meters():
        row.update(meter.row_fields(result))
    assert 0 < row["device_avg_latency"] <= result.latency.max
    assert row["device_memory_mb"] == 300.0 and row["device_reserved_mb"] == 512.0 and row["device_process_mb"] == 900.0


def test_clients_each_get_a_stream_and_share_the_meters(prepared):
    _, inputs, request = prepared
    compiled, config = compiled_for(request, "eager", "FP32")
    cuda = FakeCuda()
    runtime = fake_runtime(compiled, config, cuda)
    runtime.load(1)
    instances = runtime.instances(3)
    assert len({id(i.stream) for i in instances}) == 3 and all(i.stream in cuda.streams for i in instances)
    assert all(i.meters() is runtime.meters() for i in instances)
    calls = [i.bind(fake_inputs(inputs, 1, seed=2)) for i in instances]
    result = measure_clients(calls, QUICK, 1, meters=runtime.meters())
    assert len(runtime.shared.timer.times_ms) == result.latency.count
    assert runtime.settings()["streams"] == "one CUDA stream per client"


def test_cuda_graphs_are_captured_once_per_shape_and_replay_new_inputs(prepared):
    source, inputs, request = prepared
    compiled, config = compiled_for(request, "eager", "FP32")
    compiled.engine = "cuda-graph"
    cuda = FakeCuda()
    runtime = fake_runtime(compiled, config, cuda)
    runtime.load(2)
    assert runtime.static_shapes
    first, second = fake_inputs(inputs, 2, seed=8), fake_inputs(inputs, 2, seed=9)
    for feeds in (first, second, first):  # a replay runs the captured kernels on the new inputs
        out = runtime.predict(feeds)
        for got, want in zip(out.values(), reference(source, feeds)):
            np.testing.assert_allclose(got, want, atol=1e-5)
    assert len(cuda.graphs) == 1 and cuda.graphs[0].replays == 3
    assert cuda.capture_streams[0][1] == "pool" and cuda.capture_streams[0][0] is not None  # never the default stream
    call = runtime.bind(fake_inputs(inputs, 2, seed=10))
    call()
    assert len(cuda.graphs) == 1 and cuda.graphs[0].replays == 4  # same shape: the same graph
    small = fake_inputs(inputs, 1, seed=11)  # a smaller batch is padded to the loaded shape: no new capture
    out = runtime.predict(small)
    assert len(cuda.graphs) == 1 and all(len(v) == 1 for v in out.values())
    for got, want in zip(out.values(), reference(source, small)):
        np.testing.assert_allclose(got, want, atol=1e-5)
    runtime.load(4)
    assert runtime._graphs == {} and runtime.settings()["cuda_graphs"] == 1  # freed; counted over the run


def test_a_transformers_model_captures_because_its_mask_check_skips_while_capturing(prepared):
    """transformers counts a capturing stream as tracing and skips its host-side mask check: a pre-check in
    sync-debug mode refused BERT although its captured path never syncs. Capture now just runs."""
    _, inputs, request = prepared
    compiled, config = compiled_for(request, "eager", "FP16")
    compiled.engine = "cuda-graph"
    cuda = FakeCuda()
    seen = []
    real = cuda.is_current_stream_capturing
    cuda.is_current_stream_capturing = lambda: seen.append(real()) or real()
    import torch

    torch_cuda = torch.cuda.is_current_stream_capturing
    torch.cuda.is_current_stream_capturing = cuda.is_current_stream_capturing  # what transformers asks
    try:
        runtime = fake_runtime(compiled, config, cuda)
        runtime.load(2)
        runtime.predict(fake_inputs(inputs, 2, seed=1))
    finally:
        torch.cuda.is_current_stream_capturing = torch_cuda
    assert len(cuda.graphs) == 1 and True in seen


def test_a_model_that_waits_for_the_device_is_refused_in_one_line(prepared):
    _, inputs, request = prepared
    compiled, config = compiled_for(request, "eager", "FP32")
    compiled.engine = "cuda-graph"
    cuda = FakeCuda()
    runtime = fake_runtime(compiled, config, cuda)
    module = compiled.module

    def syncing(*tensors):  # DeBERTa (v1) calls Tensor.item() in its relative-position code
        if cuda.is_current_stream_capturing():
            raise RuntimeError("operation not permitted when stream is capturing")
        return module(*tensors)

    compiled.module = syncing
    runtime.load(2)
    with pytest.raises(UserError) as err:
        runtime.predict(fake_inputs(inputs, 2, seed=1))
    assert "cannot be captured as a CUDA graph" in err.value.message and err.value.field == "engine"
    assert cuda.graphs == [] and not hasattr(cuda, "sync_modes")  # no process-wide sync-debug mode was set


def test_clients_capture_one_at_a_time_on_one_capture_stream(prepared):
    import threading

    _, inputs, request = prepared
    compiled, config = compiled_for(request, "eager", "FP32")
    compiled.engine = "cuda-graph"
    cuda = FakeCuda()
    runtime = fake_runtime(compiled, config, cuda)
    runtime.load(2)
    clients = runtime.instances(3)
    errors = []

    def call(client, seed):
        try:
            client.predict(fake_inputs(inputs, 2, seed=seed))
        except Exception as err:  # noqa: BLE001 - collected for the assertion
            errors.append(err)

    threads = [threading.Thread(target=call, args=(c, i)) for i, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(cuda.graphs) == 3  # the fake raises when two captures overlap
    assert len({id(stream) for stream, _ in cuda.capture_streams}) == 1
    assert clients[0].settings()["cuda_graphs"] == 3


def test_each_call_runs_on_its_device_and_its_thread_s_stream(prepared):
    _, inputs, request = prepared
    compiled, config = compiled_for(request, "eager", "FP32")
    cuda = FakeCuda()
    runtime = fake_runtime(compiled, config, cuda)
    runtime.load(1)
    client = runtime.instances(1)[0]
    client.bind(fake_inputs(inputs, 1, seed=3))()
    assert cuda.devices_entered and cuda.current is cuda.default  # the client's stream was this call's only


def test_device_memory_inside_a_container_falls_back_to_the_device_and_says_so():
    device = FakeDevice(FakeCuda())
    nvml = Nvml.open(FakeNvml(own_pid=False, process_bytes=900 << 20))
    memory = DeviceMemory(device, nvml, nvml.handle(0))
    memory.end()
    fields = memory.row_fields(object())
    assert fields["device_process_mb"] == 1800.0 and "NVML does not list this process" in fields["device_process_note"]
    own = DeviceMemory(device, Nvml.open(FakeNvml()), Nvml.open(FakeNvml()).handle(0))
    own.end()
    assert own.row_fields(object())["device_process_note"] is None


def test_the_compile_engine_s_first_call_is_the_graph_the_runtime_reuses(prepared):
    """Inputs made outside inference_mode, the call inside it, as the runtime calls: Dynamo's guards hold and
    the runtime's first call at that shape does not compile again (pytorch#134249)."""
    import torch

    from backends.GPU.compile import _first_call
    from backends.GPU.device import Device

    _, inputs, request = prepared
    compiles = []

    def counting(graph_module, example_inputs):
        compiles.append(1)
        return graph_module.forward

    class Toy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(1000, 8)

        def forward(self, ids, mask, types):
            return (self.embed(ids) * mask.unsqueeze(-1)).sum(1)

    toy = torch.compile(Toy().eval(), backend=counting, dynamic=False)
    device = Device("cpu")
    _first_call(toy, request, device, torch.float32)
    assert len(compiles) == 1
    from backends.GPU.device import device_tensors

    tensors = device_tensors(request.sample_feeds(request.batch_sizes[0]), request.model.input_names, device, None)
    with torch.inference_mode():
        toy(*tensors)
    assert len(compiles) == 1  # the runtime's call reused the graph


def test_energy_is_the_counter_difference_over_the_window():
    nvml = Nvml.open(FakeNvml(watts=300.0))
    meter = EnergyMeter(nvml, nvml.handle(0))
    clock_start = meter._read()
    meter.begin()
    import time

    time.sleep(0.2)
    meter.end()
    measured = SimpleMeasurement(count=50, batch_size=4, seconds=0.2)
    fields = meter.row_fields(measured)
    assert fields["avg_power_w"] == pytest.approx(300.0, rel=0.15)
    assert fields["energy_j_per_sample"] == pytest.approx(300.0 * 0.2 / 200, rel=0.15)
    assert clock_start is not None


def test_energy_absent_says_why():
    unsupported = Nvml.open(FakeNvml(energy=False))
    meter = EnergyMeter(unsupported, unsupported.handle(0))
    meter.begin()
    meter.end()
    assert meter.row_fields(SimpleMeasurement(1, 1, 1.0)) == {
        "energy_note": "no energy figure: this device has no readable energy counter (NVML, Volta or later)"
    }
    missing = Nvml(None, "nvidia-ml-py is not installed (pip install nvidia-ml-py)")
    meter = EnergyMeter(missing, None)
    meter.begin()
    meter.end()
    assert "nvidia-ml-py is not installed" in meter.row_fields(SimpleMeasurement(1, 1, 1.0))["energy_note"]
    stuck = FakeNvml()
    stuck.nvmlDeviceGetTotalEnergyConsumption = lambda handle: 5000
    meter = EnergyMeter(Nvml.open(stuck), ("handle", 0))
    meter.begin()
    meter.end()
    assert "did not advance" in meter.row_fields(SimpleMeasurement(1, 1, 1.0))["energy_note"]


def test_device_timer_counts_only_the_window():
    cuda = FakeCuda()
    timer = DeviceTimer()
    pair = [cuda.Event(enable_timing=True), cuda.Event(enable_timing=True)]
    for event in pair:
        event.record()
    pair[1].synchronize()
    timer.add(*pair)  # before the window: warm-up
    timer.begin()
    timer.add(*pair)
    timer.end()
    timer.add(*pair)  # after it
    assert len(timer.times_ms) == 1
    assert DeviceTimer().row_fields(SimpleMeasurement(1, 1, 1.0)) == {}  # the host: no device time


def test_device_memory_of_a_failed_batch_size_is_still_read():
    cuda = FakeCuda(allocated=70 << 30)
    nvml = Nvml.open(FakeNvml())
    memory = DeviceMemory(FakeDevice(cuda), nvml, nvml.handle(0))
    assert memory.row_fields(None)["device_memory_mb"] == 70 * 1024.0
    assert memory.row_fields(None)["device_process_mb"] == 900.0


def test_nvml_reads_nothing_where_it_cannot_and_finds_the_device_by_uuid():
    assert Nvml.open(None).reason is None or "nvidia-ml-py" in Nvml.open(None).reason
    fake = FakeNvml()
    nvml = Nvml.open(fake)
    assert fake.initialised and nvml.reason is None
    assert nvml.handle(3, "1234-abcd") == ("handle", "GPU-1234-abcd")
    assert nvml.driver_version() == "580.65.06"
    assert nvml.device_entry(0)["power_limit_w"] == 700.0

    class Broken(FakeNvml):
        def nvmlInit(self):  # noqa: N802
            raise RuntimeError("NVML_ERROR_DRIVER_NOT_LOADED")

    broken = Nvml.open(Broken())
    assert broken.module is None and "DRIVER_NOT_LOADED" in broken.reason
    assert broken.energy_mj(("handle", 0)) is None and broken.device_entry(0) == {}


def test_device_facts_name_the_device_its_driver_and_runtime(monkeypatch):
    props = type(
        "Props",
        (),
        {
            "name": "NVIDIA H200",
            "total_memory": 141 << 30,
            "major": 9,
            "minor": 0,
            "multi_processor_count": 132,
            "uuid": "1234-abcd",
        },
    )
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: props)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    facts = device_facts("cuda", nvml=Nvml.open(FakeNvml()))
    assert facts["summary"] == "NVIDIA H200, 141.0 GiB, cc 9.0, driver 580.65.06, CUDA 13.0"
    assert facts["devices"][0]["sm_clock_mhz"] == 1980 and facts["count"] == 1
    assert fingerprint(facts) == {
        "device": "NVIDIA H200",
        "compute_capability": "9.0",
        "driver": "580.65.06",
        "runtime": "CUDA 13.0",
    }
    assert device_facts("cpu")["count"] == 0


# --- without a device -------------------------------------------------------------------------------------------


@pytest.mark.skipif(torch.version.cuda is not None, reason="this torch is a CUDA build")
def test_without_cuda_the_backend_says_what_is_missing():
    assert unavailable_reason("cuda") == f"torch {torch.__version__} is built without CUDA"
    assert unavailable_reason("cpu") is None
    assert listing_note() == f"torch {torch.__version__} is built without CUDA"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-m", "core.perf_engine", "--hardware_type", "GPU", "--task", "tiny-bert-squad"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 2, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert "Traceback" not in run.stderr and len(lines) <= 2, run.stderr
    assert "GPU backend cannot run here: torch" in run.stderr and "built without CUDA" in run.stderr
    listing = subprocess.run(
        [sys.executable, "-m", "core.perf_engine", "--show_hardware_list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert "GPU  (unavailable here: torch" in listing.stdout and "\nCPU\n" in f"\n{listing.stdout}"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run benchmarks/gpu_check.py there)")
def test_on_a_real_device_graphs_and_events_match_eager(prepared):
    source, inputs, request = prepared
    feeds = fake_inputs(inputs, 2, seed=3)
    outputs = {}
    for engine in ("eager", "cuda-graph"):
        config = gpu_config(engine=engine)
        compiled = gpu_compile.GpuCompileBackend(config).compile(replace(request, precision="FP32"))
        runtime = GpuRuntime(compiled, config)
        runtime.load(2)
        measure(runtime.bind(feeds), QUICK, 2, meters=runtime.meters())
        assert len(runtime.shared.timer.times_ms) >= QUICK.min_iterations
        outputs[engine] = runtime.predict(feeds)
    for name in outputs["eager"]:
        np.testing.assert_allclose(outputs["cuda-graph"][name], outputs["eager"][name], atol=1e-4)


class SimpleMeasurement:
    """The parts of a Measurement the meters read."""

    def __init__(self, count: int, batch_size: int, seconds: float):
        self.latency = type("Latency", (), {"count": count})
        self.batch_size, self.measured_seconds = batch_size, seconds


# --- a run through the product ----------------------------------------------------------------------------------


def test_a_run_on_the_gpu_backend_with_device_cpu_writes_a_gpu_report(tmp_path):
    workload = tmp_path / "tiny-gpu.yaml"
    workload.write_text(
        "model: tiny-bert-squad\nbatch_sizes: [1, 2]\nclients: 2\niterations: 5\nwarmup_iterations: 1\n"
        "warmup_seconds: 0.5\nmin_seconds: 0.05\nmax_seconds: 1.0\nengine: eager\n"
        "engine_options: {device: cpu, auto_precisions: [FP16, BF16]}\ntest_accuracy: true\ntest_numeric: true\n",
        encoding="utf-8",
    )
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "core.perf_engine",
            "--hardware_type",
            "GPU",
            "--task",
            str(workload),
            "--output-dir",
            str(tmp_path / "reports"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((tmp_path / "reports" / "GPU" / "tiny-bert-squad" / "result-fp32.json").read_text())
    assert report["Backend"] == "GPU"
    compile_section = report["Graph Compile"]
    assert compile_section["Engine"] == "eager" and compile_section["Compile Precision"] in ("FP16", "BF16")
    selection = compile_section["Engine Selection"]
    assert [c["Precision"] for c in selection["Candidates"]] == ["FP16", "BF16"]
    assert report["Host"]["accelerator"] == "torch device cpu (no accelerator)"
    assert report["Runtime"]["timed_call"] == "compute on inputs already on the device"
    assert [row["BS"] for row in report["Performance"]] == [1, 2]
    assert all(row["Status"] == "ok" and row["Clients"] == 2 for row in report["Performance"])
    assert "Device AVG Latency" not in report["Performance"][0]  # the host has no device clock: nothing invented
    assert report["Accuracy"]["Max Diff"] is not None


# --- what the report, console and compare show ------------------------------------------------------------------


def gpu_report(qps: float, energy: float, device_ms: float):
    from core.reporting.report import RunReport
    from core.reporting.schema import PerfRow
    from core.reporting.sections import HostInfo

    report = RunReport(model="m", backend="GPU", precision="FP32", dataset=None)
    report.host = HostInfo(cpu="cpu", accelerator="NVIDIA H200, 141.0 GiB, cc 9.0, driver 580.65.06, CUDA 13.0")
    report.performance = [
        PerfRow(
            bs=1,
            qps=qps,
            avg_latency=1000 / qps,
            iterations=500,
            device_avg_latency=device_ms,
            device_memory_mb=900.0,
            energy_j_per_sample=energy,
            avg_power_w=energy * qps,
        )
    ]
    return RunReport.from_dict(report.to_dict())


def test_device_time_memory_and_energy_are_compared_but_never_a_regression():
    from core.reporting.comparison import build_comparison

    base, new = gpu_report(1000.0, 0.2, 0.8), gpu_report(1000.0, 0.6, 2.4)  # 3x the energy and device time
    assert base.to_dict()["Host Info"] == "cpu; NVIDIA H200, 141.0 GiB, cc 9.0, driver 580.65.06, CUDA 13.0"
    cmp = build_comparison([base, new], ["base", "new"], threshold=0.05)
    shown = {row.metric: row for row in cmp.perf}
    assert shown["Energy J/sample"].values == [0.2, 0.6] and shown["Device AVG Latency"].values == [0.8, 2.4]
    assert not cmp.regressions
    slower = build_comparison([base, gpu_report(500.0, 0.2, 0.8)], ["base", "new"], threshold=0.05)
    assert [r.metric for r in slower.regressions] == ["QPS", "AVG Latency"]  # the host-timed numbers are judged


def test_the_console_table_shows_device_columns_only_where_a_row_has_them():
    from core.reporting.schema import PerfRow
    from core.run.performance import performance_table

    gpu = performance_table("t", gpu_report(1000.0, 0.2, 0.8).performance)
    assert gpu.headers[-4:] == ["Dev AVG ms", "Dev MB", "J/sample", "Avg W"]
    assert gpu.rows[0][-4].text == "0.80" and gpu.rows[0][-2].text == "0.20"
    cpu = performance_table("t", [PerfRow(bs=1, qps=5.0, avg_latency=200.0, iterations=10)])
    assert "J/sample" not in cpu.headers and len(cpu.rows[0]) == len(cpu.headers)


def test_the_listing_reads_the_torch_build_and_the_device_files_without_importing_torch(monkeypatch, tmp_path):
    from backends.GPU import device as gpu_device

    monkeypatch.setattr(gpu_device.metadata, "version", lambda name: "2.13.0+cu130")
    monkeypatch.setattr(gpu_device, "DEVICE_FILES", (str(tmp_path / "nvidiactl"),))
    assert listing_note() == "no CUDA device"
    (tmp_path / "nvidiactl").touch()
    assert listing_note() is None
    cpu_only = SPEC.make_config(None, {"device": "cpu"}, source="test")
    assert SPEC.unavailable(cpu_only) is None  # the host device needs no CUDA


@pytest.mark.parametrize("precision", ["FP16", "BF16"])
def test_deberta_runs_at_half_precisions_with_the_installed_transformers(precision):
    """transformers#35332 (float32 hard-coded in DeBERTa's attention) is fixed in the pinned transformers: the
    tiny DeBERTa runs at FP16 and BF16 on the GPU backend's code (device cpu), outputs finite."""
    task = registry.load_task("tiny-deberta-cola")
    source = resolve_source(task.model, model_file=task.model_file, seed=0)
    inputs = model_inputs(task, source)
    request = CompileRequest(
        model=task.model,
        source=source,
        precision=precision,
        batch_sizes=[2],
        cache_dir=state_dir(),
        sample_feeds=lambda bs: fake_inputs(inputs, bs, seed=1),
    )
    compiled, config = compiled_for(request, "eager", precision)
    runtime = GpuRuntime(compiled, config)
    runtime.load(2)
    out = runtime.predict(fake_inputs(inputs, 2, seed=2))
    assert all(np.isfinite(v).all() for v in out.values())


def test_llm_runs_on_the_gpu_read_nvml_energy_around_each_load_point():
    from backends.GPU.meters import nvml_counter

    fake = FakeNvml(watts=300.0)
    meter, said = nvml_counter("cuda:0", Nvml.open(fake))
    assert "NVML's total-energy counter (device 0)" in said
    before = meter.read()
    time.sleep(0.05)
    joules = meter.joules(before, meter.read())
    assert 300.0 * 0.05 * 0.9 <= joules <= 300.0 * 0.5  # the counter advanced by the fake's power over the wait
    none, why = nvml_counter("cuda", Nvml.open(FakeNvml(energy=False)))
    assert none is None and why.startswith("no energy counter: this device has no readable energy counter")
    assert nvml_counter("cpu", Nvml.open(fake))[0] is None
