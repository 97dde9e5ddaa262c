"""OpenVINO engine: converts the shared ONNX export (or the zoo's ONNX file), INT8 through NNCF; cached.

FP32 and BF16 share one converted model: precision is the `INFERENCE_PRECISION_HINT` given when
the model is compiled for the device. INT8 is NNCF post-training quantization, calibrated on the
task's dataset when it has one, else on generated inputs; its remaining float ops run in bf16 where
the host has native bf16. Converting the torch module directly (ov.convert_model(module)) gave the
same graph speed on albert (5.55 vs 5.61 QPS, AVX-512 host) and needs a second trace, so the
cached ONNX export is the one entry point.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from backends.base import CompiledModel, CompileRequest, Feeds, RuntimeBackend, declared_feeds
from backends.CPU.config import CpuConfig
from backends.CPU.engines import Engine, pin_process, unsupported_precision
from backends.CPU.export import exported_onnx, library_versions
from core.common.artifact_cache import cached_folder, code_digest
from core.common.errors import UserError, one_line
from core.measure.host import cpu_isa

PRECISIONS = ("FP32", "BF16", "INT8")
ARTIFACT = "model.xml"


def compile_model(request: CompileRequest, config: CpuConfig) -> CompiledModel:
    if request.precision not in PRECISIONS:
        raise unsupported_precision("openvino", request.precision, PRECISIONS)
    start = time.perf_counter()
    exported, export_stage, _ = exported_onnx(request, config.opset)
    quantize = request.precision == "INT8"
    samples = config.openvino.calibration_samples
    payload = {
        "export": str(exported) if request.source.kind != "onnx" else request.source.digest,
        "int8": quantize,
        "calibration": ("dataset" if request.calibration_feeds else "generated", samples) if quantize else None,
        "versions": library_versions("openvino", *(("nncf",) if quantize else ())),
        "code": code_digest(Path(__file__)),
    }

    def build(work: Path) -> dict[str, Any]:
        return _convert(request, exported, export_stage, work, samples if quantize else 0)

    entry = cached_folder(request.cache_dir / "compiled" / request.model.model / "openvino", payload, build)
    meta = entry.meta
    hint = _precision_hint(request.precision)
    optimizations = [*meta["optimizations"], f"inference precision {hint}"]
    return CompiledModel(
        engine="openvino",
        precision=request.precision,
        artifact=entry.path / ARTIFACT,
        input_names=meta["input_names"],
        output_names=meta["output_names"],
        compile_seconds=time.perf_counter() - start,
        cache_hit=entry.hit,
        optimizations=optimizations,
        details={
            "stages": meta["stages"],
            "cache_key": entry.path.name,
            "inference_precision": hint,
            "first_compile_seconds": meta.get("compile_seconds"),
        },
    )


def _precision_hint(precision: str) -> str:
    if precision == "BF16" or (precision == "INT8" and cpu_isa().bf16):
        return "bf16"
    return "f32"


def _convert(
    request: CompileRequest, exported: Path, export_stage, work: Path, calibration_samples: int
) -> dict[str, Any]:
    import openvino as ov

    start = time.perf_counter()
    stages: list[dict[str, Any]] = [export_stage] if export_stage else []
    optimizations = ["onnx model file"] if export_stage is None else ["torch->onnx export (shared with onnxruntime)"]
    try:
        model = ov.convert_model(str(exported))
    except Exception as err:  # OpenVINO's frontends raise their own exception types
        raise UserError(
            f"OpenVINO cannot convert the model: {one_line(err)}",
            file=exported,
            field="engine",
            fix="use engine onnxruntime or pytorch",
        ) from None
    stages.append({"name": "openvino_convert", "seconds": round(time.perf_counter() - start, 3), "details": {}})
    optimizations.append("openvino conversion")
    if calibration_samples:
        t0 = time.perf_counter()
        model, source = _quantize(model, request, calibration_samples)
        stages.append(
            {"name": "nncf_int8", "seconds": round(time.perf_counter() - t0, 3), "details": {"calibration": source}}
        )
        optimizations.append(f"nncf int8 post-training quantization ({source})")
    ov.save_model(model, str(work / ARTIFACT), compress_to_fp16=False)
    return {
        "input_names": [port.get_any_name() for port in model.inputs],
        "output_names": [port.get_any_name() for port in model.outputs],
        "optimizations": optimizations,
        "stages": stages,
        "compile_seconds": round(time.perf_counter() - start, 3),
    }


def _quantize(model, request: CompileRequest, samples: int):
    """NNCF INT8 on the dataset's features (or generated inputs), one sample a batch."""
    import nncf

    names = [port.get_any_name() for port in model.inputs]
    if request.calibration_feeds is not None:
        batches, source = request.calibration_feeds()[:samples], "calibrated on the dataset"
    else:
        batches, source = [], "calibrated on generated inputs"
    if not batches:
        one = request.sample_feeds(samples)
        batches = [{name: array[i : i + 1] for name, array in one.items()} for i in range(samples)]
    dataset = nncf.Dataset(batches, lambda feeds: {name: feeds[name] for name in names})
    try:
        quantized = nncf.quantize(model, dataset, model_type=nncf.ModelType.TRANSFORMER, subset_size=len(batches))
    except Exception as err:  # NNCF raises plain exceptions
        raise UserError(
            f"NNCF int8 quantization failed: {one_line(err)}",
            field="precision",
            fix="use FP32 or BF16, or engine onnxruntime for INT8",
        ) from None
    return quantized, f"{source}, {len(batches)} samples"


class OpenVinoBackend(RuntimeBackend):
    config: CpuConfig

    def __init__(self, compiled: CompiledModel, config: CpuConfig):
        super().__init__(compiled, config)
        self.model = None
        self.request = None
        self.streams = 0

    def load(self, batch_size: int) -> None:
        # Dynamic batch and sequence axes: one compiled model serves every batch size.
        if self.model is None:
            self._compile(1)
        self.batch_size = batch_size

    def instances(self, count: int) -> list[RuntimeBackend]:
        # Concurrent clients get one infer request each on a model compiled for that many streams
        # (OpenVINO splits the threads between streams); a shallow copy shares the compiled model.
        if count == 1:
            return [self]
        if self.streams != count:
            self._compile(count)
        clones = []
        for _ in range(count):
            clone = copy.copy(self)
            clone.request = self.model.create_infer_request()
            clones.append(clone)
        return clones

    def _compile(self, streams: int) -> None:
        import openvino as ov

        pin_process(self.config)
        properties = {
            "PERFORMANCE_HINT": self.config.openvino.performance_hint if streams == 1 else "THROUGHPUT",
            "INFERENCE_PRECISION_HINT": self.compiled.details["inference_precision"],
            "INFERENCE_NUM_THREADS": self.config.intra_op_threads,
        }
        if streams > 1:
            properties["NUM_STREAMS"] = streams
        try:
            self.model = ov.Core().compile_model(str(self.compiled.artifact), "CPU", properties)
        except Exception as err:  # OpenVINO raises RuntimeError subclasses of its own
            raise UserError(f"OpenVINO cannot load the model: {one_line(err)}", file=self.compiled.artifact) from None
        self.request = self.model.create_infer_request()
        self.streams = streams

    def _outputs(self) -> dict[str, np.ndarray]:
        return {
            name: self.request.get_output_tensor(i).data.copy() for i, name in enumerate(self.compiled.output_names)
        }

    def predict(self, feeds: Feeds) -> dict[str, np.ndarray]:
        # share_inputs: fresh tensors over the arrays, whatever shapes an earlier bind() set.
        self.request.infer(declared_feeds(feeds, self.compiled.input_names), share_inputs=True)
        return self._outputs()

    def bind(self, feeds: Feeds) -> Callable[[], object]:
        import openvino as ov

        # Input tensors share the arrays' memory and are set once: the timed call only runs the graph.
        declared = declared_feeds(feeds, self.compiled.input_names)
        request = self.request
        for name, array in declared.items():
            request.set_tensor(name, ov.Tensor(array, shared_memory=True))
        return request.infer

    def settings(self) -> dict[str, Any]:
        settings = {
            "engine": "openvino",
            "device": "CPU",
            "intra_op_threads": self.config.intra_op_threads,
            "cpu_affinity": self.config.cpu_affinity,
            "performance_hint": self.config.openvino.performance_hint if self.streams <= 1 else "THROUGHPUT",
            "instances": max(1, self.streams),
        }
        if self.model is not None:
            for key in ("INFERENCE_PRECISION_HINT", "NUM_STREAMS", "INFERENCE_NUM_THREADS"):
                settings[key.lower()] = str(self.model.get_property(key))
        return settings

    def close(self) -> None:
        self.request = None
        self.model = None
        self.streams = 0


ENGINE = Engine(name="openvino", precisions=PRECISIONS, compile=compile_model, runtime=OpenVinoBackend)
