"""Reports side by side: the baseline's ratios, regressions beyond a threshold, and their tables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from core.common.errors import UserError
from core.reporting.llm_rows import JUDGED, LlmRow
from core.reporting.profile_compare import OperatorComparison, compare_operators, operator_table
from core.reporting.report import RunReport
from core.reporting.schema import LATENCY_KEYS, QPS, ROOFLINE_KEYS, ROW_KEYS, UNJUDGED_KEYS
from core.reporting.sections import LoadGenResult
from core.reporting.significance import ALPHA, Verdict, judge_change, judge_llm_change
from core.reporting.tables import Cell, TextTable, fmt

# Held against a roof that may have been re-measured between the runs: shown, never set against each other.
# What is compared is the achieved rate (Achieved GFLOP/s), whose ratio is the work done per second.
SHARE_KEYS = tuple(ROW_KEYS[k] for k in ("peak_share", "roof_gflops", "spec_peak_share"))

# What a mismatch warning checks, as (RunReport attribute, what users call it).
IDENTITY_FIELDS = (
    ("model", "model"),
    ("dataset", "dataset"),
    ("precision_ran", "precision"),
    ("weights_kind", "weights"),
    ("host_identity", "host"),
    ("host_device", "device"),
    ("data_percent", "data percent"),
)


@dataclass
class ComparedRow:
    bs: int
    metric: str
    values: list[float | None]
    ratios: list[float | None]  # value / baseline value; None where either is missing
    statuses: list[str | None]  # "ok", "failed", or None where the report lacks this batch size
    regressions: list[bool]
    unbacked: list[bool] = field(default_factory=list)  # a tail percentile on too few samples: shown, never judged
    intervals: list[tuple[float, float] | None] = field(default_factory=list)  # QPS rows: each run's 95% interval
    verdicts: list[Verdict | None] = field(default_factory=list)  # each change against the baseline, tested
    point: str | None = None  # an LLM row's load point ("bs 4, 128 in, 32 out"); bs is its batch size


@dataclass
class LoadGenRow:
    scenario: str
    metric: str  # a LoadGenResult.NUMBERS number, or "Result" (VALID/INVALID as LoadGen judged)
    values: list[Any]
    ratios: list[float | None]
    regressions: list[bool]


@dataclass
class MetricRow:
    metric: str
    values: list[float | None]
    deltas: list[float | None]  # value - baseline value


@dataclass
class Regression:
    report: str
    bs: int
    metric: str
    baseline: float | None
    value: float | None
    change: float | None  # relative: -0.1 is 10% lower than the baseline
    message: str


@dataclass
class Comparison:
    labels: list[str]
    reports: list[RunReport]
    threshold: float | None
    batch_sizes: list[int]
    perf: list[ComparedRow]
    accuracy: list[MetricRow]
    numeric: list[MetricRow]
    compile_memory: list[MetricRow]
    warnings: list[str]
    regressions: list[Regression]
    loadgen: list[LoadGenRow] = field(default_factory=list)
    published: list[MetricRow] = field(default_factory=list)  # ours minus a published figure, real weights only
    operators: OperatorComparison | None = None  # both sides profiled (--profile): time by operator type
    capacity: list[str] = field(default_factory=list)  # LLM sweeps: the load each side carried within its SLO

    def to_json(self) -> dict[str, Any]:
        data = asdict(replace(self, reports=[]))
        data["reports"] = [{"label": label, **_identity(r)} for label, r in zip(self.labels, self.reports)]
        return data


def _identity(r: RunReport) -> dict[str, Any]:
    return {
        "source": str(r.source) if r.source else None,
        "format": r.format,
        "model": r.model,
        "backend": r.backend or None,
        "engine": r.engine,
        "dataset": r.dataset,
        "precision": r.precision_ran,
        "weights_kind": r.weights_kind,
        "host_cpu": r.host_cpu,
        "host_device": r.host_device,
        "run_id": r.run_id or None,
        "run_status": r.status,
        "started": r.started,
    }


def same_value(a: Any, b: Any) -> bool:
    return (a.lower() == b.lower()) if isinstance(a, str) and isinstance(b, str) else a == b


def _warnings(labels: Sequence[str], reports: Sequence[RunReport]) -> list[str]:
    warnings = []
    for key, name in IDENTITY_FIELDS:
        values = [getattr(r, key) for r in reports]
        if any(not same_value(v, values[0]) for v in values[1:]):
            shown = ", ".join(
                f"{label}={fmt(v) if isinstance(v, float) else v or 'unknown'}" for label, v in zip(labels, values)
            )
            warnings.append(f"{name} differs: {shown}")
    differing = config_differences(reports)
    if differing:
        warnings.append(
            "configuration differs: "
            + "; ".join(
                f"{key} (" + ", ".join(f"{label}={_shown_config(v)}" for label, v in zip(labels, values)) + ")"
                for key, values in differing.items()
            )
        )
    for label, r in zip(labels, reports):
        if r.status and r.status != "complete":
            warnings.append(f"{label}: run is {r.status}; its numbers may be partial")
        if r.weights_kind == "synthetic" and r.quality:
            warnings.append(f"{label}: synthetic weights, its accuracy numbers are meaningless")
    for label, r in zip(labels, reports):
        warnings += [f"{label}: {note}" for note in r.read_notes]
    base = reports[0]
    for label, r in zip(labels[1:], reports[1:]):
        # Vendor reports often hold one tuned batch size: still worth seeing side by side, without ratios.
        if base.perf_by_bs and r.perf_by_bs and not set(base.perf_by_bs) & set(r.perf_by_bs):
            warnings.append(
                f"{label} shares no batch size with {labels[0]} ({sorted(r.perf_by_bs)} vs "
                f"{sorted(base.perf_by_bs)}): values are shown side by side, without ratios"
            )
    all_bs = sorted({bs for r in reports for bs in r.perf_by_bs})
    for bs in all_bs:
        missing = [label for label, r in zip(labels, reports) if bs not in r.perf_by_bs]
        if missing:
            warnings.append(f"batch size {bs} is missing from {', '.join(missing)}")
    unsaid = [label for label, r in zip(labels, reports) if any(row.output_tokens is None for row in r.llm_rows)]
    if unsaid and len(unsaid) < len(reports):
        warnings.append(
            f"no output tokens in the rows of {', '.join(unsaid)} (llm_perf's): load points are matched by TP "
            "size, batch size and input tokens"
        )
    for point, rows in llm_points(reports):
        missing = [label for label, row in zip(labels, rows) if row is None]
        if missing:
            warnings.append(f"load point {point} is missing from {', '.join(missing)}")
    return warnings


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(_flat(inner, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}


# Config keys that name or describe a run rather than configure it.
_NOT_CONFIG = ("workload.description", "model.description", "workload_file", "model.assets", "model.published")


def config_differences(reports: Sequence[RunReport]) -> dict[str, list[Any]]:
    """Every field of the effective configuration (the report's Config: workload, model entry, backend options,
    command-line overrides) whose value differs between reports that record one."""
    configs = [r.sections.get("Config") for r in reports]
    if sum(isinstance(c, dict) for c in configs) < 2:
        return {}
    flat = [_flat({k: v for k, v in c.items() if k != "overrides"}) if isinstance(c, dict) else {} for c in configs]
    keys = list(dict.fromkeys(key for f in flat for key in f))
    return {
        key: [f.get(key) for f in flat]
        for key in keys
        if not key.startswith(_NOT_CONFIG) and any(not same_value(f.get(key), flat[0].get(key)) for f in flat[1:])
    }


def _shown_config(value: Any) -> str:
    return "unset" if value is None else str(value)[:40]


def _metric_rows(reports: Sequence[RunReport], section: str) -> list[MetricRow]:
    """Rows of one of RunReport's number views: quality, numeric, compile_memory or against_published."""
    views = [getattr(r, section) for r in reports]
    names = list(dict.fromkeys(name for view in views for name in view))
    rows = []
    for name in names:
        values = [view.get(name) for view in views]
        base = values[0]
        rows.append(MetricRow(name, values, [None if base is None or v is None else v - base for v in values]))
    return rows


def build_comparison(reports: Sequence[RunReport], labels: Sequence[str], threshold: float | None = None) -> Comparison:
    """Compare reports against the first, over the union of their batch sizes (an LLM report's: load
    points), gaps shown as such."""
    llm = [label for label, r in zip(labels, reports) if r.is_llm]
    if llm and len(llm) < len(reports):
        others = [label for label, r in zip(labels, reports) if not r.is_llm]
        raise UserError(
            f"{', '.join(llm)} is an LLM report and {', '.join(others)} is not: they share no figure to compare",
            field="REPORT",
            fix="compare LLM runs with LLM runs",
        )
    batch_sizes = sorted(
        {bs for r in reports for bs in r.perf_by_bs} | {row.batch_size for r in reports for row in r.llm_rows}
    )
    perf: list[ComparedRow] = []
    regressions: list[Regression] = []
    for bs in sorted({bs for r in reports for bs in r.perf_by_bs}):
        rows = [r.perf_by_bs.get(bs) for r in reports]
        statuses = [row.status if row else None for row in rows]
        if threshold is not None:
            _status_regressions(labels, rows, bs, f"batch size {bs}", regressions)
        for metric in (QPS, *LATENCY_KEYS, *UNJUDGED_KEYS):
            values = [row.number(metric) if row else None for row in rows]
            if all(v is None for v in values):
                continue
            unbacked = [bool(row and row.unbacked(metric)) for row in rows]
            # Memory is shown, not judged: allocator and arena behaviour make it too noisy to gate on; device
            # time and energy are shown beside the host-timed numbers, which are the ones judged.
            # A P99 of 28 samples is their maximum by another name: shown as such, not judged either.
            judged = metric not in UNJUDGED_KEYS and not any(unbacked)  # an unbacked tail has nothing to test
            verdicts = _verdicts(metric, reports, rows, bs) if judged else [None] * len(rows)
            ratios, flags = _judge(
                values,
                labels,
                threshold if judged else None,
                higher_is_better=metric == QPS,
                bs=bs,
                what=f"batch size {bs} {metric}",
                metric=metric,
                regressions=regressions,
                verdicts=verdicts,
            )
            if metric in SHARE_KEYS:
                ratios = [None] * len(ratios)
            intervals = [row.qps_interval() if row and metric == QPS else None for row in rows]
            perf.append(ComparedRow(bs, metric, values, ratios, statuses, flags, unbacked, intervals, verdicts))
    perf += _llm_perf(reports, labels, threshold, regressions)
    loadgen = _loadgen_rows(reports, labels, threshold, regressions)
    return Comparison(
        list(labels),
        list(reports),
        threshold,
        batch_sizes,
        perf,
        _metric_rows(reports, "quality"),
        _metric_rows(reports, "numeric"),
        _metric_rows(reports, "compile_memory"),
        _warnings(labels, reports),
        regressions,
        loadgen,
        _metric_rows(reports, "against_published"),
        compare_operators(reports),
        slo_capacity(reports, labels),
    )


def _carried(report: RunReport) -> tuple[float, str] | None:
    """The most load a report's rows carried within their SLO: the highest achieved rate (open loop) or
    concurrency (closed loop) of a row whose every objective was met; None where no row was judged."""
    judged = [row for row in report.llm_rows if row.slo_met is not None]
    if not judged:
        return None
    met = [row for row in judged if row.slo_met]
    if not met:
        return 0.0, "no load point met the SLO"
    if any(row.request_rate for row in met):
        best = max((row for row in met if row.request_rate), key=lambda row: row.achieved_rate or row.request_rate)
        rate = best.achieved_rate or best.request_rate
        bound = "" if best.slo_upper_met else " (its P99s' upper bounds do not all meet it)"
        return rate, f"{rate:.4g} req/s at {best.label}{bound}"
    best = max(met, key=lambda row: row.batch_size or 0)
    return float(best.batch_size or 0), f"{best.batch_size} concurrent requests at {best.label}"


def slo_capacity(reports: Sequence[RunReport], labels: Sequence[str]) -> list[str]:
    """Which side of two LLM sweeps carries more load within the SLO, and how much each carried."""
    carried = [_carried(r) for r in reports]
    if sum(c is not None for c in carried) < 2:
        return []
    lines = [f"{label}: within the SLO, {c[1]}" for label, c in zip(labels, carried) if c is not None]
    sides = [(c[0], label) for label, c in zip(labels, carried) if c is not None]
    most = max(value for value, _ in sides)
    leaders = [label for value, label in sides if value == most]
    lines.append(
        "within the SLO: " + (f"{leaders[0]} carries the most load" if len(leaders) == 1 else "no side carries more")
    )
    return lines


def _status_regressions(labels: Sequence[str], rows: list, bs: int, what: str, regressions: list[Regression]) -> None:
    """A row that failed where the baseline's ran is a regression."""
    if rows[0] is None or not rows[0].ok:
        return
    for label, row in zip(labels[1:], rows[1:]):
        if row and not row.ok:
            message = f"{label}: {what} {row.status} ({row.error or 'no error recorded'}); the baseline ran"
            regressions.append(Regression(label, bs, "Status", None, None, None, message))


def llm_points(reports: Sequence[RunReport]) -> list[tuple[str, list[LlmRow | None]]]:
    """Each load point (TP size, batch size, input and output tokens) and every report's row there. Where a
    report does not record output tokens (llm_perf's), points are matched without them."""
    loose = any(row.output_tokens is None for r in reports for row in r.llm_rows)
    by_point = [{row.point[:3] if loose else row.point: row for row in r.llm_rows} for r in reports]
    points = sorted({point for found in by_point for point in found})
    return [
        (next(found[p] for found in by_point if p in found).label, [found.get(p) for found in by_point]) for p in points
    ]


# Shown beside an LLM row's judged figures, never judged: what explains them (how many requests a test had).
LLM_SHOWN = ("ITL.P99", "E2E.AVG", "Request Number")


def _llm_perf(
    reports: Sequence[RunReport], labels: Sequence[str], threshold: float | None, regressions: list[Regression]
) -> list[ComparedRow]:
    """LLM rows by load point: TTFT and TPOT (avg, P99) and token throughput, tested as QPS and latency are."""
    perf = []
    for point, rows in llm_points(reports):
        statuses = [row.status if row else None for row in rows]
        bs = next(row.batch_size for row in rows if row is not None)
        if threshold is not None:
            _status_regressions(labels, rows, bs, f"load point {point}", regressions)
        for metric in (*JUDGED, *LLM_SHOWN):
            values = [row.figure(metric) if row else None for row in rows]
            if all(v is None for v in values):
                continue
            unbacked = [bool(row and row.unbacked(metric)) for row in rows]
            judged = metric in JUDGED and not any(unbacked)
            higher = JUDGED.get(metric) == "higher"
            verdicts = _llm_verdicts(metric, reports, rows, higher) if judged else [None] * len(rows)
            ratios, flags = _judge(
                values,
                labels,
                threshold if judged else None,
                higher_is_better=higher,
                bs=bs,
                what=f"load point {point} {metric}",
                metric=metric,
                regressions=regressions,
                verdicts=verdicts,
            )
            throughput = metric == "Token Throughput"
            intervals = [row.token_throughput_interval() if row and throughput else None for row in rows]
            perf.append(ComparedRow(bs, metric, values, ratios, statuses, flags, unbacked, intervals, verdicts, point))
    return perf


def _llm_verdicts(metric: str, reports: Sequence[RunReport], rows: list, higher: bool) -> list[Verdict | None]:
    """Each ok row's change against an ok baseline row, tested on the runs' kept per-request samples (over
    the runs, where a side pools several)."""
    return _pairwise(
        reports,
        rows,
        lambda base_report, base, report, row: judge_llm_change(
            metric,
            base,
            row,
            base_report.llm_samples.get(base.key),
            report.llm_samples.get(row.key),
            higher_is_better=higher,
            base_runs=base_report.llm_run_values(base.point, metric),
            other_runs=report.llm_run_values(row.point, metric),
        ),
    )


def _verdicts(metric: str, reports: Sequence[RunReport], rows: list, bs: int) -> list[Verdict | None]:
    """Each ok row's change against an ok baseline row, tested on the runs' kept samples (None elsewhere)."""
    return _pairwise(
        reports,
        rows,
        lambda base_report, base, report, row: judge_change(
            metric,
            base,
            row,
            base_report.samples.get(bs),
            report.samples.get(bs),
            higher_is_better=metric == QPS,
            base_runs=base_report.run_values(bs, metric),
            other_runs=report.run_values(bs, metric),
        ),
    )


def _pairwise(reports: Sequence[RunReport], rows: list, judge) -> list[Verdict | None]:
    """judge(baseline report, its row, report, its row) for every report after the first whose row and the
    baseline's both ran; None for the baseline and elsewhere."""
    base = rows[0]
    verdicts: list[Verdict | None] = [None]
    for report, row in zip(reports[1:], rows[1:]):
        ran = base is not None and row is not None and base.ok and row.ok
        verdicts.append(judge(reports[0], base, report, row) if ran else None)
    return verdicts


def _judge(
    values: list,
    labels: Sequence[str],
    threshold: float | None,
    *,
    higher_is_better: bool,
    bs: int,
    what: str,
    metric: str,
    regressions: list[Regression],
    verdicts: Sequence[Verdict | None] | None = None,
) -> tuple[list, list[bool]]:
    """Ratios to the first report, and which changes go beyond the threshold the wrong way (each recorded).

    With `verdicts`, a change beyond the threshold is a regression only when its test calls it slower;
    one without samples to test (ByteMLPerf's reports) is judged by the threshold alone."""
    ratios = [None if values[0] in (None, 0) or v is None else v / values[0] for v in values]
    flags = [False] * len(values)
    for i in range(1, len(values)):
        if threshold is None or ratios[i] is None:
            continue
        change = ratios[i] - 1
        verdict = verdicts[i] if verdicts else None
        if verdict is not None and not verdict.can_regress:
            continue
        if (change < -threshold) if higher_is_better else (change > threshold):
            flags[i] = True
            evidence = f"; {verdict.text()}" if verdict is not None else ""
            regressions.append(
                Regression(
                    labels[i],
                    bs,
                    metric,
                    values[0],
                    values[i],
                    change,
                    f"{labels[i]}: {what} {'drop' if change < 0 else 'rise'} {abs(change):.1%} "
                    f"({fmt(values[0])} -> {fmt(values[i])}) beyond {threshold:.1%}{evidence}",
                )
            )
    return ratios, flags


# Lower is better for these LoadGen numbers; higher for QPS and Peak QPS. Targets are settings, never regressions.
LOADGEN_LOWER_BETTER = ("P50 Latency", "P90 Latency", "P99 Latency")


def _loadgen_rows(
    reports: Sequence[RunReport], labels: Sequence[str], threshold: float | None, regressions: list[Regression]
) -> list[LoadGenRow]:
    """LoadGen scenarios side by side; with a threshold, VALID -> INVALID and QPS/latency changes beyond it regress."""
    rows: list[LoadGenRow] = []
    for scenario in dict.fromkeys(s for r in reports for s in r.loadgen_by_scenario):
        entries = [r.loadgen_by_scenario.get(scenario) for r in reports]
        results = [e.result if e else None for e in entries]
        flags = [
            threshold is not None and i > 0 and results[0] == "VALID" and v not in (None, "VALID")
            for i, v in enumerate(results)
        ]
        for i, flagged in enumerate(flags):
            if flagged:
                regressions.append(
                    Regression(
                        labels[i],
                        0,
                        f"LoadGen {scenario}",
                        None,
                        None,
                        None,
                        f"{labels[i]}: LoadGen {scenario} is {results[i]}; the baseline was VALID",
                    )
                )
        rows.append(LoadGenRow(scenario, "Result", results, [None] * len(results), flags))
        for metric in LoadGenResult.NUMBERS:
            values = [e.number(metric) if e else None for e in entries]
            if all(v is None for v in values):
                continue
            ratios, flags = _judge(
                values,
                labels,
                None if metric.startswith("Target") else threshold,
                higher_is_better=metric not in LOADGEN_LOWER_BETTER,
                bs=0,
                what=f"LoadGen {scenario} {metric}",
                metric=f"LoadGen {scenario} {metric}",
                regressions=regressions,
            )
            rows.append(LoadGenRow(scenario, metric, values, ratios, flags))
    return rows


def comparison_tables(cmp: Comparison) -> list[TextTable]:
    """Performance (value and ratio to the baseline), accuracy and numeric-diff (value and delta)."""
    llm = any(row.point for row in cmp.perf)
    perf = TextTable(
        "Performance (TTFT, TPOT in ms, token throughput in tokens/s; ratio to the first report)"
        if llm
        else "Performance (latency in ms, memory in MB; ratio to the first report)",
        ["load point" if llm else "BS", "metric", *cmp.labels],
        text_columns=2,
    )
    for row in cmp.perf:
        cells = [Cell(row.point or str(row.bs)), Cell(row.metric)]
        for i, (value, ratio, status) in enumerate(zip(row.values, row.ratios, row.statuses)):
            if status not in (None, "ok"):
                cells.append(Cell(status, bad=True))
                continue
            text = fmt(value) + (f" ({ratio:.2f}x)" if i and ratio is not None else "")
            if row.unbacked and row.unbacked[i]:
                text = f"~{text} (unbacked)"
            if row.intervals and row.intervals[i]:
                low, high = row.intervals[i]
                text += f" [{fmt(low)}–{fmt(high)}]"
            if row.verdicts and row.verdicts[i] is not None:
                text += f" {row.verdicts[i].text()}"
            cells.append(Cell(text, bad=row.regressions[i]))
        perf.rows.append(cells)
    tables = [perf]
    if cmp.loadgen:
        loadgen = TextTable(
            "LoadGen scenarios (latency in ms; ratio to the first report)",
            ["scenario", "metric", *cmp.labels],
            text_columns=2,
        )
        for row in cmp.loadgen:
            cells = [Cell(row.scenario), Cell(row.metric)]
            for i, (value, ratio) in enumerate(zip(row.values, row.ratios)):
                text = (
                    str(value or "—")
                    if row.metric == "Result"
                    else (fmt(value) + (f" ({ratio:.2f}x)" if i and ratio is not None else ""))
                )
                cells.append(
                    Cell(text, bad=row.regressions[i] or (row.metric == "Result" and value not in (None, "VALID")))
                )
            loadgen.rows.append(cells)
        tables.append(loadgen)
    for title, rows in (
        ("Accuracy (delta to the first report)", cmp.accuracy),
        ("Numeric diff vs reference (delta to the first report)", cmp.numeric),
        ("Compile memory in MB (delta to the first report)", cmp.compile_memory),
        ("Accuracy against the published figure (ours minus published; real weights only)", cmp.published),
    ):
        if rows:
            table = TextTable(title, ["metric", *cmp.labels])
            for row in rows:
                table.rows.append(
                    [Cell(row.metric)]
                    + [
                        Cell(fmt(v) + (f" ({d:+.3g})" if i and d is not None else ""))
                        for i, (v, d) in enumerate(zip(row.values, row.deltas))
                    ]
                )
            tables.append(table)
    if cmp.operators is not None:
        tables.append(operator_table(cmp.operators, cmp.labels))
    return tables


def comparison_notes(cmp: Comparison) -> list[tuple[str, str]]:
    notes = [("warning", w) for w in cmp.warnings] + [("regression", r.message) for r in cmp.regressions]
    notes += [("capacity", line) for line in cmp.capacity]
    if any(v is not None for row in cmp.perf for v in row.verdicts):
        notes.append(
            (
                "",
                f"faster / slower / within noise: two-sided tests at p < {ALPHA:g} on the runs' kept samples "
                "(Mann-Whitney U over consecutive blocks of calls, and the change against the runs' drift; "
                "Welch t over the runs where a side pools several), else on the rows' spread; rows without "
                "samples are judged by the threshold alone"
                + (
                    "; LLM rows: blocks of requests (TTFT, TPOT) and of the gaps between tokens (token throughput)"
                    if any(row.point for row in cmp.perf)
                    else ""
                ),
            )
        )
    if cmp.operators is not None and cmp.operators.note:
        notes.append(("", cmp.operators.note))
    if any(row.number(key) is not None for r in cmp.reports for row in r.performance for key in ROOFLINE_KEYS):
        notes.append(
            (
                "",
                "achieved GFLOP/s, intensity and roof are derived from QPS: shown, never a regression; the achieved "
                "rate is what is compared, a peak share has no ratio (its roof may have been re-measured between "
                "the runs)",
            )
        )
    if cmp.threshold is not None and not cmp.regressions:
        notes.append(("", f"no regression beyond {cmp.threshold:.1%} against {cmp.labels[0]}"))
    return notes
