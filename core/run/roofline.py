"""Stage: how close each batch size came to what the hardware can do.

Before the timed windows (never inside one): the model's work per sample (counted once, cached beside the
compiled artifacts) and the peaks of the precision that ran (cached under .perfbench/peak/). Each row then
gets derived numbers: achieved GFLOP/s, arithmetic intensity, the roof that applies at that intensity
(compute, or memory bandwidth x intensity) and its share of it. An INT8 run does the same count in integer
operations, held against the INT8 peak.

The compute roof is the host's, not the engine's: the fastest rate any engine's probe reaches here at that
precision (engines' own matrix multiplies differ by 17% on one host), so two engines doing the same work read
the same share, and each row names the engine whose probe set the roof. A row above its roof has the probes
re-measured for longer, and one still above carries a note saying why.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from core.common import console
from core.common.paths import state_dir
from core.measure.work import WorkCount
from core.reporting.schema import PerfRow
from core.run.context import RunContext

# Bytes a weight takes at the precision that ran.
WEIGHT_BYTES = {"FP32": 4, "TF32": 4, "FP16": 2, "BF16": 2, "INT8": 1}
REMEASURE_SECONDS = 5.0  # per probe, when a row beat its roof: long enough to catch the host at its fastest


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
    roof_engine: str | None = None  # whose probe set the compute roof
    # Measures the roofs again for longer (compute roof and engine, bandwidth); None: already done or impossible
    remeasure: Callable[[], tuple[float | None, str | None, float | None]] | None = None
    remeasured: bool = False

    def bytes_per_call(self, batch_size: int) -> float | None:
        """At least what a call moves: every weight once at the precision that ran, and the inputs."""
        if self.work.parameter_mb is None:
            return None
        weights = self.work.parameter_mb * 1e6 * WEIGHT_BYTES.get(self.precision, 4) / 4
        return weights + self.input_bytes_per_sample * batch_size

    def row_fields(self, row: PerfRow) -> dict[str, Any]:
        """The derived numbers of one measured row (none for a failed row or an uncounted model). A share above
        1.0 has the roofs re-measured for longer, once a run, and is never shown without a note saying why."""
        fields = self._fields(row)
        if (fields.get("peak_share") or 0) <= 1.0:
            return fields
        if self.remeasure is not None:
            before = fields["roof_gflops"]
            with console.status(f"batch size {row.bs} reached {fields['peak_share']:.0%} of its roof: re-measuring"):
                self.compute_gflops, self.roof_engine, self.bandwidth_gbs = self.remeasure()
            self.remeasure, self.remeasured = None, True
            fields = self._fields(row)
            if (fields.get("peak_share") or 0) <= 1.0:
                fields["roof_note"] = (
                    f"above 1.0 against a roof of {before:.4g} GFLOP/s; the probes re-measured for "
                    f"{REMEASURE_SECONDS:g} s reached {fields.get('roof_gflops')}"
                )
                console.info(f"batch size {row.bs}: {fields['roof_note']}")
                return fields
        how = f"every probe re-measured for {REMEASURE_SECONDS:g} s" if self.remeasured else "not re-measured"
        fields["roof_note"] = (
            f"above its {fields['roof']} roof ({how}): the model's kernels outran the probes, or the host was "
            "slower while they ran (a shared host)"
        )
        console.warn(f"batch size {row.bs}: {fields['peak_share']:.0%} of the roof, {fields['roof_note']}")
        return fields

    def _fields(self, row: PerfRow) -> dict[str, Any]:
        gflop = self.work.gflop_per_sample
        if not row.ok or not row.qps or gflop is None:
            return {}
        achieved = gflop * row.qps
        fields: dict[str, Any] = {"achieved_gflops": float(f"{achieved:.4g}")}  # a tiny model's rate: not 0.01
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
            if bound == "compute" and self.roof_engine:
                fields["roof_engine"] = self.roof_engine
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
        peaks, roof_engine, remeasure = _peaks(run, runtime, precision)
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
        roof_engine=roof_engine,
        remeasure=remeasure,
    )
    if run.report.host is not None:
        run.report.host.peak = peaks
    if work.gflop_per_sample is None:
        console.info(f"work per sample not counted: {work.reason}")
    else:
        console.info(
            f"work: {work.gflop_per_sample:.4g} GFLOP per sample ({work.counter}); peak {precision}: "
            + (f"{compute:.4g} GFLOP/s ({roof_engine}, the fastest engine's probe)" if compute else "not measured")
            + (f", memory {bandwidth:.4g} GB/s" if bandwidth else "")
        )
    return roofline


def prepare_or_note(run: RunContext, runtime) -> Roofline | None:
    """prepare(), or a note in the report when counting or measuring the peak fails: the derived numbers are
    extras, never a reason to lose the measurement."""
    return or_note(run, "work and peak not measured", lambda: prepare(run, runtime))


def or_note(run: RunContext, what: str, derive):
    """derive(), or None with a note in the report and on the console when a library fails inside it (the
    user's errors and interruptions still stop the run)."""
    from core.common.errors import Interrupted, UserError

    try:
        return derive()
    except (KeyboardInterrupt, Interrupted, UserError):
        raise
    except Exception as err:  # a library's own error types
        note = f"{what}: {type(err).__name__}: {err}"[:300]
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


def _peaks(run: RunContext, runtime, precision: str):
    """The Host section's Peak (the compute roof of `precision`, the bandwidth, the ISA), the engine whose probe
    set the roof, and how to measure both again for longer."""
    from core.measure import peak
    from core.measure.host import cpu_isa

    settings_threads = getattr(run.config, "intra_op_threads", None)
    key = {"precision": precision, "threads": settings_threads, "backend": run.spec.name}
    if run.device_facts:
        key["device"] = run.spec.device_fingerprint(run.device_facts)
    probes = _engine_probes(run, runtime, precision)
    theoretical = None if run.device_facts else peak.theoretical_peak(precision)

    def compute(**options) -> dict[str, Any]:
        figures = {name: peak.gemm_peak({**key, "engine": name}, make, **options) for name, make in probes.items()}
        return host_roof(figures, next(iter(probes)), theoretical)

    def bandwidth(**options) -> dict[str, Any]:
        return runtime.peak_bandwidth() or peak.bandwidth_peak(**options)

    peaks: dict[str, Any] = {precision: compute(), "Memory": bandwidth()}
    peaks["ISA"] = cpu_isa().summary()
    spec = {p: v for p, v in (run.workload.spec_peak_gflops or {}).items()}
    if spec or run.workload.spec_bandwidth_gbs:
        peaks["Spec Sheet"] = {"GFLOP/s": spec or None, "GB/s": run.workload.spec_bandwidth_gbs}

    def remeasure() -> tuple[float | None, str | None, float | None]:
        options = {"seconds": REMEASURE_SECONDS, "refresh": True}
        peaks[precision], peaks["Memory"] = compute(**options), bandwidth(**options)
        return peaks[precision].get("GFLOP/s"), peaks[precision].get("Engine"), peaks["Memory"].get("GB/s")

    return peaks, peaks[precision].get("Engine"), remeasure


def _engine_probes(run: RunContext, runtime, precision: str) -> dict[str, Callable]:
    """Probe makers by engine: the one that ran first, then every other engine the backend runs `precision`
    with on this host, each built as the runtime that ran was, from the same compiled model (a probe needs none
    of it) with only the engine changed."""
    from core.measure import peak

    ran = runtime.compiled.engine

    def own():
        found = runtime.peak_probe(precision)
        if found is None and not run.device_facts:  # a CPU engine without its own probe: torch's GEMM
            found = peak.torch_gemm_probe(precision)
        return found

    def peer(name: str):
        compiled = replace(runtime.compiled, engine=name, precision=precision)
        return lambda: run.spec.runtime_backend(compiled, run.config).peak_probe(precision)

    return {ran: own, **{name: peer(name) for name in run.spec.roof_engines(precision) if name != ran}}


def host_roof(figures: dict[str, dict[str, Any]], ran: str, theoretical: dict[str, Any] | None) -> dict[str, Any]:
    """The fastest engine's figure as the roof, naming it ("Engine") and every engine's rate or why it has none
    ("Engines"); the theoretical peak beside it where the microarchitecture is known. With no rate at all, the
    figure of the engine that ran (its reason)."""
    rates = {name: f["GFLOP/s"] for name, f in figures.items() if isinstance(f.get("GFLOP/s"), int | float)}
    best = max(rates, key=rates.__getitem__) if rates else ran
    roof: dict[str, Any] = {**figures[best], "Engine": best if rates else None}
    roof["Engines"] = {name: rates.get(name) or f.get("Reason") for name, f in figures.items()}
    if theoretical is not None:
        if rates and rates[best] > theoretical["GFLOP/s"]:
            theoretical = {**theoretical, "Note": "the measured roof exceeds it: the cores ran above the clock assumed"}
        roof["Theoretical"] = theoretical
    return roof
