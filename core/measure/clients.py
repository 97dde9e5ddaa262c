"""Runtime instances for concurrent clients (ByteMLPerf's `clients`), shared by the timed loop and
the LoadGen system under test.

A backend says how many instances can run at once (RuntimeBackend.instances); when it offers fewer
than the clients asked for, clients take turns on an instance under a lock, so a backend without
multi-instance support still runs correctly, serialized, and the report says so.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

Feeds = dict[str, np.ndarray]


class Runtime(Protocol):
    """What measuring needs of a runtime (backends.base.RuntimeBackend provides it)."""

    def bind(self, feeds: Feeds) -> Callable[[], object]: ...

    def instances(self, count: int) -> list[Runtime]: ...


@dataclass(frozen=True)
class Instances:
    runtimes: list[Runtime]  # one per concurrent slot (may be the same object, e.g. one thread-safe session)
    clients: int  # how many were asked for

    @property
    def count(self) -> int:
        return len(self.runtimes)

    @property
    def serialized(self) -> bool:
        return self.count < self.clients

    def calls(self, feeds: Feeds) -> list[Callable[[], object]]:
        """One bound call per client; clients sharing an instance take turns on it."""
        locks = [threading.Lock() for _ in self.runtimes]
        bound = [runtime.bind(feeds) for runtime in self.runtimes]
        if not self.serialized:
            return bound

        def turn(call: Callable[[], object], lock: threading.Lock) -> Callable[[], object]:
            def locked() -> object:
                with lock:
                    return call()

            return locked

        return [turn(bound[i % self.count], locks[i % self.count]) for i in range(self.clients)]

    def report_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"Clients": self.clients, "Instances": self.count}
        if self.serialized:
            entry["Note"] = (
                f"the backend runs {self.count} instance(s) at a time: {self.clients} clients were serialized on it"
            )
        return entry


def open_instances(runtime: Runtime, clients: int) -> Instances:
    """The runtime's instances for `clients` concurrent callers (call after runtime.load)."""
    runtimes = list(runtime.instances(clients)) if clients > 1 else [runtime]
    return Instances(runtimes=runtimes[:clients] or [runtime], clients=clients)


def record(instances: Instances, report) -> None:
    """Put the instances that ran in the report (Instance Count, a Clients section, a note once when serialized)."""
    from core.common import console

    report.instance_count = instances.count
    if instances.clients == 1:
        return
    entry = instances.report_entry()
    report.sections["Clients"] = entry
    if instances.serialized and entry["Note"] not in report.notes:
        console.warn(entry["Note"])
        report.notes.append(entry["Note"])
