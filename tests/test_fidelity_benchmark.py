"""benchmarks/fidelity.py's own arithmetic: how far the speed moved inside one window."""

from __future__ import annotations

import math
import runpy
from pathlib import Path

FIDELITY = runpy.run_path(str(Path(__file__).resolve().parent.parent / "benchmarks" / "fidelity.py"))
window_drift = FIDELITY["window_drift"]
MS = 1_000_000


def test_a_steady_window_moved_not_at_all():
    assert window_drift([100 * MS] * 30) == 1.0


def test_a_window_whose_calls_slow_to_half_speed_moved_2x():
    # One second at 10 calls a second, then two at 5: per-second rates 10, 5, 5.
    assert math.isclose(window_drift([100 * MS] * 10 + [200 * MS] * 10), 2.0)


def test_seconds_with_fewer_than_three_calls_are_not_rates_and_one_rate_is_no_range():
    assert math.isnan(window_drift([600 * MS] * 6))  # one or two calls a second: no second is a rate
    assert math.isnan(window_drift([100 * MS] * 9))  # one bin
