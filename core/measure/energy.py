"""The host's energy counter, where it exposes one: RAPL through Linux powercap (Intel, and AMD Zen since
Linux 5.8), summed over the package zones (their subzones are parts of them, so not added again)."""

from __future__ import annotations

from pathlib import Path

POWERCAP = Path("/sys/class/powercap")


class RaplMeter:
    """Package energy in joules between two reads; each counter wraps at its max_energy_range_uj."""

    def __init__(self, zones: list[Path]):
        self.zones = zones
        self.ranges = [int((zone / "max_energy_range_uj").read_text()) for zone in zones]

    @classmethod
    def find(cls, root: Path = POWERCAP) -> tuple[RaplMeter | None, str]:
        """The meter, or None and why not (said once in the report)."""
        if not root.is_dir():
            return None, f"no energy counter: {root} is absent (no RAPL powercap here, e.g. a VM or container)"
        zones = sorted(p for p in root.glob("*rapl:*") if p.name.count(":") == 1 and (p / "energy_uj").exists())
        if not zones:
            return None, f"no energy counter: {root} has no RAPL package zone"
        try:
            meter = cls(zones)
            meter.read()
        except (OSError, ValueError) as err:
            return None, f"no energy counter: {zones[0] / 'energy_uj'} unreadable ({err.strerror or err}; root only)"
        names = ", ".join(
            (zone / "name").read_text().strip() if (zone / "name").exists() else zone.name for zone in zones
        )
        return meter, f"energy from RAPL powercap ({names}): the whole package, idle cores included"

    def read(self) -> list[int]:
        return [int((zone / "energy_uj").read_text()) for zone in self.zones]

    def joules(self, before: list[int], after: list[int]) -> float:
        return sum((b - a) % span for a, b, span in zip(before, after, self.ranges)) / 1e6
