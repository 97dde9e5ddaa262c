"""The CPU backend's engines (onnxruntime, OpenVINO, PyTorch) run the same tiny model to the same outputs,
and compiles are cached."""

from __future__ import annotations

import numpy as np
import pytest

import backends
from backends.base import CompileRequest
from core.common.errors import UserError
from core.common.paths import state_dir
from core.config import registry
from core.model.source import resolve_source
from core.run.context import model_inputs
from datasets.fake_dataset import fake_inputs


def compile_and_load(task, engine: str, precision: str = "FP32", **options):
    spec = backends.load_backend("CPU")
    config = spec.make_config(engine, options, source="test")
    source = resolve_source(task.model, model_file=task.model_file, seed=0)
    inputs = model_inputs(task, source)
    request = CompileRequest(
        model=task.model,
        source=source,
        precision=precision,
        batch_sizes=[1],
        cache_dir=state_dir(),
        sample_feeds=lambda bs: fake_inputs(inputs, bs, seed=1),
    )
    compiled = spec.compile_backend(config).compile(request)
    runtime = spec.runtime_backend(compiled, config)
    runtime.load(4)
    return compiled, runtime, inputs


@pytest.fixture(scope="module")
def task():
    return registry.load_task("tiny-bert-squad")


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_fp32_engines_agree_with_pytorch(task, engine):
    compiled, runtime, inputs = compile_and_load(task, engine)
    _, torch_runtime, _ = compile_and_load(task, "pytorch")
    assert compiled.engine == engine and compiled.precision == "FP32"
    for batch_size, seq in ((4, inputs.seq_len), (3, 40), (1, 24)):  # dynamic batch and sequence axes
        feeds = {k: v[:, :seq] for k, v in fake_inputs(inputs, batch_size, seed=7).items()}
        out = runtime.predict(feeds)
        torch_out = torch_runtime.predict(feeds)
        assert set(out) == set(torch_out) == {"start_logits", "end_logits"}
        for name in out:
            assert out[name].shape == (batch_size, seq)
            np.testing.assert_allclose(out[name], torch_out[name], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino", "pytorch"])
def test_bound_call_then_predict_at_another_shape(task, engine):
    _, runtime, inputs = compile_and_load(task, engine)
    feeds = fake_inputs(inputs, 2, seed=3)
    call = runtime.bind(feeds)
    call()  # runs without error through the engine's binding
    # Binding must not pin the shape: the accuracy pass runs trimmed batches on the same runtime.
    other = {k: v[:1, :24] for k, v in fake_inputs(inputs, 2, seed=4).items()}
    assert runtime.predict(other)["start_logits"].shape == (1, 24)
    assert runtime.predict(feeds)["start_logits"].shape == (2, inputs.seq_len)


def test_second_compile_is_a_cache_hit_and_options_invalidate(task):
    first, _, _ = compile_and_load(task, "onnxruntime", simplify=True, optimize=False)
    again, _, _ = compile_and_load(task, "onnxruntime", simplify=True, optimize=False)
    assert again.cache_hit and again.artifact == first.artifact
    assert "onnxslim simplification" in first.optimizations
    other, _, _ = compile_and_load(task, "onnxruntime", simplify=False, optimize=False)
    assert not other.cache_hit and other.artifact != first.artifact
    assert "onnxslim simplification" not in other.optimizations


def test_unsupported_precision_fails_at_compile(task):
    with pytest.raises(UserError, match="FP16 is not supported by the CPU onnxruntime engine"):
        compile_and_load(task, "onnxruntime", precision="FP16")
    with pytest.raises(UserError, match="INT8 is not supported by the CPU pytorch engine.*onnxruntime or openvino"):
        compile_and_load(task, "pytorch", precision="INT8")
    with pytest.raises(UserError, match="FP16 is not supported by the CPU openvino engine"):
        compile_and_load(task, "openvino", precision="FP16")


def test_synthetic_weights_are_seeded(task):
    a = resolve_source(task.model, model_file=task.model_file, seed=0)
    b = resolve_source(task.model, model_file=task.model_file, seed=0)
    c = resolve_source(task.model, model_file=task.model_file, seed=1)
    assert a.synthetic and a.digest == b.digest != c.digest
    wa = next(a.torch_module().parameters()).detach().numpy()
    wb = next(b.torch_module().parameters()).detach().numpy()
    wc = next(c.torch_module().parameters()).detach().numpy()
    np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(wa, wc)


def test_export_leaves_the_torch_model_in_eval_mode(task):
    # A module left in training mode after export would turn dropout on for the numeric reference.
    source = resolve_source(task.model, model_file=task.model_file, seed=0)
    module = source.torch_module()
    assert not module.training
    spec = backends.load_backend("CPU")
    config = spec.make_config("onnxruntime", {"simplify": False, "optimize": False, "opset": 16}, source="test")
    inputs = model_inputs(task, source)
    request = CompileRequest(
        model=task.model,
        source=source,
        precision="FP32",
        batch_sizes=[1],
        cache_dir=state_dir(),
        sample_feeds=lambda bs: fake_inputs(inputs, bs, seed=1),
    )
    spec.compile_backend(config).compile(request)
    assert not any(m.training for m in module.modules())


def test_cpu_affinity_pins_the_process(task):
    import os

    before = os.sched_getaffinity(0)
    try:
        _, runtime, _ = compile_and_load(task, "onnxruntime", cpu_affinity=[min(before)])
        assert os.sched_getaffinity(0) == {min(before)}
        assert runtime.settings()["cpu_affinity"] == [min(before)]
    finally:
        os.sched_setaffinity(0, before)


def test_fusion_counts_reach_the_report_fields(task):
    compiled, _, _ = compile_and_load(task, "onnxruntime")
    fusion = [o for o in compiled.optimizations if o.startswith("onnxruntime transformer fusion")]
    assert fusion and "Attention x2" in fusion[0]  # tiny-bert has two layers, each with one fused attention
    stage_names = [stage["name"] for stage in compiled.details["stages"]]
    # Simplification never runs after a fusion: it would find nothing, and before one it hides attention.
    assert stage_names == ["export", "optimize"]


@pytest.mark.parametrize(
    ("engine", "precision", "marker"),
    [
        ("pytorch", "BF16", "bf16 weights"),
        ("onnxruntime", "INT8", "int8 dynamic quantization"),
        ("openvino", "BF16", "inference precision"),
        ("openvino", "INT8", "nncf int8 post-training quantization (calibrated on generated inputs, 16 samples)"),
    ],
)
def test_lower_precisions_stay_close_to_fp32(task, engine, precision, marker):
    _, fp32, inputs = compile_and_load(task, "pytorch")
    compiled, runtime, _ = compile_and_load(task, engine, precision=precision)
    assert compiled.precision == precision and any(o.startswith(marker) for o in compiled.optimizations)
    feeds = fake_inputs(inputs, 2, seed=11)
    reference = fp32.predict(feeds)["start_logits"]
    out = runtime.predict(feeds)["start_logits"]
    assert out.dtype == np.float32 and out.shape == reference.shape
    assert np.isfinite(out).all()
    assert np.abs(out - reference).max() < 0.1  # lower precision: drift, but small


def test_static_int8_needs_calibration_data(task):
    with pytest.raises(UserError, match="static INT8 needs calibration data"):
        compile_and_load(task, "onnxruntime", precision="INT8", int8_mode="static")


def test_static_int8_run_calibrates_on_the_dataset(tmp_path):
    import json

    from core.run.runner import RunOptions, run_task

    workload = tmp_path / "int8.yaml"
    workload.write_text(
        "model: tiny-bert-squad\nprecision: INT8\nengine: onnxruntime\n"
        "engine_options: {int8_mode: static}\ntest_accuracy: true\n"
        "iterations: 3\nbatch_sizes: [1]\nwarmup_iterations: 1\nmin_seconds: 0\nmax_seconds: 1\n",
        encoding="utf-8",
    )
    path = run_task(
        registry.load_task(str(workload)), RunOptions(hardware_type="CPU", output_dir=tmp_path / "r")
    ).written
    report = json.loads(path.read_text())
    assert path.name == "result-int8.json"
    assert report["Graph Compile"]["Compile Precision"] == "INT8"
    assert any(
        o.startswith("int8 static QDQ quantization, per channel (calibrated on the dataset")
        for o in report["Graph Compile"]["Optimizations"]
    )
    assert report["Performance"][0]["Status"] == "ok"


@pytest.mark.parametrize("model, recipe", [("tiny-resnet-imagenet", "static QDQ"), ("tiny-bert-squad", "dynamic")])
def test_int8_auto_quantizes_convolutions_statically_and_transformers_dynamically(model, recipe):
    compiled, runtime, inputs = compile_and_load(registry.load_task(model), "onnxruntime", precision="INT8")
    assert any(o.startswith(f"int8 {recipe} quantization") for o in compiled.optimizations), compiled.optimizations
    out = runtime.predict(fake_inputs(inputs, 1, seed=3))
    assert all(np.isfinite(v).all() for v in out.values())


def test_bf16_compiles_a_copy_and_leaves_the_reference_module_fp32(task):
    import torch

    from backends.CPU.pytorch_engine import compile_model

    spec = backends.load_backend("CPU")
    source = resolve_source(task.model, model_file=task.model_file, seed=0)
    request = CompileRequest(
        model=task.model, source=source, precision="BF16", batch_sizes=[1], cache_dir=state_dir(), sample_feeds=None
    )
    compiled = compile_model(request, spec.make_config("pytorch", {}, source="test"))
    assert next(compiled.module.parameters()).dtype == torch.bfloat16
    assert next(source.torch_module().parameters()).dtype == torch.float32


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino", "pytorch"])
def test_instances_for_concurrent_clients_each_give_the_single_runtimes_answers(task, engine):
    """Clients run at once on their own instances (OpenVINO: one infer request per stream)."""
    from concurrent.futures import ThreadPoolExecutor

    _, runtime, inputs = compile_and_load(task, engine)
    feeds = [fake_inputs(inputs, 4, seed=seed) for seed in (11, 12, 13)]
    expected = [runtime.predict(f) for f in feeds]
    instances = runtime.instances(3)
    assert len(instances) == 3
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda pair: pair[0].predict(pair[1]), zip(instances, feeds)))
    for got, want in zip(results, expected):
        for name in want:
            np.testing.assert_allclose(got[name], want[name], atol=1e-5, rtol=1e-5)


# A run's child process with every name lookup and connection recorded (forked helpers inherit the patch).
NETWORK_PROBE = """
import os, socket, sys
log = sys.argv[1]

def refuse(*args, **kwargs):
    with open(log, "a") as fh:
        fh.write(f"{os.getpid()} {args[:2]}\\n")
    raise OSError("network use refused by the test")

socket.getaddrinfo = refuse
socket.create_connection = refuse
from core.perf_engine import main
sys.exit(main(sys.argv[2:]))
"""


def test_openvino_conversion_and_nncf_quantization_never_reach_for_the_network(tmp_path):
    """Outside CI, importing openvino and NNCF's quantizer send usage telemetry unless stopped (core/__init__)."""
    import os
    import subprocess
    import sys

    log = tmp_path / "network.log"
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "NNCF_CI", "NNCF_DEV")}
    env["HOME"] = str(tmp_path)  # an existing home without the machine user's telemetry consent file
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            NETWORK_PROBE,
            str(log),
            "--task",
            "tiny-bert-squad",
            "--engine",
            "openvino",
            "--precision",
            "INT8",
            "--batch-sizes",
            "1",
            "--output-dir",
            str(tmp_path / "out"),
        ],
        cwd=registry.REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert not log.exists(), log.read_text()


def test_the_cpu_engines_are_the_engine_modules_and_the_config_accepts_exactly_them(tmp_path):
    from backends.CPU.config import CpuConfig, engine_listing
    from backends.CPU.engines import engine_names
    from core.common.registry import module_listing

    assert sorted(engine_listing()) == engine_names() == ["onnxruntime", "openvino", "pytorch"]
    (tmp_path / "echo_engine.py").write_text("ENGINE = None\n")
    (tmp_path / "helpers.py").write_text("")
    assert module_listing(tmp_path, "pkg", "_engine", "ENGINE") == {"echo": "pkg.echo_engine:ENGINE"}
    assert CpuConfig(engine="openvino").engine == "openvino"
    with pytest.raises(ValueError, match="unknown engine 'tensorrt'; known: auto, onnxruntime, openvino, pytorch"):
        CpuConfig(engine="tensorrt")
