"""What the hardware can do, measured: the matrix-multiply rate of the precision that ran, in the engine
that ran it, and the memory bandwidth (a STREAM-style triad), cached per host, library versions, probe code,
precision and threads.

A row's share of the peak is only as good as the peak: a spec sheet's number is not what a library
reaches on a shared 2-core slice, and engines differ by 2x on one host (GUIDE §4: onnxruntime's MatMul
355-400 GFLOP/s where torch's GEMM gets 190). So the backend hands over a matrix multiply in its own
engine (`RuntimeBackend.peak_probe`), timed here, and torch's GEMM stands in where it has none.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.common.paths import state_dir
from core.reporting.sections import PEAK_CACHED, PEAK_MEASURED

log = logging.getLogger(__name__)

GEMM_SIZE = 2048  # 17 GFLOP a call: long enough to reach the steady rate, short on a 2-core host
PROBE_SECONDS = 1.0  # timed per figure, after one warm-up call; 2-3 figures a run: well under 10 s
TRIAD_ELEMENTS = 1 << 25  # 128 MB a float32 array: far beyond any L3 cache
RATES = ("GFLOP/s", "GB/s")  # what a figure measured; a figure without one is a failure


def _maker_file() -> str:
    # Called by PeakProbe's generated __init__: frame 1 is __init__, frame 2 the code that built the probe.
    return sys._getframe(2).f_code.co_filename


@dataclass(frozen=True)
class PeakProbe:
    """One matrix multiply in the engine that ran: `run()` does `flops` of work at `precision`."""

    library: str  # e.g. "onnxruntime 1.31.1 MatMul 2048x2048x2048, 2 threads"
    precision: str
    flops: float
    run: Callable[[], object]
    # The source file that built the probe (the engine's module): its code is part of the peak's cache key.
    made_in: str = field(default_factory=_maker_file, compare=False)


def time_probe(run: Callable[[], object], work: float, seconds: float = PROBE_SECONDS) -> tuple[float, int]:
    """Work per second of the fastest call over about `seconds` after one warm-up call, and the calls timed. The
    fastest, not the median: a peak is what the hardware reaches, and a shared host only ever slows a call down
    (a median taken while a neighbour ran gave 594 GOP/s where a quiet run gave 809, and shares above 100%).
    A warm-up call longer than `seconds` (an emulated precision) is the one sample: the budget holds."""
    t0 = time.perf_counter()
    run()
    first = time.perf_counter() - t0
    if first > seconds:
        return work / first, 1
    durations: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(durations) < 3 or time.perf_counter() < deadline:
        t0 = time.perf_counter()
        run()
        durations.append(time.perf_counter() - t0)
        if len(durations) >= 200:
            break
    return work / min(durations), len(durations)


def torch_gemm_probe(precision: str, threads: int | None = None) -> PeakProbe | None:
    """torch.matmul on the CPU: what the PyTorch engine runs, and the stand-in for engines without a probe
    (INT8: torch's int8 x int8 -> int32 matrix multiply, the class of kernel INT8-activation LLM engines run)."""
    import torch

    dtype = {"FP32": torch.float32, "BF16": torch.bfloat16, "INT8": torch.int8}.get(precision)
    if dtype is None:
        return None
    if threads:
        torch.set_num_threads(threads)
    n = GEMM_SIZE
    if dtype is torch.int8:
        a, b = (torch.randint(-128, 128, (n, n), dtype=dtype) for _ in range(2))
        op = "_int_mm int8"

        def run() -> None:
            with torch.inference_mode():
                torch._int_mm(a, b)

    else:
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        out = torch.empty(n, n, dtype=dtype)
        op = "matmul"

        def run() -> None:
            with torch.inference_mode():
                torch.matmul(a, b, out=out)

    return PeakProbe(
        f"torch {torch.__version__} {op} {n}x{n}x{n}, {torch.get_num_threads()} threads", precision, 2.0 * n**3, run
    )


def triad_bandwidth(seconds: float = PROBE_SECONDS) -> dict[str, Any]:
    """STREAM's triad a = b + s*c over three 128 MB arrays with torch's threads: bytes read and written per second."""
    import torch

    b = torch.rand(TRIAD_ELEMENTS)
    c = torch.rand(TRIAD_ELEMENTS)
    a = torch.empty(TRIAD_ELEMENTS)
    moved = 3 * TRIAD_ELEMENTS * 4  # read b and c, write a
    rate, calls = time_probe(lambda: torch.add(b, c, alpha=3.0, out=a), moved, seconds)
    return {
        "GB/s": round(rate / 1e9, 2),
        "Method": f"STREAM triad a = b + 3c over 3 x {TRIAD_ELEMENTS * 4 >> 20} MB float32, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads, fastest of {calls} calls",
    }


def _cache_path(payload: dict[str, Any], code: Sequence[str | Path]):
    from core.common.artifact_cache import cache_key, code_digest
    from core.measure.host import host_fingerprint, software_versions

    files = sorted({Path(__file__).resolve(), *(Path(f).resolve() for f in code)})
    # Code without a file (typed at a prompt) is keyed by its name: it cannot be told apart anyway.
    digest = code_digest(*(f for f in files if f.is_file())) + "".join(f"+{f.name}" for f in files if not f.is_file())
    keyed = {**payload, "host": host_fingerprint(), "versions": software_versions(), "code": digest}
    return state_dir() / "peak" / f"{cache_key(keyed)}.json"


def _rate(figure: dict[str, Any] | None) -> float | None:
    rate = next((figure.get(key) for key in RATES if figure and figure.get(key) is not None), None)
    return float(rate) if isinstance(rate, int | float) and rate > 0 else None


def cached(
    payload: dict[str, Any],
    measure: Callable[[], dict[str, Any]],
    *,
    code: Sequence[str | Path] = (),
    refresh: bool = False,
) -> dict[str, Any]:
    """A peak figure from `.perfbench/peak/` when this host measured it with these libraries and this code (this
    module, `measure`'s own file and `code`), else measured now (`refresh`: measured even so). A failure is never
    stored, so one transient error does not remove the figure for good; a new figure replaces the stored one only
    when faster, since a peak is the fastest call. PEAK_CACHED says whether the figure returned was stored by an
    earlier run, PEAK_MEASURED when it was measured."""
    from core.common.atomic import atomic_write_text
    from core.reporting.report import now_iso

    own = getattr(measure, "__code__", None)  # a plain function: its module is part of the probe's code
    path = _cache_path(payload, [*code, *([own.co_filename] if own else [])])
    stored = None
    if path.is_file():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            log.debug("peak figure %s unreadable; measuring again", path)
        stored = stored if _rate(stored) is not None else None
    if stored is not None and not refresh:
        return {**stored, PEAK_CACHED: True}
    figure = {**measure(), PEAK_MEASURED: now_iso()}
    rate = _rate(figure)
    if rate is None or (stored is not None and _rate(stored) >= rate):
        return {**stored, PEAK_CACHED: True} if stored is not None else {**figure, PEAK_CACHED: False}
    atomic_write_text(path, json.dumps(figure, indent=2) + "\n")
    return {**figure, PEAK_CACHED: False}


def gemm_peak(
    key: dict[str, Any],
    make_probe: Callable[[], PeakProbe | None],
    *,
    seconds: float = PROBE_SECONDS,
    refresh: bool = False,
) -> dict[str, Any]:
    """The matrix-multiply rate of one engine and precision, or null with why. Cached by `key`, the probe's
    description (library version, operation, size, threads), its precision and the code that built it; the
    probe is built first (cheap next to timing it) so that its code is known."""
    started = time.perf_counter()
    try:
        probe = make_probe()
    except Exception as err:  # an engine that cannot build the probe says so in the report
        return {"GFLOP/s": None, "Reason": f"{type(err).__name__}: {err}"[:300], PEAK_CACHED: False}
    if probe is None:
        return {"GFLOP/s": None, "Reason": f"no matrix-multiply probe for {key.get('precision')}", PEAK_CACHED: False}

    def measure() -> dict[str, Any]:
        try:
            rate, calls = time_probe(probe.run, probe.flops, seconds)
        except Exception as err:  # an engine that cannot run the probe says so in the report
            return {"GFLOP/s": None, "Reason": f"{type(err).__name__}: {err}"[:300]}
        return {
            "GFLOP/s": round(rate / 1e9, 1),
            "Method": f"{probe.library}, {probe.precision}, fastest of {calls} calls",
            "Seconds": round(time.perf_counter() - started, 2),
        }

    payload = {"what": "gemm", **key, "probe": probe.library, "probe precision": probe.precision}
    return cached(payload, measure, code=[probe.made_in], refresh=refresh)


def bandwidth_peak(
    threads: int | None = None, *, seconds: float = PROBE_SECONDS, refresh: bool = False
) -> dict[str, Any]:
    """The triad's bandwidth with `threads` torch threads (default: torch's current count), cached per count."""
    import torch

    count = threads or torch.get_num_threads()

    def measure() -> dict[str, Any]:
        started = time.perf_counter()
        before = torch.get_num_threads()
        torch.set_num_threads(count)
        try:
            return {**triad_bandwidth(seconds), "Seconds": round(time.perf_counter() - started, 2)}
        finally:
            torch.set_num_threads(before)

    return cached({"what": "triad", "threads": count}, measure, refresh=refresh)


# FLOP per cycle per core at each precision where the microarchitecture's datapath is documented: FP32 FMA pipes
# x lanes x 2, BF16 dot products (AVX512-BF16, AMX tiles), INT8 dot products (VNNI, AMX) counting a
# multiply-add as 2. Absent: a precision that microarchitecture has no native kernel for.
FLOP_PER_CYCLE: dict[str, dict[str, int]] = {
    "Zen": {"FP32": 16},  # two 128-bit FMA pipes
    "Zen+": {"FP32": 16},
    "Zen 2": {"FP32": 32},  # two 256-bit FMA pipes
    "Zen 3": {"FP32": 32},
    "Zen 4": {"FP32": 32, "BF16": 64, "INT8": 128},  # AVX-512 over two 256-bit pipes
    "Zen 4c": {"FP32": 32, "BF16": 64, "INT8": 128},
    "Zen 5": {"FP32": 64, "BF16": 128, "INT8": 256},  # a full 512-bit datapath (EPYC 9005)
    "Skylake-SP/Cascade Lake": {"FP32": 64, "INT8": 256},  # two AVX-512 FMA units; INT8 with Cascade Lake's VNNI
    "Ice Lake-SP": {"FP32": 64, "INT8": 256},
    "Sapphire Rapids": {"FP32": 64, "BF16": 1024, "INT8": 2048},  # AMX tiles
    "Emerald Rapids": {"FP32": 64, "BF16": 1024, "INT8": 2048},
    "Granite Rapids": {"FP32": 64, "BF16": 1024, "INT8": 2048},
}


def _max_clock_ghz() -> float | None:
    try:
        return int(Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text().strip()) / 1e6
    except (OSError, ValueError):
        return None


def theoretical_peak(precision: str) -> dict[str, Any] | None:
    """cores x FLOP per cycle x clock, where the microarchitecture is known, naming the clock it assumes: the
    maximum cpufreq reports, else /proc/cpuinfo's current one (a VM's is often the base clock, which turbo
    exceeds: a measured rate above this figure says so, not that the measurement is wrong). None: unknown."""
    from core.measure.host import processor_facts, usable_cores

    facts = processor_facts()
    per_cycle = FLOP_PER_CYCLE.get(facts.get("microarchitecture") or "", {}).get(precision)
    clock, source = _max_clock_ghz(), "the maximum clock cpufreq reports"
    if clock is None and facts.get("mhz"):
        clock, source = facts["mhz"] / 1e3, "the clock /proc/cpuinfo reports (on a VM often the base clock)"
    if not per_cycle or not clock:
        return None
    physical, logical = facts.get("physical_cores") or 1, facts.get("threads") or 1
    cores = max(1, usable_cores() * physical // max(logical, physical))  # hyperthreads share a core's pipes
    return {
        "GFLOP/s": round(cores * per_cycle * clock, 1),
        "Assumes": f"{cores} cores x {per_cycle} {precision} FLOP/cycle ({facts['microarchitecture']}) x "
        f"{clock:.3g} GHz, {source}",
    }
