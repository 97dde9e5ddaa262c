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
from backends.CPU.engines import Engine, calibration_batches, pin_process, unsupported_precision
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
    batches, source = calibration_batches(request, samples)
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
        pin_process(self.config)
        self.model = self._compiled(streams)
        self.request = self.model.create_infer_request()
        self.streams = streams

    def _compiled(self, streams: int, **extra):
        import openvino as ov

        properties = {
            "PERFORMANCE_HINT": self.config.openvino.performance_hint if streams == 1 else "THROUGHPUT",
            "INFERENCE_PRECISION_HINT": self.compiled.details["inference_precision"],
            "INFERENCE_NUM_THREADS": self.config.intra_op_threads,
        }
        if streams > 1:
            properties["NUM_STREAMS"] = streams
        try:
            return ov.Core().compile_model(str(self.compiled.artifact), "CPU", {**properties, **extra})
        except Exception as err:  # OpenVINO raises RuntimeError subclasses of its own
            raise UserError(f"OpenVINO cannot load the model: {one_line(err)}", file=self.compiled.artifact) from None

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

    def peak_probe(self, precision: str):
        """One MatMul against constant weights in OpenVINO itself, at the inference precision the run used;
        INT8 as NNCF leaves it: FakeQuantize on both operands, which OpenVINO executes as an int8 MatMul."""
        import openvino as ov

        from core.measure.peak import GEMM_SIZE, PeakProbe

        n = GEMM_SIZE
        hint = _precision_hint(precision) if precision in PRECISIONS else "f32"
        threads = self.config.intra_op_threads
        compiled = ov.Core().compile_model(
            _matmul_model(n, precision == "INT8"),
            "CPU",
            {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads},
        )
        request = compiled.create_infer_request()
        request.set_input_tensor(ov.Tensor(np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)))
        op = "FakeQuantize+MatMul (int8)" if precision == "INT8" else "MatMul"
        return PeakProbe(
            f"openvino {ov.__version__} {op} {n}x{n}x{n}, {hint}, {threads} threads",
            precision,
            2.0 * n**3,
            request.infer,
        )

    def profile(self, feeds: Feeds, calls: int, folder: Path):
        """OpenVINO's performance counters (PERF_COUNT): each executed node's real time, call by call."""
        folder.mkdir(parents=True, exist_ok=True)
        compiled = self._compiled(max(1, self.streams), PERF_COUNT=True)  # one stream's threads, as timed
        fused = self._fused_types(compiled)
        request = compiled.create_infer_request()
        declared = declared_feeds(feeds, self.compiled.input_names)
        request.infer(declared, share_inputs=True)  # warm-up: first-call allocations
        counters = PerfCounters(fused)
        counters.mark(request, 1)
        for call in range(calls):
            start = time.perf_counter()
            request.infer(declared, share_inputs=True)
            counters.wall += time.perf_counter() - start
            counters.add(request, call + 2, call, counters.wall * 1e6)
        return counters.raw("openvino", calls, folder / "openvino_perf_counters.json")

    def _fused_types(self, compiled) -> dict[str, str]:
        """Each Snippets `Subgraph` node's common type, from the original layers it fuses (the runtime model's
        originalLayersNames, looked up in the model as read): Snippets fuses attention's MatMul-Softmax-MatMul
        into one, which its node type alone would file as elementwise."""
        import openvino as ov

        from core.measure.operators import fused_type

        original = {
            op.get_friendly_name(): op.get_type_name() for op in ov.Core().read_model(self.compiled.artifact).get_ops()
        }
        kinds = {}
        for node in compiled.get_runtime_model().get_ops():
            info = node.get_rt_info()
            if info["layerType"].astype(str) == "Subgraph":
                names = [name for name in info["originalLayersNames"].astype(str).split(",") if name]
                kinds[node.get_friendly_name()] = fused_type([original.get(name, name) for name in names])
        return kinds

    def close(self) -> None:
        self.request = None
        self.model = None
        self.streams = 0


class PerfCounters:
    """OpenVINO's performance counters (PERF_COUNT) over profiled calls: each executed node's real time summed
    per node, and a Chrome trace with the node times laid end to end (OpenVINO reports durations, not starts).

    The CPU plugin reports, per node, the average over every infer its request has run since it was made (a
    prefill's 80 ms still weighed in a later decode step's figure), so a call's own times are differences of
    totals (average x infers): `mark` a request before the call, `add` it after, each with the number of
    infers that request has run. The averages come rounded to the microsecond; the deltas carry that rounding
    times the infer count (a few microseconds a node for the few infers a profile runs)."""

    def __init__(self, fused: dict[str, str] | None = None):
        self.fused = fused or {}  # node name -> its common type, for fused Snippets subgraphs
        self.events: dict[str, Any] = {}
        self.trace: list[dict[str, Any]] = []
        self.wall = 0.0  # the profiled calls' own wall seconds, summed by the caller
        self._marked: dict[int, dict[str, float]] = {}  # id(request) -> node name -> total microseconds

    @staticmethod
    def _totals(request, infers: int) -> dict[str, tuple[Any, float]]:
        """Node name -> (its profiling info, microseconds over all `infers` of `request`), executed nodes only."""
        return {
            info.node_name: (info, info.real_time.total_seconds() * 1e6 * infers)
            for info in request.get_profiling_info()
            if str(info.status).split(".")[-1] == "EXECUTED"
        }

    def mark(self, request, infers: int) -> None:
        """Where `request` stands before a profiled call, after `infers` infers."""
        self._marked[id(request)] = {name: total for name, (_, total) in self._totals(request, infers).items()}

    def add(self, request, infers: int, call: int, offset_us: float) -> float:
        """The nodes `request` ran since its mark (now `infers` infers in all), as part of profiled call `call`,
        from `offset_us` on in the trace; the offset after them. It is marked anew."""
        from core.measure.operators import OpEvent

        before = self._marked.get(id(request))
        if before is None:
            raise ValueError("PerfCounters.add on a request that was not marked before the call")
        now = self._totals(request, infers)
        for name, (info, total) in now.items():
            micros = max(0.0, total - before.get(name, 0.0))
            found = self.events.setdefault(name, OpEvent(name, info.node_type, 0.0, 0, kind=self.fused.get(name)))
            found.microseconds += micros
            found.count += 1
            self.trace.append(
                {
                    "name": name,
                    "cat": info.node_type,
                    "ph": "X",
                    "ts": round(offset_us, 1),
                    "dur": round(micros, 1),
                    "pid": 0,
                    "tid": 0,
                    "args": {"exec_type": info.exec_type, "call": call},
                }
            )
            offset_us += micros
        self._marked[id(request)] = {name: total for name, (_, total) in now.items()}
        return offset_us

    def raw(self, engine: str, calls: int, path: Path):
        """The RawProfile of what was gathered, its trace written to `path`."""
        import json

        from core.measure.operators import RawProfile

        path.write_text(json.dumps({"traceEvents": self.trace}), encoding="utf-8")
        return RawProfile(
            engine,
            "OpenVINO performance counters (PERF_COUNT, get_profiling_info)",
            calls,
            self.wall,
            list(self.events.values()),
            path,
            note="node times are laid end to end in the trace: OpenVINO reports durations, not start times",
        )


def _matmul_model(n: int, int8: bool):
    """y = a @ W with W constant; with int8, both operands behind FakeQuantize as NNCF quantizes a linear layer."""
    import openvino as ov
    import openvino.opset13 as ops

    a = ops.parameter([n, n], np.float32, name="a")
    weight = ops.constant(np.random.default_rng(1).standard_normal((n, n), dtype=np.float32))
    left, right = a, weight
    if int8:

        def fake_quantize(node, low, high, levels):
            lo, hi = ops.constant(np.float32(low)), ops.constant(np.float32(high))
            return ops.fake_quantize(node, lo, hi, lo, hi, levels)

        left = fake_quantize(a, -4.0, 4.0, 256)
        right = fake_quantize(weight, -4.0, 4.0, 255)
    return ov.Model([ops.matmul(left, right, False, False)], [a], "peak")


ENGINE = Engine(name="openvino", precisions=PRECISIONS, compile=compile_model, runtime=OpenVinoBackend)
