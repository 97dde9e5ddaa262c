"""GPU device probe: what the GPU backend assumes of torch, transformers and NVML, checked on the device in one
call of at most ~3 minutes, one line per check (PASS/FAIL and the error). Run it before gpu_check.py.

    python3 benchmarks/gpu_probe.py --wheels build/gpu-wheels   # on the GPU host (make gpu-check runs both)
    python3 benchmarks/gpu_probe.py --list                      # anywhere: the checks, without a device

Checks: CUDA-graph capture of tiny-bert and bert-base at FP16, with eager and SDPA attention, with and without
sync-debug mode; torch.compile then the runtime's call at the same shape (no recompile), and a first call at a
new shape from 3 threads; NVML's handle by UUID and by index, its process PIDs against ours, energy and power
over 2 s of matrix multiplies; DeBERTa-base forward at FP16 and BF16; the real-device test of
tests/test_gpu_backend.py. Exit 1 when a check failed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

CHECKS: list = []


def check(name: str):
    def register(function):
        CHECKS.append((name, function))
        return function

    return register


def module_for(task_name: str, attention: str, dtype):
    import copy

    from core.config import registry
    from core.model.builder import use_attention
    from core.model.source import resolve_source
    from core.run.context import model_inputs
    from datasets.fake_dataset import fake_inputs

    task = registry.load_task(task_name)
    source = resolve_source(task.model, model_file=task.model_file)
    module = copy.deepcopy(source.torch_module()).eval().to(device="cuda", dtype=dtype)
    if attention == "sdpa" and not use_attention(module, "sdpa"):
        raise RuntimeError("the architecture has no SDPA kernel")
    return task, module, fake_inputs(model_inputs(task, source), 2, seed=1)


def capture(task_name: str, attention: str, sync_debug: bool) -> str:
    import torch

    from backends.GPU.device import Device, device_tensors

    _, module, feeds = module_for(task_name, attention, torch.float16)
    device = Device("cuda")
    tensors = device_tensors(feeds, list(feeds), device, torch.float16)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            with torch.inference_mode():
                module(*tensors)
    torch.cuda.current_stream().wait_stream(side)
    previous = torch.cuda.get_sync_debug_mode()
    if sync_debug:
        torch.cuda.set_sync_debug_mode("error")
    try:
        graph, outputs = device.capture(module, tensors, side, torch.cuda.graph_pool_handle())
    finally:
        torch.cuda.set_sync_debug_mode(previous)
    graph.replay()
    torch.cuda.synchronize()
    with torch.inference_mode():
        eager = module(*tensors)
    eager = eager if isinstance(eager, (tuple, list)) else (eager,)
    diff = max(float((a.float() - b.float()).abs().max()) for a, b in zip(outputs, eager))
    return f"replay matches eager to {diff:.2g}"


for task_name in ("tiny-bert-squad", "bert-torch-fp32"):
    for attention in ("eager", "sdpa"):
        for sync_debug in (False, True):
            label = f"capture {task_name} FP16, {attention} attention" + (", sync-debug error" if sync_debug else "")
            check(label)(lambda t=task_name, a=attention, s=sync_debug: capture(t, a, s))


@check("torch.compile at a shape, then the runtime's call at it: no recompile")
def compile_then_bind() -> str:
    import torch
    from torch._dynamo.utils import counters

    from backends.GPU.device import Device, device_tensors

    _, module, feeds = module_for("tiny-bert-squad", "eager", torch.float16)
    compiled = torch.compile(module, dynamic=False)
    device = Device("cuda")
    tensors = device_tensors(feeds, list(feeds), device, torch.float16)  # outside inference_mode, like ours
    with torch.inference_mode():
        compiled(*tensors)
    frames = counters["stats"]["unique_graphs"]
    again = device_tensors(feeds, list(feeds), device, torch.float16)
    with torch.inference_mode():
        compiled(*again)
    if counters["stats"]["unique_graphs"] != frames:
        raise RuntimeError(f"compiled again: {frames} -> {counters['stats']['unique_graphs']} graphs")
    return f"{frames} graph(s), none added by the second call"


@check("a first call at a new shape from 3 threads (GPU runtime, compile engine)")
def threads_at_a_new_shape() -> str:
    import threading
    from dataclasses import replace

    import backends
    from backends.base import CompileRequest
    from backends.GPU.compile import GpuCompileBackend
    from core.common.paths import state_dir
    from core.config import registry
    from core.model.source import resolve_source
    from core.run.context import model_inputs
    from datasets.fake_dataset import fake_inputs

    task = registry.load_task("tiny-bert-squad")
    source = resolve_source(task.model, model_file=task.model_file)
    inputs = model_inputs(task, source)
    request = CompileRequest(task.model, source, "FP16", [2], state_dir(), lambda bs: fake_inputs(inputs, bs))
    config = backends.load_backend("GPU").make_config("compile", {"device": "cuda"}, source="probe")
    compiled = GpuCompileBackend(config).compile(replace(request, precision="FP16"))
    runtime = backends.load_backend("GPU").runtime_backend(compiled, config)
    runtime.load(4)
    clients = runtime.instances(3)
    errors = []

    def call(client):
        try:
            client.predict(fake_inputs(inputs, 4, seed=2))
        except Exception as err:  # noqa: BLE001 - reported by the check
            errors.append(err)

    threads = [threading.Thread(target=call, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return f"first calls by shape: {runtime.settings().get('first_call_seconds_by_shape')}"


@check("NVML: handle by UUID and by index, process PIDs, energy and power over 2 s of matmuls")
def nvml() -> str:
    import torch

    from backends.GPU.nvml import Nvml

    reader = Nvml.open()
    if reader.reason:
        raise RuntimeError(reader.reason)
    uuid = str(getattr(torch.cuda.get_device_properties(0), "uuid", ""))
    by_uuid, by_index = reader.handle(0, uuid), reader.handle(0)
    pids = [p.pid for p in reader.module.nvmlDeviceGetComputeRunningProcesses(by_index)]
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.float16)
    before = reader.energy_mj(by_index)
    start = time.perf_counter()
    while time.perf_counter() - start < 2.0:
        a @ a
    torch.cuda.synchronize()
    used = (reader.energy_mj(by_index) or 0) - (before or 0)
    power = reader.module.nvmlDeviceGetPowerUsage(by_index) / 1000
    seconds = time.perf_counter() - start
    return (
        f"uuid handle {'found' if by_uuid is not None else 'NOT found'}; our pid {os.getpid()} "
        f"{'listed' if os.getpid() in pids else 'not listed (container: host PIDs)'} among {pids}; "
        f"{used / 1000 / seconds:.0f} W by the energy counter, {power:.0f} W by nvmlDeviceGetPowerUsage"
    )


for precision in ("FP16", "BF16"):

    @check(f"DeBERTa-base forward at {precision} (transformers#35332)")
    def deberta(precision=precision) -> str:
        import torch

        from backends.GPU.device import Device, device_tensors

        dtype = torch.float16 if precision == "FP16" else torch.bfloat16
        _, module, feeds = module_for("deberta-torch-fp32", "eager", dtype)
        with torch.inference_mode():
            out = module(*device_tensors(feeds, list(feeds), Device("cuda"), dtype))
        first = out[0] if isinstance(out, (tuple, list)) else out
        return f"output {first.dtype}, finite {bool(torch.isfinite(first.float()).all())}"


@check("tests/test_gpu_backend.py's real-device test")
def real_device_test() -> str:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_gpu_backend.py",
            "-k",
            "real_device",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if run.returncode != 0:
        raise RuntimeError((run.stdout + run.stderr).strip().splitlines()[-1])
    return run.stdout.strip().splitlines()[-1]


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wheels", type=Path, help="folder of wheels for what this python lacks (make gpu-wheels)")
    parser.add_argument("--list", action="store_true", help="print the checks and stop (no device needed)")
    args = parser.parse_args(argv)
    if args.list:
        for name, _ in CHECKS:
            print(name)
        return 0
    from gpu_check import ensure_dependencies

    ensure_dependencies(args.wheels)
    import torch

    if not torch.cuda.is_available():
        print("gpu_probe: no CUDA device here", file=sys.stderr)
        return 2
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    failed = 0
    for name, function in CHECKS:
        start = time.perf_counter()
        try:
            result = f"PASS {function()}"
        except Exception as err:  # every check reports and the probe goes on
            failed += 1
            where = traceback.extract_tb(err.__traceback__)[-1]
            result = f"FAIL {type(err).__name__}: {str(err)[:200]} ({Path(where.filename).name}:{where.lineno})"
        print(f"{name}: {result} [{time.perf_counter() - start:.1f} s]", flush=True)
    print(f"{len(CHECKS) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
