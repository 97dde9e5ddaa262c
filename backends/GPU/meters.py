"""What the GPU reads beside the host clock over each batch size's timed window (core.measure.timing.Meter):
device time per call from CUDA event pairs, device memory from the framework's allocator and the
driver, energy from NVML's counter.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from backends.GPU.device import Device
from backends.GPU.nvml import Nvml
from core.measure.memory import mb


class DeviceTimer:
    """Device time of every timed call: each call records an event pair around its work on its stream;
    only pairs recorded inside the window count (warm-up is not timed). Read after the window, when
    every event has completed."""

    def __init__(self) -> None:
        self.active = False
        self._pairs: list[tuple[Any, Any]] = []
        self._lock = threading.Lock()
        self.times_ms: list[float] = []

    def add(self, start: Any, end: Any) -> None:
        if self.active and start is not None:
            with self._lock:
                self._pairs.append((start, end))

    def begin(self) -> None:
        self._pairs, self.times_ms, self.active = [], [], True

    def end(self) -> None:
        self.active = False
        self.times_ms = [float(start.elapsed_time(end)) for start, end in self._pairs]  # each call synchronized

    def row_fields(self, measurement) -> dict[str, Any]:
        if measurement is None or not self.times_ms:
            return {}
        ms = np.asarray(self.times_ms)
        p50, p99 = np.percentile(ms, [50, 99])
        return {
            "device_avg_latency": round(float(ms.mean()), 4),
            "device_p50_latency": round(float(p50), 4),
            "device_p99_latency": round(float(p99), 4),
        }


class DeviceMemory:
    """Peak allocated and reserved by torch's allocator since the batch size's load (which resets them),
    and the process's device memory as the driver sees it (context and libraries included)."""

    def __init__(self, device: Device, nvml: Nvml | None, handle: Any):
        self.device, self.nvml, self.handle = device, nvml, handle
        self._process: int | None = None
        self._note: str | None = None

    def begin(self) -> None:
        pass

    def end(self) -> None:
        # Read with the model's buffers still held: after the window, before the next batch size frees them.
        self._process, self._note = self._read()

    def _read(self) -> tuple[int | None, str | None]:
        """This process's device memory; inside a container NVML lists host PIDs, never ours: then the whole
        device's used memory (NVML), and the note says so."""
        if self.nvml is None:
            return None, None
        own = self.nvml.process_memory(self.handle)
        if own is not None:
            return own, None
        used = self.nvml.device_memory_used(self.handle)
        if used is not None:
            return used, "whole device's used memory (nvmlDeviceGetMemoryInfo): NVML does not list this process's PID"
        return None, "NVML lists neither this process nor the device's memory"

    def row_fields(self, measurement) -> dict[str, Any]:
        peak = self.device.peak_memory()
        if peak is None:
            return {}
        if measurement is None:  # a failed batch size never reached end()
            self._process, self._note = self._read()
        return {
            "device_memory_mb": mb(peak[0]),
            "device_reserved_mb": mb(peak[1]),
            "device_process_mb": mb(self._process),
            "device_process_note": self._note,
        }


class EnergyMeter:
    """NVML's total-energy counter (millijoules since the driver loaded), differenced over the window.
    Power is its average over the window: NVML's own power reading is a one-second average on recent
    GPUs, so sampling that faster would add nothing."""

    def __init__(self, nvml: Nvml | None, handle: Any):
        self.nvml, self.handle = nvml, handle
        self._start: int | None = None
        self._joules: float | None = None
        self._why_not = "not measured"

    def _read(self) -> int | None:
        return self.nvml.energy_mj(self.handle) if self.nvml is not None else None

    def begin(self) -> None:
        self._start, self._joules = self._read(), None
        if self._start is None:
            reason = self.nvml.reason if self.nvml is not None and self.nvml.reason else None
            self._why_not = reason or "this device has no readable energy counter (NVML, Volta or later)"

    def end(self) -> None:
        stop = self._read()
        if self._start is None or stop is None:
            return
        if stop > self._start:
            self._joules = (stop - self._start) / 1000
        else:
            self._why_not = "the energy counter did not advance over the timed window"

    def row_fields(self, measurement) -> dict[str, Any]:
        if measurement is None:
            return {}
        if self._joules is None:
            return {"energy_note": f"no energy figure: {self._why_not}"}
        samples = measurement.latency.count * measurement.batch_size
        seconds = measurement.measured_seconds
        return {
            "energy_j_per_sample": round(self._joules / samples, 6),
            "avg_power_w": round(self._joules / seconds, 2) if seconds > 0 else None,
        }


class NvmlCounter:
    """NVML's total-energy counter read around an LLM load point, as core.measure.energy's RAPL meter is."""

    def __init__(self, nvml: Nvml, handle: Any):
        self.nvml, self.handle = nvml, handle

    def read(self) -> list[int]:
        return [self.nvml.energy_mj(self.handle) or 0]

    def joules(self, before: list[int], after: list[int]) -> float:
        return max(0, after[0] - before[0]) / 1000


def nvml_counter(device: str, nvml: Nvml | None = None) -> tuple[NvmlCounter | None, str]:
    """The counter of `device` ("cuda", "cuda:1"), or None and why not."""
    if not device.startswith("cuda"):
        return None, f"no energy counter: the GPU backend runs on {device}"
    nvml = nvml or Nvml.open()
    index = int(device.partition(":")[2] or 0)
    handle = nvml.handle(index)
    if nvml.energy_mj(handle) is None:
        why = nvml.reason or "this device has no readable energy counter (NVML, Volta or later)"
        return None, f"no energy counter: {why}"
    return NvmlCounter(nvml, handle), f"energy from NVML's total-energy counter (device {index}): the whole GPU"
