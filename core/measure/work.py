"""The model's floating-point work per sample: counted once per model and input shape, never guessed.

Two counters, one result shape:
- a torch module (the builder's or a TorchScript file): torch's own `FlopCounterMode` over one forward
  at batch size 1. It counts matrix multiplies, convolutions and the fused attention kernels it knows;
  the CPU's fused attention (`_scaled_dot_product_flash_attention_for_cpu`) is not among them, so it is
  registered here with torch's own SDPA formula (GUIDE §5: attention unseen is ~8% of ALBERT's work).
- an ONNX file only: ONNX shape inference with the inputs' shapes fixed, then 2·M·N·K per MatMul/Gemm
  (and their integer and fused variants), 2·out·(Cin/groups)·kh·kw per Conv. Chosen over onnx-tool
  because onnx already is a dependency and these few formulas are the same ones torch's counter uses.
  A node whose shapes inference leaves unknown makes the count null with that reason.

A count is per sample: these models' work is linear in the batch size. Multiply-adds count as 2 FLOPs.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.measure.operators import CONVOLUTION, MATMUL, MATRIX_TYPES, op_type

log = logging.getLogger(__name__)


@dataclass
class WorkCount:
    """FLOPs per sample, how they were counted, and why not where they could not be."""

    gflop_per_sample: float | None
    counter: str  # "torch.utils.flop_counter" | "onnx shape inference" | "none"
    includes: str  # what the count covers
    shape: dict[str, list[int]] = field(default_factory=dict)  # the input shapes counted (batch size 1)
    by_type: dict[str, float] = field(default_factory=dict)  # GFLOP per sample by operator family
    parameter_mb: float | None = None  # the weights' size at FP32: what a call reads at least once
    reason: str | None = None  # why the count is null

    def to_dict(self) -> dict[str, Any]:
        data = {
            "GFLOP per Sample": self.gflop_per_sample,
            "Counter": self.counter,
            "Includes": self.includes,
            "Shape": self.shape,
            "By Type": self.by_type,
            "Parameter MB": self.parameter_mb,
        }
        if self.reason:
            data["Reason"] = self.reason
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkCount:
        return cls(
            gflop_per_sample=data.get("GFLOP per Sample"),
            counter=str(data.get("Counter", "none")),
            includes=str(data.get("Includes", "")),
            shape=dict(data.get("Shape") or {}),
            by_type=dict(data.get("By Type") or {}),
            parameter_mb=data.get("Parameter MB"),
            reason=data.get("Reason"),
        )


TORCH_INCLUDES = "matrix multiplies, convolutions and attention (QK^T and AV); multiply-add = 2 FLOPs"
ONNX_INCLUDES = (
    "MatMul/Gemm (float, integer and fused) and Conv nodes, attention's matmuls among them; multiply-add = 2"
)


def _register_cpu_attention() -> None:
    """torch's counter knows the CUDA SDPA kernels; the CPU one is the same attention, same formula."""
    import torch
    from torch.utils import flop_counter

    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is None or op in flop_counter.flop_registry or op.default in flop_counter.flop_registry:
        return

    @flop_counter.register_flop_formula(op)
    def _cpu_sdpa(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
        return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


def op_flops(module, tensors: list) -> dict[str, float]:
    """FLOPs per aten op of one forward of `module` on `tensors` (on any device), by torch's own formulas."""
    import torch

    _register_cpu_attention()
    counter = _counter_class()()
    with torch.inference_mode(), counter:
        module(*tensors)
    return counter.counts


def count_torch(module, feeds: dict[str, np.ndarray]) -> WorkCount:
    """One forward of `module` on `feeds` (batch size 1), every op counted by torch's own flop formulas."""
    import torch

    counts = op_flops(module, [torch.from_numpy(np.ascontiguousarray(array)) for array in feeds.values()])
    by_type: dict[str, float] = {}
    for name, flops in counts.items():
        family = op_type(name)  # the profile's vocabulary; the counter only counts matrix work
        family = family if family in MATRIX_TYPES else MATMUL
        by_type[family] = by_type.get(family, 0.0) + flops / 1e9
    total = sum(counts.values()) / 1e9
    params = sum(p.numel() * p.element_size() for p in _unique_parameters(module))
    return WorkCount(
        gflop_per_sample=round(total, 4) if total > 0 else None,
        counter="torch.utils.flop_counter",
        includes=TORCH_INCLUDES,
        shape={name: list(array.shape) for name, array in feeds.items()},
        by_type={k: round(v, 4) for k, v in by_type.items()},
        parameter_mb=round(params / 1e6, 2) if params else None,
        reason=None if total > 0 else "the counter saw no matrix multiply, convolution or attention",
    )


def _counter_class():
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    class FormulaCounter(TorchDispatchMode):
        """FlopCounterMode's formulas without its module tracker, whose autograd hooks fail on modules that
        build tensors without a gradient function under inference mode (DeBERTa's attention)."""

        def __init__(self):
            super().__init__()
            self.counts: dict[str, float] = {}

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            formula = flop_registry.get(func._overloadpacket)
            if formula is None and not isinstance(func, torch._ops.HigherOrderOperator):
                # A composite op (aten.linear, aten.matmul) counts through the ops it decomposes into.
                with self:
                    result = func.decompose(*args, **kwargs)
                if result is not NotImplemented:
                    return result
            out = func(*args, **kwargs)
            if formula is not None:
                name = func._overloadpacket.__name__
                self.counts[name] = self.counts.get(name, 0.0) + float(formula(*args, **kwargs, out_val=out))
            return out

    return FormulaCounter


def _unique_parameters(module):
    """Parameters and buffers once each (ALBERT shares one layer's weights across all twelve)."""
    seen: set[int] = set()
    tensors = [*module.parameters(), *(b for b in module.buffers() if b.is_floating_point())]
    for tensor in tensors:
        key = tensor.data_ptr()
        if key not in seen:
            seen.add(key)
            yield tensor


_ONNX_MATMUL = {"MatMul", "MatMulInteger", "FusedMatMul", "QLinearMatMul", "MatMulNBits", "DynamicQuantizeMatMul"}
_ONNX_GEMM = {"Gemm", "QGemm"}
_ONNX_CONV = {"Conv", "ConvInteger", "QLinearConv", "FusedConv", "ConvTranspose"}


def count_onnx(path: Path, feeds: dict[str, np.ndarray]) -> WorkCount:
    """2·M·N·K per matrix multiply and 2·out·(Cin/groups)·kernel per convolution, from inferred shapes."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    shapes = {name: list(array.shape) for name, array in feeds.items()}
    for graph_input in model.graph.input:
        if graph_input.name in shapes:
            dims = graph_input.type.tensor_type.shape.dim
            for dim, size in zip(dims, shapes[graph_input.name]):
                dim.Clear()
                dim.dim_value = int(size)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as err:  # onnx raises its own InferenceError types
        return _uncounted("onnx shape inference", f"shape inference failed: {err}")
    known = _known_shapes(inferred)
    by_type: dict[str, float] = {}
    params = sum(int(np.prod(t.dims)) * _dtype_size(t.data_type) for t in inferred.graph.initializer)
    for node in inferred.graph.node:
        if node.op_type not in _ONNX_MATMUL | _ONNX_GEMM | _ONNX_CONV:
            continue
        flops = _node_flops(node, known)
        if flops is None:
            return _uncounted("onnx shape inference", f"the shapes of {node.op_type} node {node.name!r} are unknown")
        family = CONVOLUTION if node.op_type in _ONNX_CONV else MATMUL
        by_type[family] = by_type.get(family, 0.0) + flops / 1e9
    total = sum(by_type.values())
    return WorkCount(
        gflop_per_sample=round(total, 4) if total > 0 else None,
        counter="onnx shape inference",
        includes=ONNX_INCLUDES,
        shape=shapes,
        by_type={k: round(v, 4) for k, v in by_type.items()},
        parameter_mb=round(params / 1e6, 2) if params else None,
        reason=None if total > 0 else "the graph has no MatMul, Gemm or Conv node",
    )


def _uncounted(counter: str, reason: str) -> WorkCount:
    return WorkCount(None, counter, "", reason=reason)


def _known_shapes(model) -> dict[str, list[int]]:
    shapes: dict[str, list[int]] = {}
    for info in [*model.graph.value_info, *model.graph.input, *model.graph.output]:
        dims = info.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[info.name] = [d.dim_value for d in dims]
    for tensor in model.graph.initializer:
        shapes[tensor.name] = list(tensor.dims)
    return shapes


def _dtype_size(data_type: int) -> int:
    import onnx

    try:
        return int(np.dtype(onnx.helper.tensor_dtype_to_np_dtype(data_type)).itemsize)
    except (KeyError, TypeError):
        return 4


def _node_flops(node, shapes: dict[str, list[int]]) -> float | None:
    out = shapes.get(node.output[0])
    if out is None:
        return None
    if node.op_type in _ONNX_CONV:
        weight_index = 3 if node.op_type == "QLinearConv" else 1
        weight = shapes.get(node.input[weight_index]) if len(node.input) > weight_index else None
        if weight is None:
            return None
        kernel = float(np.prod(weight[2:]))
        if node.op_type == "ConvTranspose":  # each input element spreads over Cout/groups x kernel outputs
            data = shapes.get(node.input[0])
            return None if data is None else 2.0 * float(np.prod(data)) * weight[1] * kernel
        return 2.0 * float(np.prod(out)) * weight[1] * kernel  # weight [Cout, Cin/groups, kh, kw]
    a_index = 0
    a = shapes.get(node.input[a_index])
    if a is None:
        return None
    if node.op_type in _ONNX_GEMM:
        trans_a = next((attr.i for attr in node.attribute if attr.name == "transA"), 0)
        k = a[0] if trans_a else a[-1]
    else:
        k = a[-1]
    return 2.0 * float(np.prod(out)) * k


def cached_count(path: Path, count) -> WorkCount:
    """The count stored at `path` (JSON), else `count()` stored there: a model is counted once."""
    from core.common.atomic import atomic_write_text

    if path.is_file():
        try:
            return WorkCount.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, AttributeError):
            log.debug("work count %s unreadable; counting again", path)
    result = count()
    atomic_write_text(path, json.dumps(result.to_dict(), indent=2) + "\n")
    return result
