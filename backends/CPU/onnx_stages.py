"""CPU compile stages: torch -> ONNX export, simplification, transformer fusion, int8/fp16 conversion.

Each stage is a small function that reads a model file (or a torch module), writes one ONNX file and
returns a `StageResult`; a failure raises `core.common.errors.UserError` naming the stage. The CPU compile
backend chains them; nothing here keeps state.

Why the TorchScript-based exporter (`dynamo=False`) with eager attention: onnxruntime's transformer
optimizer fuses `Attention` only in that exporter's graph of eager attention; the dynamo exporter's
graph gets no fusion and cannot take TorchScript modules. The findings, with versions and figures,
are in docs/MEASUREMENTS.md.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.common.errors import UserError

log = logging.getLogger(__name__)

# Protobuf cannot serialize a message over 2 GiB: bigger graphs (the SD UNet, 3.4 GB) keep their
# weights in one `<file>.data` beside the .onnx, which every stage and both runtimes read.
PROTOBUF_LIMIT = (2 << 30) - 1
GRAPH_HEADROOM = 64 << 20  # the graph's nodes and attributes need room beside the weights


def needs_external_data(model) -> bool:
    """Whether the model's weights leave too little of protobuf's limit to write it as one message."""
    return sum(len(t.raw_data) for t in model.graph.initializer) > PROTOBUF_LIMIT - GRAPH_HEADROOM


def has_external_data(path: Path) -> bool:
    import onnx
    from onnx.external_data_helper import uses_external_data

    return any(uses_external_data(t) for t in onnx.load(str(path), load_external_data=False).graph.initializer)


def save_onnx(model, path: Path) -> None:
    """onnx.save; past protobuf's limit, with every weight in one `<name>.data` file beside it."""
    import onnx

    onnx.save_model(
        model,
        str(path),
        save_as_external_data=needs_external_data(model),
        all_tensors_to_one_file=True,
        location=f"{Path(path).name}.data",
    )


def gather_weights(path: Path) -> None:
    """Re-save a model whose weights lie in many files with all of them in one `<name>.data`."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    files = {e.value for t in graph.initializer for e in t.external_data if e.key == "location"}
    model = onnx.load(str(path))
    for name in files:
        (path.parent / name).unlink(missing_ok=True)
    save_onnx(model, path)


def move_onnx(src: Path, dst: Path, *, keep_source: bool = False) -> None:
    """Move (or copy) an ONNX file to `dst`; a model with external weights is re-saved so they follow it."""
    import onnx

    if has_external_data(src):
        save_onnx(onnx.load(str(src)), dst)  # rewrites the weights' location to dst's own .data file
        if not keep_source:
            Path(src).unlink()
    elif keep_source:
        shutil.copyfile(src, dst)
    else:
        os.replace(src, dst)


# ORT optimizer model_type per Hugging Face model_type. DeBERTa maps to "bert" for the LayerNorm,
# Gelu and SkipLayerNorm fusions; its attention stays unfused (see module docstring).
_FUSION_MODEL_TYPES = {
    "albert": "bert",
    "bert": "bert",
    "roberta": "bert",
    "deberta": "bert",
    "deberta-v2": "bert",
}

_OPERATOR_IN_MESSAGE = re.compile(r"operator '([^']+)'")

ORT_CONTRIB_DOMAIN = "com.microsoft"


@dataclass(frozen=True)
class StageResult:
    """What one compile stage did: its name, the file it wrote, how long it took, and facts."""

    name: str
    path: Path
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)


def fusion_model_type(hf_model_type: str) -> str | None:
    """The ORT transformer optimizer's model_type for a Hugging Face model_type, None if unsupported."""
    return _FUSION_MODEL_TYPES.get(hf_model_type.lower().replace("_", "-"))


def operator_counts(path: Path) -> dict[str, int]:
    """How many nodes of each op type the graph's top level holds."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return dict(Counter(node.op_type for node in graph.node))


def fused_operator_counts(path: Path) -> dict[str, int]:
    """Counts of onnxruntime contrib ops (Attention, SkipLayerNormalization, BiasGelu, ...) in the graph."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return dict(Counter(node.op_type for node in graph.node if node.domain == ORT_CONTRIB_DOMAIN))


# --- 1. export ------------------------------------------------------------------------------------


def export_onnx(
    module: Any,
    sample_feeds: dict[str, np.ndarray],
    output_names: list[str],
    path: Path,
    *,
    opset: int = 17,
    dynamic_batch: bool = True,
    dynamic_sequence: bool = True,
) -> StageResult:
    """Export a torch module taking the feeds positionally (a TorchScript module, or a built model behind
    core.model.builder's calling convention) to one ONNX file.

    Graph inputs are named after `sample_feeds`' keys, in order (ByteMLPerf names such as
    `input_ids.1` survive). Axis 0 of every input is dynamic ("batch") if `dynamic_batch`, axis 1 of
    2-D inputs ("sequence") if `dynamic_sequence`.
    An input the traced graph never reads (deberta's token_type_ids) is dropped by the exporter:
    `details["inputs"]` lists what the graph declares, feed only those.
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(sample_feeds)
    args = tuple(torch.from_numpy(np.ascontiguousarray(sample_feeds[n])) for n in names)
    # Axis 1 is a sequence only for [batch, tokens] inputs; for images it is the channel axis.
    dynamic_axes = {}
    for n in names:
        axes = {0: "batch"} if dynamic_batch else {}
        if dynamic_sequence and sample_feeds[n].ndim == 2:
            axes[1] = "sequence"
        if axes:
            dynamic_axes[n] = axes
    dynamic_axes = dynamic_axes or None

    start = time.perf_counter()
    with torch.no_grad(), warnings.catch_warnings():
        # Tracer warnings flag Python branches on shapes; the exported graph is checked at other shapes in tests.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # The legacy exporter is a deliberate choice (module docstring); its deprecation notices are noise here.
        warnings.filterwarnings(
            "ignore", r"(?s).*(legacy TorchScript-based ONNX export|feature will be removed)", DeprecationWarning
        )
        # Advanced indexing exports as Gather/Reshape; the export is checked against PyTorch at other shapes in tests.
        warnings.filterwarnings("ignore", r"Exporting aten::index operator", UserWarning)
        # Strided slices (the VAE's latent split) stay Slice nodes; nothing to act on.
        warnings.filterwarnings("ignore", r"Constant folding - Only steps=1", UserWarning)
        try:
            # TorchScript-based exporter: see the module docstring for why not dynamo.
            torch.onnx.export(
                module,
                args,
                str(path),
                input_names=names,
                output_names=list(output_names),
                dynamic_axes=dynamic_axes,
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
        except Exception as exc:  # the exporter raises many types; the user needs the message
            raise _export_error(exc, path) from exc
    import onnx

    if has_external_data(path):  # past 2 GiB the exporter writes one file per weight
        gather_weights(path)
    seconds = time.perf_counter() - start
    graph = onnx.load(str(path), load_external_data=False).graph
    return StageResult(
        "export",
        path,
        seconds,
        {
            "exporter": "torchscript",
            "opset": opset,
            "inputs": [i.name for i in graph.input],
            "outputs": [o.name for o in graph.output],
            "nodes": len(graph.node),
            # What the traced model ran (the builder builds eager attention, the kind onnxruntime fuses).
            "attention": getattr(getattr(module, "config", None), "_attn_implementation", None) or "as traced",
        },
    )


def _export_error(exc: Exception, path: Path) -> UserError:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    operator = _OPERATOR_IN_MESSAGE.search(message)
    what = f"operator {operator.group(1)} cannot be exported" if operator else message
    return UserError(
        f"export to ONNX failed: {what}",
        file=path,
        field="export",
        fix="use a higher opset, a model without that operator, or an ONNX model file",
    )


# --- 2. simplify ----------------------------------------------------------------------------------


def simplify(in_path: Path, out_path: Path) -> StageResult:
    """Constant-fold and clean the graph with onnxslim; details hold node counts before and after.

    Do not run it before `optimize_transformer`: the slimmed graph no longer matches ORT's Attention
    fusion (BERT and ALBERT, whatever onnxslim passes are skipped), and on ALBERT it copies the
    shared layer weights into every layer (45 MB -> 356 MB, ~18 s on albert-base). After fusion it
    finds nothing left to remove; it is for graphs the transformer optimizer does not handle.
    """
    import onnx
    import onnxslim

    start = time.perf_counter()
    model = onnx.load(str(in_path))
    before = len(model.graph.node)
    if needs_external_data(model):  # onnxslim serializes the whole graph
        move_onnx(in_path, out_path, keep_source=True)
        return StageResult(
            "simplify",
            Path(out_path),
            time.perf_counter() - start,
            {"skipped": "onnxslim cannot handle a graph over 2 GiB", "nodes_before": before},
        )
    try:
        slim = onnxslim.slim(model)
    except Exception as exc:  # onnxslim raises whatever its passes hit
        raise UserError(
            f"simplify failed: {exc}", file=in_path, field="simplify", fix="disable simplification"
        ) from exc
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    save_onnx(slim, Path(out_path))
    return StageResult(
        "simplify",
        Path(out_path),
        time.perf_counter() - start,
        {"nodes_before": before, "nodes_after": len(slim.graph.node)},
    )


# --- 3. transformer fusion ------------------------------------------------------------------------


def optimize_transformer(
    in_path: Path,
    out_path: Path,
    *,
    model_type: str,
    num_heads: int,
    hidden_size: int,
    use_gpu: bool = False,
    raw_attention_mask: bool = True,
) -> StageResult:
    """Fuse Attention, SkipLayerNormalization, Gelu and friends with ORT's transformer optimizer.

    `raw_attention_mask` keeps the fused Attention reading the 2-D 0/1 mask, which is right for any
    padding; False lets it reduce the mask to per-row lengths, valid only for right-padded inputs.
    details["fused"] holds the optimizer's non-zero fused-operator statistics.
    """
    import onnx
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import MODEL_TYPES, optimize_model

    if model_type not in MODEL_TYPES:
        raise UserError(
            f"unknown transformer model_type {model_type!r}",
            field="optimize.model_type",
            fix=f"use one of {', '.join(sorted(MODEL_TYPES))}",
        )
    options = FusionOptions(model_type)
    options.use_raw_attention_mask(raw_attention_mask)
    start = time.perf_counter()
    model = onnx.load(str(in_path))
    swapped = _put_branch_before_skip(model.graph)
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    # Through a file: given a ModelProto, optimize_model moves every tensor (shape constants too) to
    # external initializers, and ORT's shape inference then fails on them.
    with tempfile.TemporaryDirectory(dir=Path(out_path).parent) as tmp:
        reordered = Path(tmp) / "reordered.onnx"
        save_onnx(model, reordered)
        try:
            optimized = optimize_model(
                str(reordered),
                model_type=model_type,
                num_heads=num_heads,
                hidden_size=hidden_size,
                optimization_options=options,
                use_gpu=use_gpu,
            )
        except Exception as exc:  # ORT's fusion scripts raise plain exceptions
            raise UserError(
                f"transformer optimizer failed: {exc}", file=in_path, field="optimize", fix="disable fusion"
            ) from exc
    optimized.save_model_to_file(str(out_path), use_external_data_format=needs_external_data(optimized.model))
    fused = {op: n for op, n in optimized.get_fused_operator_statistics().items() if n}
    return StageResult(
        "optimize",
        Path(out_path),
        time.perf_counter() - start,
        {
            "model_type": model_type,
            "fused": fused,
            "nodes": len(optimized.model.graph.node),
            "residual_adds_swapped": swapped,
        },
    )


def _put_branch_before_skip(graph) -> int:
    """Order each pre-LayerNorm residual Add as (branch output, skip input); returns how many it swapped.

    ORT's attention fusion follows the first Add parent of that Add/SkipLayerNorm and never tries the
    other. ALBERT adds the skip first (`LayerNorm(x + attn(x))`), and in its first layer the skip is
    itself an Add (the embedding projection), so that layer's attention went unfused. The skip
    feeds several nodes, the branch output only this Add; Add is commutative, so swapping is exact.
    """
    consumers: dict[str, list[str]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node.op_type)
    swapped = 0
    for node in graph.node:
        if node.op_type != "Add" or len(node.input) != 2:
            continue
        if not {"LayerNormalization", "ReduceMean"} & set(consumers.get(node.output[0], [])):
            continue
        skip, branch = node.input
        if len(consumers.get(skip, [])) > 1 and len(consumers.get(branch, [])) == 1:
            node.input[0], node.input[1] = branch, skip
            swapped += 1
    return swapped


# --- 4. precision -------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime's quantizer logs advice ("consider pre-processing") on the root logger: not for our users."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(level)


# ONNX shape inference gives no types to outputs of contrib ops (Attention, SkipLayerNormalization);
# without a default the quantizer refuses any fused graph.
_QUANT_EXTRA_OPTIONS = {"DefaultTensorType": 1}  # onnx.TensorProto.FLOAT


def quantize_int8_dynamic(in_path: Path, out_path: Path, *, per_channel: bool = False) -> StageResult:
    """Int8 weights, activations quantized at run time (MatMulInteger + DynamicQuantizeLinear).

    Faster than fp32 only where the CPU has int8 dot products (VNNI, AMX-INT8); on AVX2 alone it is not.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    start = time.perf_counter()
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    try:
        with _quiet_root_logger():
            quantize_dynamic(
                str(in_path),
                str(out_path),
                use_external_data_format=has_external_data(in_path),
                per_channel=per_channel,
                weight_type=QuantType.QInt8,
                extra_options=_QUANT_EXTRA_OPTIONS,
            )
    except Exception as exc:  # the quantizer raises plain exceptions
        raise UserError(
            f"int8 dynamic quantization failed: {exc}", file=in_path, field="quantize", fix="use fp32"
        ) from exc
    return StageResult(
        "quantize_int8_dynamic",
        Path(out_path),
        time.perf_counter() - start,
        {"per_channel": per_channel, "operators": operator_counts(out_path)},
    )


def quantize_int8_static(
    in_path: Path,
    out_path: Path,
    calibration_feeds: Iterable[dict[str, np.ndarray]],
    *,
    per_channel: bool = False,
) -> StageResult:
    """Int8 QDQ model with activation ranges calibrated (MinMax) on the given feeds.

    Feeds may carry inputs the graph does not declare; those are dropped.
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    declared = {i.name for i in onnx.load(str(in_path), load_external_data=False).graph.input}
    batches = [{k: v for k, v in feeds.items() if k in declared} for feeds in calibration_feeds]
    if not batches:
        raise UserError(
            "int8 static quantization needs calibration data",
            file=in_path,
            field="calibration",
            fix="give at least one batch",
        )

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._batches = iter(batches)

        def get_next(self):
            return next(self._batches, None)

    start = time.perf_counter()
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    try:
        with _quiet_root_logger():
            quantize_static(
                str(in_path),
                str(out_path),
                Reader(),
                use_external_data_format=has_external_data(in_path),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=per_channel,
                extra_options=_QUANT_EXTRA_OPTIONS,
            )
    except Exception as exc:  # the quantizer raises plain exceptions
        raise UserError(
            f"int8 static quantization failed: {exc}", file=in_path, field="quantize", fix="use fp32"
        ) from exc
    return StageResult(
        "quantize_int8_static",
        Path(out_path),
        time.perf_counter() - start,
        {"per_channel": per_channel, "calibration_batches": len(batches), "operators": operator_counts(out_path)},
    )


def convert_fp16(in_path: Path, out_path: Path) -> StageResult:
    """Float16 weights and compute, float32 graph inputs and outputs (keep_io_types).

    ORT's CPU execution provider has few fp16 kernels: the session still loads, because ORT wraps
    every node lacking one in Cast-to-fp32 / Cast-back pairs, so the model runs mostly in fp32 plus
    the casts (slower than fp32, with fp16 rounding of weights). Worth it only on a GPU provider.
    """
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    start = time.perf_counter()
    try:
        model = convert_float_to_float16(onnx.load(str(in_path)), keep_io_types=True)
    except Exception as exc:  # the converter raises plain exceptions
        raise UserError(f"fp16 conversion failed: {exc}", file=in_path, field="precision", fix="use fp32") from exc
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    save_onnx(model, Path(out_path))
    return StageResult("convert_fp16", Path(out_path), time.perf_counter() - start, {"keep_io_types": True})
