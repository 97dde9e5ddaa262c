"""The report's sections as typed objects, each key spelled once.

Every section is a `Section`: its `KEYS` map field -> report key, `to_dict` writes the keys that hold
a value (ByteMLPerf's keys among them), `from_dict` reads them back and keeps keys it does not model
in `extra`, so a vendor's additions survive a round trip. Values are kept as written; readers that
compare numbers take them through `number()`, which turns anything that is not a finite number
(a missing value, "nan", a string) into None. Reports are untrusted input: a section that is not an
object reads as an empty one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from core.reporting.schema import PEAK_RSS, as_number


@dataclass
class Section:
    """Base of the typed sections: KEYS (field -> key), NESTED (field -> Section class, or a list of it)."""

    KEYS: ClassVar[dict[str, str]] = {}
    NESTED: ClassVar[dict[str, type[Section]]] = {}
    ALWAYS: ClassVar[tuple[str, ...]] = ()  # fields written even when None ("not measured" is worth saying)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, key in self.KEYS.items():
            value = getattr(self, name)
            if value is None and name not in self.ALWAYS:
                continue
            if isinstance(value, Section):
                value = value.to_dict()
            elif isinstance(value, list) and name in self.NESTED:
                value = [item.to_dict() for item in value]
            out[key] = value
        return {**out, **self.extra}

    @classmethod
    def from_dict(cls, data: Any):
        if not isinstance(data, dict):
            return cls()
        by_key = {key: name for name, key in cls.KEYS.items()}
        values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in data.items():
            name = by_key.get(key)
            if name is None:
                extra[str(key)] = value
            elif name in cls.NESTED:
                nested = cls.NESTED[name]
                if isinstance(value, list):
                    values[name] = [nested.from_dict(item) for item in value if isinstance(item, dict)]
                else:
                    values[name] = nested.from_dict(value)
            else:
                values[name] = value
        return cls(**values, extra=extra)

    def number(self, key: str) -> float | None:
        """The value under report key `key` as a finite number, else None."""
        name = next((n for n, k in self.KEYS.items() if k == key), None)
        return as_number(getattr(self, name) if name else self.extra.get(key))


@dataclass
class CandidateRow(Section):
    """One engine/precision that `engine: auto` tried: its brief timing, its drift and the gate's verdict."""

    KEYS: ClassVar[dict[str, str]] = {
        "engine": "Engine",
        "precision": "Precision",
        "compile_seconds": "Compile Seconds",
        "cache": "Cache",
        "qps": "QPS",
        "p50_latency": "P50 Latency",
        "iterations": "Iterations",
        "fastest_calls_qps": "Fastest Calls QPS",
        "drop_ratio": "Drop Ratio",
        "drop_check": "Drop Check",
        "normalized_drift": "Normalized Drift",
        "top1_agreement": "Top-1 Agreement",
        "near_ties": "Near Ties",
        "decisive_rows": "Decisive Rows",
        "decisive_agreement": "Decisive Agreement",
        "metrics": "Metrics",
        "gate": "Gate",
        "why": "Why",
        "chosen": "Chosen",
    }
    engine: str = ""
    precision: str = ""
    compile_seconds: float | None = None
    cache: str | None = None
    qps: float | None = None
    p50_latency: float | None = None
    iterations: int | None = None
    fastest_calls_qps: float | None = None  # from its fastest calls: the figure an early drop compares
    drop_ratio: float | None = None  # the leader's fastest-calls QPS over its own when the two were timed in turns
    drop_check: str | None = None  # the evidence of a drop check that ran: calls, both figures, both ratios
    normalized_drift: float | None = None
    top1_agreement: float | None = None
    near_ties: int | None = None  # rows whose reference top two lie within the candidate's observed rounding
    decisive_rows: int | None = None
    decisive_agreement: float | None = None  # top-1 agreement over the other rows: what the gate judges
    metrics: dict[str, float] | None = None
    gate: str | None = None  # "pass", "fail", "error", "dropped" or "skipped"
    why: str | None = None
    chosen: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.engine} {self.precision}".strip()

    @property
    def passed(self) -> bool:
        return self.gate == "pass"


@dataclass
class EngineSelection(Section):
    """How `engine: auto` chose: every candidate, the gate's rule, the reason, whether it was cached."""

    KEYS: ClassVar[dict[str, str]] = {
        "chosen": "Chosen",
        "decided": "Decided",
        "reason": "Reason",
        "batch_size": "Batch Size",
        "tuning_seconds": "Tuning Seconds",
        "timing": "Timing",
        "gate": "Gate",
        "candidates": "Candidates",
        "decision": "Decision",
        "code": "Code",
        "budget_seconds": "Tuning Budget Seconds",
        "partial": "Partial",
    }
    NESTED: ClassVar[dict[str, type[Section]]] = {"candidates": CandidateRow}
    chosen: str | None = None
    decided: str | None = None
    reason: str | None = None
    batch_size: int | None = None
    tuning_seconds: float | None = None
    timing: str | None = None
    gate: dict[str, Any] | None = None  # the rule the candidates were judged by
    candidates: list[CandidateRow] = field(default_factory=list)
    decision: str | None = None  # "tuned in this run" or "cached from <date>" (when the reused one was decided)
    # What the decision cache keys it by, beside the model, host, versions and candidates: the digest of the
    # selection, gate and drift code, and for a partial decision (candidates skipped or dropped early) the budget.
    code: str | None = None
    budget_seconds: float | None = None
    partial: str | None = None  # what was skipped or dropped; None: every candidate was timed and judged
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class GraphCompile(Section):
    """ByteMLPerf's Graph Compile {Compile Duration, Compile Precision, Subgraph Coverage, Optimizations} plus ours."""

    KEYS: ClassVar[dict[str, str]] = {
        "compile_duration": "Compile Duration",
        "compile_precision": "Compile Precision",
        "subgraph_coverage": "Subgraph Coverage",
        "optimizations": "Optimizations",
        "engine": "Engine",
        "cache": "Cache",
        "artifact": "Artifact",
        "engine_selection": "Engine Selection",
        "details": "Details",
        "peak_rss_mb": PEAK_RSS,
        "artifact_size_mb": "Artifact Size MB",
        "peak_rss_method": "Peak RSS Method",
        "best_batch_sizes": "Best Batch Sizes",
    }
    NESTED: ClassVar[dict[str, type[Section]]] = {"engine_selection": EngineSelection}
    compile_duration: float | None = None
    compile_precision: str | None = None
    subgraph_coverage: float | None = None
    optimizations: list[str] | None = None
    engine: str | None = None
    cache: str | None = None  # "hit" or "miss"
    artifact: str | None = None
    engine_selection: EngineSelection | None = None
    details: dict[str, Any] | None = None
    peak_rss_mb: float | None = None
    artifact_size_mb: float | None = None
    peak_rss_method: str | None = None
    best_batch_sizes: list[int] | None = None  # the backend's get_best_batch_size, when it gave one
    extra: dict[str, Any] = field(default_factory=dict)


# Graph Compile's memory figures (MB), with the names compare shows them under.
COMPILE_MEMORY = {"peak_rss_mb": "Compile Peak RSS MB", "artifact_size_mb": "Artifact Size MB"}


@dataclass
class NumericDrift(Section):
    """ByteMLPerf's numeric check against the CPU FP32 reference, over valid positions only."""

    KEYS: ClassVar[dict[str, str]] = {
        "compared_values": "Compared Values",
        "nonfinite": "Non-finite",
        "mean_diff": "Mean Diff",
        "std_diff": "Std Diff",
        "max_diff": "Max Diff",
        "max_rel_diff": "Max Rel-Diff",
        "mean_rel_diff": "Mean Rel-Diff",
        "diff_dist": "Diff Dist",
        "diff_histogram": "Diff Histogram",
        "numeric_reference": "Numeric Reference",
    }
    STATISTICS: ClassVar[tuple[str, ...]] = ("Mean Diff", "Std Diff", "Max Diff", "Max Rel-Diff", "Mean Rel-Diff")
    # ByteMLPerf's statistics are written as null when nothing finite was compared.
    ALWAYS: ClassVar[tuple[str, ...]] = ("mean_diff", "std_diff", "max_diff", "max_rel_diff", "mean_rel_diff")
    compared_values: int | None = None
    nonfinite: int | None = None  # NaN/Inf pairs, left out of the statistics
    mean_diff: float | None = None
    std_diff: float | None = None
    max_diff: float | None = None
    max_rel_diff: float | None = None
    mean_rel_diff: float | None = None
    diff_dist: str | None = None  # the distribution's PNG, relative to the report's folder
    diff_histogram: dict[str, Any] | None = None  # {edges, counts}, where a report carries one instead
    numeric_reference: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def statistics(self) -> dict[str, float]:
        return {key: value for key in self.STATISTICS if (value := self.number(key)) is not None}

    def histogram(self) -> dict[str, list[float]] | None:
        """`Diff Histogram {edges, counts}` when well formed (len(edges) == len(counts) + 1), else None."""
        hist = self.diff_histogram
        if (
            not isinstance(hist, dict)
            or not isinstance(hist.get("edges"), list)
            or not isinstance(hist.get("counts"), list)
        ):
            return None
        edges, counts = [as_number(v) for v in hist["edges"]], [as_number(v) for v in hist["counts"]]
        if not counts or len(edges) != len(counts) + 1 or None in edges or None in counts:
            return None
        return {"edges": edges, "counts": counts}


@dataclass
class Accuracy(Section):
    """The task's quality metrics (EM, F1, accuracy…) on its dataset, with the numeric drift in the same
    section as ByteMLPerf writes it. Every number that is not a count, a drift statistic or a problem
    count is a quality metric."""

    KEYS: ClassVar[dict[str, str]] = {
        "data_percent": "Data Percent",
        "nonfinite_outputs": "Non-finite Outputs",
        "empty_predictions": "Empty Predictions",
        "provenance": "Dataset Provenance",
        "note": "Note",
        "published": "Published",
    }
    COUNTS: ClassVar[tuple[str, ...]] = ("Questions", "Features", "Examples")
    data_percent: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)  # task metric name -> value, in the loader's order
    counts: dict[str, Any] = field(default_factory=dict)  # Questions, Features, Examples
    nonfinite_outputs: int | None = None  # NaN/Inf outputs the dataset metric left out
    empty_predictions: int | None = None
    drift: NumericDrift | None = None
    provenance: dict[str, Any] | None = None
    note: str | None = None
    # {"Source", "Figures": {metric: value}, and "Difference": {metric: ours - published} with real weights}
    published: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.data_percent is not None:
            out["Data Percent"] = self.data_percent
        out.update(self.metrics)
        out.update(self.counts)
        for name in ("nonfinite_outputs", "empty_predictions"):
            if getattr(self, name) is not None:
                out[self.KEYS[name]] = getattr(self, name)
        if self.drift is not None:
            out.update(self.drift.to_dict())
        for name in ("provenance", "note", "published"):
            if getattr(self, name) is not None:
                out[self.KEYS[name]] = getattr(self, name)
        return {**out, **self.extra}

    @classmethod
    def from_dict(cls, data: Any) -> Accuracy:
        if not isinstance(data, dict):
            return cls()
        by_key = {key: name for name, key in cls.KEYS.items()}
        drift_keys = set(NumericDrift.KEYS.values())
        values: dict[str, Any] = {}
        metrics, counts, drift, extra = {}, {}, {}, {}
        for key, value in data.items():
            if key in by_key:
                values[by_key[key]] = value
            elif key in drift_keys:
                drift[key] = value
            elif key in cls.COUNTS:
                counts[key] = value
            elif isinstance(value, (int, float, str)) and not isinstance(value, bool) and as_number(value) is not None:
                metrics[key] = value
            else:
                extra[str(key)] = value
        return cls(
            **values,
            metrics=metrics,
            counts=counts,
            drift=NumericDrift.from_dict(drift) if drift else None,
            extra=extra,
        )

    def quality(self) -> dict[str, float]:
        """The task's quality numbers (finite only): what the accuracy gate and compare judge."""
        return {key: number for key, value in self.metrics.items() if (number := as_number(value)) is not None}

    def published_differences(self) -> dict[str, tuple[float, float]]:
        """metric -> (published figure, ours minus it), where the run could say (real weights; a synthetic
        run's report carries the figures without a difference)."""
        published = self.published if isinstance(self.published, dict) else {}
        figures, differences = published.get("Figures"), published.get("Difference")
        if not isinstance(figures, dict) or not isinstance(differences, dict):
            return {}
        found = {}
        for metric, difference in differences.items():
            figure, value = as_number(figures.get(metric)), as_number(difference)
            if figure is not None and value is not None:
                found[metric] = (figure, value)
        return found

    def against_published(self) -> dict[str, float]:
        """'<metric> vs published (<figure>)' -> ours minus the figure: compare's rows."""
        return {
            f"{metric} vs published ({figure:g})": difference
            for metric, (figure, difference) in self.published_differences().items()
        }

    def problems(self) -> dict[str, float]:
        """Counts of outputs that did not score (NaN/Inf for the metric and for the drift, empty answers),
        where the report has them: shown beside the metrics, never one of them."""
        found = {
            self.KEYS["nonfinite_outputs"]: as_number(self.nonfinite_outputs),
            NumericDrift.KEYS["nonfinite"]: as_number(self.drift.nonfinite) if self.drift else None,
            self.KEYS["empty_predictions"]: as_number(self.empty_predictions),
        }
        return {key: value for key, value in found.items() if value is not None}


# Counts of outputs that did not score (Accuracy.problems): shown in compare, left out of one-line
# accuracy summaries while zero.
PROBLEM_KEYS = ("Non-finite Outputs", "Non-finite", "Empty Predictions")


@dataclass
class LoadGenResult(Section):
    """One MLPerf LoadGen scenario: LoadGen's verdict and numbers (latencies in ms), and its own logs."""

    KEYS: ClassVar[dict[str, str]] = {
        "scenario": "Scenario",
        "result": "Result",
        "qps": "QPS",
        "p50_latency": "P50 Latency",
        "p90_latency": "P90 Latency",
        "p99_latency": "P99 Latency",
        "target_qps": "Target QPS",
        "target_latency": "Target Latency",
        "peak_qps": "Peak QPS",
        "queries": "Queries",
        "unmet": "Unmet",
        "mode": "Mode",
        "peak_search_start": "Peak Search Start",
        "peak_search": "Peak Search",
        "samples_per_query": "Samples Per Query",
        "instance_count": "Instance Count",
        "max_batch_size": "Max Batch Size",
        "log_summary": "Log Summary",
        "log_detail": "Log Detail",
        "status": "Status",
        "error": "Error",
        "first_attempt": "First Attempt",
    }
    NUMBERS: ClassVar[tuple[str, ...]] = (
        "QPS",
        "P50 Latency",
        "P90 Latency",
        "P99 Latency",
        "Target QPS",
        "Target Latency",
        "Peak QPS",
    )
    scenario: str = ""
    result: str | None = None  # "VALID" or "INVALID", as LoadGen judged
    qps: float | None = None
    p50_latency: float | None = None
    p90_latency: float | None = None
    p99_latency: float | None = None
    target_qps: float | None = None
    target_latency: float | None = None
    peak_qps: float | None = None
    queries: int | None = None
    unmet: list[str] | None = None  # which of LoadGen's checks failed
    mode: str | None = None  # PerformanceOnly, or FindPeakPerformance (Server with find_peak)
    peak_search_start: float | None = None
    peak_search: list[str] | None = None  # LoadGen's own lines about the search
    samples_per_query: int | None = None
    instance_count: int | None = None
    max_batch_size: int | None = None
    log_summary: str | None = None  # LoadGen's mlperf_log_summary.txt, relative to the report's folder
    log_detail: str | None = None
    status: str | None = None
    error: str | None = None
    # An attempt INVALID only for min duration or min queries, re-run once with LoadGen's recommendation:
    # its Result, QPS, Target QPS, Unmet, Log Summary and the Recommendation followed
    first_attempt: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# A Host.Peak figure's provenance: whether this run reused a figure an earlier run stored, and when it was measured.
PEAK_CACHED = "Cached"
PEAK_MEASURED = "Measured"


@dataclass
class HostInfo(Section):
    """The machine that ran: processor and its ISA (what decides the fastest engine), cores, memory, OS, and
    the accelerator where one ran."""

    KEYS: ClassVar[dict[str, str]] = {
        "cpu": "cpu",
        "processor": "processor",
        "vendor": "vendor",
        "family": "family",
        "model_number": "model_number",
        "stepping": "stepping",
        "microcode": "microcode",
        "l2": "l2",
        "l3": "l3",
        "physical_cores": "physical_cores",
        "threads": "threads",
        "mhz": "mhz",
        "microarchitecture": "microarchitecture",
        "fingerprint": "fingerprint",
        "isa": "isa",
        "summary": "summary",
        "bf16": "bf16",
        "int8": "int8",
        "flags": "flags",
        "cores": "cores",
        "usable_cores": "usable_cores",
        "memory_gib": "memory_gib",
        "os": "os",
        "machine": "machine",
        "python": "python",
        "hostname": "hostname",
        "accelerator": "accelerator",
        "accelerators": "accelerators",
        "peak": "Peak",
    }
    cpu: str | None = None
    processor: str | None = None  # the model name with family/model and microarchitecture: "AMD EPYC (family 25 …)"
    vendor: str | None = None
    family: int | None = None
    model_number: int | None = None
    stepping: int | None = None
    microcode: str | None = None
    l2: str | None = None
    l3: str | None = None
    physical_cores: int | None = None
    threads: int | None = None
    mhz: int | None = None
    microarchitecture: str | None = None
    fingerprint: str | None = None  # digest of what makes two hosts the same kind (core.measure.host)
    isa: str | None = None
    summary: str | None = None
    bf16: bool | None = None
    int8: bool | None = None
    flags: list[str] | None = None
    cores: int | None = None
    usable_cores: int | None = None
    memory_gib: float | None = None
    os: str | None = None
    machine: str | None = None
    python: str | None = None
    hostname: str | None = None
    accelerator: str | None = None  # one line: the device that ran, its memory, capability, driver, runtime
    accelerators: dict[str, Any] | None = None  # every visible device, its clocks at start, and which one ran
    # What the hardware can do, measured (core.measure.peak): {precision: {GFLOP/s, Method, Cached, Measured},
    # Memory: {GB/s, ...}, ...}
    peak: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Weights(Section):
    """Where the weights came from; `kind` "synthetic" means accuracy is not meaningful."""

    KEYS: ClassVar[dict[str, str]] = {
        "kind": "kind",
        "note": "note",
        "path": "path",
        "sha256": "sha256",
        "seed": "seed",
        "architecture": "architecture",
    }
    kind: str | None = None
    note: str | None = None
    path: str | None = None
    sha256: str | None = None
    seed: int | None = None
    architecture: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def synthetic(self) -> bool:
        return self.kind == "synthetic"
