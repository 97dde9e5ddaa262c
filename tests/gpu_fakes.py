"""Small fakes of the CUDA and NVML calls the GPU backend makes, so its device paths run on a machine
without a GPU: tensors stay on the host, and every event, stream, graph, memory and energy call goes
through these objects, which record what was asked of them.

They behave like CUDA where it decides correctness: each thread has its own current stream;
`is_current_stream_capturing()` is true inside a capture; a replay runs the recorded kernels (a trace of the
module), never the Python forward again; two captures at once raise; and, as inside a container, NVML lists
processes by host PIDs, none of them this process's own unless asked."""

from __future__ import annotations

import contextlib
import threading
import time
from types import SimpleNamespace

from backends.GPU.device import Device


class FakeEvent:
    def __init__(self, cuda: FakeCuda, enable_timing: bool = False):
        assert enable_timing, "timing events must be created with enable_timing=True"
        self.cuda = cuda
        self.at_ns: int | None = None
        self.stream = None
        self.synchronized = False

    def record(self, stream=None):
        self.at_ns = time.perf_counter_ns()
        self.stream = stream if stream is not None else self.cuda.current
        self.cuda.recorded += 1

    def synchronize(self):
        assert self.at_ns is not None, "synchronize on an event never recorded"
        self.synchronized = True
        self.cuda.event_syncs += 1

    def elapsed_time(self, end: FakeEvent) -> float:
        assert self.synchronized or end.synchronized, "elapsed_time read before the end event completed"
        return (end.at_ns - self.at_ns) / 1e6


class FakeStream:
    def __init__(self, name: str):
        self.name = name
        self.waited_on: list[FakeStream] = []

    def wait_stream(self, other):
        self.waited_on.append(other)


class FakeGraph:
    """A captured graph: the module traced at capture (its kernels, fixed), replayed on the static inputs."""

    def __init__(self, traced, inputs: list, outputs: tuple):
        self.traced, self.inputs, self.outputs = traced, inputs, outputs
        self.replays = 0

    def replay(self):
        import torch

        from backends.GPU.device import as_tuple

        self.replays += 1
        with torch.inference_mode():
            for static, new in zip(self.outputs, as_tuple(self.traced(*self.inputs))):
                static.copy_(new)  # a replay writes the captured output buffers, as CUDA's does


class FakeCuda:
    """torch.cuda as the GPU backend calls it."""

    def __init__(self, allocated: int = 300 << 20, reserved: int = 512 << 20):
        self.default = FakeStream("default")
        self._local = threading.local()  # CUDA's current stream is per thread
        self.capturing = 0
        self.devices_entered: list = []
        self.streams: list[FakeStream] = []
        self.recorded = self.event_syncs = self.device_syncs = self.peak_resets = 0
        self.allocated, self.reserved = allocated, reserved
        self.graphs: list[FakeGraph] = []
        self.capture_streams: list = []

    def Event(self, enable_timing=False):  # noqa: N802 - torch.cuda's spelling
        return FakeEvent(self, enable_timing)

    def Stream(self, device=None):  # noqa: N802
        stream = FakeStream(f"stream-{len(self.streams)}")
        self.streams.append(stream)
        return stream

    @property
    def current(self):
        return getattr(self._local, "stream", self.default)

    @contextlib.contextmanager
    def stream(self, stream):
        previous, self._local.stream = self.current, stream
        try:
            yield
        finally:
            self._local.stream = previous

    @contextlib.contextmanager
    def device(self, device):
        self.devices_entered.append(str(device))
        yield

    def current_stream(self, device=None):
        return self.current

    def is_current_stream_capturing(self):
        return bool(self.capturing) and getattr(self._local, "capturing", False)

    def synchronize(self, device=None):
        self.device_syncs += 1

    def reset_peak_memory_stats(self, device=None):
        self.peak_resets += 1

    def max_memory_allocated(self, device=None):
        return self.allocated

    def max_memory_reserved(self, device=None):
        return self.reserved

    def get_sync_debug_mode(self):
        return getattr(self, "sync_mode", 0)

    def set_sync_debug_mode(self, mode):
        self.sync_mode = mode
        self.sync_modes = [*getattr(self, "sync_modes", []), mode]

    def graph_pool_handle(self):
        return "pool"

    def get_device_capability(self, device=None):
        return (9, 0)

    def get_device_properties(self, device=None):
        return SimpleNamespace(uuid="1234-abcd", name="Fake H200")


class FakeDevice(Device):
    """A device whose tensors live on the host and whose CUDA calls go to a FakeCuda. A capture runs the
    forward once with the stream capturing (as CUDA does) and traces the module: replay runs the trace."""

    def __init__(self, cuda: FakeCuda | None = None):
        super().__init__("cpu", cuda=cuda or FakeCuda(), accelerator=True)

    def capture(self, module, inputs, stream, pool):
        import torch

        from backends.GPU.device import as_tuple

        cuda = self.cuda
        if cuda.capturing:
            raise RuntimeError("operation not permitted when stream is capturing (another capture is running)")
        cuda.capturing += 1
        cuda._local.capturing = True
        try:
            time.sleep(0.01)  # long enough for a racing capture to overlap
            with torch.inference_mode():
                outputs = as_tuple(module(*inputs))
            with torch.no_grad():
                traced = torch.jit.trace(module, tuple(inputs), check_trace=False, strict=False)
        finally:
            cuda.capturing -= 1
            cuda._local.capturing = False
        graph = FakeGraph(traced, inputs, outputs)
        cuda.graphs.append(graph)
        cuda.capture_streams.append((stream, pool))
        return graph, outputs


class FakeNvml:
    """pynvml as the backend calls it: an energy counter that advances `watts` per second of wall time."""

    NVML_CLOCK_SM, NVML_CLOCK_MEM = 1, 2

    def __init__(self, watts: float = 250.0, process_bytes: int = 900 << 20, energy: bool = True, own_pid: bool = True):
        """own_pid False: NVML lists host PIDs only, as inside a container."""
        self.watts, self.process_bytes, self.energy, self.own_pid = watts, process_bytes, energy, own_pid
        self.start_ns = time.perf_counter_ns()
        self.initialised = False

    def nvmlInit(self):  # noqa: N802
        self.initialised = True

    def nvmlDeviceGetHandleByUUID(self, uuid):  # noqa: N802
        assert uuid.startswith("GPU-"), "NVML wants the GPU- prefix"
        return ("handle", uuid)

    def nvmlDeviceGetHandleByIndex(self, index):  # noqa: N802
        return ("handle", index)

    def nvmlSystemGetDriverVersion(self):  # noqa: N802
        return b"580.65.06"

    def nvmlDeviceGetClockInfo(self, handle, clock):  # noqa: N802
        return {1: 1980, 2: 3201}[clock]

    def nvmlDeviceGetMaxClockInfo(self, handle, clock):  # noqa: N802
        return {1: 1980, 2: 3201}[clock]

    def nvmlDeviceGetEnforcedPowerLimit(self, handle):  # noqa: N802
        return 700000

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):  # noqa: N802
        if not self.energy:
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        return int(self.watts * (time.perf_counter_ns() - self.start_ns) / 1e6)  # mJ

    def nvmlDeviceGetComputeRunningProcesses(self, handle):  # noqa: N802
        import os

        pid = os.getpid() if self.own_pid else os.getpid() + 100_000  # a host PID
        return [SimpleNamespace(pid=1, usedGpuMemory=1), SimpleNamespace(pid=pid, usedGpuMemory=self.process_bytes)]

    def nvmlDeviceGetMemoryInfo(self, handle):  # noqa: N802
        return SimpleNamespace(total=141 << 30, used=2 * self.process_bytes, free=(141 << 30) - 2 * self.process_bytes)

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle):  # noqa: N802
        return []
