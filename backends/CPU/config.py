"""Options of the CPU backend, set per workload through `engine` and `engine_options`."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


def default_threads() -> int:
    """One intra-op thread per core this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class CpuConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: Literal["onnxruntime", "pytorch"] = Field("onnxruntime", description="runtime engine")
    intra_op_threads: int = Field(default_factory=default_threads, ge=1, description="threads inside one operator")
    inter_op_threads: int = Field(1, ge=1, description="operators run in parallel")
    cpu_affinity: list[int] | None = Field(None, description="pin the run to these CPU ids (default: no pinning)")
    # onnxruntime compile stages
    opset: int = Field(17, ge=13, le=23, description="ONNX opset of the export")
    simplify: bool = Field(True, description="simplify the graph with onnxslim when no transformer fusion ran")
    optimize: bool = Field(True, description="onnxruntime transformer optimizer (attention/LayerNorm/Gelu fusion)")
    int8_mode: Literal["dynamic", "static"] = Field("dynamic", description="how INT8 precision quantizes")
    io_binding: bool = Field(True, description="bind inputs once, outside the timed call")
    # Off by default: on a shared machine spinning threads fight other load (median 591 -> 419 ms
    # measured under load on albert bs1); on a quiet machine it made no difference.
    spin: bool = Field(False, description="let idle onnxruntime threads spin (can lower latency on an idle, dedicated machine)")
    # pytorch engine
    torch_compile: bool = Field(False, description="wrap the PyTorch model in torch.compile")
