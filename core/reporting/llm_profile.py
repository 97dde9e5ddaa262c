"""An LLM run's profile (report section `Profile` with a `Prefill` and a `Decode` phase, each in the encoder
profile's shape) as tables, for the console and the run page: each phase's profiled time against the row's timed
one, and time per operator type in a prefill and a decode step side by side."""

from __future__ import annotations

from typing import Any

from core.common import console
from core.reporting.schema import as_number
from core.reporting.tables import Cell, TextTable, fmt, print_table

PHASES = ("Prefill", "Decode")
# Per phase: its name, and the row's figure shown beside the timed one.
NAMES = {"Prefill": "prefill", "Decode": "decode step"}
ROW_FIGURE = {"Prefill": ("TTFT", "Row TTFT AVG"), "Decode": ("TPOT", "Row TPOT AVG")}


def is_llm_profile(profile: Any) -> bool:
    return isinstance(profile, dict) and any(isinstance(profile.get(phase), dict) for phase in PHASES)


def phases(profile: dict) -> dict[str, dict]:
    """The phases a profile has times for (a report is untrusted: anything malformed is left out)."""
    return {
        phase: section
        for phase in PHASES
        if isinstance(section := profile.get(phase), dict) and isinstance(section.get("Types"), list)
    }


def agreement_table(profile: dict) -> TextTable:
    """Each phase's profiled time per call against the timed run's, with TTFT or TPOT beside it."""
    table = TextTable(
        f"Profiled against timed ({profile.get('Load Point') or 'its load point'}; ms)",
        ["phase", "representative", "calls", "profiled", "timed", "ratio", "row"],
        text_columns=2,
    )
    for phase, section in phases(profile).items():
        profiled, timed = as_number(section.get("Profiled ms per Call")), as_number(section.get("Timed ms per Call"))
        representative = section.get("Representative")
        verdict = "—" if representative is None else "yes" if representative else "no"
        name, key = ROW_FIGURE[phase]
        row_ms = as_number(section.get(key))
        calls = as_number(section.get("Calls"))
        table.rows.append(
            [
                Cell(NAMES[phase]),
                Cell(verdict, bad=representative is False),
                Cell("—" if calls is None else f"{calls:.0f}"),
                Cell(fmt(profiled)),
                Cell(fmt(timed)),
                Cell(f"{profiled / timed:.2f}x" if profiled and timed else "—", bad=representative is False),
                Cell(f"{name} {fmt(row_ms)}" if row_ms is not None else "—"),
            ]
        )
    return table


def timed_note(profile: dict) -> str:
    """What each phase's timed figure is."""
    found = phases(profile)
    return "timed: " + "; ".join(f"{NAMES[p]}: {s.get('Timed Against') or '—'}" for p, s in found.items())


def types_table(profile: dict) -> TextTable:
    """Time per operator type, ms per call and share of the profiled call, one column pair per phase; the slowest
    first, the time outside operators (the line without ops) last."""
    found = phases(profile)
    times = {phase: _type_rows(section) for phase, section in found.items()}
    outside = {kind for section in found.values() for kind in _outside(section)}
    kinds = sorted(
        {kind for rows in times.values() for kind in rows},
        key=lambda kind: (kind in outside, -max(rows.get(kind, (0.0, 0.0))[0] or 0.0 for rows in times.values())),
    )
    headers = ["operator type"]
    for phase in found:
        headers += [f"{phase.lower()} ms", "share"]
    profiler = next((s.get("Profiler") for s in found.values() if s.get("Profiler")), None)
    table = TextTable(f"Where the time went ({profiler or 'profiler'})", headers)
    for kind in kinds:
        cells = [Cell(kind)]
        for phase in found:
            ms, share = times[phase].get(kind, (None, None))
            cells += [Cell(fmt(ms)), Cell(f"{share:.1%}" if share is not None else "—")]
        table.rows.append(cells)
    return table


def _type_rows(section: dict) -> dict[str, tuple[float | None, float | None]]:
    rows = {}
    for entry in _entries(section):
        rows[entry["Type"]] = (as_number(entry.get("ms per Call")), as_number(entry.get("Share")))
    return rows


def _outside(section: dict) -> list[str]:
    """The type that holds the time no operator accounts for: the one written without ops per call."""
    return [entry["Type"] for entry in _entries(section) if "Ops per Call" in entry and entry["Ops per Call"] is None]


def _entries(section: dict) -> list[dict]:
    return [e for e in section.get("Types") or [] if isinstance(e, dict) and isinstance(e.get("Type"), str)]


def print_llm_profile(profile: dict) -> None:
    """The two tables on the console."""
    if not phases(profile):
        return
    print_table(console.console, types_table(profile))
    print_table(console.console, agreement_table(profile))
    console.info(timed_note(profile))
