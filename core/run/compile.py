"""Stage: compile the model, choosing the engine and precision first when more than one candidate applies."""

from __future__ import annotations

from dataclasses import replace

from backends.base import CompiledModel, CompileRequest
from core.common import console
from core.common.errors import UserError
from core.common.paths import state_dir
from core.measure.memory import PeakRss, compile_memory_fields
from core.reporting.sections import GraphCompile
from core.run.context import RunContext, accuracy_meaningful, calibration_feeds, make_loader
from datasets.base import DatasetRequest


def compile_model(run: RunContext) -> CompiledModel:
    """The compiled model the runtime loads; fills Graph Compile and pins `run.config` to the chosen engine."""
    request = CompileRequest(
        model=run.model,
        source=run.source,
        precision=run.precision,
        batch_sizes=run.batch_sizes,
        cache_dir=state_dir(),
        sample_feeds=run.sample_feeds,
        calibration_feeds=(lambda: calibration_feeds(run.loader)) if run.loader and run.model.dataset_name else None,
    )
    compiler = run.spec.compile_backend(run.config)
    compile_memory = PeakRss().start()  # covers choosing the engine too: every candidate is compiled
    request = compiler.pre_optimize(request)
    candidates = compiler.candidates(request)
    selection = None
    if len(candidates) == 1:
        chosen = candidates[0]
        with console.status(f"compiling {run.model.model} for {run.spec.name} ({chosen.label})"):
            compiled = _compile(run.spec, chosen, request)
    else:
        selection = _select(run, candidates, request)
        chosen, compiled = selection.candidate, selection.compiled
    run.config = chosen.config
    run.report.sections["Config"]["backend"] = run.config.model_dump(mode="json")
    cache_note = "reused cached artifact" if compiled.cache_hit else "compiled"
    if compiled.artifact:
        console.path_line(f"{cache_note} in {compiled.compile_seconds:.1f} s", compiled.artifact)
    else:
        console.info(f"{cache_note} in {compiled.compile_seconds:.1f} s")
    run.report.graph_compile = GraphCompile(
        compile_duration=round(compiled.compile_seconds, 3),
        compile_precision=compiled.precision,
        subgraph_coverage=compiled.subgraph_coverage,
        optimizations=compiled.optimizations,
        engine=compiled.engine,
        cache="hit" if compiled.cache_hit else "miss",
        artifact=str(compiled.artifact) if compiled.artifact else None,
        engine_selection=selection.section if selection else None,
        details=compiled.details or None,
        **compile_memory_fields(compile_memory, compiled.artifact),
    )
    _apply_best_batch_sizes(run, compiler.get_best_batch_size())
    return compiled


def _apply_best_batch_sizes(run: RunContext, best: list[int] | None) -> None:
    """ByteMLPerf's rule: a backend's recommended batch sizes replace the workload's."""
    if not best:
        return
    if any(not isinstance(bs, int) or isinstance(bs, bool) or bs < 1 for bs in best):
        raise UserError(
            f"get_best_batch_size returned {best!r}, not a list of positive integers",
            field=f"backends/{run.spec.name}",
            fix="fix the backend's get_best_batch_size",
        )
    best = sorted(set(best))
    if best != run.batch_sizes:
        message = (
            f"batch sizes {best} recommended by the {run.spec.name} backend replace the workload's {run.batch_sizes}"
        )
        run.report.notes.append(message)
        console.info(message)
        run.batch_sizes = best
    run.report.graph_compile.best_batch_sizes = best


def _compile(spec, candidate, request: CompileRequest) -> CompiledModel:
    return spec.compile_backend(candidate.config).compile(replace(request, precision=candidate.precision))


def _select(run: RunContext, candidates, request: CompileRequest):
    """Time every candidate at the first batch size and keep the fastest that passes the accuracy gate."""
    import time

    from core.quality import gate, selection
    from core.quality.reference import reference_label, reference_outputs
    from core.run.plan import TuningPlan

    task, source = run.task, run.source
    plan = TuningPlan(run, run.batch_sizes[0])

    def make_gate(seconds_per_sample: float) -> gate.Gate:
        started = time.perf_counter()
        limit, why = gate.gate_features(source.synthetic, seconds_per_sample)
        gate_sample = gate_loader(task, run.inputs, run.loader, limit)
        features = gate_sample.load()
        if not task.model.dataset_name and len(features) > limit:  # generated inputs: what the time allows
            features = replace(
                features, inputs={k: v[:limit] for k, v in features.inputs.items()}, lengths=features.lengths[:limit]
            )
        reference = reference_outputs(task.model, source, features, request.sample_feeds)
        tokenizer = (features.provenance or gate_sample.provenance()).get("tokenizer") or {}
        evaluate = gate_sample.evaluate if task.model.dataset_name else None
        synthetic = not accuracy_meaningful(source, tokenizer)
        made = gate.make_gate(features, reference, reference_label(source), evaluate=evaluate, synthetic=synthetic)
        made.sample_note = why
        plan.gate_made(len(features), time.perf_counter() - started)
        return made

    workload = task.workload
    data = {
        "dataset": task.model.dataset_name,
        "data_path": str(workload.data_path or ""),
        "data_percent": workload.data_percent,
        "seed": workload.seed,
    }
    return selection.select(
        candidates,
        model=task.model.model,
        compile_candidate=lambda candidate: _compile(run.spec, candidate, request),
        make_runtime=run.spec.runtime_backend,
        batch_size=run.batch_sizes[0],
        feeds=request.sample_feeds(run.batch_sizes[0]),
        make_gate=make_gate,
        cache_payload={
            "source": source.digest,
            "data": data,
            "backend": run.spec.name,
            # A GPU's decision holds for its model, driver and runtime (the host's CPU is keyed anyway).
            "device": run.spec.device_fingerprint(run.device_facts) if run.device_facts else None,
        },
        budget_seconds=tuning_budget(workload),
        before_next=plan,
    )


# Under a whole-run budget without a tuning budget of its own, choosing the engine may take up to this share of it
# (the estimate after the first candidate may give it less: run.plan.TuningPlan).
TUNING_SHARE = 0.5


def tuning_budget(workload) -> float | None:
    """Seconds choosing the engine may take: the workload's tuning_budget_minutes, else a share of the run's
    budget (run.plan.run_budget), else no limit."""
    from core.run.plan import run_budget

    if workload.tuning_budget_minutes:
        return workload.tuning_budget_minutes * 60
    return run_budget(workload).seconds * TUNING_SHARE or None


def gate_loader(task, inputs, loader, limit: int):
    """The accuracy gate's sample: the dataset when small, else a deterministic share of it;
    generated inputs without one. It does not depend on the accuracy switches: a run that checks no
    accuracy still chooses among candidates by the gate."""
    if not task.model.dataset_name:  # generated inputs: the numeric check's own loader when there is one
        from datasets.fake_dataset import FakeDataset

        return loader or FakeDataset(DatasetRequest(model=inputs, seed=task.workload.seed))
    loader = loader or make_loader(task, inputs)
    count = len(loader.load())
    if count <= limit:
        return loader
    return make_loader(task, inputs, data_percent=task.workload.data_percent * limit / count)
