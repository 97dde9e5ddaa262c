"""GPU runtime: runs the compiled module on the device, one CUDA stream per client.

A timed call (bind) runs on inputs already on the device and ends when the device has finished it
(it synchronizes on an event recorded after the work), so the host clock measures the work and not
its launch; the same event pair gives the device's own time per call. With `include_transfers` the
call also copies the inputs to the device and the outputs back, as ByteMLPerf's predict does.
The cuda-graph engine captures the module once per input shape (all shapes share one memory pool)
and replays it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backends.base import CompiledModel, Feeds, RuntimeBackend, declared_feeds
from backends.GPU.config import GpuConfig
from backends.GPU.device import Device, as_tuple, device_tensors, set_math_mode, shape_key, torch_dtype
from backends.GPU.meters import DeviceMemory, DeviceTimer, EnergyMeter
from backends.GPU.nvml import Nvml
from core.common.errors import UserError, one_line

GPU_GEMM_SIZE = 8192  # 1.1 TFLOP a call: about 1.4 ms on an H200 at 800 TFLOP/s, long beside a launch
WARMUP_BEFORE_CAPTURE = 3  # calls on the capture stream first: lazy initialisation must not be captured


@dataclass
class Shared:
    """What every client's instance of one runtime shares: the device and what is read of it."""

    device: Device
    timer: DeviceTimer
    meters: list
    pool: Any = None  # the CUDA graphs' memory pool
    recompiles: dict[str, float] = field(default_factory=dict)  # compile engine: shape -> first-call seconds
    # Captures and compiles one at a time: two captures may not overlap, and Dynamo is not thread-safe
    # (pytorch#118260); LoadGen's workers call predict from several threads.
    lock: threading.Lock = field(default_factory=threading.Lock)
    capture_stream: Any = None  # every graph captured on one stream: graphs share their pool only then
    graphs_captured: int = 0  # by every client's instance, over the run (settings())

    @classmethod
    def open(cls, device: Device, nvml: Nvml | None = None) -> Shared:
        timer = DeviceTimer()
        if not device.accelerator:
            return cls(device, timer, [timer])
        nvml = nvml or Nvml.open()
        uuid = getattr(device.properties(), "uuid", None)
        handle = nvml.handle(device.index, str(uuid) if uuid else None)
        meters = [timer, DeviceMemory(device, nvml, handle), EnergyMeter(nvml, handle)]
        return cls(device, timer, meters, pool=device.graph_pool())


@dataclass
class _Graph:
    graph: Any
    inputs: list  # the static input buffers the graph reads
    outputs: tuple  # the static output buffers it writes


class GpuRuntime(RuntimeBackend):
    config: GpuConfig

    def __init__(self, compiled: CompiledModel, config: GpuConfig, *, shared: Shared | None = None, stream=None):
        super().__init__(compiled, config)
        if shared is None:
            shared = Shared.open(Device(config.device))
            if "first_call_shape" in compiled.details:  # compiled at that shape already, in Graph Compile
                shared.recompiles[compiled.details["first_call_shape"]] = compiled.details["first_call_seconds"]
        self.shared = shared
        self.stream = stream  # this client's stream (None: the default stream)
        self.dtype = torch_dtype(compiled.precision)
        self.instance_count = 1
        self._graphs: dict[tuple, _Graph] = {}
        # torch.compile and CUDA graphs need one shape per batch: dataset passes pad the last batch.
        self.static_shapes = compiled.engine in ("compile", "cuda-graph")

    @property
    def device(self) -> Device:
        return self.shared.device

    def load(self, batch_size: int) -> None:
        set_math_mode(self.compiled.precision)
        self._graphs.clear()  # the previous batch size's graphs: their memory goes back to the pool
        self.device.synchronize()
        self.device.reset_peak_memory()
        self.batch_size = batch_size

    def instances(self, count: int) -> list[RuntimeBackend]:
        """One instance per client, each on its own stream, sharing the module and the meters."""
        self.instance_count = count
        clients = [
            GpuRuntime(self.compiled, self.config, shared=self.shared, stream=self.device.new_stream())
            for _ in range(count)
        ]
        for client in clients:
            client.batch_size = self.batch_size  # static-shape engines pad to it
        return clients

    def meters(self) -> list:
        return self.shared.meters

    def _inputs(self, feeds: Feeds) -> list:
        return device_tensors(feeds, self.compiled.input_names, self.device, self.dtype)

    def _forward(self, tensors: list) -> tuple:
        import torch

        with torch.inference_mode():
            return as_tuple(self.compiled.module(*tensors))

    def _graph_for(self, tensors: list) -> _Graph:
        """The graph captured for these inputs' shapes (captured now when new), its inputs set to these."""
        key = tuple((tuple(t.shape), str(t.dtype)) for t in tensors)
        graph = self._graphs.get(key)
        if graph is None:
            with self.shared.lock:  # one capture at a time in the process
                graph = self._capture([t.clone() for t in tensors])
                self.shared.graphs_captured += 1
            self._graphs[key] = graph
        for static, tensor in zip(graph.inputs, tensors):
            static.copy_(tensor)
        return graph

    def _capture(self, static: list) -> _Graph:
        """Warm up on the capture stream, then capture. A model whose forward waits for the device (a
        `.item()`, a copy to the host) cannot be captured: the capture fails, and that failure is the one-line
        refusal. No pre-check under sync-debug mode: that mode is process-wide (it would make the other
        clients' copies raise), and transformers' mask code skips its host check while a capture runs."""
        device, shared = self.device, self.shared
        if shared.capture_stream is None:
            shared.capture_stream = device.new_stream()  # capture needs a stream other than the default one
        side = shared.capture_stream
        side.wait_stream(device.current_stream())
        with device.on(side):
            for _ in range(WARMUP_BEFORE_CAPTURE):
                self._forward(static)
        device.current_stream().wait_stream(side)
        try:
            graph, outputs = device.capture(self.compiled.module, static, side, shared.pool)
        except RuntimeError as err:
            raise UserError(
                f"the model cannot be captured as a CUDA graph ({one_line(err, 160)}): its forward probably "
                "waits for the device",
                field="engine",
                fix="use engine eager or compile for this model",
            ) from None
        return _Graph(graph, static, outputs)

    def _run(self, tensors: list) -> tuple:
        """The model once on device tensors; a graph's outputs are its static buffers (copy before reuse)."""
        if self.compiled.engine != "cuda-graph":
            return self._forward(tensors)
        graph = self._graph_for(tensors)
        graph.graph.replay()
        return graph.outputs

    def predict(self, feeds: Feeds) -> dict[str, np.ndarray]:
        rows = len(next(iter(feeds.values())))
        padded = self._padded(feeds, rows)
        with self.device.on(self.stream):
            outputs = self._timing_a_recompile(padded, lambda: self._run(self._inputs(padded)))
            host = [out.float().cpu().numpy()[:rows] for out in outputs]  # .cpu() waits for the device
        return dict(zip(self.compiled.output_names, host))

    def _padded(self, feeds: Feeds, rows: int) -> Feeds:
        """A static-shape engine runs the loaded batch size only: a smaller batch (LoadGen's dynamic batches,
        a dataset's last) is padded with its last row, so no call captures or compiles a new shape."""
        if not self.static_shapes or not self.batch_size or rows >= self.batch_size:
            return feeds
        extra = self.batch_size - rows
        return {name: np.concatenate([array, np.repeat(array[-1:], extra, axis=0)]) for name, array in feeds.items()}

    def _recompiles(self, feeds: Feeds) -> bool:
        """Whether the next call compiles again: the compile engine at a shape it has not run."""
        return self.compiled.engine == "compile" and shape_key(feeds) not in self.shared.recompiles

    def _timing_a_recompile(self, feeds: Feeds, call: Callable[[], tuple]) -> tuple:
        """`call`'s result; when it compiles again, how long that first call took is recorded. One thread
        compiles at a time (Dynamo is not thread-safe); the others wait and then find the shape compiled."""
        if not self._recompiles(feeds):
            return call()
        with self.shared.lock:
            if not self._recompiles(feeds):  # another client compiled it while this one waited
                return call()
            start = time.perf_counter()
            result = call()
            self.device.synchronize()
            self.shared.recompiles[shape_key(feeds)] = round(time.perf_counter() - start, 3)
        return result

    def bind(self, feeds: Feeds) -> Callable[[], object]:
        with self.device.on(self.stream):
            if self._recompiles(feeds):  # compile here, one client at a time, before the clients' threads start
                self._timing_a_recompile(feeds, lambda: self._forward(self._inputs(feeds)))
            if self.config.include_transfers:
                host = declared_feeds(feeds, self.compiled.input_names)

                def work():
                    outputs = self._run(self._inputs(host))
                    return [out.cpu() for out in outputs]
            else:
                tensors = self._inputs(feeds)
                if self.compiled.engine == "cuda-graph":
                    graph = self._graph_for(tensors)
                    work = graph.graph.replay
                else:

                    def work():
                        return self._forward(tensors)

        return _TimedCall(self, work)

    def settings(self) -> dict[str, Any]:
        transfers = self.config.include_transfers
        settings = {
            "engine": self.compiled.engine,
            "device": self.device.name,
            "precision": self.compiled.precision,
            "instances": self.instance_count,
            "streams": "one CUDA stream per client" if self.instance_count > 1 and self.device.accelerator else None,
            "timed_call": (
                "host-to-device copy of the inputs, compute, device-to-host copy of the outputs (include_transfers)"
                if transfers
                else "compute on inputs already on the device"
            )
            + ("; ends when the device has finished (event synchronize)" if self.device.accelerator else ""),
            "device_time": "CUDA event pair around each timed call" if self.device.accelerator else None,
            "first_call_seconds_by_shape": dict(self.shared.recompiles) or None,
            # every client's graphs over the run: each captures its own at each shape
            "cuda_graphs": self.shared.graphs_captured if self.compiled.engine == "cuda-graph" else None,
        }
        return {key: value for key, value in settings.items() if value is not None}

    def peak_probe(self, precision: str):
        """torch.matmul on this device at the precision that ran (TF32 through the math mode load() set);
        the call ends when the device has finished, so the host clock times the work."""
        import torch

        from core.measure.peak import PeakProbe

        on_gpu = self.device.torch.type == "cuda"  # a test's fake device keeps its tensors on the host
        n = GPU_GEMM_SIZE if on_gpu else 512
        a = torch.randn(n, n, device=self.device.torch).to(self.dtype)
        b = torch.randn(n, n, device=self.device.torch).to(self.dtype)
        set_math_mode(precision)

        def run() -> None:
            with torch.inference_mode():
                torch.matmul(a, b)
            self.device.synchronize()

        return PeakProbe(
            f"torch {torch.__version__} matmul {n}x{n}x{n} on {self.device.name}", precision, 2.0 * n**3, run
        )

    def peak_bandwidth(self) -> dict[str, Any] | None:
        """Device memory: a device-to-device copy of 1 GiB (read and written), cached per device and versions."""
        if not self.device.accelerator:
            return None
        from core.measure.peak import cached, time_probe

        def measure() -> dict[str, Any]:
            import torch

            elements = 1 << 28 if self.device.torch.type == "cuda" else 1 << 20  # 1 GiB of float32 on a GPU
            source = torch.empty(elements, device=self.device.torch)
            target = torch.empty_like(source)

            def copy() -> None:
                target.copy_(source)
                self.device.synchronize()

            rate, calls = time_probe(copy, 2 * elements * 4)
            size = f"{elements * 4 >> 20} MiB"
            return {"GB/s": round(rate / 1e9, 1), "Method": f"device copy of {size}, median of {calls} calls"}

        return cached(
            {"what": "device copy", "device": self.device.name, "gpu": str(self.device.properties())}, measure
        )

    def profile(self, feeds: Feeds, calls: int, folder):
        """torch.profiler with CUDA activities on a device (kernels' device time), CPU ones on the host."""
        from backends.torch_profiler import torch_profile

        on_gpu = self.device.torch.type == "cuda"
        return torch_profile(
            self.compiled.engine, self.bind(feeds), calls, folder, cuda=on_gpu, sync=self.device.synchronize
        )

    def close(self) -> None:
        self._graphs.clear()
        self.device.synchronize()


class _TimedCall:
    """One timed call on the instance's stream: events around the work, then wait for the end event."""

    def __init__(self, runtime: GpuRuntime, work: Callable[[], object]):
        self.runtime, self.work = runtime, work

    def __call__(self) -> object:
        device, timer = self.runtime.device, self.runtime.shared.timer
        with device.on(self.runtime.stream):
            start, end = device.event(), device.event()
            if start is not None:
                start.record()
            result = self.work()
            if end is not None:
                end.record()
                end.synchronize()
        timer.add(start, end)
        return result
