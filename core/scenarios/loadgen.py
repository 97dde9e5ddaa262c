"""MLPerf LoadGen scenarios (SingleStream, MultiStream, Offline, Server) against a loaded runtime.

LoadGen (`mlcommons-loadgen`, imported as `mlperf_loadgen`, lazily) decides when queries arrive,
measures their latency and judges each run VALID or INVALID; this module is the system under test
(SUT) and the query sample library (QSL) around our runtime, and reads LoadGen's own logs back:

- QSL: performance runs draw from generated inputs at the model's full sequence length (what the
  per-batch-size rows measure, so the two compare); the accuracy run draws from the task's dataset.
- SUT: issue_queries only enqueues. One worker thread per runtime instance takes whatever is queued,
  up to the workload's largest batch size, runs it as one batch and completes each sample (dynamic
  batching). Responses carry the outputs only in accuracy mode.
- Logs: <report folder>/runs/<run id>-loadgen/<scenario>/mlperf_log_{summary,detail}.txt. The result
  and the percentiles come from the detail log's `:::MLLOG` records.
- Server `find_peak` is LoadGen's own FindPeakPerformance mode (boundary doubling, then a binary search
  of the target QPS whose p99 meets the bound); LoadGen then judges a final run at the peak it found.
"""

from __future__ import annotations

import json
import math
import threading
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from core.common import console
from core.common.errors import UserError
from core.measure.clients import Instances
from core.measure.dataset_pass import batch_feeds, full_length
from core.measure.timing import MeasurePolicy, measure
from core.reporting.schema import PerfRow
from core.reporting.sections import LoadGenResult

DEFAULT_TARGET_LATENCY_MS = 100.0  # LoadGen's own default server_target_latency_ns
MULTI_STREAM_SAMPLES = 8  # LoadGen's default multi_stream_samples_per_query (MLPerf's rule)
GENERATED_SAMPLES = 256  # generated QSL size; LoadGen draws from it at random
LOG_PREFIX = ":::MLLOG "
# Headroom above the measured speed, as MLPerf submitters set it: LoadGen pre-generates queries from the
# expected latencies and the Offline expected QPS, and too few end a run before min_duration (INVALID for
# the wrong reason). 1.5x was not enough: Offline's batching beat the per-batch-size rows by 1.69x
# (tiny-bert-squad, Zen 3). Too much only lengthens an Offline run (its one query must finish).
EXPECTATION_MARGIN = 2.0
# The rules a run can fail only because the expectation was off: re-run once with LoadGen's advice.
SIZING_RULES = frozenset({"min duration", "min queries"})


@dataclass
class Samples:
    """The QSL's memory: row i of every input array is sample i."""

    inputs: dict[str, np.ndarray]
    lengths: np.ndarray
    length_aware: bool = False  # trim each batch to its longest member (accuracy mode, like the plain pass)

    def __len__(self) -> int:
        return len(self.lengths)


@dataclass
class Estimate:
    """How fast the runtime is, so LoadGen's expectations (query counts) fit the machine."""

    single_latency_s: float  # one sample, alone
    throughput_qps: float  # samples per second at the largest batch size


@dataclass
class ScenarioSpec:
    scenario: str
    min_duration_s: float
    min_query_count: int
    max_batch: int
    target_qps: float | None = None
    target_latency_ms: float | None = None
    find_peak: bool = False


# ---------------------------------------------------------------- the system under test
class BatchingSut:
    """LoadGen's SUT: a queue, and one batching worker per runtime instance."""

    def __init__(self, lg, instances: Instances, samples: Samples, max_batch: int, *, respond_outputs: bool):
        self.lg = lg
        self.samples = samples
        self.max_batch = max_batch
        self.respond_outputs = respond_outputs
        self.pending: deque = deque()
        self.ready = threading.Condition()
        self.closing = False
        self.errors: list[str] = []
        self.output_shapes: dict[str, tuple[int, ...]] | None = None
        self.workers = [
            threading.Thread(target=self._work, args=(runtime,), daemon=True, name=f"sut-{i}")
            for i, runtime in enumerate(instances.runtimes)
        ]
        for worker in self.workers:
            worker.start()

    def issue_queries(self, query_samples) -> None:  # LoadGen's thread: enqueue and return at once
        with self.ready:
            self.pending.extend(query_samples)
            self.ready.notify_all()

    def flush_queries(self) -> None:
        pass

    def close(self) -> None:
        with self.ready:
            self.closing = True
            self.ready.notify_all()
        for worker in self.workers:
            worker.join()

    def _take(self) -> list:
        with self.ready:
            while not self.pending and not self.closing:
                self.ready.wait()
            count = min(self.max_batch, len(self.pending))
            return [self.pending.popleft() for _ in range(count)]

    def _work(self, runtime) -> None:
        while True:
            batch = self._take()
            if not batch:
                return
            try:
                responses, keep = self._run(runtime, batch)
            except Exception as err:  # noqa: BLE001 - LoadGen waits for every sample: complete them, report after
                self.errors.append(f"{type(err).__name__}: {str(err)[:300]}")
                if len(self.errors) == 1:
                    console.warn(f"LoadGen SUT: {self.errors[0]}")
                responses, keep = [self.lg.QuerySampleResponse(s.id, 0, 0) for s in batch], None
            self.lg.QuerySamplesComplete(responses)
            del keep  # response buffers live until LoadGen has copied them

    def _run(self, runtime, batch: list):
        index = np.fromiter((s.index for s in batch), dtype=np.int64, count=len(batch))
        feeds, width = batch_feeds(
            self.samples.inputs, self.samples.lengths, index, length_aware=self.samples.length_aware
        )
        result = runtime.predict(feeds)
        if not self.respond_outputs:
            return [self.lg.QuerySampleResponse(s.id, 0, 0) for s in batch], None
        seq_len = next(iter(self.samples.inputs.values())).shape[1] if width else 0
        outputs = full_length(result, width, seq_len)
        if self.output_shapes is None:
            self.output_shapes = {name: tuple(value.shape[1:]) for name, value in outputs.items()}
        # One float32 row per sample, outputs concatenated in name order: what the accuracy log records.
        rows = np.ascontiguousarray(
            np.concatenate([value.reshape(len(batch), -1) for value in outputs.values()], axis=1)
        )
        address, row_bytes = rows.__array_interface__["data"][0], rows.shape[1] * rows.itemsize
        responses = [self.lg.QuerySampleResponse(s.id, address + i * row_bytes, row_bytes) for i, s in enumerate(batch)]
        return responses, rows


# ---------------------------------------------------------------- reading LoadGen's logs
def read_detail_log(path: Path) -> tuple[dict[str, Any], list[str]]:
    """The last value of every `:::MLLOG` key, and the generic messages in order."""
    values: dict[str, Any] = {}
    messages: list[str] = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.startswith(LOG_PREFIX):
                continue
            try:
                record = json.loads(line[len(LOG_PREFIX) :])
            except json.JSONDecodeError:
                continue
            key = record.get("key")
            if key == "generic_message":
                messages.append(str(record.get("value")))
            elif isinstance(key, str):
                values[key] = record.get("value")
    return values, messages


def _ms(value: Any) -> float | None:
    return round(float(value) / 1e6, 4) if isinstance(value, (int, float)) else None


def _number(value: Any) -> float | None:
    return round(float(value), 4) if isinstance(value, (int, float)) and math.isfinite(value) else None


def summarize(scenario: str, values: dict[str, Any], samples_per_query: int) -> LoadGenResult:
    """A report entry from the detail log's records (keys differ per scenario; see LoadGen's results.cc)."""
    # MultiStream's metric is the latency of whole queries; the others time each query of one sample.
    per_query = "_per_query" if scenario == "MultiStream" else ""
    percentile = {
        p: _ms(values.get(f"result_{p}_percentile{per_query}_latency_ns")) for p in ("50.00", "90.00", "99.00")
    }
    if scenario == "SingleStream":
        qps = values.get("result_qps_with_loadgen_overhead")
    elif scenario == "MultiStream":
        mean = values.get("result_mean_query_latency_ns")
        qps = samples_per_query * 1e9 / mean if isinstance(mean, (int, float)) and mean > 0 else None
    elif scenario == "Offline":
        qps = values.get("result_samples_per_second")
    else:
        qps = values.get("result_completed_samples_per_sec")
    checks = {
        "min duration": values.get("result_min_duration_met"),
        "min queries": values.get("result_min_queries_met"),
        "latency bound": values.get("result_perf_constraints_met"),
        "early stopping": values.get("early_stopping_met"),
    }
    entry = LoadGenResult(
        scenario=scenario,
        result=str(values.get("result_validity", "INVALID")),
        qps=_number(qps),
        p50_latency=percentile["50.00"],
        p90_latency=percentile["90.00"],
        p99_latency=percentile["99.00"],
        queries=values.get("result_query_count"),
    )
    unmet = [name for name, met in checks.items() if met is False]
    if entry.result != "VALID" and unmet:
        entry.unmet = unmet
    return entry


# ---------------------------------------------------------------- running one scenario
def _settings(lg, spec: ScenarioSpec, estimate: Estimate, mode: str):
    settings = lg.TestSettings()
    settings.scenario = getattr(lg.TestScenario, spec.scenario)
    settings.mode = getattr(lg.TestMode, mode)
    settings.min_duration_ms = int(math.ceil(spec.min_duration_s * 1000))
    settings.min_query_count = spec.min_query_count
    single_ns = max(1, int(estimate.single_latency_s * 1e9 / EXPECTATION_MARGIN))
    settings.single_stream_expected_latency_ns = single_ns
    settings.multi_stream_samples_per_query = MULTI_STREAM_SAMPLES
    settings.multi_stream_expected_latency_ns = max(
        1, int(MULTI_STREAM_SAMPLES / estimate.throughput_qps * 1e9 / EXPECTATION_MARGIN)
    )
    settings.offline_expected_qps = estimate.throughput_qps * EXPECTATION_MARGIN
    latency_ms = spec.target_latency_ms or DEFAULT_TARGET_LATENCY_MS
    settings.server_target_latency_ns = int(latency_ms * 1e6)
    if spec.scenario == "Server":
        settings.server_target_qps = spec.target_qps or _peak_start(estimate)
        if spec.find_peak:
            settings.server_find_peak_qps_decimals_of_precision = _peak_decimals(estimate.throughput_qps)
    return settings


def _peak_start(estimate: Estimate) -> float:
    """A base QPS LoadGen's peak search can start from: well under what the runtime sustains."""
    return max(0.01, round(estimate.throughput_qps / 8, 2))


def _peak_decimals(throughput: float) -> int:
    """Search the peak to about two significant digits (LoadGen halves the interval down to this)."""
    return max(0, min(3, 1 - math.floor(math.log10(max(throughput, 1e-3)))))


def run_loadgen(lg, sut_obj: BatchingSut, samples: Samples, settings, outdir: Path) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    log_settings = lg.LogSettings()
    log_settings.log_output.outdir = str(outdir)
    log_settings.log_output.copy_summary_to_stdout = False
    log_settings.enable_trace = False
    sut = lg.ConstructSUT(sut_obj.issue_queries, sut_obj.flush_queries)
    count = len(samples)
    qsl = lg.ConstructQSL(count, count, lambda _: None, lambda _: None)  # samples are in memory already
    try:
        lg.StartTestWithLogSettings(sut, qsl, settings, log_settings)
    finally:
        lg.DestroyQSL(qsl)
        lg.DestroySUT(sut)


def run_scenario(
    spec: ScenarioSpec, instances: Instances, samples: Samples, estimate: Estimate, outdir: Path, folder: Path
) -> LoadGenResult:
    """One LoadGen performance run (or peak search); the report entry, with paths relative to `folder`.

    A run INVALID only for a rule the expectation sized (min duration, min queries) is run once more with
    the expectation LoadGen recommends, computed from what the first attempt measured; the entry is the
    second attempt's, with the first's verdict, numbers and logs under `First Attempt`."""
    entry = _attempt(spec, instances, samples, estimate, outdir, folder)
    retry = _recommended(entry, estimate)
    if retry is None:
        return entry
    console.info(f"{scenario_line(entry)}; running it again as LoadGen recommends ({retry[1]})")
    second = _attempt(spec, instances, samples, retry[0], outdir / "retry", folder)
    second.first_attempt = {
        **{LoadGenResult.KEYS[k]: getattr(entry, k) for k in ("result", "qps", "target_qps", "unmet", "log_summary")},
        "Recommendation": retry[1],
    }
    return second


def _recommended(entry: LoadGenResult, estimate: Estimate) -> tuple[Estimate, str] | None:
    """The expectation LoadGen's summary recommends after a run that failed only a sizing rule, quantified by
    the run's own speed with the usual headroom (None: nothing to re-run). Server is not re-run: its target
    QPS is the experiment's setting, and raising it, as LoadGen advises, would change what is measured."""
    unmet = set(entry.unmet or ())
    if entry.status != "ok" or entry.result == "VALID" or not unmet or not unmet <= SIZING_RULES:
        return None
    if entry.mode != "PerformanceOnly" or not entry.qps or entry.qps <= 0:
        return None
    measured = f"{EXPECTATION_MARGIN:g} x the {entry.qps:.4g} QPS this run measured"
    if entry.scenario == "SingleStream":
        latency = 1.0 / entry.qps
        expected = f"{latency / EXPECTATION_MARGIN * 1e3:.4g} ms"
        return replace(estimate, single_latency_s=latency), f"decrease the expected latency to {expected} ({measured})"
    if entry.scenario == "MultiStream":
        expected = f"{MULTI_STREAM_SAMPLES / entry.qps / EXPECTATION_MARGIN * 1e3:.4g} ms"
        return replace(estimate, throughput_qps=entry.qps), f"decrease the expected latency to {expected} ({measured})"
    if entry.scenario == "Offline":
        expected = f"{entry.qps * EXPECTATION_MARGIN:.4g}"
        return replace(estimate, throughput_qps=entry.qps), f"increase the expected QPS to {expected} ({measured})"
    return None


def _attempt(
    spec: ScenarioSpec, instances: Instances, samples: Samples, estimate: Estimate, outdir: Path, folder: Path
) -> LoadGenResult:
    import mlperf_loadgen as lg

    mode = "FindPeakPerformance" if spec.find_peak else "PerformanceOnly"
    settings = _settings(lg, spec, estimate, mode)
    sut = BatchingSut(lg, instances, samples, spec.max_batch, respond_outputs=False)
    try:
        run_loadgen(lg, sut, samples, settings, outdir)
    finally:
        sut.close()
    values, messages = read_detail_log(outdir / "mlperf_log_detail.txt")
    samples_per_query = MULTI_STREAM_SAMPLES if spec.scenario == "MultiStream" else 1
    entry = summarize(spec.scenario, values, samples_per_query)
    entry.mode = mode
    if spec.scenario in ("Server", "Offline"):
        entry.target_qps = _number(values.get("effective_target_qps"))
    if spec.scenario == "Server":
        entry.target_latency = _ms(values.get("effective_target_latency_ns"))
    if spec.find_peak:
        found = [m for m in messages if m.startswith("FindPeakPerformance: Found peak performance field:")]
        entry.peak_qps = _number(float(found[-1].rsplit(":", 1)[1])) if found else None
        # The detail log records the settings once, at the start: the search began there, its final run at the peak.
        entry.peak_search_start, entry.target_qps = entry.target_qps, entry.peak_qps or entry.target_qps
        entry.peak_search = [m for m in messages if m.startswith(("FindPeakPerformance", "FindBoundaries"))]
        if not found:
            entry.result = "INVALID"
            entry.unmet = [*(entry.unmet or []), "no target QPS met the latency bound"]
    entry.samples_per_query = samples_per_query
    entry.max_batch_size = spec.max_batch
    entry.instance_count = instances.count
    entry.log_summary = (outdir / "mlperf_log_summary.txt").relative_to(folder).as_posix()
    entry.log_detail = (outdir / "mlperf_log_detail.txt").relative_to(folder).as_posix()
    entry.status = "ok"
    if sut.errors:
        entry.status, entry.result, entry.error = "failed", "INVALID", sut.errors[0]
    return entry


def run_accuracy(instances: Instances, samples: Samples, max_batch: int, outdir: Path) -> dict[str, np.ndarray]:
    """LoadGen's AccuracyOnly mode (Offline: every sample once); the outputs read back from its accuracy log."""
    import mlperf_loadgen as lg

    spec = ScenarioSpec("Offline", min_duration_s=0.001, min_query_count=1, max_batch=max_batch)
    settings = _settings(lg, spec, Estimate(1.0, 1.0), "AccuracyOnly")
    sut = BatchingSut(lg, instances, samples, max_batch, respond_outputs=True)
    try:
        run_loadgen(lg, sut, samples, settings, outdir)
    finally:
        sut.close()
    if sut.errors:
        raise RuntimeError(f"LoadGen accuracy run: {sut.errors[0]}")
    return read_accuracy_log(outdir / "mlperf_log_accuracy.json", len(samples), sut.output_shapes or {})


def read_accuracy_log(path: Path, count: int, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """Outputs per sample from LoadGen's accuracy log (hex float32 rows, outputs in name order)."""
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise RuntimeError(f"cannot read LoadGen's accuracy log {path}: {err}") from None
    sizes = {name: int(np.prod(shape, dtype=np.int64)) for name, shape in shapes.items()}
    outputs = {name: np.empty((count, *shape), dtype=np.float32) for name, shape in shapes.items()}
    seen = np.zeros(count, dtype=bool)
    for record in records:
        index = int(record["qsl_idx"])
        row = np.frombuffer(bytes.fromhex(record["data"]), dtype=np.float32)
        if row.size != sum(sizes.values()):
            raise RuntimeError(f"{path}: sample {index} has {row.size} values, expected {sum(sizes.values())}")
        offset = 0
        for name, size in sizes.items():
            outputs[name][index] = row[offset : offset + size].reshape(shapes[name])
            offset += size
        seen[index] = True
    if not seen.all():
        raise RuntimeError(f"{path}: {int((~seen).sum())} of {count} samples have no logged response")
    return outputs


# ---------------------------------------------------------------- the run's scenarios
def estimate_speed(runtime, sample_feeds, max_batch: int, performance: list[PerfRow]) -> Estimate:
    """From the per-batch-size rows when they ran, else a brief measurement (LoadGen sizes its runs from it)."""
    rows = {row.bs: row for row in performance if row.ok}
    policy = MeasurePolicy(warmup_iterations=1, warmup_seconds=1.0, min_iterations=3, min_seconds=0.0, max_seconds=2.0)

    def timed(batch_size: int):
        runtime.load(batch_size)
        return measure(runtime.bind(sample_feeds(batch_size)), policy, batch_size)

    single = rows[1].p50_latency / 1e3 if 1 in rows else timed(1).latency.p50 / 1e3
    best = max((row.qps for row in rows.values()), default=None)
    if best is None:
        best = timed(max_batch).qps
    return Estimate(single_latency_s=max(single, 1e-6), throughput_qps=max(best, 1.0 / max(single, 1e-6), 1e-3))


def generated_samples(sample_feeds, count: int = GENERATED_SAMPLES) -> Samples:
    inputs = sample_feeds(count)
    seq_len = next(iter(inputs.values())).shape[1]
    return Samples(inputs=inputs, lengths=np.full(count, seq_len, dtype=np.int64))


def run_scenarios(
    *,
    workload,
    scenarios: list[str],
    instances: Instances,
    sample_feeds,
    max_batch: int,
    performance: list[PerfRow],
    folder: Path,
    run_id: str,
    runtime,
) -> list[LoadGenResult]:
    """Every scenario in order; one report entry each (a failed scenario is recorded, the next one runs)."""
    try:
        import mlperf_loadgen  # noqa: F401 - fail early with an install hint
    except ImportError:
        raise UserError(
            "LoadGen scenarios need the mlcommons-loadgen package",
            field="scenario",
            fix="pip install mlcommons-loadgen (see constraints.txt)",
        ) from None
    estimate = estimate_speed(runtime, sample_feeds, max_batch, performance)
    samples = generated_samples(sample_feeds)
    entries = []
    for scenario in scenarios:
        spec = ScenarioSpec(
            scenario,
            workload.min_duration_s,
            workload.min_query_count,
            max_batch,
            target_qps=workload.target_qps,
            target_latency_ms=workload.target_latency_ms,
            find_peak=workload.find_peak and scenario == "Server",
        )
        outdir = folder / "runs" / f"{run_id}-loadgen" / scenario
        what = "searching the peak QPS" if spec.find_peak else f"at least {spec.min_duration_s:g} s"
        with console.status(f"LoadGen {scenario} ({what})"):
            entry = run_scenario(spec, instances, samples, estimate, outdir, folder)
        entries.append(entry)
        console.info(scenario_line(entry))
    return entries


def scenario_line(entry: LoadGenResult) -> str:
    def ms(value: float | None) -> str:
        return "—" if value is None else f"{value:.1f}"

    qps = entry.qps
    line = (
        f"LoadGen {entry.scenario}: {entry.result}, {'—' if qps is None else f'{qps:.2f}'} QPS, "
        f"p50 {ms(entry.p50_latency)} / p90 {ms(entry.p90_latency)} / p99 {ms(entry.p99_latency)} ms"
    )
    if entry.target_qps is not None:
        line += f", target {entry.target_qps:g} QPS"
    if entry.target_latency is not None:
        line += f" at p99 <= {entry.target_latency:g} ms"
    if entry.mode == "FindPeakPerformance":
        line += f", peak {'—' if entry.peak_qps is None else f'{entry.peak_qps:g}'} QPS"
    if entry.unmet:
        line += f" (unmet: {', '.join(entry.unmet)})"
    if entry.error:
        line += f" — {entry.error}"
    if entry.first_attempt:
        first = entry.first_attempt
        line += f"; second attempt (the first: {first.get('Result')} at {first.get('QPS')} QPS; "
        line += f"{first.get('Recommendation')})"
    return line


def run(
    *, workload, scenarios: list[str], runtime, clients: int, max_batch: int, sample_feeds, loader, report, folder: Path
) -> None:
    """The workload's LoadGen scenarios, then (with test_accuracy and a dataset) LoadGen's accuracy mode.

    Fills the report's `LoadGen` list and `LoadGen Accuracy` section, and its instance count.
    """
    from core.measure.clients import open_instances, record

    runtime.load(max_batch)
    instances = open_instances(runtime, clients)
    record(instances, report)
    for entry in run_scenarios(
        workload=workload,
        scenarios=scenarios,
        instances=instances,
        sample_feeds=sample_feeds,
        max_batch=max_batch,
        performance=report.performance,
        folder=folder,
        run_id=report.run_id,
        runtime=runtime,
    ):
        report.loadgen.append(entry)
    if workload.test_accuracy and loader is not None:
        report.sections["LoadGen Accuracy"] = accuracy_section(
            instances,
            loader,
            max_batch,
            workload.length_aware,
            folder / "runs" / f"{report.run_id}-loadgen" / "accuracy",
            folder,
        )


def accuracy_section(
    instances: Instances, loader, max_batch: int, length_aware: bool, outdir: Path, folder: Path
) -> dict[str, Any]:
    """LoadGen's accuracy log scored by the task's own metric. Its timings are not kept: accuracy mode
    issues every sample at once, which measures nothing anyone serves."""
    features = loader.load()
    samples = Samples(inputs=features.inputs, lengths=features.lengths, length_aware=length_aware and features.sequence)
    with console.status(f"LoadGen accuracy mode ({len(samples)} samples)"):
        outputs = run_accuracy(instances, samples, max_batch, outdir)
    section: dict[str, Any] = {"Scenario": "Offline", "Mode": "AccuracyOnly", "Samples": len(samples)}
    section.update(loader.evaluate(outputs))
    section["Accuracy Log"] = (outdir / "mlperf_log_accuracy.json").relative_to(folder).as_posix()
    shown = {k: v for k, v in section.items() if isinstance(v, float)}
    console.info("LoadGen accuracy: " + (", ".join(f"{k} {v:.4g}" for k, v in shown.items()) or "scored"))
    return section
