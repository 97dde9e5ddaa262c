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


# (vendor, family, model) -> microarchitecture, where cloud machines name only the vendor's family ("AMD EPYC").
MICROARCHITECTURES = {
    ("AuthenticAMD", 23, 1): "Zen",
    ("AuthenticAMD", 23, 8): "Zen+",
    ("AuthenticAMD", 23, 49): "Zen 2",
    ("AuthenticAMD", 23, 113): "Zen 2",
    ("AuthenticAMD", 25, 1): "Zen 3",
    ("AuthenticAMD", 25, 33): "Zen 3",
    ("AuthenticAMD", 25, 48): "Zen 3",
    ("AuthenticAMD", 25, 17): "Zen 4",
    ("AuthenticAMD", 25, 16): "Zen 4",
    ("AuthenticAMD", 25, 97): "Zen 4",
    ("AuthenticAMD", 25, 160): "Zen 4c",
    ("AuthenticAMD", 26, 2): "Zen 5",
    ("AuthenticAMD", 26, 17): "Zen 5",
    ("GenuineIntel", 6, 85): "Skylake-SP/Cascade Lake",
    ("GenuineIntel", 6, 106): "Ice Lake-SP",
    ("GenuineIntel", 6, 143): "Sapphire Rapids",
    ("GenuineIntel", 6, 207): "Emerald Rapids",
    ("GenuineIntel", 6, 173): "Granite Rapids",
}


def _int_field(name: str) -> int | None:
    value = _cpuinfo_field(name)
    try:
        return int(value, 0) if value is not None else None
    except ValueError:
        return None


def _caches() -> dict[str, str]:
    """L2 and L3 sizes of cpu0 as the kernel reports them (e.g. {"l2": "1024K", "l3": "32768K"})."""
    found: dict[str, str] = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level = (index / "level").read_text(encoding="utf-8").strip()
            size = (index / "size").read_text(encoding="utf-8").strip()
        except OSError:
            continue
        if level in ("2", "3"):
            found[f"l{level}"] = size
    return found


def processor_facts() -> dict:
    """What tells processors apart where the model name does not: vendor, family/model/stepping, microcode,
    caches, cores and threads, and the frequency where readable (not part of the fingerprint: it moves)."""
    import psutil

    vendor = _cpuinfo_field("vendor_id")
    family, model = _int_field("cpu family"), _model_number()
    facts = {
        "vendor": vendor,
        "family": family,
        "model_number": model,
        "stepping": _int_field("stepping"),
        "microcode": _cpuinfo_field("microcode"),
        **_caches(),
        "physical_cores": psutil.cpu_count(logical=False),
        "threads": psutil.cpu_count(logical=True),
        "mhz": round(float(_cpuinfo_field("cpu MHz") or 0)) or None,
        "microarchitecture": MICROARCHITECTURES.get((vendor, family, model)),
    }
    return facts


def _model_number() -> int | None:
    """cpuinfo's 'model' line (not 'model name')."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model":
                return int(value.strip())
    except (OSError, ValueError):
        pass
    return None


def processor_line(name: str, facts: dict) -> str:
    """'AMD EPYC (family 25 model 17, Zen 4)': the model name with what tells same-named processors apart."""
    if facts.get("family") is None:
        return name
    detail = f"family {facts['family']} model {facts.get('model_number')}"
    if facts.get("microarchitecture"):
        detail += f", {facts['microarchitecture']}"
    return f"{name} ({detail})"


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
    facts = processor_facts()
    return {
        "cpu": cpu_model(),
        "processor": processor_line(cpu_model(), facts),
        **facts,
        "fingerprint": fingerprint_digest(host_fingerprint()),
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
    """What makes a measurement or a tuning decision valid only on this kind of host: the processor (name,
    vendor, family/model/stepping, microcode, caches), its ISA and the cores this process may use."""
    facts = processor_facts()
    return {
        "cpu": cpu_model(),
        **{key: facts.get(key) for key in ("vendor", "family", "model_number", "stepping", "microcode", "l2", "l3")},
        "flags": sorted(f for f in cpu_isa().flags if f in ISA_FLAGS),
        "usable_cores": usable_cores(),
    }


def fingerprint_digest(fingerprint: dict) -> str:
    """A short digest of a host fingerprint: equal on the same kind of host, different across processors."""
    from core.common.digest import json_digest

    return json_digest(fingerprint, 12)


def software_versions() -> dict[str, str]:
    versions = {}
    for name in SOFTWARE:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions
