"""The run's estimate of its own length, and its one progress bar over accuracy, batch sizes and LoadGen.

Before measuring, each stage gets an estimate (core.measure.estimate) from the fastest rate the run has
timed so far; the bar shows the time spent and the estimate of what is left, and each stage's estimate
is replaced by what it took once it is done, and the later ones re-estimated from the rate just measured.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from core.common import console


def duration(seconds: float) -> str:
    """'<1 s', '~45 s', '~3.2 min', '~1.5 h'."""
    if seconds < 1:
        return "<1 s"
    if seconds < 90:
        return f"~{seconds:.0f} s"
    if seconds < 5400:
        return f"~{seconds / 60:.1f} min"
    return f"~{seconds / 3600:.1f} h"


@dataclass
class RunProgress:
    """Stage name -> estimated seconds, in run order; the stage under way and when it began."""

    estimates: dict[str, float]
    clock: object = time.monotonic
    _current: str | None = None
    _stage_started: float = 0.0
    _started: float = field(default=0.0)
    _update: object = None

    def __post_init__(self) -> None:
        self._started = self.clock()

    def left(self) -> float:
        """Seconds left by the estimate: the rest of the current stage (never below zero) and every later one."""
        total = 0.0
        for name, seconds in self.estimates.items():
            if name == self._current:
                total += max(0.0, seconds - (self.clock() - self._stage_started))
            else:
                total += seconds
        return total

    def reestimate(self, name: str, seconds: float) -> None:
        if name in self.estimates:
            self.estimates[name] = seconds

    def tick(self, *_: object) -> None:
        """Redraw the bar (a measuring loop's on_iteration hook)."""
        if self._update is None:
            return
        done = self.clock() - self._started
        left = self.left()
        self._update(self._current or "", done, done + left, f"{duration(left)} left")

    @contextmanager
    def stage(self, name: str):
        """Run a stage under the bar; once done it leaves the estimates (its time is spent, not left)."""
        self._current, self._stage_started = name, self.clock()
        self.tick()
        try:
            yield self.tick
        finally:
            self.estimates.pop(name, None)
            self._current = None

    @contextmanager
    def showing(self):
        """The bar on the terminal for the duration (quiet when output is not a terminal)."""
        with console.run_bar() as update:
            self._update = update
            try:
                yield self
            finally:
                self._update = None
