"""One benchmark run: compile -> accuracy and numeric checks -> performance per batch size -> report.

The report is filled in as the run goes and written in a `finally`, so Ctrl-C, SIGTERM or a crash
in one batch size never loses what was already measured.
"""

from __future__ import annotations

import hashlib
import logging
import math
import signal
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core import console
from core.errors import UserError
from core.measure import MeasurePolicy, measure
from core.memory import PeakRss, compile_memory_fields, perf_memory_fields
from core.model_source import SourceModel, resolve_repo_path, resolve_source
from core.paths import state_dir
from core.registry import Task, architecture_config, dataset_loader_class, load_backend
from core.report import RunReport
from datasets.base import DatasetRequest, Features, ModelInputs

log = logging.getLogger(__name__)

ACCURACY_BATCH_SIZE = 8
PAD_MULTIPLE = 8  # trimmed sequence lengths are rounded up to this, to limit distinct shapes
PAD_LOGIT = -1e4  # what trimmed-away positions hold in per-token outputs


@dataclass(frozen=True)
class RunOptions:
    hardware_type: str
    output_dir: Path = Path("reports")
    batch_sizes: list[int] | None = None
    compile_only: bool | None = None
    data_path: Path | None = None
    offline: bool = False
    debug: bool = False


class Interrupted(Exception):
    """SIGTERM, turned into an exception so the report is still written."""


def model_inputs(task: Task, source: SourceModel) -> ModelInputs:
    """The facts a data loader needs, from the entry and (where known) the architecture config."""
    model = task.model
    arch = source.hf_config or (architecture_config(model.architecture) if model.architecture else {})
    return ModelInputs(
        names=tuple(model.input_names),
        dtypes=tuple(model.input_types),
        seq_len=model.seq_len,
        vocab_size=int(arch.get("vocab_size", 1000)),
        type_vocab_size=int(arch.get("type_vocab_size", 2) or 0),
        pad_token_id=int(arch.get("pad_token_id", 0) or 0),
        outputs=tuple(model.output_names),
    )


def run_task(task: Task, options: RunOptions) -> Path:
    workload, model = task.workload, task.model
    spec = load_backend(options.hardware_type)
    config = spec.make_config(workload.engine, workload.engine_options, source=task.workload_file)
    precision = workload.precision or model.model_precision
    dataset = model.dataset_name or "fake_dataset"
    report = RunReport(model=model.model, backend=spec.name, precision=precision, dataset=dataset)
    report_path: Path | None = None
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        _run(task, options, spec, config, precision, report)
        report.status = "complete"
    except (KeyboardInterrupt, Interrupted):
        report.status = "incomplete"
        report.notes.append("interrupted: the report holds what was measured before the interruption")
        raise
    except UserError:
        report.status = "failed"
        raise
    except Exception as err:
        report.status = "incomplete"
        report.notes.append(f"run failed: {type(err).__name__}: {err}")
        raise
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
        if report.status != "failed" or report.performance:
            report_path = report.write(options.output_dir)
            console.info(f"report: {report_path}")
    return report_path


def _raise_interrupted(signum, frame):  # noqa: ARG001 - signal handler signature
    raise Interrupted(f"signal {signum}")


def _run(task: Task, options: RunOptions, spec, config, precision: str, report: RunReport) -> None:
    from backends.base import CompileRequest
    from core.hostinfo import host_info, software_versions

    workload, model = task.workload, task.model
    report.sections["Host"] = host_info()
    report.sections["Software"] = software_versions()
    report.sections["Config"] = {
        "workload": workload.model_dump(mode="json"),
        "workload_file": str(task.workload_file),
        "model": model.model_dump(mode="json", exclude={"assets"}),
        "backend": config.model_dump(mode="json"),
    }
    report.sections["Assets"] = _prepare_assets(task, options)
    source = resolve_source(model, model_file=task.model_file, seed=workload.seed)
    report.sections["Weights"] = source.report_entry()
    if source.synthetic:
        console.banner(f"{model.model}: {source.note}")
    else:
        console.info(f"weights: {source.note}")
    inputs = model_inputs(task, source)
    batch_sizes = options.batch_sizes or workload.batch_sizes

    def sample_feeds(batch_size: int):
        from datasets.fake_dataset import fake_inputs

        return fake_inputs(inputs, batch_size, seed=workload.seed)

    loader = None
    if (workload.test_accuracy or workload.test_numeric or precision == "INT8") and model.dataset_name:
        loader = _make_loader(task, inputs, options)

    request = CompileRequest(
        model=model,
        source=source,
        precision=precision,
        batch_sizes=batch_sizes,
        cache_dir=state_dir(),
        sample_feeds=sample_feeds,
        calibration_feeds=(lambda: _calibration_feeds(loader)) if loader else None,
    )
    compiler = spec.compile_backend(config)
    compile_memory = PeakRss().start()  # not a `with`, so the compile lines stay as they are
    with console.status(f"compiling {model.model} for {spec.name} ({precision}, {getattr(config, 'engine', spec.name)})"):
        compiled = compiler.compile(compiler.pre_optimize(request))
    cache_note = "reused cached artifact" if compiled.cache_hit else "compiled"
    console.info(f"{cache_note} in {compiled.compile_seconds:.1f} s" + (f": {compiled.artifact}" if compiled.artifact else ""))
    report.sections["Graph Compile"] = {
        "Compile Duration": round(compiled.compile_seconds, 3),
        "Compile Precision": compiled.precision,
        "Subgraph Coverage": compiled.subgraph_coverage,
        "Optimizations": compiled.optimizations,
        "Engine": compiled.engine,
        "Cache": "hit" if compiled.cache_hit else "miss",
        "Artifact": str(compiled.artifact) if compiled.artifact else None,
        **({"Details": compiled.details} if compiled.details else {}),
    }
    report.sections["Graph Compile"].update(compile_memory_fields(compile_memory, compiled.artifact))
    compile_only = workload.compile_only if options.compile_only is None else options.compile_only
    if compile_only:
        report.notes.append("compile only: nothing measured")
        return

    runtime = spec.runtime_backend(compiled, config)
    try:
        if loader is not None and (workload.test_accuracy or workload.test_numeric):
            _accuracy(task, loader, runtime, source, inputs, report, options)
        for batch_size in batch_sizes:
            row = _perf_row(runtime, batch_size, sample_feeds, MeasurePolicy.from_workload(workload), options)
            report.performance.append(row)  # recorded before it is announced: an interruption keeps it
            if row["Status"] == "ok":
                console.info(
                    f"bs {batch_size}: {row['QPS']:.2f} QPS, p50 {row['P50 Latency']:.1f} ms, "
                    f"p99 {row['P99 Latency']:.1f} ms over {row['Iterations']} iterations"
                )
        report.sections["Runtime"] = runtime.settings()
    finally:
        runtime.close()
    console.console.print(console.performance_table(f"{model.model} on {spec.name} ({precision})", report.performance))


def _prepare_assets(task: Task, options: RunOptions) -> list[dict[str, Any]]:
    """Install missing real assets when the network allows; otherwise say so and go on with fallbacks."""
    from core.assets import ensure_assets, network_available, offline_forced, resolve_base_url
    from core.registry import dataset_assets

    workload, model = task.workload, task.model
    specs = list(model.assets)
    if model.dataset_name and (workload.test_accuracy or workload.test_numeric):
        specs += dataset_assets(model.dataset_name)
    if not specs:
        return []
    allow = not options.offline and not offline_forced()
    statuses = ensure_assets(specs, allow_network=False)  # cheap: looks at the disk only
    if allow and not all(s.usable for s in statuses):
        # One quick probe for the whole run, so an offline machine answers in seconds.
        if network_available(resolve_base_url(), timeout=3.0):
            statuses = ensure_assets(specs, allow_network=True)
        else:
            console.warn("network unreachable: using what is on disk (synthetic weights / bundled samples where missing)")
    missing = [s.name for s in statuses if not s.usable]
    if missing:
        console.info(f"assets not installed: {', '.join(missing)} (install with: python -m core.prepare --task {task.workload_file.stem})")
    return [{"name": s.name, "state": s.state, "path": str(s.path) if s.path else None, "sha256": s.sha256, "message": s.message} for s in statuses]


def _perf_row(runtime, batch_size: int, sample_feeds, policy: MeasurePolicy, options: RunOptions) -> dict[str, Any]:
    """Measure one batch size; an engine error is recorded in the row and the run goes on."""
    peak = PeakRss()
    try:
        with peak:  # loading and binding count: they are part of what a batch size needs
            runtime.load(batch_size)
            call = runtime.bind(sample_feeds(batch_size))
            with console.progress(f"batch size {batch_size}", total=policy.max_seconds) as advance:
                result = measure(call, policy, batch_size, on_iteration=advance)
        return {**result.report_row(), **perf_memory_fields(peak, runtime)}
    except (KeyboardInterrupt, Interrupted, UserError):
        raise
    except Exception as err:  # one failing batch size (OOM, engine error) must not end the run
        if options.debug:
            traceback.print_exc()
        console.warn(f"batch size {batch_size} failed: {type(err).__name__}: {err}")
        return {"BS": batch_size, "Status": "failed", "Error": f"{type(err).__name__}: {str(err)[:500]}",
                **perf_memory_fields(peak, runtime)}


# --- accuracy and numeric drift --------------------------------------------------------------

def _make_loader(task: Task, inputs: ModelInputs, options: RunOptions):
    model, workload = task.model, task.workload
    loader_class = dataset_loader_class(model.dataset_name, task.model_file)
    # CLI, then workload; the loader itself falls back to $PERFBENCH_<DATASET>_PATH, its default file, its sample.
    data_path = options.data_path or (resolve_repo_path(workload.data_path) if workload.data_path else None)
    tokenizer = model.tokenizer
    local = resolve_repo_path(tokenizer) if tokenizer else None
    if local is not None and local.exists():  # a repo-relative folder or vocab file, not a hub id
        tokenizer = str(local)
    request = DatasetRequest(
        model=inputs,
        tokenizer=tokenizer,
        data_path=data_path,
        data_percent=workload.data_percent,
        cache_dir=state_dir() / "features",
        seed=workload.seed,
        labels=tuple(model.labels),
    )
    return loader_class(request)


def _calibration_feeds(loader, count: int = 32) -> list[dict[str, np.ndarray]]:
    features = loader.load()
    return [{name: array[i : i + 1] for name, array in features.inputs.items()} for i in range(min(count, len(features)))]


def run_features(
    runtime, features: Features, batch_size: int, *, length_aware: bool, on_batch=None
) -> tuple[dict[str, np.ndarray], float]:
    """Run every feature; returns outputs in feature order and the seconds spent in the model.

    Length-aware: features are grouped by true length and each batch is trimmed to its longest
    member, so no compute goes to padding; per-token outputs are put back at full length.
    """
    count = len(features)
    seq_len = next(iter(features.inputs.values())).shape[1]
    order = np.argsort(features.lengths, kind="stable") if length_aware else np.arange(count)
    outputs: dict[str, np.ndarray] = {}
    seconds = 0.0
    runtime.load(batch_size)
    for start in range(0, count, batch_size):
        index = order[start : start + batch_size]
        width = seq_len
        if length_aware:
            width = min(seq_len, int(math.ceil(features.lengths[index].max() / PAD_MULTIPLE) * PAD_MULTIPLE))
        feeds = {name: np.ascontiguousarray(array[index, :width]) for name, array in features.inputs.items()}
        t0 = time.perf_counter()
        result = runtime.predict(feeds)
        seconds += time.perf_counter() - t0
        for name, value in result.items():
            value = np.asarray(value, dtype=np.float32)
            per_token = value.ndim >= 2 and value.shape[1] == width
            if name not in outputs:
                shape = (count, seq_len, *value.shape[2:]) if per_token else (count, *value.shape[1:])
                outputs[name] = np.full(shape, PAD_LOGIT, dtype=np.float32)
            if per_token:
                outputs[name][index, :width] = value
            else:
                outputs[name][index] = value
        if on_batch is not None:
            on_batch(start + len(index))
    return outputs, seconds


def _features_digest(features: Features) -> str:
    digest = hashlib.sha256()
    for name in sorted(features.inputs):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(features.inputs[name]).tobytes())
    digest.update(np.ascontiguousarray(features.lengths).tobytes())
    return digest.hexdigest()[:20]


def _accuracy(task: Task, loader, runtime, source: SourceModel, inputs: ModelInputs, report: RunReport, options: RunOptions) -> None:
    workload, model = task.workload, task.model
    console.info(f"loading {model.dataset_name}")
    features = loader.load()
    provenance = features.provenance or loader.provenance()
    if provenance.get("source") != "file":
        console.warn(f"{model.dataset_name}: {provenance.get('note') or provenance.get('source')}")
    tokenizer = provenance.get("tokenizer") or {}
    if tokenizer.get("meaningful_accuracy") is False:
        console.banner(f"{model.dataset_name}: {tokenizer.get('note', 'fallback tokenizer')}")
    batch_size = min(ACCURACY_BATCH_SIZE, model.max_batch_size)
    length_aware = workload.length_aware
    console.info(f"running {len(features)} features (batch {batch_size}, {'length-grouped' if length_aware else 'padded'})")
    with console.progress(f"{model.dataset_name}", total=len(features)) as advance:
        outputs, seconds = run_features(runtime, features, batch_size, length_aware=length_aware, on_batch=advance)
    accuracy: dict[str, Any] = {"Data Percent": workload.data_percent}
    if workload.test_accuracy:
        accuracy.update(loader.evaluate(outputs))
    accuracy["Dataset Provenance"] = provenance
    if source.synthetic:
        accuracy["Note"] = "synthetic weights: accuracy is not meaningful"
    report.sections["Dataset Throughput"] = {
        "Features": len(features),
        "Seconds": round(seconds, 4),
        "Features Per Second": round(len(features) / seconds, 4) if seconds else None,
        "Batch Size": batch_size,
        "Length Aware": length_aware,
        "Mean True Length": round(float(features.lengths.mean()), 2),
    }
    report.sections["Accuracy"] = accuracy
    if workload.test_numeric:
        accuracy.update(_numeric(task, runtime, source, features, outputs, options, report))
    # NaN/Inf never score (the evaluators and the drift statistics leave them out); say so at the top too.
    nonfinite = {k: accuracy[k] for k in ("Non-finite Outputs", "Non-finite") if accuracy.get(k)}
    if nonfinite:
        message = "the model returned NaN/Inf: " + ", ".join(f"{k} {v}" for k, v in nonfinite.items())
        console.warn(message)
        report.notes.append(message)
    shown = {k: v for k, v in accuracy.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    console.info("accuracy: " + ", ".join(f"{k} {v:.4g}" for k, v in shown.items()))


def _numeric(task: Task, runtime, source: SourceModel, features: Features, outputs, options: RunOptions, report: RunReport) -> dict[str, Any]:
    """Drift against the CPU FP32 PyTorch reference, computed once per weights+features and cached."""
    from core.numeric import compare_outputs, load_or_build

    if source.kind == "onnx":
        return {"Numeric Note": "no PyTorch reference for an ONNX model file"}
    key = f"{source.digest[:20]}-{_features_digest(features)}"
    path = state_dir() / "reference" / task.model.model / f"{key}.npz"

    def build():
        console.info("computing the CPU FP32 PyTorch reference outputs (cached for later runs)")
        return _reference_outputs(task, source, features)

    # Absent, half-written by a concurrent run, or corrupt: load_or_build recomputes it.
    reference, _ = load_or_build(path, build, {"engine": "pytorch", "precision": "FP32", "source": source.kind})
    # Stored next to the kept run; "Diff Dist" is relative to the report's folder, as ByteMLPerf writes it.
    name = f"runs/{report.run_id}-diff.png"
    drift = compare_outputs(reference, outputs, features.lengths, histogram=report.folder(options.output_dir) / name)
    drift["Diff Dist"] = name
    drift["Numeric Reference"] = "CPU pytorch FP32"
    return drift


def _reference_outputs(task: Task, source: SourceModel, features: Features) -> dict[str, np.ndarray]:
    from backends.base import CompiledModel
    from backends.CPU.config import CpuConfig
    from backends.CPU.runtime import TorchBackend

    compiled = CompiledModel(
        engine="pytorch",
        precision="FP32",
        artifact=source.path,
        input_names=task.model.input_names,
        output_names=task.model.output_names,
        compile_seconds=0.0,
        cache_hit=False,
        module=source.torch_module(),
    )
    reference = TorchBackend(compiled, CpuConfig(engine="pytorch"))
    with console.progress("reference", total=len(features)) as advance:
        outputs, _ = run_features(reference, features, ACCURACY_BATCH_SIZE, length_aware=True, on_batch=advance)
    return outputs
