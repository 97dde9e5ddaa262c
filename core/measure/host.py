"""Host and software facts recorded in every report, so two reports can be told apart.

The instruction set decides which engine and precision win on a CPU (onnxruntime on an AVX-512 EPYC,
OpenVINO bf16 on an AMX Xeon: docs/MEASUREMENTS.md), so every report and benchmark names it.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

SOFTWARE = (
    "perfbench",
    "torch",
    "onnxruntime",
    "openvino",
    "nncf",
    "onnx",
    "transformers",
    "diffusers",
    "tokenizers",
    "numpy",
    "onnxslim",
    "triton",  # torch.compile's kernels on a GPU
    "nvidia-ml-py",
)

# /proc/cpuinfo flags that change which kernels a library can use.
ISA_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "avx512_fp16",
)
# Simulates another host (tests, or forbidding an ISA): a space-separated flags string.
FLAGS_ENV = "PERFBENCH_CPU_FLAGS"


@dataclass(frozen=True)
class CpuIsa:
    """What the processor can do natively, read from its flags."""

    flags: frozenset[str]

    @classmethod
    def from_flags(cls, text: str) -> CpuIsa:
        return cls(frozenset(text.split()))

    @property
    def bf16(self) -> bool:
        """Native bfloat16 math (AMX tiles or AVX512-BF16); elsewhere libraries emulate it, slowly."""
        return bool({"amx_bf16", "avx512_bf16"} & self.flags)

    @property
    def int8(self) -> bool:
        """Int8 dot products (VNNI or AMX-INT8): what makes int8 GEMMs faster than fp32."""
        return bool({"amx_int8", "avx512_vnni", "avx_vnni"} & self.flags)

    @property
    def name(self) -> str:
        """The headline: AMX, AVX-512, AVX2 or the machine's architecture when none of those."""
        if "amx_tile" in self.flags or "amx_bf16" in self.flags:
            return "AMX"
        if "avx512f" in self.flags:
            return "AVX-512"
        if "avx2" in self.flags:
            return "AVX2"
        return platform.machine() or "unknown"

    def summary(self) -> str:
        extras = [
            label
            for flag, label in (
                ("avx512_bf16", "BF16"),
                ("avx512_vnni", "VNNI"),
                ("avx_vnni", "AVX-VNNI"),
                ("amx_bf16", "AMX-BF16"),
                ("amx_int8", "AMX-INT8"),
            )
            if flag in self.flags
        ]
        return self.name + (f" ({', '.join(extras)})" if extras else "")

    def report_entry(self) -> dict:
        return {
            "isa": self.name,
            "summary": self.summary(),
            "bf16": self.bf16,
            "int8": self.int8,
            "flags": sorted(f for f in self.flags if f in ISA_FLAGS),
        }


def _cpuinfo_field(name: str) -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith(name):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_isa() -> CpuIsa:
    """This host's ISA: $PERFBENCH_CPU_FLAGS when set, else /proc/cpuinfo's flags."""
    override = os.environ.get(FLAGS_ENV)
    if override is not None:
        return CpuIsa.from_flags(override)
    return CpuIsa.from_flags(_cpuinfo_field("flags") or "")


def cpu_model() -> str:
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / (1 << 20), 1)
    except OSError:
        pass
    return None


def host_info() -> dict:
    return {
        "cpu": cpu_model(),
        **cpu_isa().report_entry(),
        "cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "memory_gib": memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "python": platform.python_version(),
        "hostname": platform.node(),
    }


def host_fingerprint() -> dict:
    """What makes a tuning decision valid only on this kind of host: processor, ISA, cores."""
    return {
        "cpu": cpu_model(),
        "flags": sorted(f for f in cpu_isa().flags if f in ISA_FLAGS),
        "usable_cores": usable_cores(),
    }


def software_versions() -> dict[str, str]:
    versions = {}
    for name in SOFTWARE:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions
