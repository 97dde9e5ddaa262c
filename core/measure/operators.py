"""Where the time went, in one vocabulary across engines: each engine's profiler hands back its own
events (`RawProfile`), and `normalize` turns them into the report's `Profile` section.

onnxruntime names a node's op `MatMul` or `SkipLayerNormalization`, OpenVINO `FullyConnected` or `MVN`,
torch `aten::addmm` or `aten::native_layer_norm`: all three land in the same few types, the engine's own
name kept beside each. Shares are of the profiled call's wall time; what no operator accounts for
(framework dispatch, thread wake-ups, copies between calls) is its own line, so shares add up to 100%.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.measure.work import ATTENTION, CONVOLUTION, MATMUL

SOFTMAX, LAYER_NORM, GELU = "softmax", "layer norm", "GELU"
ELEMENTWISE, DATA_MOVEMENT, OTHER = "elementwise", "data movement", "other"
OUTSIDE = "outside operators"
TYPES = (MATMUL, ATTENTION, SOFTMAX, LAYER_NORM, GELU, CONVOLUTION, ELEMENTWISE, DATA_MOVEMENT, OTHER)
MATRIX_TYPES = (MATMUL, ATTENTION, CONVOLUTION)
TOP_NODES = 20

# First match wins, on the engine's op name lower-cased without its namespace ("aten::", "com.microsoft.").
_RULES: tuple[tuple[str, str], ...] = (
    (ATTENTION, r"attention|sdpa|scaled_dot_product"),
    (LAYER_NORM, r"layernorm|layer_norm|mvn|rmsnorm|rms_norm|groupnorm|group_norm|batchnorm|batch_norm|normaliz"),
    (GELU, r"gelu"),
    (SOFTMAX, r"softmax"),
    (CONVOLUTION, r"conv(?!ert)"),
    (MATMUL, r"matmul|gemm|^linear$|^addmm$|^mm$|^bmm$|^baddbmm$|fullyconnected|innerproduct|^einsum$"),
    (
        DATA_MOVEMENT,
        r"reshape|transpose|permute|^view|copy|concat|^cat$|gather|slice|split|squeeze|expand|^cast$|^to$|"
        r"contiguous|clone|reorder|convert|^shape|flatten|index|embedding|^pad$|tile|select|stack|narrow|"
        r"^empty|^zeros|^ones|^fill|memcpy|broadcast|^as_strided",
    ),
    (
        ELEMENTWISE,
        r"^add|^sub|^mul|^div|relu|tanh|sigmoid|silu|swish|^erf|^pow|sqrt|^exp|eltwise|^where|^neg|^abs|clamp|"
        r"^max$|^min$|^sum$|^mean$|reduce|quantize|^rsub|^masked_fill|subgraph|^bias|^scale|^not|^and|^or|^equal|^less|"
        r"^greater|^tanh|^log|^floor|^ceil|^round|^sign|^sin|^cos|^dropout",
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


def normalize(raw: RawProfile, *, batch_size: int, timed_ms: float | None, work_gflop: float | None) -> dict[str, Any]:
    """The report's Profile section: time per call by type and by node, shares, and the profiler's cost."""
    calls = max(1, raw.calls)
    op_total_us = sum(event.microseconds for event in raw.events)
    total_us = max(raw.wall_seconds * 1e6, op_total_us)
    per_call_ms = total_us / calls / 1e3
    by_type: dict[str, dict[str, Any]] = {}
    for event in raw.events:
        kind = op_type(event.op)
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
                "Type": op_type(event.op),
                "ms per Call": round(event.microseconds / calls / 1e3, 4),
                "Share": round(event.microseconds / total_us, 4) if total_us else None,
            }
            for event in nodes
        ],
    }
    matrix_us = sum(by_type.get(kind, {}).get("us", 0.0) for kind in MATRIX_TYPES)
    if work_gflop and matrix_us:
        # The counted work is all matrix work (matmul, attention, convolution): over the time in those types.
        section["Matrix GFLOP/s"] = round(work_gflop * batch_size / (matrix_us / calls / 1e6), 1)
    if raw.trace is not None:
        section["Trace"] = str(raw.trace)
    if raw.note:
        section["Note"] = raw.note
    return section
