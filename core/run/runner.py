"""One benchmark run: compile -> accuracy and numeric checks -> performance per batch size -> report.

The report is filled in as the run goes and written in a `finally`, so Ctrl-C, SIGTERM or a crash
in one batch size never loses what was already measured.
"""

from __future__ import annotations

import logging
import signal
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from backends.base import AUTO
from core.common import console
from core.measure.dataset_pass import DATASET_BATCH_SIZE, run_features
from core.common.errors import Interrupted, UserError
from core.measure.timing import MeasurePolicy, measure_clients
from core.measure.memory import PeakRss, compile_memory_fields, perf_memory_fields
from core.model.source import SourceModel, resolve_repo_path, resolve_source
from core.common.paths import state_dir
from backends import load_backend
from core.config.registry import Task, architecture_config, dataset_loader_class
from core.reporting.report import RunReport
from core.reporting.schema import PerfRow
from datasets.base import DatasetRequest, Features, ModelInputs

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class RunOptions:
    hardware_type: str
    output_dir: Path = Path("reports")
    batch_sizes: list[int] | None = None
    compile_only: bool | None = None
    data_path: Path | None = None
    engine: str | None = None       # pins the backend's engine (overrides the workload)
    precision: str | None = None    # pins the precision, or "auto" (overrides the workload)
    offline: bool = False
    debug: bool = False
    scenario: list[str] | None = None  # LoadGen scenarios (overrides the workload's)

    def overrides(self) -> dict[str, Any]:
        """What the command line changed from the workload, for the report's Config."""
        given = {"batch_sizes": self.batch_sizes, "compile_only": self.compile_only, "engine": self.engine,
                 "precision": self.precision, "data_path": str(self.data_path) if self.data_path else None,
                 "scenario": self.scenario}
        return {key: value for key, value in given.items() if value is not None}


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
        shapes=tuple(tuple(model.input_shape[name]) for name in model.input_names),
        layout=model.layout,
    )


def run_task(task: Task, options: RunOptions) -> RunReport:
    """Run one task; the report as measured, `written` where it was saved (None when nothing was)."""
    workload, model = task.workload, task.model
    spec = load_backend(options.hardware_type)
    config = spec.make_config(options.engine or workload.engine, workload.engine_options,
                              source="--engine" if options.engine else task.workload_file)
    precision = options.precision or workload.precision or AUTO
    dataset = model.dataset_name or "fake_dataset"
    # ByteMLPerf's convention: the file is named for the model's precision unless one was pinned;
    # Graph Compile's "Compile Precision" says what ran.
    report = RunReport(model=model.model, backend=spec.name, precision=model.model_precision if precision == AUTO else precision,
                       dataset=dataset)
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
            console.info(f"report: {report.write(options.output_dir)}")
    return report


def _raise_interrupted(signum, frame):  # noqa: ARG001 - signal handler signature
    raise Interrupted(f"signal {signum}")


def _run(task: Task, options: RunOptions, spec, config, precision: str, report: RunReport) -> None:
    from backends.base import CompileRequest
    from core.measure.host import host_info, software_versions

    workload, model = task.workload, task.model
    report.sections["Host"] = host_info()
    report.sections["Software"] = software_versions()
    report.sections["Config"] = {
        "workload": workload.model_dump(mode="json"),
        "workload_file": str(task.workload_file),
        "model": model.model_dump(mode="json", exclude={"assets"}),
        "backend": config.model_dump(mode="json"),
        "overrides": options.overrides(),
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
    if (workload.test_accuracy or workload.test_numeric or precision in ("INT8", AUTO)) and model.dataset_name:
        loader = _make_loader(task, inputs, options)
    elif workload.test_numeric:  # ByteMLPerf runs numeric checks of dataset-less models on fake data
        loader = _make_loader(task, inputs, options, dataset="fake_dataset")

    request = CompileRequest(
        model=model,
        source=source,
        precision=precision,
        batch_sizes=batch_sizes,
        cache_dir=state_dir(),
        sample_feeds=sample_feeds,
        calibration_feeds=(lambda: _calibration_feeds(loader)) if loader and model.dataset_name else None,
    )
    compiler = spec.compile_backend(config)
    compile_memory = PeakRss().start()  # covers choosing the engine too: every candidate is compiled
    request = compiler.pre_optimize(request)
    candidates = compiler.candidates(request)
    if len(candidates) == 1:
        chosen = candidates[0]
        with console.status(f"compiling {model.model} for {spec.name} ({chosen.label})"):
            compiled = _compile(spec, chosen, request)
        selection = None
    else:
        selection = _select(task, options, spec, candidates, request, source, inputs, loader, batch_sizes[0])
        chosen, compiled = selection.candidate, selection.compiled
    config = chosen.config
    report.sections["Config"]["backend"] = config.model_dump(mode="json")
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
        **({"Engine Selection": selection.section} if selection else {}),
        **({"Details": compiled.details} if compiled.details else {}),
    }
    report.sections["Graph Compile"].update(compile_memory_fields(compile_memory, compiled.artifact))
    compile_only = workload.compile_only if options.compile_only is None else options.compile_only
    if compile_only:
        # An empty Performance list must not hide the last measured report.
        report.replaces_latest = False
        message = f"compile only: nothing measured; kept under runs/ only, result-{report.precision.lower()}.json is unchanged"
        report.notes.append(message)
        console.info(message)
        return

    runtime = spec.runtime_backend(compiled, config)
    try:
        if loader is not None and (workload.test_accuracy or workload.test_numeric):
            _accuracy(task, loader, runtime, source, report, options, sample_feeds)
        if not workload.test_perf:
            report.notes.append("test_perf is false: performance not measured")
            console.info("test_perf is false: skipping the performance section")
        for batch_size in batch_sizes if workload.test_perf else ():
            row = _perf_row(runtime, batch_size, sample_feeds, MeasurePolicy.from_workload(workload), options,
                            workload.clients, report)
            report.performance.append(row)  # recorded before it is announced: an interruption keeps it
            if row.ok:
                console.info(
                    f"bs {batch_size}: {row.qps:.2f} QPS, p50 {row.p50_latency:.1f} ms, "
                    f"p99 {row.p99_latency:.1f} ms over {row.iterations} iterations"
                    + (f" ({workload.clients} clients)" if workload.clients > 1 else "")
                )
        scenarios = options.scenario or workload.scenario
        if scenarios:
            from core.scenarios import loadgen

            loadgen.run(
                workload=workload, scenarios=scenarios, runtime=runtime, clients=workload.clients,
                max_batch=max(batch_sizes), sample_feeds=sample_feeds, loader=loader, report=report,
                folder=report.folder(options.output_dir))
        report.sections["Runtime"] = runtime.settings()
    finally:
        runtime.close()
    if report.performance:
        console.console.print(console.performance_table(f"{model.model} on {spec.name} ({compiled.engine} {compiled.precision})",
                                                        report.performance))


def _prepare_assets(task: Task, options: RunOptions) -> list[dict[str, Any]]:
    """Install missing real assets when the network allows; otherwise say so and go on with fallbacks."""
    from core.assets import ensure_assets, network_available, offline_forced, resolve_base_url
    from core.config.registry import dataset_assets

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


def _perf_row(runtime, batch_size: int, sample_feeds, policy: MeasurePolicy, options: RunOptions, clients: int,
              report: RunReport) -> PerfRow:
    """Measure one batch size with `clients` concurrent callers; an engine error is recorded in the row and the run goes on."""
    from core.measure.clients import open_instances, record

    peak = PeakRss()
    try:
        with peak:  # loading and binding count: they are part of what a batch size needs
            runtime.load(batch_size)
            instances = open_instances(runtime, clients)
            record(instances, report)
            calls = instances.calls(sample_feeds(batch_size))
            with console.progress(f"batch size {batch_size}", total=policy.max_seconds) as advance:
                result = measure_clients(calls, policy, batch_size, on_iteration=advance)
        return replace(result.perf_row(), **perf_memory_fields(peak, runtime))
    except (KeyboardInterrupt, Interrupted, UserError):
        raise
    except Exception as err:  # one failing batch size (OOM, engine error) must not end the run
        if options.debug:
            traceback.print_exc()
        console.warn(f"batch size {batch_size} failed: {type(err).__name__}: {err}")
        return PerfRow(bs=batch_size, status="failed", error=f"{type(err).__name__}: {str(err)[:500]}",
                       **perf_memory_fields(peak, runtime))


def _compile(spec, candidate, request):
    from dataclasses import replace

    return spec.compile_backend(candidate.config).compile(replace(request, precision=candidate.precision))


def _select(task: Task, options: RunOptions, spec, candidates, request, source: SourceModel, inputs: ModelInputs,
            loader, batch_size: int):
    """Time every candidate at the first batch size and keep the fastest that passes the accuracy gate."""
    from core.quality import selection as tuning
    from core.quality.reference import reference_label, reference_outputs

    workload = task.workload

    def make_gate() -> tuning.Gate:
        limit = tuning.GATE_MAX_FEATURES if source.synthetic else tuning.GATE_MAX_FEATURES_METRIC
        gate_loader = _gate_loader(task, inputs, options, loader, limit)
        features = gate_loader.load()
        reference = reference_outputs(task.model, source, features, request.sample_feeds)
        tokenizer = (features.provenance or gate_loader.provenance()).get("tokenizer") or {}
        # A task metric means something only with real weights and the model's own tokenizer.
        meaningful = not source.synthetic and tokenizer.get("meaningful_accuracy") is not False
        evaluate = gate_loader.evaluate if task.model.dataset_name else None
        return tuning.make_gate(features, reference, reference_label(source), evaluate=evaluate, synthetic=not meaningful)

    data = {"dataset": task.model.dataset_name, "data_path": str(options.data_path or workload.data_path or ""),
            "data_percent": workload.data_percent, "seed": workload.seed}
    return tuning.select(
        candidates,
        model=task.model.model,
        compile_candidate=lambda candidate: _compile(spec, candidate, request),
        make_runtime=spec.runtime_backend,
        batch_size=batch_size,
        feeds=request.sample_feeds(batch_size),
        make_gate=make_gate,
        cache_payload={"source": source.digest, "data": data, "backend": spec.name},
    )


def _gate_loader(task: Task, inputs: ModelInputs, options: RunOptions, loader, limit: int):
    """The accuracy gate's sample: the dataset when small, else a deterministic share of it; generated inputs without one."""
    if not task.model.dataset_name:  # generated inputs: the numeric check's own loader when there is one
        from datasets.fake_dataset import FakeDataset

        return loader or FakeDataset(DatasetRequest(model=inputs, seed=task.workload.seed))
    count = len(loader.load())
    if count <= limit:
        return loader
    return _make_loader(task, inputs, options, data_percent=task.workload.data_percent * limit / count)


# --- accuracy and numeric drift --------------------------------------------------------------

def _make_loader(task: Task, inputs: ModelInputs, options: RunOptions, dataset: str | None = None,
                 data_percent: float | None = None):
    model, workload = task.model, task.workload
    loader_class = dataset_loader_class(dataset or model.dataset_name, task.model_file)
    # CLI, then workload; the loader itself falls back to $PERFBENCH_<DATASET>_PATH, its default file, its sample.
    data_path = options.data_path or (resolve_repo_path(workload.data_path) if workload.data_path else None)
    tokenizer = model.tokenizer or loader_class.default_tokenizer(model.model)
    local = resolve_repo_path(tokenizer) if tokenizer else None
    if local is not None and local.exists():  # a repo-relative folder or vocab file, not a hub id
        tokenizer = str(local)
    request = DatasetRequest(
        model=inputs,
        tokenizer=tokenizer,
        data_path=data_path,
        data_percent=data_percent or workload.data_percent,
        cache_dir=state_dir() / "features",
        seed=workload.seed,
        labels=tuple(model.labels),
    )
    return loader_class(request)


def _calibration_feeds(loader, count: int = 32) -> list[dict[str, np.ndarray]]:
    features = loader.load()
    return [{name: array[i : i + 1] for name, array in features.inputs.items()} for i in range(min(count, len(features)))]


def _accuracy(task: Task, loader, runtime, source: SourceModel, report: RunReport, options: RunOptions, sample_feeds) -> None:
    workload, model = task.workload, task.model
    dataset = loader.name or model.dataset_name
    console.info(f"loading {dataset}")
    features = loader.load()
    provenance = features.provenance or loader.provenance()
    if provenance.get("source") != "file":
        console.warn(f"{dataset}: {provenance.get('note') or provenance.get('source')}")
    tokenizer = provenance.get("tokenizer") or {}
    if tokenizer.get("meaningful_accuracy") is False:
        console.banner(f"{dataset}: {tokenizer.get('note', 'fallback tokenizer')}")
    batch_size = min(DATASET_BATCH_SIZE, model.max_batch_size)
    length_aware = workload.length_aware and features.sequence
    console.info(f"running {len(features)} features (batch {batch_size}, {'length-grouped' if length_aware else 'padded'})")
    with console.progress(dataset, total=len(features)) as advance:
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
        **({"Mean True Length": round(float(features.lengths.mean()), 2)} if features.sequence else {}),
    }
    report.sections["Accuracy"] = accuracy
    if workload.test_numeric:
        accuracy.update(_numeric(task, source, features, outputs, options, report, sample_feeds))
    # NaN/Inf never score (the evaluators and the drift statistics leave them out); say so at the top too.
    nonfinite = {k: accuracy[k] for k in ("Non-finite Outputs", "Non-finite") if accuracy.get(k)}
    if nonfinite:
        message = "the model returned NaN/Inf: " + ", ".join(f"{k} {v}" for k, v in nonfinite.items())
        console.warn(message)
        report.notes.append(message)
    shown = {k: v for k, v in accuracy.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    console.info("accuracy: " + ", ".join(f"{k} {v:.4g}" for k, v in shown.items()))


def _numeric(task: Task, source: SourceModel, features: Features, outputs, options: RunOptions, report: RunReport,
             sample_feeds) -> dict[str, Any]:
    """Drift against the CPU FP32 reference, computed once per weights+features and cached."""
    from core.quality.drift import compare_outputs
    from core.quality.reference import reference_label, reference_outputs

    reference = reference_outputs(task.model, source, features, sample_feeds)
    # Stored next to the kept run; "Diff Dist" is relative to the report's folder, as ByteMLPerf writes it.
    name = f"runs/{report.run_id}-diff.png"
    lengths = features.lengths if features.sequence else None
    drift = compare_outputs(reference, outputs, lengths, histogram=report.folder(options.output_dir) / name)
    drift["Diff Dist"] = name
    drift["Numeric Reference"] = reference_label(source)
    return drift
