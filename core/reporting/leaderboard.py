"""The leaderboard of every report under a folder (what `python -m core.summary` prints).

Groups reports by model and ranks them by their best QPS; per batch size the best QPS is marked. An LLM
model's runs are ranked by their best token throughput, with token throughput and TPOT per load point.
Reads the latest `result*.json` files; --all adds every kept run (`runs/<id>.json`). Files that are
not reports are skipped with a warning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from core.common.errors import UserError
from core.reporting.report import RunReport
from core.reporting.report_io import find_report_files, hardware_of, read_report
from core.reporting.schema import ACCURACY_ABBREV, QPS, as_number
from core.reporting.sections import PROBLEM_KEYS, LoadGenResult
from core.reporting.tables import Cell, TextTable, fmt


@dataclass
class Entry:
    source: str
    hardware: str | None
    backend: str | None
    engine: str | None
    precision: str | None
    weights_kind: str | None
    run_id: str | None
    run_status: str | None
    date: str | None  # run start (ISO 8601), else ByteMLPerf's Execution Date, else the file's mtime
    qps: dict[int, float]  # batch size -> QPS, rows that ran
    accuracy: dict[str, float]
    loadgen: dict[str, LoadGenResult] = field(default_factory=dict)  # scenario -> its LoadGen result
    host: str | None = None  # the processor (or device) it ran on
    peak_share: dict[int, float] = field(default_factory=dict)  # batch size -> share of the roof (derived)
    report: RunReport | None = field(default=None, repr=False, compare=False)  # the run itself, for the dashboard
    # An LLM run: load point ("bs 4, 128 in, 32 out") -> (token throughput in tokens/s, TPOT average in ms).
    tokens: dict[str, tuple[float, float | None]] = field(default_factory=dict)

    @property
    def best_qps(self) -> float:
        return max(self.qps.values(), default=0.0)

    @property
    def best_tokens(self) -> float:
        return max((throughput for throughput, _ in self.tokens.values()), default=0.0)

    @property
    def series(self) -> dict[str, float]:
        """What the dashboard draws over time: QPS per batch size, or an LLM run's token throughput per point."""
        return {f"bs {bs}": qps for bs, qps in self.qps.items()} | {p: t for p, (t, _) in self.tokens.items()}


@dataclass
class ModelGroup:
    model: str
    batch_sizes: list[int]
    entries: list[Entry]  # best QPS (an LLM's: best token throughput) first
    points: list[str] = field(default_factory=list)  # an LLM model's load points, in order

    @property
    def is_llm(self) -> bool:
        return bool(self.points)


def accuracy_text(accuracy: dict[str, float], published: dict[str, tuple[float, float]] | None = None) -> str:
    """'EM 80.18 / F1 87.57', 'M 90.46 / MM 90.71', or whatever quality metrics the report has, then how far
    each is from its published figure where the run could say ('M 88.50 (-0.30 vs published 88.8)';
    `published` is RunReport.published_differences)."""
    shown = {k: v for k, v in accuracy.items() if not (k in PROBLEM_KEYS and not v)}
    parts = []
    for key, value in shown.items():
        text = f"{ACCURACY_ABBREV.get(key, key)} {fmt(value)}"
        if published and key in published:
            figure, difference = published[key]
            text += f" ({difference:+.2f} vs published {figure:g})"
        parts.append(text)
    return " / ".join(parts) or "—"


def loadgen_text(loadgen: dict[str, LoadGenResult]) -> str:
    """'Offline 9.10 QPS VALID; Server peak 2.40 QPS VALID': what LoadGen judged, per scenario."""
    parts = []
    for scenario, entry in loadgen.items():
        peak = entry.number("Peak QPS")
        value = f"peak {fmt(peak)}" if peak is not None else fmt(entry.number(QPS))
        parts.append(f"{scenario} {value} QPS {entry.result or entry.status or 'ok'}".strip())
    return "; ".join(parts) or "—"


def share_text(shares: dict[int, float]) -> str:
    """'84% at BS 1': the best share of the roof a run reached (derived from its QPS), or a dash."""
    if not shares:
        return "—"
    bs, share = max(shares.items(), key=lambda item: item[1])
    return f"{share:.0%} at BS {bs}"


# An LLM run's accuracy in one cell: llm_perf's first-token cosine, then ours and llm_perf's figures.
LLM_ACCURACY = ("Greedy Agreement", "PPL")


def llm_accuracy_text(report: RunReport | None) -> str:
    """'cosine 0.999987 / Greedy Agreement 1.00': against the reference, without the counts beside them."""
    data = report.accuracy.to_dict() if report is not None and report.accuracy is not None else {}
    logits = data.get("Logits Diff") if isinstance(data.get("Logits Diff"), dict) else {}
    cosine = as_number(logits.get("Cosine Similarity"))
    parts = [f"cosine {cosine:.6f}"] if cosine is not None else []
    parts += [f"{key} {fmt(value)}" for key in LLM_ACCURACY if (value := as_number(data.get(key))) is not None]
    return " / ".join(parts) or "—"


def tokens_text(throughput: float | None, tpot: float | None) -> str:
    """'41.2 tok/s, TPOT 95.3 ms': an LLM load point in one cell."""
    if throughput is None:
        return "—"
    return f"{fmt(throughput)} tok/s" + (f", TPOT {fmt(tpot)} ms" if tpot is not None else "")


def _entry(path: Path, report: RunReport) -> Entry:
    # ByteMLPerf reports carry `Execution Date`; the file's time is only the last resort (copies reset it).
    date = (
        report.started
        or report.execution_date
        or datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).isoformat(timespec="seconds")
    )
    return Entry(
        str(path),
        hardware_of(path),
        report.backend or None,
        report.engine,
        report.precision_ran,
        report.weights_kind,
        report.run_id or None,
        report.status,
        date,
        {bs: row.number(QPS) for bs, row in report.perf_by_bs.items() if row.ok and row.number(QPS) is not None},
        report.quality,
        report.loadgen_by_scenario,
        report.host_device or report.host_identity,
        report=report,
        peak_share={
            bs: share
            for bs, row in report.perf_by_bs.items()
            if row.ok and (share := row.number("Peak Share")) is not None
        },
        tokens={
            row.label: (row.token_throughput, row.figure("TPOT.AVG"))
            for row in sorted(report.llm_rows, key=lambda row: row.point)
            if row.ok and row.token_throughput is not None
        },
    )


def collect(root: Path, include_runs: bool = False) -> tuple[list[ModelGroup], list[str]]:
    """(groups by model, warnings for files that are not reports). A run kept twice is listed once."""
    entries: dict[str, list[Entry]] = {}
    names: dict[str, str] = {}
    warnings: list[str] = []
    seen_runs: set[tuple[str | None, str]] = set()
    for path in find_report_files(root, include_runs):
        try:
            _, report = read_report(path)
        except UserError as err:
            warnings.append(f"skipped {err}")
            continue
        entry = _entry(path, report)
        warnings += [f"{path}: {note}" for note in report.read_notes]
        if entry.run_id:
            key = (entry.hardware, entry.run_id)
            if key in seen_runs:
                continue
            seen_runs.add(key)
        model = report.model
        # ByteMLPerf upper-cases model names: group case-insensitively, show the first spelling seen.
        names.setdefault(model.lower(), model)
        entries.setdefault(model.lower(), []).append(entry)
    groups = [
        ModelGroup(
            names[key],
            sorted({bs for e in group for bs in e.qps}),
            sorted(group, key=lambda e: -(e.best_qps or e.best_tokens)),
            list(dict.fromkeys(point for e in group for point in e.tokens)),
        )
        for key, group in sorted(entries.items())
    ]
    return groups, warnings


def leaderboard_tables(groups: Sequence[ModelGroup]) -> list[TextTable]:
    tables = []
    for group in groups:
        if group.is_llm:
            tables.append(_llm_leaderboard(group))
            continue
        with_loadgen = any(e.loadgen for e in group.entries)  # the column only where some run has scenarios
        with_share = any(e.peak_share for e in group.entries)
        table = TextTable(
            f"{group.model}: QPS per batch size",
            [
                "#",
                "hardware",
                "backend/engine",
                "precision",
                "weights",
                *(f"BS {bs}" for bs in group.batch_sizes),
                *(["LoadGen"] if with_loadgen else []),
                *(["peak share"] if with_share else []),
                "accuracy",
                "date",
                "run",
            ],
            text_columns=5,
        )
        best = {bs: max((e.qps[bs] for e in group.entries if bs in e.qps), default=None) for bs in group.batch_sizes}
        for rank, e in enumerate(group.entries, 1):
            backend = "/".join(x for x in (e.backend, e.engine) if x) or "—"
            status = f" ({e.run_status})" if e.run_status and e.run_status != "complete" else ""
            table.rows.append(
                [
                    Cell(str(rank)),
                    Cell(e.hardware or "—"),
                    Cell(backend),
                    Cell(e.precision or "—"),
                    Cell(e.weights_kind or "unknown", bad=e.weights_kind == "synthetic"),
                    *(
                        Cell(fmt(e.qps.get(bs)), strong=len(group.entries) > 1 and e.qps.get(bs) == best[bs])
                        for bs in group.batch_sizes
                    ),
                    *(
                        [
                            Cell(
                                loadgen_text(e.loadgen),
                                bad=any(v.result == "INVALID" for v in e.loadgen.values()),
                            )
                        ]
                        if with_loadgen
                        else []
                    ),
                    *([Cell(share_text(e.peak_share))] if with_share else []),
                    Cell(accuracy_text(e.accuracy, e.report.published_differences if e.report else None)),
                    Cell((e.date or "—")[:16].replace("T", " ")),
                    Cell((e.run_id or Path(e.source).name) + status),
                ]
            )
        tables.append(table)
    return tables


def _llm_leaderboard(group: ModelGroup) -> TextTable:
    """An LLM model's runs: token throughput and TPOT at each load point, the best throughput marked."""
    table = TextTable(
        f"{group.model}: token throughput and TPOT per load point",
        ["#", "hardware", "backend/engine", "precision", "weights", *group.points, "accuracy", "date", "run"],
        text_columns=5,
    )
    best = {p: max((e.tokens[p][0] for e in group.entries if p in e.tokens), default=None) for p in group.points}
    for rank, e in enumerate(group.entries, 1):
        status = f" ({e.run_status})" if e.run_status and e.run_status != "complete" else ""
        table.rows.append(
            [
                Cell(str(rank)),
                Cell(e.hardware or "—"),
                Cell("/".join(x for x in (e.backend, e.engine) if x) or "—"),
                Cell(e.precision or "—"),
                Cell(e.weights_kind or "unknown", bad=e.weights_kind == "synthetic"),
                *(
                    Cell(
                        tokens_text(*e.tokens.get(p, (None, None))),
                        strong=len(group.entries) > 1 and p in e.tokens and e.tokens[p][0] == best[p],
                    )
                    for p in group.points
                ),
                Cell(llm_accuracy_text(e.report)),
                Cell((e.date or "—")[:16].replace("T", " ")),
                Cell((e.run_id or Path(e.source).name) + status),
            ]
        )
    return table


def to_json(groups: Sequence[ModelGroup], warnings: Sequence[str]) -> dict[str, Any]:
    models = []
    for group in groups:
        entries = []
        for e in group.entries:
            data = {f.name: getattr(e, f.name) for f in fields(e) if f.name not in ("report", "loadgen")}
            data["qps"] = {str(bs): v for bs, v in e.qps.items()}
            data["best_qps"] = e.best_qps
            data["tokens"] = {point: {"Token Throughput": t, "TPOT AVG": tpot} for point, (t, tpot) in e.tokens.items()}
            data["loadgen"] = {scenario: result.to_dict() for scenario, result in e.loadgen.items()}
            entries.append(data)
        models.append(
            {"model": group.model, "batch_sizes": group.batch_sizes, "points": group.points, "entries": entries}
        )
    return {"models": models, "warnings": list(warnings)}
