"""Where the time went, in one vocabulary across engines: each engine's profiler hands back its own
events (`RawProfile`), and `normalize` turns them into the report's `Profile` section.

onnxruntime names a node's op `MatMul` or `SkipLayerNormalization`, OpenVINO `FullyConnected` or `MVN`,
torch `aten::addmm` or `aten::native_layer_norm`, ggml `MUL_MAT` or `RMS_NORM`: all land in the same few
types, the engine's own name kept beside each. Shares are of the profiled call's wall time; what no operator
accounts for (framework dispatch, thread wake-ups, copies between calls) is its own line, so shares add up to
100%.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The one vocabulary of operator families: the profile's types, and the work counter's (core.measure.work).
MATMUL, ATTENTION, CONVOLUTION = "MatMul/linear", "attention", "convolution"
SOFTMAX, LAYER_NORM, GELU = "softmax", "layer norm", "GELU"
ELEMENTWISE, DATA_MOVEMENT, OTHER = "elementwise", "data movement", "other"
OUTSIDE = "outside operators"
TYPES = (MATMUL, ATTENTION, SOFTMAX, LAYER_NORM, GELU, CONVOLUTION, ELEMENTWISE, DATA_MOVEMENT, OTHER)
MATRIX_TYPES = (MATMUL, ATTENTION, CONVOLUTION)
TOP_NODES = 20
# A profiled call this much slower than the timed one describes another run than the one measured.
UNREPRESENTATIVE = 1.3

# First match wins, on the engine's op name lower-cased without its namespace ("aten::", "com.microsoft.").
# Batched products are attention's QK^T and AV (eager attention, in every transformer here; linear layers run
# as mm/addmm), in the profile as in the work count.
_RULES: tuple[tuple[str, str], ...] = (
    (ATTENTION, r"attention|flash_attn|sdpa|scaled_dot_product|^bmm$|^baddbmm$"),
    (LAYER_NORM, r"layernorm|layer_norm|mvn|rmsnorm|rms_norm|groupnorm|group_norm|batchnorm|batch_norm|normaliz"),
    (GELU, r"gelu"),
    (SOFTMAX, r"softmax|soft_max"),
    (CONVOLUTION, r"conv(?!ert)"),
    (MATMUL, r"matmul|mul_mat|gemm|^linear$|^addmm$|(^|_)mm$|fullyconnected|innerproduct|^einsum$"),
    (
        DATA_MOVEMENT,
        r"reshape|transpose|permute|^view|copy|concat|^cat$|gather|slice|split|squeeze|expand|^cast$|^to$|"
        r"contiguous|clone|reorder|convert|^shape|flatten|index|embedding|^pad$|tile|select|stack|narrow|"
        r"^empty|^zeros|^ones|^fill|memcpy|broadcast|^as_strided|get_rows|set_rows|^cpy$|^cont$|^dup$",
    ),
    (
        ELEMENTWISE,
        r"^add|^sub|^mul|^div|relu|tanh|sigmoid|silu|swish|^erf|^pow|sqrt|^exp|eltwise|^where|^neg|^abs|clamp|"
        r"^max$|^min$|^sum$|^mean$|reduce|quantize|^rsub|^masked_fill|subgraph|^bias|^scale|^not|^and|^or|^equal|^less|"
        r"^greater|^tanh|^log|^floor|^ceil|^round|^sign|^sin|^cos|^dropout|^rope|glu$",
    ),
)
_COMPILED = tuple((kind, re.compile(pattern)) for kind, pattern in _RULES)


def op_type(engine_op: str) -> str:
    """The common type of an engine's op name."""
    name = engine_op.strip().lower().split("::")[-1].split(".")[-1].lstrip("_")
    for kind, pattern in _COMPILED:
        if pattern.search(name):
            return kind
    return OTHER


@dataclass
class OpEvent:
    """One node (or, for torch, one op at one input shape) over all profiled calls."""

    name: str  # the engine's node name, or op and shapes where nodes have none
    op: str  # the engine's op type
    microseconds: float
    count: int = 1
    flops: float | None = None  # over all profiled calls, where the profiler counts them
    kind: str | None = None  # the common type where the engine knows better than its op name (a fused subgraph)

    @property
    def type(self) -> str:
        return self.kind or op_type(self.op)


@dataclass
class RawProfile:
    """What an engine's profiler measured over `calls` calls at one batch size."""

    engine: str
    profiler: str
    calls: int
    wall_seconds: float  # the profiled calls' own wall time, end to end
    events: list[OpEvent] = field(default_factory=list)
    trace: Path | None = None  # the raw trace in Chrome trace format (Perfetto opens it)
    note: str | None = None


def fused_type(op_types: list[str]) -> str:
    """The common type of a fusion of ops (OpenVINO's Snippets `Subgraph`): attention where it multiplies matrices
    around a softmax, else the weightiest type among its ops."""
    kinds = {op_type(op) for op in op_types}
    if ATTENTION in kinds or (MATMUL in kinds and SOFTMAX in kinds):
        return ATTENTION
    weightiest = (MATMUL, CONVOLUTION, LAYER_NORM, GELU, SOFTMAX, ELEMENTWISE, DATA_MOVEMENT)
    return next((kind for kind in weightiest if kind in kinds), OTHER)


def normalize(
    raw: RawProfile,
    *,
    batch_size: int,
    timed_ms: float | None,
    work_gflop: float | None,
    work_by_type: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The report's Profile section: time per call by type and by node, shares, and the profiler's cost.
    `work_by_type` (GFLOP per sample by family) keeps Matrix GFLOP/s to the families the profile saw time in."""
    calls = max(1, raw.calls)
    op_total_us = sum(event.microseconds for event in raw.events)
    total_us = max(raw.wall_seconds * 1e6, op_total_us)
    per_call_ms = total_us / calls / 1e3
    by_type: dict[str, dict[str, Any]] = {}
    for event in raw.events:
        kind = event.type
        entry = by_type.setdefault(kind, {"us": 0.0, "count": 0, "ops": set(), "flops": 0.0, "all_flops": True})
        entry["us"] += event.microseconds
        entry["count"] += event.count
        entry["ops"].add(event.op)
        if event.flops is None:
            entry["all_flops"] = False
        else:
            entry["flops"] += event.flops
    types = []
    for kind, entry in sorted(by_type.items(), key=lambda item: -item[1]["us"]):
        row: dict[str, Any] = {
            "Type": kind,
            "ms per Call": round(entry["us"] / calls / 1e3, 4),
            "Share": round(entry["us"] / total_us, 4) if total_us else None,
            "Ops per Call": round(entry["count"] / calls, 1),
            "Engine Ops": ", ".join(sorted(entry["ops"]))[:200],
        }
        if kind in MATRIX_TYPES and entry["all_flops"] and entry["flops"] and entry["us"]:
            row["GFLOP/s"] = round(entry["flops"] / (entry["us"] / 1e6) / 1e9, 1)
        types.append(row)
    outside_us = total_us - op_total_us
    types.append(
        {
            "Type": OUTSIDE,
            "ms per Call": round(outside_us / calls / 1e3, 4),
            "Share": round(outside_us / total_us, 4) if total_us else None,
            "Ops per Call": None,
            "Engine Ops": "",
        }
    )
    nodes = sorted(raw.events, key=lambda event: -event.microseconds)[:TOP_NODES]
    section: dict[str, Any] = {
        "Batch Size": batch_size,
        "Engine": raw.engine,
        "Profiler": raw.profiler,
        "Calls": raw.calls,
        "Profiled ms per Call": round(per_call_ms, 4),
        "Timed ms per Call": timed_ms,
        "Profiler Overhead": round(per_call_ms / timed_ms - 1, 4) if timed_ms else None,
        "Types": types,
        "Top Nodes": [
            {
                "Node": event.name[:160],
                "Op": event.op,
                "Type": event.type,
                "ms per Call": round(event.microseconds / calls / 1e3, 4),
                "Share": round(event.microseconds / total_us, 4) if total_us else None,
            }
            for event in nodes
        ],
    }
    if timed_ms and per_call_ms > UNREPRESENTATIVE * timed_ms:
        section["Representative"] = False
        section["Warning"] = (
            f"unrepresentative: the profiled call took {per_call_ms / timed_ms:.2f}x the timed one (more than "
            f"{UNREPRESENTATIVE:g}x), so its shares describe another run than the one measured"
        )
    elif timed_ms:
        section["Representative"] = True
    section.update(_matrix_rate(by_type, calls, batch_size, work_gflop, work_by_type))
    if raw.trace is not None:
        section["Trace"] = str(raw.trace)
    if raw.note:
        section["Note"] = raw.note
    return section


def _matrix_rate(
    by_type: dict[str, dict[str, Any]],
    calls: int,
    batch_size: int,
    work_gflop: float | None,
    work_by_type: dict[str, float] | None,
) -> dict[str, Any]:
    """The counted work (all matrix work: matmul, attention, convolution) over the time in those types. A family
    the count has but the profile shows no time in (its time filed under another type) is left out of the work,
    and named, so that its FLOPs do not inflate the rate of the others."""
    matrix_us = sum(by_type.get(kind, {}).get("us", 0.0) for kind in MATRIX_TYPES)
    if not work_gflop or not matrix_us:
        return {}
    unseen = [kind for kind, gflop in (work_by_type or {}).items() if gflop and kind not in by_type]
    work = work_gflop - sum((work_by_type or {})[kind] for kind in unseen)
    fields: dict[str, Any] = {"Matrix GFLOP/s": round(work * batch_size / (matrix_us / calls / 1e6), 1)}
    if unseen:
        fields["Matrix Note"] = (
            f"{', '.join(unseen)} work left out: the profile shows no time in that type, so the time its "
            "operators took is filed under another"
        )
    return fields
