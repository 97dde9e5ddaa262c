"""NVIDIA's management library (NVML, through nvidia-ml-py's `pynvml`): driver version, clocks, the
process's device memory, and the energy counter. Optional: every read answers None where NVML is not
importable or not readable, and `reason` says why, for the report.
"""

from __future__ import annotations

import os
from typing import Any


class Nvml:
    def __init__(self, module: Any = None, reason: str | None = None):
        self.module = module  # pynvml, initialised; None when unreadable
        self.reason = reason  # why NVML is unreadable (None: readable)

    @classmethod
    def open(cls, module: Any = None) -> Nvml:
        """NVML initialised, or an Nvml that reads nothing and says why."""
        if module is None:
            try:
                import pynvml as module  # nvidia-ml-py
            except ImportError:
                return cls(None, "nvidia-ml-py is not installed (pip install nvidia-ml-py)")
        try:
            module.nvmlInit()
        except Exception as err:  # NVMLError subclasses per cause; any of them means "not readable here"
            return cls(None, f"NVML did not initialise: {err}")
        return cls(module)

    def _read(self, name: str, *args: Any) -> Any:
        if self.module is None:
            return None
        try:
            return getattr(self.module, name)(*args)
        except Exception:  # an unsupported query (energy before Volta, a MIG slice) is an absent figure
            return None

    def handle(self, index: int, uuid: str | None = None) -> Any:
        """The device's NVML handle: by UUID when torch knows it (CUDA_VISIBLE_DEVICES renumbers devices)."""
        if uuid:
            found = self._read("nvmlDeviceGetHandleByUUID", uuid if uuid.startswith("GPU-") else f"GPU-{uuid}")
            if found is not None:
                return found
        return self._read("nvmlDeviceGetHandleByIndex", index)

    def driver_version(self) -> str | None:
        version = self._read("nvmlSystemGetDriverVersion")
        return version.decode() if isinstance(version, bytes) else version

    def device_entry(self, index: int, uuid: str | None = None) -> dict[str, Any]:
        """Clocks at start and the power limit, for the Host section."""
        handle = self.handle(index, uuid)
        if handle is None:
            return {}
        clock = getattr(self.module, "NVML_CLOCK_SM", 1), getattr(self.module, "NVML_CLOCK_MEM", 2)
        limit = self._read("nvmlDeviceGetEnforcedPowerLimit", handle)
        return {
            "sm_clock_mhz": self._read("nvmlDeviceGetClockInfo", handle, clock[0]),
            "memory_clock_mhz": self._read("nvmlDeviceGetClockInfo", handle, clock[1]),
            "max_sm_clock_mhz": self._read("nvmlDeviceGetMaxClockInfo", handle, clock[0]),
            "max_memory_clock_mhz": self._read("nvmlDeviceGetMaxClockInfo", handle, clock[1]),
            "power_limit_w": None if limit is None else round(limit / 1000, 1),
        }

    def energy_mj(self, handle: Any) -> int | None:
        """Millijoules since the driver loaded (Volta and later)."""
        return None if handle is None else self._read("nvmlDeviceGetTotalEnergyConsumption", handle)

    def device_memory_used(self, handle: Any) -> int | None:
        """Bytes in use on the whole device (every process), as the driver counts them."""
        info = None if handle is None else self._read("nvmlDeviceGetMemoryInfo", handle)
        used = getattr(info, "used", None)
        return used if isinstance(used, int) else None

    def process_memory(self, handle: Any, pid: int | None = None) -> int | None:
        """Bytes of device memory this process holds, as the driver counts it (context included)."""
        if handle is None:
            return None
        pid = os.getpid() if pid is None else pid
        for name in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
            for process in self._read(name, handle) or []:
                used = getattr(process, "usedGpuMemory", None)
                if getattr(process, "pid", None) == pid and isinstance(used, int):
                    return used
        return None
