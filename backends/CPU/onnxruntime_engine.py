"""onnxruntime engine: the shared ONNX export, transformer fusion (or onnxslim), optional INT8; cached.

Artifacts live under <state>/compiled/<model>/onnxruntime/<key>/, keyed by the export, the stage
options, the library versions and this pipeline's code.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from backends.base import CompiledModel, CompileRequest, Feeds, RuntimeBackend, declared_feeds
from backends.CPU.config import CpuConfig
from backends.CPU.engines import Engine, calibration_batches, pin_process, unsupported_precision
from backends.CPU.export import architecture, exported_onnx, graph_io, library_versions, stage_record
from core.common.artifact_cache import cached_folder, code_digest
from core.common.errors import UserError, one_line

PRECISIONS = ("FP32", "INT8")
ARTIFACT = "model.onnx"


def compile_model(request: CompileRequest, config: CpuConfig) -> CompiledModel:
    options = config.onnxruntime
    if request.precision not in PRECISIONS:
        raise unsupported_precision("onnxruntime", request.precision, PRECISIONS)
    if request.precision == "INT8" and options.int8_mode == "static" and request.calibration_feeds is None:
        raise UserError(
            "static INT8 needs calibration data",
            field="engine_options.int8_mode",
            fix="give the model a dataset_name, or use int8_mode dynamic",
        )
    from backends.CPU import onnx_stages

    start = time.perf_counter()
    exported, export_stage, _ = exported_onnx(request, config.opset)
    int8_mode = _int8_recipe(options.int8_mode, exported) if request.precision == "INT8" else None
    options = options.model_copy(update={"int8_mode": int8_mode or options.int8_mode})
    stage_options = {
        "simplify": options.simplify,
        "optimize": options.optimize,
        "precision": request.precision,
        "int8_mode": int8_mode,
    }
    payload = {
        "export": str(exported) if request.source.kind != "onnx" else request.source.digest,
        "stages": stage_options,
        "versions": library_versions("onnx", "onnxruntime", "onnxslim"),
        "code": code_digest(Path(__file__), Path(onnx_stages.__file__)),
    }

    def build(work: Path) -> dict[str, Any]:
        return _run_stages(request, options, exported, export_stage, work)

    entry = cached_folder(request.cache_dir / "compiled" / request.model.model / "onnxruntime", payload, build)
    meta = entry.meta
    return CompiledModel(
        engine="onnxruntime",
        precision=meta["precision"],
        artifact=entry.path / ARTIFACT,
        input_names=meta["input_names"],
        output_names=meta["output_names"],
        compile_seconds=time.perf_counter() - start,
        cache_hit=entry.hit,
        optimizations=meta["optimizations"],
        details={
            "stages": meta["stages"],
            "cache_key": entry.path.name,
            "first_compile_seconds": meta.get("compile_seconds"),
        },
    )


def _run_stages(request: CompileRequest, options, exported: Path, export_stage, work: Path) -> dict[str, Any]:
    from backends.CPU import onnx_stages

    start = time.perf_counter()
    stages: list[dict[str, Any]] = [export_stage] if export_stage else []
    optimizations = (
        ["onnx model file"]
        if request.source.kind == "onnx"
        else [f"torch->onnx export (opset {export_stage['details']['opset']}, dynamic batch and sequence)"]
    )
    current = exported

    def advance(name: str, run) -> None:
        nonlocal current
        result = run(current, work / f"{name}.onnx")
        stages.append(stage_record(result))
        current = Path(result.path)

    arch = architecture(request)
    model_type = onnx_stages.fusion_model_type(arch.get("model_type", "")) if arch else None
    fused_ok = bool(options.optimize and model_type)
    if fused_ok:
        advance(
            "optimized",
            lambda src, dst: onnx_stages.optimize_transformer(
                src, dst, model_type=model_type, num_heads=arch["num_attention_heads"], hidden_size=arch["hidden_size"]
            ),
        )
        fused = stages[-1]["details"].get("fused", {})
        optimizations.append("onnxruntime transformer fusion: " + ", ".join(f"{k} x{v}" for k, v in fused.items() if v))
    elif options.optimize:
        optimizations.append("transformer fusion skipped: no fusion rules for this architecture")
    # Never before fusion (onnxslim's rewrites hide the attention pattern, and it copies ALBERT's
    # shared layer weights into every layer); after fusion it found nothing left to do.
    if options.simplify and not fused_ok:
        advance("simplified", onnx_stages.simplify)
        optimizations.append("onnxslim simplification")
    if request.precision == "INT8":
        if options.int8_mode == "static":
            feeds, source = calibration_batches(request, CALIBRATION_SAMPLES)
            advance("int8", lambda src, dst: onnx_stages.quantize_int8_static(src, dst, feeds, per_channel=True))
            optimizations.append(f"int8 static QDQ quantization, per channel ({source}, {len(feeds)} samples)")
        else:
            advance("int8", onnx_stages.quantize_int8_dynamic)
            optimizations.append("int8 dynamic quantization")
    final = work / ARTIFACT
    onnx_stages.move_onnx(current, final, keep_source=current == exported)
    for leftover in work.glob("*.onnx*"):
        if leftover not in (final, final.with_name(f"{final.name}.data")):
            leftover.unlink()
    input_names, output_names = graph_io(final)
    return {
        "precision": request.precision,
        "input_names": input_names,
        "output_names": output_names,
        "optimizations": optimizations,
        "stages": stages,
        "compile_seconds": round(time.perf_counter() - start, 3),
    }


CALIBRATION_SAMPLES = 16


def _int8_recipe(mode: str, exported: Path) -> str:
    """auto: static QDQ where the graph convolves (dynamic quantization of convolutions runs slower than fp32:
    onnxruntime's guide recommends static for CNNs), dynamic for the rest (transformers)."""
    if mode != "auto":
        return mode
    import onnx

    graph = onnx.load(str(exported), load_external_data=False).graph
    return "static" if any(node.op_type == "Conv" for node in graph.node) else "dynamic"


class OnnxRuntimeBackend(RuntimeBackend):
    config: CpuConfig

    def __init__(self, compiled: CompiledModel, config: CpuConfig):
        super().__init__(compiled, config)
        self.session = None
        self.instance_count = 1

    def load(self, batch_size: int) -> None:
        # The graph has dynamic batch and sequence axes: one session serves every batch size.
        if self.session is None:
            self._open(self.config.intra_op_threads)
        self.batch_size = batch_size

    def instances(self, count: int) -> list[RuntimeBackend]:
        # InferenceSession.run is thread-safe: the clients share one session, each with its own
        # bindings, and the intra-op threads are split so the concurrent runs share the cores.
        if count != self.instance_count:
            self.instance_count = count
            self._open(self._threads_per_instance())
        return [self] * count

    def _threads_per_instance(self) -> int:
        return max(1, self.config.intra_op_threads // self.instance_count)

    def _open(self, threads: int) -> None:
        pin_process(self.config)
        self.session = self._session(self._options(threads), str(self.compiled.artifact))

    def _options(self, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = self.config.inter_op_threads
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if self.config.onnxruntime.spin else "0"
        )
        return options

    def _session(self, options, model):
        import onnxruntime as ort

        try:
            return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types for corrupt files
            raise UserError(
                f"onnxruntime cannot load the model: {one_line(err)}", file=self.compiled.artifact
            ) from None

    def predict(self, feeds: Feeds) -> dict[str, np.ndarray]:
        names = self.compiled.output_names
        results = self.session.run(names, declared_feeds(feeds, self.compiled.input_names))
        return dict(zip(names, results))

    def bind(self, feeds: Feeds) -> Callable[[], object]:
        if not self.config.onnxruntime.io_binding:
            return super().bind(feeds)
        import onnxruntime as ort

        # Inputs are bound once and outputs preallocated (their shapes from one untimed run),
        # so the timed call only runs the graph: no copies, no allocations.
        declared = declared_feeds(feeds, self.compiled.input_names)
        shapes = self.predict(declared)
        binding = self.session.io_binding()
        for name, array in declared.items():
            binding.bind_cpu_input(name, array)
        for name in self.compiled.output_names:
            binding.bind_ortvalue_output(name, ort.OrtValue.ortvalue_from_numpy(np.empty_like(shapes[name])))
        session = self.session
        return lambda: session.run_with_iobinding(binding)

    def settings(self) -> dict[str, Any]:
        return {
            "engine": "onnxruntime",
            "providers": ["CPUExecutionProvider"],
            "intra_op_threads": self._threads_per_instance(),
            "inter_op_threads": self.config.inter_op_threads,
            "instances": self.instance_count,
            "cpu_affinity": self.config.cpu_affinity,
            "io_binding": self.config.onnxruntime.io_binding,
            "spinning": self.config.onnxruntime.spin,
        }

    def peak_probe(self, precision: str):
        """One MatMul (MatMulInteger for INT8, what dynamic quantization runs) in onnxruntime itself."""
        import onnxruntime as ort

        from core.measure.peak import GEMM_SIZE, PeakProbe

        n = GEMM_SIZE
        model = _matmul_model(n, precision)
        threads = self.config.intra_op_threads
        session = self._session(self._options(threads), model.SerializeToString())
        rng = np.random.default_rng(0)
        if precision == "INT8":
            a = rng.integers(0, 255, (n, n), dtype=np.uint8)
        else:
            a = rng.standard_normal((n, n), dtype=np.float32)
        binding = session.io_binding()
        binding.bind_cpu_input("a", a)
        binding.bind_output("y")
        op = "MatMulInteger u8 x s8" if precision == "INT8" else "MatMul"
        return PeakProbe(
            f"onnxruntime {ort.__version__} {op} {n}x{n}x{n}, {threads} threads",
            precision,
            2.0 * n**3,
            lambda: session.run_with_iobinding(binding),
        )

    def profile(self, feeds: Feeds, calls: int, folder: Path):
        """onnxruntime's session profiling: a Chrome trace of every node's kernel time."""
        from core.measure.operators import RawProfile

        folder.mkdir(parents=True, exist_ok=True)
        options = self._options(self._threads_per_instance())
        options.enable_profiling = True
        options.profile_file_prefix = str(folder / "onnxruntime")
        session = self._session(options, str(self.compiled.artifact))
        declared = declared_feeds(feeds, self.compiled.input_names)
        session.run(None, declared)  # the first call's allocations are not what a warm call costs
        start = time.perf_counter()
        for _ in range(calls):
            session.run(None, declared)
        wall = time.perf_counter() - start
        trace = Path(session.end_profiling())
        warmed: set[str] = set()

        def timed(kernels):
            for name, op, event in kernels:
                if name in warmed:
                    yield name, op, event
                warmed.add(name)  # each node's first run belongs to the untimed first call

        events = op_events(timed(kernel_events(trace_events(trace))))
        return RawProfile("onnxruntime", "onnxruntime session profiling", calls, wall, events, trace)

    def close(self) -> None:
        self.session = None


def _matmul_model(n: int, precision: str):
    """y = a @ W with W a constant, as the engine runs a linear layer."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    if precision == "INT8":
        weight = numpy_helper.from_array(rng.integers(-127, 127, (n, n), dtype=np.int8), "w")
        node = helper.make_node("MatMulInteger", ["a", "w"], ["y"])
        a_type, y_type = TensorProto.UINT8, TensorProto.INT32
    else:
        weight = numpy_helper.from_array(rng.standard_normal((n, n), dtype=np.float32), "w")
        node = helper.make_node("MatMul", ["a", "w"], ["y"])
        a_type = y_type = TensorProto.FLOAT
    graph = helper.make_graph(
        [node],
        "peak",
        [helper.make_tensor_value_info("a", a_type, [n, n])],
        [helper.make_tensor_value_info("y", y_type, [n, n])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what opset 17 needs; onnx's default may be newer than this onnxruntime reads
    return model


def trace_events(path: Path) -> list[dict[str, Any]]:
    """The events of an onnxruntime profile (a Chrome trace)."""
    import json

    data = json.loads(path.read_text(encoding="utf-8"))
    events = data.get("traceEvents", data) if isinstance(data, dict) else data
    return [event for event in events if isinstance(event, dict)]


def kernel_events(events: list[dict[str, Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    """(node name, op name, event) of each node's kernel run among `events`, in time order."""
    kernels = []
    for event in sorted(events, key=lambda event: float(event.get("ts", 0))):
        if event.get("cat") == "Node" and str(event.get("name", "")).endswith("_kernel_time"):
            op = str((event.get("args") or {}).get("op_name", "?"))
            kernels.append((event["name"][: -len("_kernel_time")], op, event))
    return kernels


def op_events(kernels) -> list:
    """One OpEvent a node, summing its kernel runs among `kernels` ((name, op, event) as kernel_events gives)."""
    from core.measure.operators import OpEvent

    events: dict[str, OpEvent] = {}
    for name, op, event in kernels:
        found = events.setdefault(name, OpEvent(name, op, 0.0, 0))
        found.microseconds += float(event.get("dur", 0))
        found.count += 1
    return list(events.values())


ENGINE = Engine(name="onnxruntime", precisions=PRECISIONS, compile=compile_model, runtime=OnnxRuntimeBackend)
