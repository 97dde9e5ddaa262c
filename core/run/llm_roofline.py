"""Stage: how close each LLM load point's prefill came to the compute peak and its decode to the memory bandwidth.

Before the timed windows: the model's work counted once from its config (cached beside the compiled artifacts)
and the host's peaks at the precision that ran (core.measure.peak: torch's matrix multiply, the STREAM triad;
cached under .perfbench/peak/). Each row then gets its LlmRoofline.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.common import console
from core.model.llm_work import LlmWork
from core.reporting.llm_rows import LlmRoofline, LlmRow
from core.run.roofline import REMEASURE_SECONDS

WEIGHT_BYTES = {"FP32": 4, "BF16": 2, "FP16": 2}


@dataclass
class LlmRoof:
    work: LlmWork
    precision: str  # the activations' (the compute peak's)
    compute_gflops: float | None
    bandwidth_gbs: float | None
    notes: list[str] = field(default_factory=list)  # said on every row (the weights fit in the cache)
    batched: bool = True  # the engine decodes the requests in flight as one batch (else one by one)
    weight_width: float | None = None  # bytes a stored weight takes, scales included (None: the precision's)
    kv_width: float | None = None  # bytes a cached key or value takes (None: the precision's)
    # Measures both peaks again for longer: (GFLOP/s, GB/s); None once done (or impossible)
    remeasure: Callable[[], tuple[float | None, float | None]] | None = None

    def of(self, row: LlmRow) -> LlmRoofline | None:
        """The row's roofline figures; None for a failed row. A share above 1.0 has the peaks measured again
        for longer, once a run (a peak cached while the host was busy is too low), and one still above says why."""
        out = self._figures(row)
        if out is None or max(out.prefill_peak_share or 0, out.decode_mbu or 0) <= 1.0:
            return out
        if self.remeasure is not None:
            with console.status(f"{row.label} ran above its roof: measuring the peaks again"):
                self.compute_gflops, self.bandwidth_gbs = self.remeasure()
            self.remeasure = None
            out = self._figures(row)
            if max(out.prefill_peak_share or 0, out.decode_mbu or 0) <= 1.0:
                return out
        why = "; ".join(self.notes) or "the host was slower while the probes ran (a shared host)"
        out.note = f"above 1.0 after the peaks were measured again for {REMEASURE_SECONDS:g} s: {why}"
        console.warn(f"{row.label}: {out.note}")
        return out

    def _figures(self, row: LlmRow) -> LlmRoofline | None:
        if not row.ok or not row.input_tokens:
            return None
        out = LlmRoofline(note="; ".join(self.notes) or None)
        gflop = self.work.prefill_flops(row.input_tokens) / 1e9
        out.prefill_gflop = _figure(gflop)
        out.compute_peak_gflops = self.compute_gflops
        if row.prefill is not None and row.prefill.avg:
            achieved = gflop / (row.prefill.avg / 1e3)
            out.prefill_gflops = _figure(achieved)
            if self.compute_gflops:
                out.prefill_peak_share = round(achieved / self.compute_gflops, 4)
        batch = row.batch_size or 1
        width = WEIGHT_BYTES.get(self.precision, 4)
        weight_width, kv_width = self.weight_width or width, self.kv_width or width
        # A request's decode steps read contexts input+1 .. input+output-1: on average input + output/2.
        context = row.input_tokens + (row.output_tokens or 0) / 2
        # A batched step reads the weights once for every request; one by one, once a request.
        one_by_one = batch * self.work.decode_bytes(1, context, weight_width, kv_width)
        moved = self.work.decode_bytes(batch, context, weight_width, kv_width) if self.batched else one_by_one
        out.decode_context = context
        out.decode_mb_per_step = _figure(moved / 1e6)
        out.bandwidth_gbs = self.bandwidth_gbs
        if self.bandwidth_gbs:
            out.decode_ceiling_tokens_per_s = _figure(self.bandwidth_gbs * 1e9 / moved * batch)
        steps = (row.output_tokens or 0) - 1
        step_ms = row.server.decode_model_avg / steps if row.server and row.server.decode_model_avg and steps else None
        if step_ms:
            out.decode_step_ms = round(step_ms, 4)
            out.decode_gbs = _figure(moved / (step_ms / 1e3) / 1e9)
            if self.bandwidth_gbs:
                out.decode_mbu = round(out.decode_gbs / self.bandwidth_gbs, 4)
        return out


def prepare(run, source, precision: str, weight_width: float, model=None) -> LlmRoof | None:
    """The work and the peaks, or None (with a note) where they cannot be had: the figures are extras, never a
    reason to lose the measurement. `precision` is the candidate's label: its activations pick the compute peak;
    `weight_width` is the bytes a stored weight takes; `model` (what serves) may say how it batches decode
    (`batched_decode`) and holds its KV cache (`kv_width`, bytes a value; default the activations')."""
    from core.config.llm_precision import activations_of
    from core.run.roofline import or_note

    activations = activations_of(precision)
    batched = getattr(model, "batched_decode", True)
    kv_width = float(getattr(model, "kv_width", WEIGHT_BYTES.get(activations, 4)))

    if run.spec.name != "CPU":
        run.report.notes.append("LLM roofline: measured on the CPU backend only (no peak probe here)")
        return None
    return or_note(
        run,
        "LLM roofline not measured",
        lambda: _prepare(run, source, activations, batched, weight_width, kv_width),
    )


def _prepare(run, source, precision: str, batched: bool, weight_width: float, kv_width: float) -> LlmRoof:
    from core.common.artifact_cache import cache_key, code_digest
    from core.common.paths import state_dir
    from core.measure import peak
    from core.measure.host import cpu_isa, processor_facts, software_versions
    from core.model import llm_work

    key = {
        "source": source.digest,
        "code": code_digest(Path(llm_work.__file__)),
        "transformers": software_versions().get("transformers"),
    }
    work = llm_work.cached_count(source.config, state_dir() / "compiled" / "llm-work" / f"{cache_key(key)}.json")
    key = {"precision": precision, "threads": None, "backend": run.spec.name, "engine": "pytorch"}

    def measure(**options) -> tuple[dict[str, Any], dict[str, Any]]:
        compute = peak.gemm_peak(key, lambda: peak.torch_gemm_probe(precision), **options)
        return compute, peak.bandwidth_peak(**options)

    with console.status(f"measuring this host's {precision} matrix-multiply peak and memory bandwidth"):
        compute, bandwidth = measure()
    peaks: dict[str, Any] = {precision: compute, "Memory": bandwidth, "ISA": cpu_isa().summary()}
    if run.report.host is not None and not run.report.host.peak:
        run.report.host.peak = peaks

    def remeasure() -> tuple[float | None, float | None]:
        peaks[precision], peaks["Memory"] = measure(seconds=REMEASURE_SECONDS, refresh=True)
        return peaks[precision].get("GFLOP/s"), peaks["Memory"].get("GB/s")

    roof = LlmRoof(work, precision, compute.get("GFLOP/s"), bandwidth.get("GB/s"), batched=batched, remeasure=remeasure)
    roof.weight_width, roof.kv_width = weight_width, kv_width
    weights = work.weight_bytes(weight_width)
    llc = cache_bytes(processor_facts().get("l3"))
    if llc and weights <= llc:
        roof.notes.append(
            f"the weights ({weights / 2**20:.1f} MiB at {weight_width:g} bytes each) fit in the last-level cache "
            f"({llc / 2**20:.0f} MiB): decode reads them from the cache, the DRAM bound does not apply"
        )
        console.warn(roof.notes[-1])
        run.report.notes.append(roof.notes[-1])
    run.report.sections["LLM Work"] = {
        **{k.replace("_", " ").title(): v for k, v in work.to_dict().items()},
        "Parameters": work.parameters,
        "Counted": "from the config on the meta device: embedding a lookup, LM head for the last position, "
        "experts as routed; attention over causal pairs",
    }
    console.info(
        f"roofs: {precision} matrix multiply {compute.get('GFLOP/s') or '-'} GFLOP/s, memory "
        f"{bandwidth.get('GB/s') or '-'} GB/s; weights {weights / 1e6:.1f} MB a decode step"
    )
    return roof


def _figure(value: float) -> float:
    """Four significant digits: figures span 0.01 GB/s (a tiny model) to thousands of GFLOP/s."""
    return float(f"{value:.4g}")


def cache_bytes(size: str | None) -> int | None:
    """A sysfs cache size ("32768K", "1M") in bytes."""
    match = re.fullmatch(r"(\d+)\s*([KMG]?)B?", (size or "").strip(), re.IGNORECASE)
    if not match:
        return None
    return int(match.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[match.group(2).upper()]


def line(roof: LlmRoofline | None) -> str:
    """The console line's roofline part."""
    if roof is None:
        return ""
    parts = []
    if roof.prefill_gflops is not None:
        share = f" ({roof.prefill_peak_share:.1%} of peak)" if roof.prefill_peak_share is not None else ""
        parts.append(f"prefill {roof.prefill_gflops:.4g} GFLOP/s{share}")
    if roof.decode_gbs is not None:
        mbu = f", MBU {roof.decode_mbu:.1%}" if roof.decode_mbu is not None else ""
        ceiling = roof.decode_ceiling_tokens_per_s
        parts.append(
            f"decode {roof.decode_gbs:.4g} GB/s{mbu}" + (f", ceiling {ceiling:.4g} tokens/s" if ceiling else "")
        )
    return "; ".join(parts) + (" (see the row's Roofline note)" if roof.note else "")
