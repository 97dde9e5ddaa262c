"""The report's key names, spelled once, and the typed performance row.

A `Performance` row is ByteMLPerf's {BS, QPS, AVG Latency, P99 Latency} (latencies in ms) plus ours.
`PerfRow` is that row as an object: the runner builds it, the report serializes it with `to_dict`, and
`from_dict` reads ours, ByteMLPerf's and its vendors' spellings back (STC writes `AVG_Latency`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

SCHEMA = "perfbench-report/1"

# Memory figures (MB): a process's peak resident set, a backend's device memory.
PEAK_RSS = "Peak RSS MB"
DEVICE_MEMORY = "Device Memory MB"
DEVICE_RESERVED = "Device Reserved MB"
DEVICE_PROCESS = "Device Process MB"

# Field -> report key, in the order a row is written.
ROW_KEYS = {
    "bs": "BS",
    "qps": "QPS",
    "avg_latency": "AVG Latency",
    "p99_latency": "P99 Latency",
    "p50_latency": "P50 Latency",
    "p90_latency": "P90 Latency",
    "min_latency": "Min Latency",
    "max_latency": "Max Latency",
    "std_latency": "Std Latency",
    "iterations": "Iterations",
    "measured_seconds": "Measured Seconds",
    "warmup_iterations": "Warmup Iterations",
    "stop_reason": "Stop Reason",
    "status": "Status",
    "clients": "Clients",
    "warning": "Warning",
    "error": "Error",
    "peak_rss_mb": PEAK_RSS,
    "device_memory_mb": DEVICE_MEMORY,
    "device_reserved_mb": DEVICE_RESERVED,
    "device_process_mb": DEVICE_PROCESS,
    "device_process_note": "Device Process Note",
    "device_avg_latency": "Device AVG Latency",
    "device_p50_latency": "Device P50 Latency",
    "device_p99_latency": "Device P99 Latency",
    "energy_j_per_sample": "Energy J/sample",
    "avg_power_w": "Avg Power W",
    "energy_note": "Energy Note",
    "qps_low": "QPS Low 95%",
    "qps_high": "QPS High 95%",
    "drift": "Drift",
    "p90_upper": "P90 Upper 95%",
    "p99_upper": "P99 Upper 95%",
    "tail_backing": "Tail Backing",
    "achieved_gflops": "Achieved GFLOP/s",
    "arithmetic_intensity": "Arithmetic Intensity",
    "roof": "Roof",
    "roof_gflops": "Roof GFLOP/s",
    "peak_share": "Peak Share",
    "roof_engine": "Roof Engine",
    "roof_note": "Roof Note",
    "spec_peak_share": "Spec Peak Share",
}
BS, QPS = ROW_KEYS["bs"], ROW_KEYS["qps"]
LATENCY_KEYS = tuple(ROW_KEYS[k] for k in ("avg_latency", "p50_latency", "p90_latency", "p99_latency"))
# Memory (MB): the process's peak resident set while a batch size ran; device memory where a backend reports one
# (peak allocated, peak reserved by the allocator, and the process's use as the driver sees it).
MEMORY_KEYS = (PEAK_RSS, DEVICE_MEMORY, DEVICE_RESERVED, DEVICE_PROCESS)
# An accelerator's own view of a batch size: device time per call (CUDA events, ms) and energy from the
# device's counter over the timed window. Shown beside the host-timed numbers, never judged by compare.
DEVICE_KEYS = tuple(
    ROW_KEYS[k]
    for k in ("device_avg_latency", "device_p50_latency", "device_p99_latency", "energy_j_per_sample", "avg_power_w")
)
# Derived from QPS, the counted work and the measured peaks: how close a row came to what the hardware can do.
ROOFLINE_KEYS = tuple(
    ROW_KEYS[k] for k in ("achieved_gflops", "peak_share", "arithmetic_intensity", "roof_gflops", "spec_peak_share")
)
# Shown in comparisons, never a regression by themselves.
UNJUDGED_KEYS = (*MEMORY_KEYS, *DEVICE_KEYS, *ROOFLINE_KEYS)
# Every number a performance row may hold, in display order (latencies in ms).
PERF_KEYS = (
    QPS,
    *LATENCY_KEYS,
    *(
        ROW_KEYS[k]
        for k in ("min_latency", "max_latency", "std_latency", "iterations", "measured_seconds", "warmup_iterations")
    ),
    *MEMORY_KEYS,
    *DEVICE_KEYS,
    ROW_KEYS["qps_low"],
    ROW_KEYS["qps_high"],
    ROW_KEYS["p90_upper"],
    ROW_KEYS["p99_upper"],
    *ROOFLINE_KEYS,
)

# Short names for the leaderboard.
ACCURACY_ABBREV = {"Exact Match": "EM", "F1 Score": "F1", "Accuracy Matched": "M", "Accuracy Mismatched": "MM"}


def as_number(value: Any) -> float | None:
    """A finite float, or None for anything missing, non-numeric or NaN ("12.5%" reads as 12.5)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.strip().rstrip("%"))
        except ValueError:
            return None
    else:
        return None
    return result if math.isfinite(result) else None


def as_text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)


def spelling(name: str) -> str:
    """Spelling-insensitive key: ByteMLPerf's STC backend writes `AVG_Latency`, `P99_Latency` for `AVG Latency`."""
    return re.sub(r"[\s_]+", " ", name).strip().lower()


_FIELD_BY_SPELLING = {spelling(key): name for name, key in ROW_KEYS.items()}


@dataclass
class PerfRow:
    """One batch size's measurement, or why it has none (status "failed" with an error)."""

    bs: int
    status: str = "ok"
    qps: float | None = None
    avg_latency: float | None = None
    p99_latency: float | None = None
    p50_latency: float | None = None
    p90_latency: float | None = None
    min_latency: float | None = None
    max_latency: float | None = None
    std_latency: float | None = None
    iterations: int | None = None
    measured_seconds: float | None = None
    warmup_iterations: int | None = None
    stop_reason: str | None = None
    clients: int | None = None
    warning: str | None = None
    error: str | None = None
    peak_rss_mb: float | None = None
    device_memory_mb: float | None = None  # peak allocated by the framework while the batch size ran
    device_reserved_mb: float | None = None  # peak held by its caching allocator
    device_process_mb: float | None = None  # the process's device memory as the driver (NVML) reports it
    device_process_note: str | None = None  # what Device Process MB is when it is not this process's own
    device_avg_latency: float | None = None  # per timed call, from device events (ms)
    device_p50_latency: float | None = None
    device_p99_latency: float | None = None
    energy_j_per_sample: float | None = None  # the device's energy counter over the timed window, per sample
    avg_power_w: float | None = None
    energy_note: str | None = None  # why there is no energy figure, on a device that could have one
    qps_low: float | None = None  # 95% interval of the QPS: batch means over the timed window, plus its drift
    qps_high: float | None = None
    # How far the machine's speed moved during the window beyond the calls' own scatter (relative; 0: quiet)
    drift: float | None = None
    p90_upper: float | None = None  # the true P90 lies below this with 95% confidence; None: too few samples
    p99_upper: float | None = None
    tail_backing: str | None = None  # how many samples a backed P90/P99 would need, when the row has fewer
    achieved_gflops: float | None = None  # work per sample x QPS (GOP/s for INT8: the same count in int8 ops)
    arithmetic_intensity: float | None = None  # FLOP per byte moved, at least the weights and inputs once a call
    roof: str | None = None  # "compute" or "memory": the lower roof at this intensity
    roof_gflops: float | None = None  # that roof: the measured peak, or bandwidth x intensity
    peak_share: float | None = None  # achieved / roof, as a fraction
    roof_engine: str | None = None  # the engine whose probe set the compute roof: the fastest on this host
    roof_note: str | None = None  # why a share is (or was) above 1.0, and what re-measuring the roof found
    spec_peak_share: float | None = None  # achieved / the workload's spec-sheet peak of the precision that ran
    extra: dict[str, Any] = field(default_factory=dict)  # keys we do not model (a vendor's), kept as written

    def qps_interval(self) -> tuple[float, float] | None:
        """The row's 95% QPS interval (QPS Low 95% to QPS High 95%), where it has a readable one."""
        low, high = self.number(ROW_KEYS["qps_low"]), self.number(ROW_KEYS["qps_high"])
        return None if low is None or high is None else (low, high)

    def unbacked(self, key: str) -> bool:
        """Whether the row's P90/P99 rests on fewer samples than a 95% upper bound needs (then it is shown
        as such and never judged a regression). Rows that do not say how many samples (ByteMLPerf's) are not."""
        from core.common.statistics import samples_needed

        quantile = {ROW_KEYS["p90_latency"]: 0.90, ROW_KEYS["p99_latency"]: 0.99}.get(key)
        count = self.number(ROW_KEYS["iterations"])
        return quantile is not None and count is not None and count < samples_needed(quantile)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def number(self, key: str) -> float | None:
        """The value under report key `key` as a finite number, else None (rows read back are untrusted)."""
        name = _FIELD_BY_SPELLING.get(spelling(key))
        return as_number(getattr(self, name) if name else self.extra.get(key))

    def to_dict(self) -> dict[str, Any]:
        row = {key: getattr(self, name) for name, key in ROW_KEYS.items() if getattr(self, name) is not None}
        return {**row, **self.extra}

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> PerfRow:
        """A row as written by us, ByteMLPerf or a vendor; unknown keys land in `extra`. Values are taken as
        written (RunReport.from_dict checks batch sizes; readers take numbers through `number`)."""
        values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in row.items():
            name = _FIELD_BY_SPELLING.get(spelling(str(key)))
            if name is None:
                extra[str(key)] = value
            elif name not in values or key == ROW_KEYS[name]:  # the exact spelling wins over a variant
                values[name] = value
        values.setdefault("status", "ok" if values.get("qps") is not None else "failed")  # ByteMLPerf rows carry none
        values.setdefault("bs", None)  # the reader that needs one (report_io) says so, naming the file
        return cls(**values, extra=extra)
