"""Stage: the task's quality metric on its dataset, and numeric drift against the CPU FP32 reference."""

from __future__ import annotations

from core.common import console
from core.measure.dataset_pass import DATASET_BATCH_SIZE, run_features
from core.reporting.sections import Accuracy, NumericDrift
from core.run.context import RunContext, accuracy_meaningful
from datasets.base import Features


def check_accuracy(run: RunContext, runtime, on_batch=None) -> None:
    """Run the dataset once; fill Accuracy (metric, drift) and Dataset Throughput. `on_batch` is called
    after each batch with the count of features done (the run's progress bar)."""
    workload, model, loader = run.workload, run.model, run.loader
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
    compared = gate_compared(run) if workload.test_numeric else 0
    if compared:
        features = _after_gate(run, features, compared)
        if not len(features):  # the gate's comparison is the numeric check: its row holds the drift
            run.report.accuracy = Accuracy(
                data_percent=workload.data_percent,
                provenance=provenance,
                note="compared by the engine selection's gate",
            )
            return
    console.info(
        f"running {len(features)} features (batch {batch_size}, {'length-grouped' if length_aware else 'padded'})"
    )
    outputs, seconds = run_features(runtime, features, batch_size, length_aware=length_aware, on_batch=on_batch)
    # The loader's evaluation is read into its typed fields: metrics, counts, NaN/Inf outputs.
    accuracy = Accuracy.from_dict(loader.evaluate(outputs) if workload.test_accuracy else {})
    accuracy.data_percent = workload.data_percent
    accuracy.provenance = provenance
    if run.source.synthetic:
        accuracy.note = "synthetic weights: accuracy is not meaningful"
    if model.published is not None and workload.test_accuracy:
        meaningful = accuracy_meaningful(run.source, tokenizer)
        accuracy.published = published_section(model.published, accuracy, meaningful=meaningful)
    run.report.sections["Dataset Throughput"] = {
        "Features": len(features),
        "Seconds": round(seconds, 4),
        "Features Per Second": round(len(features) / seconds, 4) if seconds else None,
        "Batch Size": batch_size,
        "Length Aware": length_aware,
        **({"Mean True Length": round(float(features.lengths.mean()), 2)} if features.sequence else {}),
    }
    run.report.accuracy = accuracy
    if workload.test_numeric:
        accuracy.drift = numeric_drift(run, features, outputs)
    _announce(run, accuracy)


def reuses_gate(run: RunContext) -> bool:
    """With synthetic weights on generated inputs the accuracy stage measures what the gate measured (drift against
    the same reference), and the gate's sample is the first of the same generated inputs."""
    return run.source.synthetic and not run.model.dataset_name and not run.workload.test_accuracy


def gate_compared(run: RunContext) -> int:
    """How many leading inputs of the accuracy stage the engine selection's gate compared in this run, with the
    engine that runs now (0: none, or the decision came from the cache)."""
    compiled = run.report.graph_compile
    selection = compiled.engine_selection if compiled else None
    if not reuses_gate(run) or selection is None or selection.decision != "tuned in this run":
        return 0
    return int((selection.gate or {}).get("Features") or 0)


def _after_gate(run: RunContext, features: Features, compared: int) -> Features:
    """The inputs the gate did not compare, said on the console and in the report's notes."""
    from core.quality.reference import take

    selection = run.report.graph_compile.engine_selection
    chosen = next((row for row in selection.candidates if row.chosen), None)
    drift = f" (drift {chosen.normalized_drift})" if chosen and chosen.normalized_drift is not None else ""
    total, rest = len(features), max(0, len(features) - compared)
    message = (
        f"numeric check: the engine selection's gate already compared the first {min(compared, total)} of these "
        f"{total} generated inputs with {selection.chosen} against the same reference{drift}; "
        + (f"only the other {rest} are run and compared here" if rest else "nothing is run again")
    )
    console.info(message)
    run.report.notes.append(message)
    return take(features, slice(compared, None))


def published_section(published, accuracy: Accuracy, *, meaningful: bool) -> dict:
    """The model entry's published figures, and ours minus each where this run's accuracy means something."""
    section: dict = {"Source": published.source, "Figures": dict(published.figures)}
    measured = accuracy.quality()
    if not meaningful:
        section["Note"] = "not compared: synthetic weights or a fallback tokenizer make our accuracy meaningless"
        return section
    section["Difference"] = {
        metric: round(measured[metric] - figure, 4)
        for metric, figure in published.figures.items()
        if metric in measured
    }
    missing = [metric for metric in published.figures if metric not in measured]
    if missing:
        section["Note"] = f"not measured by this run: {', '.join(missing)}"
    return section


def _announce(run: RunContext, accuracy: Accuracy) -> None:
    # NaN/Inf never score (the evaluators and the drift statistics leave them out); say so at the top too.
    nonfinite = {k: v for k, v in accuracy.problems().items() if v and k != "Empty Predictions"}
    if nonfinite:
        message = "the model returned NaN/Inf: " + ", ".join(f"{k} {v:g}" for k, v in nonfinite.items())
        console.warn(message)
        run.report.notes.append(message)
    shown = {k: v for k, v in accuracy.to_dict().items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    console.info("accuracy: " + ", ".join(f"{k} {v:.4g}" for k, v in shown.items()))
    against = accuracy.against_published()
    if against:
        console.info(
            f"against {accuracy.published['Source']}: " + ", ".join(f"{k} {v:+.2f}" for k, v in against.items())
        )


def numeric_drift(run: RunContext, features: Features, outputs) -> NumericDrift:
    """Drift against the CPU FP32 reference, computed once per weights+features and cached."""
    from core.quality.drift import compare_outputs
    from core.quality.reference import reference_label, reference_outputs

    reference = reference_outputs(run.model, run.source, features, run.sample_feeds)
    # Stored next to the kept run; "Diff Dist" is relative to the report's folder, as ByteMLPerf writes it.
    name = f"runs/{run.report.run_id}-diff.png"
    lengths = features.lengths if features.sequence else None
    drift = NumericDrift.from_dict(compare_outputs(reference, outputs, lengths, histogram=run.folder() / name))
    drift.diff_dist = name
    drift.numeric_reference = reference_label(run.source)
    return drift
