"""What the hardware can do, measured: the matrix-multiply rate of the precision that ran, in the engine
that ran it, and the memory bandwidth (a STREAM-style triad), once per host and library versions.

A row's share of the peak is only as good as the peak: a spec sheet's number is not what a library
reaches on a shared 2-core slice, and engines differ by 2x on one host (GUIDE §4: onnxruntime's MatMul
355-400 GFLOP/s where torch's GEMM gets 190). So the backend hands over a matrix multiply in its own
engine (`RuntimeBackend.peak_probe`), timed here, and torch's GEMM stands in where it has none.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.common.paths import state_dir

log = logging.getLogger(__name__)

GEMM_SIZE = 2048  # 17 GFLOP a call: long enough to reach the steady rate, short on a 2-core host
PROBE_SECONDS = 1.0  # timed per figure, after one warm-up call; 2-3 figures a run: well under 10 s
TRIAD_ELEMENTS = 1 << 25  # 128 MB a float32 array: far beyond any L3 cache


@dataclass(frozen=True)
class PeakProbe:
    """One matrix multiply in the engine that ran: `run()` does `flops` of work at `precision`."""

    library: str  # e.g. "onnxruntime 1.31.1 MatMul 2048x2048x2048, 2 threads"
    precision: str
    flops: float
    run: Callable[[], object]


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
    """torch.matmul on the CPU: what the PyTorch engine runs, and the stand-in for engines without a probe."""
    import torch

    dtype = {"FP32": torch.float32, "BF16": torch.bfloat16}.get(precision)
    if dtype is None:
        return None
    if threads:
        torch.set_num_threads(threads)
    n = GEMM_SIZE
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    out = torch.empty(n, n, dtype=dtype)

    def run() -> None:
        with torch.inference_mode():
            torch.matmul(a, b, out=out)

    return PeakProbe(
        f"torch {torch.__version__} matmul {n}x{n}x{n}, {torch.get_num_threads()} threads", precision, 2.0 * n**3, run
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


def _cache_path(payload: dict[str, Any]):
    from core.common.artifact_cache import cache_key
    from core.measure.host import host_fingerprint, software_versions

    keyed = {**payload, "host": host_fingerprint(), "versions": software_versions()}
    return state_dir() / "peak" / f"{cache_key(keyed)}.json"


def cached(payload: dict[str, Any], measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A peak figure from `.perfbench/peak/` when this host and these libraries measured it, else measured
    now and stored (`Cached: true` on a figure read back)."""
    from core.common.atomic import atomic_write_text

    path = _cache_path(payload)
    if path.is_file():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(stored, dict):
                return {**stored, "Cached": True}
        except (OSError, ValueError):
            log.debug("peak figure %s unreadable; measuring again", path)
    figure = measure()
    atomic_write_text(path, json.dumps(figure, indent=2) + "\n")
    return {**figure, "Cached": False}


def gemm_peak(key: dict[str, Any], make_probe: Callable[[], PeakProbe | None]) -> dict[str, Any]:
    """The matrix-multiply rate of one engine and precision (cached), or null with why."""

    def measure() -> dict[str, Any]:
        started = time.perf_counter()
        try:
            probe = make_probe()
            if probe is None:
                return {"GFLOP/s": None, "Reason": f"no matrix-multiply probe for {key.get('precision')}"}
            rate, calls = time_probe(probe.run, probe.flops)
        except Exception as err:  # an engine that cannot build or run the probe says so in the report
            return {"GFLOP/s": None, "Reason": f"{type(err).__name__}: {err}"[:300]}
        return {
            "GFLOP/s": round(rate / 1e9, 1),
            "Method": f"{probe.library}, {probe.precision}, fastest of {calls} calls",
            "Seconds": round(time.perf_counter() - started, 2),
        }

    return cached({"what": "gemm", **key}, measure)


def bandwidth_peak() -> dict[str, Any]:
    def measure() -> dict[str, Any]:
        started = time.perf_counter()
        return {**triad_bandwidth(), "Seconds": round(time.perf_counter() - started, 2)}

    return cached({"what": "triad"}, measure)
