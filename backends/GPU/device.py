"""The accelerator behind the GPU backend, through torch's device API (CUDA; ROCm builds answer the same calls).

Everything device-specific the backend does goes through `Device`: synchronize, events, streams,
graphs and memory statistics, read from one `cuda` namespace (torch.cuda unless a test hands in a
fake). With `device: cpu` the same engine code runs on the host: nothing to synchronize, no events,
no device memory, so the whole backend path is testable on a machine without a GPU.
"""

from __future__ import annotations

import contextlib
from importlib import metadata
from pathlib import Path
from typing import Any

from backends.base import Feeds, declared_feeds

# Device files a CUDA (NVIDIA), ROCm (AMD) or WSL2 GPU driver creates; no file, no device, without importing torch.
DEVICE_FILES = ("/dev/nvidiactl", "/dev/kfd", "/dev/dxg")  # dxg: CUDA under WSL2


class Device:
    """One torch device and the calls the GPU engines make on it."""

    def __init__(self, name: str, cuda: Any = None, accelerator: bool | None = None):
        """`accelerator` forced True with a fake `cuda` (tensors on the host): tests of the CUDA paths."""
        import torch

        self.name = name
        self.torch = torch.device(name)
        self.accelerator = self.torch.type == "cuda" if accelerator is None else accelerator
        self.cuda = cuda if cuda is not None else torch.cuda

    @property
    def index(self) -> int:
        return self.torch.index if self.torch.index is not None else 0

    def synchronize(self) -> None:
        if self.accelerator:
            self.cuda.synchronize(self.torch)

    def new_stream(self) -> Any:
        """A stream of its own (one per client), or None on the host."""
        return self.cuda.Stream(device=self.torch) if self.accelerator else None

    def on(self, stream: Any):
        """Run what follows on this device (cuda:N's events and synchronize otherwise go to the current device,
        cuda:0) and on `stream` (the device's current stream when None)."""
        scope = contextlib.ExitStack()
        if self.accelerator:
            scope.enter_context(self.cuda.device(self.torch))
        if stream is not None:
            scope.enter_context(self.cuda.stream(stream))
        return scope

    def event(self) -> Any:
        """A timing event, or None on the host."""
        return self.cuda.Event(enable_timing=True) if self.accelerator else None

    def reset_peak_memory(self) -> None:
        if self.accelerator:
            self.cuda.reset_peak_memory_stats(self.torch)

    def peak_memory(self) -> tuple[int, int] | None:
        """(peak allocated, peak reserved) in bytes since the last reset; None on the host."""
        if not self.accelerator:
            return None
        return self.cuda.max_memory_allocated(self.torch), self.cuda.max_memory_reserved(self.torch)

    def current_stream(self) -> Any:
        return self.cuda.current_stream(self.torch)

    def capture(self, module, inputs: list, stream: Any, pool: Any) -> tuple[Any, tuple]:
        """(graph, outputs): `module` on `inputs` recorded once as a CUDA graph on `stream`; graph.replay()
        reruns its kernels on the same input buffers, writing the same output buffers. Capture errors are local
        to this thread (other clients may run)."""
        import torch

        graph = self.cuda.CUDAGraph()
        with self.cuda.graph(graph, pool=pool, stream=stream, capture_error_mode="thread_local"):
            with torch.inference_mode():
                outputs = as_tuple(module(*inputs))
        return graph, outputs

    def capability(self) -> tuple[int, int] | None:
        """Compute capability (major, minor), or None on the host."""
        return tuple(self.cuda.get_device_capability(self.torch)) if self.accelerator else None

    def properties(self) -> Any:
        return self.cuda.get_device_properties(self.torch)

    def graph_pool(self) -> Any:
        """One memory pool for every graph a runtime captures (each batch size's graph reuses it)."""
        return self.cuda.graph_pool_handle() if self.accelerator else None


def as_tuple(outputs: Any) -> tuple:
    if isinstance(outputs, dict):
        return tuple(outputs.values())
    return tuple(outputs) if isinstance(outputs, (tuple, list)) else (outputs,)


def torch_dtype(precision: str):
    import torch

    return {"FP16": torch.float16, "BF16": torch.bfloat16}.get(precision, torch.float32)


def set_math_mode(precision: str) -> None:
    """TF32 tensor-core math for FP32 matrix multiplies and convolutions only when TF32 runs (process-wide).
    torch's legacy switches, as torch.compile reads them (mixing them with the newer fp32_precision API
    makes torch refuse to report the precision)."""
    import torch

    tf32 = precision == "TF32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def device_tensors(feeds: Feeds, names: list[str], device: Device, dtype) -> list:
    """The declared inputs as tensors on the device; floating-point inputs (images) in the weights' dtype."""
    import torch

    tensors = []
    for array in declared_feeds(feeds, names).values():
        tensor = torch.from_numpy(array).to(device.torch)
        tensors.append(tensor.to(dtype) if tensor.is_floating_point() else tensor)
    return tensors


def shape_key(feeds: Feeds) -> str:
    """'4x384': the shape a static-shape engine compiles or captures for."""
    return "x".join(str(d) for d in next(iter(feeds.values())).shape)


def unavailable_reason(device: str) -> str | None:
    """Why `device` cannot run here (one line), or None when it can. Imports torch: for the run, not listings."""
    if not device.startswith("cuda"):
        return None
    import torch

    if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
        return f"torch {torch.__version__} is built without CUDA"
    if not torch.cuda.is_available():
        return "no CUDA device is visible to torch (driver not loaded, or CUDA_VISIBLE_DEVICES hides every device)"
    index = int(device.partition(":")[2] or 0)
    count = torch.cuda.device_count()
    if index >= count:
        return f"device {device} asked for, and this machine shows {count} CUDA device(s)"
    return None


def listing_note() -> str | None:
    """Why the GPU backend cannot run here, from what is on disk (no torch import: listings answer fast)."""
    try:
        version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        return "torch is not installed"
    if version.endswith("+cpu"):
        return f"torch {version} is built without CUDA"
    if not any(Path(path).exists() for path in DEVICE_FILES):
        return "no CUDA device"
    return None


def device_facts(device: str, nvml: Any = None) -> dict[str, Any]:
    """The Host section's accelerator facts: every visible device, and which one ran (read at start)."""
    import torch

    if not device.startswith("cuda"):
        return {"ran_on": device, "count": 0, "devices": [], "summary": f"torch device {device} (no accelerator)"}
    from backends.GPU.nvml import Nvml

    nvml = nvml or Nvml.open()
    devices = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        entry = {
            "index": index,
            "name": props.name,
            "memory_gib": round(props.total_memory / (1 << 30), 1),
            "compute_capability": f"{props.major}.{props.minor}",
            "multiprocessors": props.multi_processor_count,
            "uuid": str(getattr(props, "uuid", "") or "") or None,
        }
        entry.update(nvml.device_entry(index, entry["uuid"]))
        devices.append({k: v for k, v in entry.items() if v is not None})
    ran = devices[int(device.partition(":")[2] or 0)] if devices else {}
    runtime = f"CUDA {torch.version.cuda}" if torch.version.cuda else f"ROCm {getattr(torch.version, 'hip', '')}"
    driver = nvml.driver_version()
    summary = ", ".join(
        part
        for part in (
            f"{len(devices)}x {ran.get('name')}" if len(devices) > 1 else ran.get("name"),
            f"{ran.get('memory_gib')} GiB" if ran else None,
            f"cc {ran.get('compute_capability')}" if ran else None,
            f"driver {driver}" if driver else None,
            runtime,
        )
        if part
    )
    return {
        "ran_on": device,
        "count": len(devices),
        "devices": devices,
        "runtime": runtime,
        "driver": driver,
        "nvml": nvml.reason or "readable",
        "summary": summary,
    }


def fingerprint(facts: dict[str, Any]) -> dict[str, Any]:
    """What makes a tuning decision valid only on this kind of device: its model, capability, driver, runtime."""
    ran = next((d for d in facts.get("devices", []) if f"cuda:{d.get('index')}" == _indexed(facts["ran_on"])), {})
    return {
        "device": ran.get("name", facts["ran_on"]),
        "compute_capability": ran.get("compute_capability"),
        "driver": facts.get("driver"),
        "runtime": facts.get("runtime"),
    }


def _indexed(device: str) -> str:
    return device if ":" in device else f"{device}:0"
