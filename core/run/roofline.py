"""Stage: how close each batch size came to what the hardware can do.

Before the timed windows (never inside one): the model's work per sample (counted once, cached beside the
compiled artifacts) and the peaks of the precision that ran (measured once per host and library versions,
cached under .perfbench/peak/). Each row then gets derived numbers: achieved GFLOP/s, arithmetic intensity,
the roof that applies at that intensity (compute, or memory bandwidth x intensity) and its share of it.
An INT8 run does the same count in integer operations, held against the INT8 peak.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.common import console
from core.common.paths import state_dir
from core.measure.work import WorkCount
from core.reporting.schema import PerfRow
from core.run.context import RunContext

# Bytes a weight takes at the precision that ran.
WEIGHT_BYTES = {"FP32": 4, "TF32": 4, "FP16": 2, "BF16": 2, "INT8": 1}


@dataclass
class Roofline:
    work: WorkCount
    precision: str
    compute_gflops: float | None  # the measured peak of the precision that ran
    bandwidth_gbs: float | None  # the measured memory bandwidth
    input_bytes_per_sample: int = 0
    spec_gflops: float | None = None  # the workload's spec-sheet peak of the precision that ran
    peaks: dict[str, Any] = field(default_factory=dict)  # the Host section's "Peak"
    seconds: dict[str, float] = field(default_factory=dict)  # what counting and measuring cost this run

    def bytes_per_call(self, batch_size: int) -> float | None:
        """At least what a call moves: every weight once at the precision that ran, and the inputs."""
        if self.work.parameter_mb is None:
            return None
        weights = self.work.parameter_mb * 1e6 * WEIGHT_BYTES.get(self.precision, 4) / 4
        return weights + self.input_bytes_per_sample * batch_size

    def row_fields(self, row: PerfRow) -> dict[str, Any]:
        """The derived numbers of one measured row (none for a failed row or an uncounted model)."""
        gflop = self.work.gflop_per_sample
        if not row.ok or not row.qps or gflop is None:
            return {}
        achieved = gflop * row.qps
        fields: dict[str, Any] = {"achieved_gflops": round(achieved, 2)}
        moved = self.bytes_per_call(row.bs)
        intensity = gflop * 1e9 * row.bs / moved if moved else None
        if intensity is not None:
            fields["arithmetic_intensity"] = round(intensity, 1)
        roofs = {}
        if self.compute_gflops:
            roofs["compute"] = self.compute_gflops
        if self.bandwidth_gbs and intensity is not None:
            roofs["memory"] = self.bandwidth_gbs * intensity
        if roofs:
            bound, roof = min(roofs.items(), key=lambda item: item[1])
            fields.update(roof=bound, roof_gflops=round(roof, 1), peak_share=round(achieved / roof, 4))
        if self.spec_gflops:
            fields["spec_peak_share"] = round(achieved / self.spec_gflops, 4)
        return fields


def prepare(run: RunContext, runtime) -> Roofline | None:
    """Count the work and measure the peaks (each cached), before any timed window."""
    compiled = run.report.graph_compile
    precision = (compiled.compile_precision if compiled else None) or run.precision
    started = time.perf_counter()
    with console.status("counting the model's work per sample"):
        work = _work(run)
    counted = time.perf_counter() - started
    # What counting cost this run: ~0 when the count came from the cache beside the compiled artifacts.
    run.report.sections["Work"] = {**work.to_dict(), "Seconds": round(counted, 2)}
    started = time.perf_counter()
    with console.status(f"measuring this host's {precision} matrix-multiply peak and memory bandwidth"):
        peaks = _peaks(run, runtime, precision)
    measured = time.perf_counter() - started
    compute = peaks.get(precision, {}).get("GFLOP/s")
    bandwidth = peaks.get("Memory", {}).get("GB/s")
    roofline = Roofline(
        work,
        precision,
        compute,
        bandwidth,
        input_bytes_per_sample=sum(a.nbytes // max(1, a.shape[0]) for a in run.sample_feeds(1).values()),
        spec_gflops=(run.workload.spec_peak_gflops or {}).get(precision),
        peaks=peaks,
        seconds={"counting": round(counted, 2), "peak": round(measured, 2)},
    )
    if run.report.host is not None:
        run.report.host.peak = peaks
    if work.gflop_per_sample is None:
        console.info(f"work per sample not counted: {work.reason}")
    else:
        console.info(
            f"work: {work.gflop_per_sample:.4g} GFLOP per sample ({work.counter}); peak {precision}: "
            + (f"{compute:.4g} GFLOP/s" if compute else "not measured")
            + (f", memory {bandwidth:.4g} GB/s" if bandwidth else "")
        )
    return roofline


def prepare_or_note(run: RunContext, runtime) -> Roofline | None:
    """prepare(), or a note in the report when counting or measuring the peak fails: the derived numbers are
    extras, never a reason to lose the measurement."""
    from core.common.errors import Interrupted, UserError

    try:
        return prepare(run, runtime)
    except (KeyboardInterrupt, Interrupted, UserError):
        raise
    except Exception as err:  # a library's own error types
        note = f"work and peak not measured: {type(err).__name__}: {err}"[:300]
        run.report.notes.append(note)
        console.warn(note)
        return None


def _work(run: RunContext) -> WorkCount:
    from core.common.artifact_cache import cache_key, code_digest
    from core.measure import work as counting
    from core.measure.host import software_versions

    source, feeds = run.source, run.sample_feeds(1)
    versions = software_versions()
    key = {
        "source": source.digest,
        "shapes": {name: list(array.shape) for name, array in feeds.items()},
        "code": code_digest(Path(counting.__file__)),
        "versions": {name: versions.get(name) for name in ("torch", "onnx", "transformers", "diffusers")},
    }
    path = state_dir() / "compiled" / run.model.model / "work" / f"{cache_key(key)}.json"

    def count() -> WorkCount:
        try:
            if source.kind == "onnx":
                return counting.count_onnx(source.path, feeds)
            return counting.count_torch(source.torch_module(), feeds)
        except Exception as err:  # a model the counter cannot run is null with the reason, never a guess
            return WorkCount(None, "none", "", reason=f"{type(err).__name__}: {err}"[:300])

    return counting.cached_count(path, count)


def _peaks(run: RunContext, runtime, precision: str) -> dict[str, Any]:
    from core.measure import peak
    from core.measure.host import cpu_isa

    engine = run.report.graph_compile.engine if run.report.graph_compile else None
    settings_threads = getattr(run.config, "intra_op_threads", None)
    key = {"engine": engine, "precision": precision, "threads": settings_threads, "backend": run.spec.name}
    if run.device_facts:
        key["device"] = run.spec.device_fingerprint(run.device_facts)

    def probe():
        found = runtime.peak_probe(precision)
        if found is None and not run.device_facts:  # a CPU engine without its own probe: torch's GEMM
            found = peak.torch_gemm_probe(precision)
        return found

    peaks: dict[str, Any] = {precision: peak.gemm_peak(key, probe)}
    peaks["Memory"] = runtime.peak_bandwidth() or peak.bandwidth_peak()
    peaks["ISA"] = cpu_isa().summary()
    spec = {p: v for p, v in (run.workload.spec_peak_gflops or {}).items()}
    if spec or run.workload.spec_bandwidth_gbs:
        peaks["Spec Sheet"] = {"GFLOP/s": spec or None, "GB/s": run.workload.spec_bandwidth_gbs}
    return peaks
