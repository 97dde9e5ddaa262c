"""Options of the GPU backend, set per workload through `engine` and `engine_options`.

The engines are three ways to run the same PyTorch module on the device: `eager`, `cuda-graph` (the
eager kernels captured once per input shape and replayed, so no launch overhead per kernel) and
`compile` (torch.compile's generated kernels). `auto` tries each at every precision in
`auto_precisions` and keeps the fastest that passes the accuracy gate.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ENGINES = ("eager", "cuda-graph", "compile")
GpuPrecision = Literal["FP32", "TF32", "FP16", "BF16"]


class GpuConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: Literal["auto", "eager", "cuda-graph", "compile"] = Field(
        "auto",
        description="eager, cuda-graph or compile; auto times each and keeps the fastest that passes the accuracy gate",
    )
    device: str = Field("cuda", description="torch device to run on: cuda, cuda:<index> (ROCm builds too), or cpu")
    auto_engines: tuple[Literal["eager", "cuda-graph", "compile"], ...] = Field(
        ENGINES, min_length=1, description="engines engine auto tries (leave compile out where it cannot win)"
    )
    auto_precisions: tuple[GpuPrecision, ...] = Field(
        ("FP16", "BF16", "TF32"),
        min_length=1,
        description="precisions precision auto tries (weights cast, as vendors run FP16); FP32 when pinned",
    )
    include_transfers: bool = Field(
        False,
        description="time host-to-device copies of the inputs and device-to-host copies of the outputs too "
        "(ByteMLPerf's predict does); default: inputs bound on the device before the timed loop",
    )
    compile_mode: Literal["default", "max-autotune-no-cudagraphs"] = Field(
        "default", description="torch.compile's mode for the compile engine"
    )

    @field_validator("device")
    @classmethod
    def _torch_device(cls, value: str) -> str:
        kind, _, index = value.partition(":")
        if kind not in ("cuda", "cpu") or (index and not index.isdigit()) or (kind == "cpu" and index):
            raise ValueError(f"device {value!r} is not cuda, cuda:<index> or cpu")
        return value

    def pinned(self, engine: str) -> GpuConfig:
        """This configuration with the engine fixed (a tuning candidate)."""
        return self.model_copy(update={"engine": engine})
