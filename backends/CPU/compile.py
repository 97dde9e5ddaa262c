"""CPU compile backend: lists the engine/precision candidates this host runs, compiles one by name.

With `engine: auto` and/or precision `auto` (the defaults) every engine and precision that applies
to this host is a candidate; the runner times them and keeps the fastest that passes the accuracy
gate (core/tuning.py). A pinned choice the host cannot run natively is refused before any work.
"""

from __future__ import annotations

from backends.base import AUTO, Candidate, CompileBackend, CompiledModel, CompileRequest
from backends.CPU.config import CpuConfig
from backends.CPU.engines import engine, engine_names, native, unsupported_precision
from core.common.errors import UserError
from core.measure.host import cpu_isa


class CpuCompileBackend(CompileBackend):
    config: CpuConfig

    def candidates(self, request: CompileRequest) -> list[Candidate]:
        isa = cpu_isa()
        engines = engine_names() if self.config.engine == AUTO else [self.config.engine]
        if request.source.kind == "onnx":
            engines = [name for name in engines if name != "pytorch"] or engines
        if request.precision != AUTO:
            precision = request.precision
            if precision == "BF16" and not isa.bf16:
                raise UserError(
                    f"this CPU ({isa.summary()}) has no native bf16 (needs AMX or AVX512-BF16); "
                    "BF16 would be emulated, and its speed would say nothing about the hardware",
                    field="precision",
                    fix="use FP32, or precision auto to let the host decide",
                )
            supported = [name for name in engines if precision in engine(name).precisions]
            if not supported and self.config.engine != AUTO:
                raise unsupported_precision(self.config.engine, precision, engine(self.config.engine).precisions)
            if not supported:
                raise UserError(
                    f"precision {precision} is not supported by any CPU engine",
                    field="precision",
                    fix="use FP32, BF16, INT8 or auto (FP16 has few CPU kernels and runs slower than FP32)",
                )
            return likely_fastest_first([Candidate(name, precision, self.config.pinned(name)) for name in supported])
        return likely_fastest_first(
            [
                Candidate(name, precision, self.config.pinned(name))
                for name in engines
                for precision in engine(name).precisions
                if native(precision, isa)
            ]
        )

    def compile(self, request: CompileRequest) -> CompiledModel:
        if self.config.engine == AUTO:
            raise ValueError("compile needs a pinned engine: pick one of candidates()")
        if request.precision == AUTO:
            raise ValueError("compile needs a pinned precision: pick one of candidates()")
        return engine(self.config.engine).compile(request, self.config)


# The order candidates are tried in: the first to pass sets the bar that drops clearly slower ones before their
# gate sample. Lower precisions first (they only reach the list where the ISA runs them natively), and OpenVINO,
# then onnxruntime, then PyTorch eager, as they ranked on every host measured (docs/MEASUREMENTS.md).
PRECISION_ORDER = ("INT8", "BF16", "FP32")
ENGINE_ORDER = ("openvino", "onnxruntime", "pytorch")


def likely_fastest_first(candidates: list[Candidate]) -> list[Candidate]:
    def rank(candidate: Candidate) -> tuple[int, int]:
        precision = PRECISION_ORDER.index(candidate.precision) if candidate.precision in PRECISION_ORDER else 9
        engine_rank = ENGINE_ORDER.index(candidate.engine) if candidate.engine in ENGINE_ORDER else 9
        return precision, engine_rank

    return sorted(candidates, key=rank)


def runtime_for(compiled: CompiledModel, config: CpuConfig):
    """The runtime of the engine that compiled the model."""
    return engine(compiled.engine).runtime(compiled, config.pinned(compiled.engine))
