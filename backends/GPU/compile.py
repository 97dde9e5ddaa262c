"""GPU compile backend: the engine/precision candidates this device runs, and the module each runs.

Compiling is casting a copy of the weights to the precision and moving it to the device (the source
module stays FP32 on the host: it is the CPU reference the accuracy gate compares against). The
compile engine also wraps it in torch.compile and compiles it once at the first batch size, so Graph
Compile's duration holds torch.compile's time; later batch sizes recompile at their first call and the
runtime's settings say how long that took.
"""

from __future__ import annotations

import copy
import time

from backends.base import AUTO, Candidate, CompileBackend, CompiledModel, CompileRequest
from backends.GPU.config import ENGINES, GpuConfig
from backends.GPU.device import Device, device_tensors, set_math_mode, shape_key, torch_dtype
from core.common.errors import UserError
from core.model.builder import use_attention

PRECISIONS = ("FP32", "TF32", "FP16", "BF16")
# Native on compute capability 8.0 (Ampere) and later; earlier devices emulate BF16 and ignore TF32.
NEEDS_AMPERE = ("TF32", "BF16")
RECOMPILE_LIMIT = 64  # torch.compile recompiles per batch size; its default limit (8) would fall back to eager


class GpuCompileBackend(CompileBackend):
    config: GpuConfig

    def candidates(self, request: CompileRequest) -> list[Candidate]:
        if request.source.kind == "onnx":
            raise UserError(
                "the GPU backend runs PyTorch modules, and this model is an ONNX file",
                field="model_path",
                fix="point model_path at the TorchScript or Hugging Face model, or run --hardware_type CPU",
            )
        device = Device(self.config.device)
        ampere = _ampere_or_later(device)
        if request.precision != AUTO:
            if request.precision not in PRECISIONS:
                raise UserError(
                    f"precision {request.precision} is not supported by the GPU backend",
                    field="precision",
                    fix=f"use {', '.join(PRECISIONS)} or auto",
                )
            if request.precision in NEEDS_AMPERE and not ampere:
                raise UserError(
                    f"{request.precision} needs compute capability 8.0 or later; {device.name} has "
                    f"{_capability(device)}",
                    field="precision",
                    fix="use FP16 or FP32, or precision auto",
                )
            precisions = [request.precision]
        else:
            precisions = [p for p in self.config.auto_precisions if ampere or p not in NEEDS_AMPERE]
            if not device.accelerator:  # TF32 is a tensor-core mode: on the host it is FP32 by another name
                precisions = list(dict.fromkeys("FP32" if p == "TF32" else p for p in precisions))
        if self.config.engine != AUTO:
            if self.config.engine == "cuda-graph" and not device.accelerator:
                raise UserError(
                    "the cuda-graph engine needs a CUDA device",
                    field="engine",
                    fix="use engine eager or compile with device cpu",
                )
            engines = [self.config.engine]
        else:
            engines = [
                name
                for name in ENGINES
                if name in self.config.auto_engines and (device.accelerator or name != "cuda-graph")
            ]
        return [
            Candidate(engine, precision, self.config.pinned(engine)) for engine in engines for precision in precisions
        ]

    def compile(self, request: CompileRequest) -> CompiledModel:
        if self.config.engine == AUTO or request.precision == AUTO:
            raise ValueError("compile needs a pinned engine and precision: pick one of candidates()")
        import torch

        start = time.perf_counter()
        device = Device(self.config.device)
        dtype = torch_dtype(request.precision)
        set_math_mode(request.precision)
        module = copy.deepcopy(request.source.torch_module()).eval().to(device=device.torch, dtype=dtype)
        optimizations = [f"weights {str(dtype).removeprefix('torch.')} on {device.name}", "inference_mode"]
        # GPU users run SDPA attention; the builder's eager attention is for the CPU reference.
        if device.torch.type == "cuda" and use_attention(module, "sdpa"):
            optimizations.append("attention: sdpa")
        if request.precision == "TF32":
            optimizations.append("TF32 matrix multiplies and convolutions")
        details = {"device": device.name}
        if self.config.engine == "compile":
            dynamo = torch._dynamo.config
            limit = "recompile_limit" if hasattr(dynamo, "recompile_limit") else "cache_size_limit"
            setattr(dynamo, limit, max(getattr(dynamo, limit), RECOMPILE_LIMIT))
            module = torch.compile(module, mode=self.config.compile_mode, dynamic=False)
            optimizations.append(f"torch.compile (mode {self.config.compile_mode}, static shapes)")
            details["first_call_shape"], details["first_call_seconds"] = _first_call(module, request, device, dtype)
        elif self.config.engine == "cuda-graph":
            optimizations.append("CUDA graph captured per input shape")
        return CompiledModel(
            engine=self.config.engine,
            precision=request.precision,
            artifact=request.source.path,
            input_names=request.model.input_names,
            output_names=request.model.output_names,
            compile_seconds=time.perf_counter() - start,
            cache_hit=False,
            optimizations=optimizations,
            details=details,
            module=module,
        )


def _first_call(module, request: CompileRequest, device: Device, dtype) -> tuple[str, float]:
    """torch.compile compiles at the first call: make it here, at the first batch size; (shape, seconds).
    The inputs are made outside inference_mode and the call runs inside it, exactly as the runtime does:
    Dynamo guards on whether an input is an inference tensor, and a graph compiled for other inputs would
    be compiled again at the runtime's first call (pytorch#134249)."""
    import torch

    start = time.perf_counter()
    feeds = request.sample_feeds(request.batch_sizes[0])
    tensors = device_tensors(feeds, request.model.input_names, device, dtype)
    with torch.inference_mode():
        module(*tensors)
    device.synchronize()
    return shape_key(feeds), round(time.perf_counter() - start, 3)


def _capability(device: Device) -> str:
    major, minor = device.capability() or (0, 0)
    return f"compute capability {major}.{minor}"


def _ampere_or_later(device: Device) -> bool:
    """Whether BF16 and TF32 run natively (on the host, `device: cpu`, they run as torch runs them there)."""
    capability = device.capability()
    return capability is None or capability[0] >= 8
