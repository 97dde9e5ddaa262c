"""Options of the CPU backend, set per workload through `engine` and `engine_options`.

Common options (threads, pinning, the ONNX export's opset) sit at the top; each engine's own options
sit under its name (`engine_options: {openvino: {performance_hint: THROUGHPUT}}`). A flat key that
belongs to exactly one engine (`engine_options: {int8_mode: static}`) is moved under it, so short
workload files keep working.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.common.registry import module_listing
from core.measure.host import usable_cores


def engine_listing() -> dict[str, str]:
    """The CPU engines: every `<name>_engine.py` in this folder (read from the file names, nothing imported)."""
    return module_listing(Path(__file__).resolve().parent, "backends.CPU", "_engine", "ENGINE")


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OnnxRuntimeOptions(_Options):
    simplify: bool = Field(True, description="simplify the graph with onnxslim when no transformer fusion ran")
    optimize: bool = Field(True, description="onnxruntime transformer optimizer (attention/LayerNorm/Gelu fusion)")
    int8_mode: Literal["auto", "dynamic", "static"] = Field(
        "auto",
        description="how INT8 precision quantizes: auto is static QDQ (calibrated) for convolutional graphs, "
        "dynamic otherwise, as onnxruntime's quantization guide recommends",
    )
    io_binding: bool = Field(True, description="bind inputs once, outside the timed call")
    # Off by default: on a shared machine spinning threads fight other load (docs/MEASUREMENTS.md).
    spin: bool = Field(
        False, description="let idle onnxruntime threads spin (can lower latency on an idle, dedicated machine)"
    )


class OpenVinoOptions(_Options):
    performance_hint: Literal["LATENCY", "THROUGHPUT"] = Field(
        "LATENCY", description="OpenVINO's performance hint: LATENCY (one stream, all threads) or THROUGHPUT (streams)"
    )
    # Few full-length sequences keep NNCF's calibration short (docs/MEASUREMENTS.md); the gate checks the result.
    calibration_samples: int = Field(16, ge=1, le=1024, description="samples NNCF calibrates INT8 on")


class PyTorchOptions(_Options):
    torch_compile: bool = Field(False, description="wrap the PyTorch model in torch.compile")


ENGINE_OPTIONS: dict[str, type[_Options]] = {
    "onnxruntime": OnnxRuntimeOptions,
    "openvino": OpenVinoOptions,
    "pytorch": PyTorchOptions,
}


class CpuConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: str = Field(
        "auto",
        description="runtime engine; auto times every engine this host runs and keeps the fastest that passes "
        "the accuracy gate",
    )
    intra_op_threads: int = Field(
        default_factory=usable_cores, ge=1, description="threads inside one operator (default: one per usable core)"
    )
    inter_op_threads: int = Field(1, ge=1, description="operators run in parallel")
    cpu_affinity: list[int] | None = Field(None, description="pin the run to these CPU ids (default: no pinning)")
    opset: int = Field(17, ge=13, le=23, description="ONNX opset of the export (onnxruntime and openvino)")
    onnxruntime: OnnxRuntimeOptions = Field(default_factory=OnnxRuntimeOptions, description="onnxruntime's options")
    openvino: OpenVinoOptions = Field(default_factory=OpenVinoOptions, description="OpenVINO's options")
    pytorch: PyTorchOptions = Field(default_factory=PyTorchOptions, description="PyTorch's options")

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        known = ["auto", *sorted(engine_listing())]
        if value not in known:
            raise ValueError(f"unknown engine {value!r}; known: {', '.join(known)}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _route_flat_options(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for key in [k for k in data if k not in cls.model_fields]:
            owners = [name for name, options in ENGINE_OPTIONS.items() if key in options.model_fields]
            if len(owners) == 1:
                nested = dict(data.get(owners[0]) or {})
                nested.setdefault(key, data.pop(key))
                data[owners[0]] = nested
        return data

    def pinned(self, engine: str) -> CpuConfig:
        """This configuration with the engine fixed (a tuning candidate)."""
        return self.model_copy(update={"engine": engine})
