"""The two halves of a backend, after ByteMLPerf: a compile backend prepares the model once,
a runtime backend loads it for a batch size and runs it.

To add a hardware type, create backends/<HW>/__init__.py with
    BACKEND = BackendSpec(name="<HW>", description=..., config_class=..., compile_backend=..., runtime_backend=...)
where config_class is a pydantic model of the backend's options (the workload's `engine` and
`engine_options` are validated against it).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ValidationError

from core.common.errors import UserError

if TYPE_CHECKING:
    from core.config.schema import ModelEntry
    from core.measure.operators import RawProfile
    from core.measure.peak import PeakProbe
    from core.measure.timing import Meter
    from core.model.source import SourceModel

Feeds = dict[str, np.ndarray]


def declared_feeds(feeds: Feeds, names: list[str]) -> Feeds:
    """Only the inputs the compiled graph declares (e.g. DeBERTa exports drop token_type_ids)."""
    missing = [n for n in names if n not in feeds]
    if missing:
        raise UserError(f"the model expects inputs {', '.join(missing)} that the data does not provide", field="inputs")
    return {name: np.ascontiguousarray(feeds[name]) for name in names}


@dataclass
class CompileRequest:
    """What to compile: the model entry, where its weights come from, and at which precision."""

    model: ModelEntry
    source: SourceModel
    precision: str
    batch_sizes: list[int]
    cache_dir: Path
    sample_feeds: Callable[[int], Feeds]  # batch size -> shape-correct inputs
    calibration_feeds: Callable[[], list[Feeds]] | None = None  # real data for static quantization


@dataclass
class CompiledModel:
    """The compile result the runtime loads, and the facts the report's Graph Compile section shows."""

    engine: str
    precision: str
    artifact: Path | None  # file the runtime loads (None: an in-memory module)
    input_names: list[str]  # the inputs the compiled graph declares (feed only these)
    output_names: list[str]
    compile_seconds: float
    cache_hit: bool
    optimizations: list[str] = field(default_factory=list)
    subgraph_coverage: float = 100.0
    details: dict[str, Any] = field(default_factory=dict)
    module: Any = None  # in-memory model for engines that need no artifact


@dataclass(frozen=True)
class Candidate:
    """One way to run the model: an engine, a precision, and the backend config that pins them."""

    engine: str
    precision: str
    config: BaseModel

    @property
    def label(self) -> str:
        return f"{self.engine} {self.precision}".strip()


AUTO = "auto"


class CompileBackend(ABC):
    """Prepares a model for a runtime: export, optimize, quantize, cache."""

    def __init__(self, config: BaseModel):
        self.config = config

    def candidates(self, request: CompileRequest) -> list[Candidate]:
        """The ways this backend could run the request, fastest unknown (ByteMLPerf has no such hook).

        More than one candidate makes the runner time each and keep the fastest that passes the
        accuracy gate. The default is the one configuration given, at the model's precision when the
        request says "auto". Raise UserError for a pinned choice this host cannot run.
        """
        precision = request.model.model_precision if request.precision == AUTO else request.precision
        return [Candidate(str(getattr(self.config, "engine", "")), precision, self.config)]

    def pre_optimize(self, request: CompileRequest) -> CompileRequest:
        """Optional hook before compile (ByteMLPerf's pre_optimize); default: unchanged."""
        return request

    @abstractmethod
    def compile(self, request: CompileRequest) -> CompiledModel:
        """Produce (or fetch from cache) the artifact the runtime loads."""

    def get_best_batch_size(self) -> list[int] | None:
        """Batch sizes this backend recommends, or None to use the workload's."""
        return None


class RuntimeBackend(ABC):
    """Runs a compiled model. `load` is called per batch size, before any predict."""

    # True: predict wants one input shape per loaded batch size (CUDA graphs, torch.compile), so
    # dataset passes feed full batches at full length instead of trimming padding per batch.
    static_shapes = False

    def __init__(self, compiled: CompiledModel, config: BaseModel):
        self.compiled = compiled
        self.config = config
        self.batch_size: int | None = None

    @abstractmethod
    def load(self, batch_size: int) -> None:
        """Make the model ready to run at `batch_size`."""

    @abstractmethod
    def predict(self, feeds: Feeds) -> dict[str, np.ndarray]:
        """Run once; feeds and results are keyed by input/output name."""

    def bind(self, feeds: Feeds) -> Callable[[], object]:
        """A zero-argument call that runs the model on `feeds`, for the timed loop.

        Backends override this to move input preparation (copies, bindings) out of the timed call.
        """
        return lambda: self.predict(feeds)

    def instances(self, count: int) -> list[RuntimeBackend]:
        """Runtimes for `count` concurrent clients, called after load(): each may run predict/bind from
        its own thread while the others do. Engines share what they can (one session; one compiled
        model with an infer request each) and size their threads so the instances share the cores.

        The default, a single instance, suits a backend that cannot run concurrently: the harness then
        serializes the clients on it and the report says so.
        """
        return [self]

    def meters(self) -> list[Meter]:
        """Readings of the device beside the clock (core.measure.timing.Meter): device time per call, energy,
        device memory. Asked for after load(); their fields join each batch size's row. The host's memory
        is measured by the runner; a CPU backend has none of its own."""
        return []

    def settings(self) -> dict[str, Any]:
        """What the report should say about how this runtime ran (threads, providers, ...)."""
        return {}

    def peak_probe(self, precision: str) -> PeakProbe | None:
        """A matrix multiply in this runtime's own engine at `precision`, which the harness times for the
        peak a row's share is held against (core.measure.peak). None: torch's CPU GEMM stands in."""
        return None

    def peak_bandwidth(self) -> dict[str, Any] | None:
        """The device memory's bandwidth ({"GB/s", "Method"}) where it is not the host's; None: the host's."""
        return None

    def profile(self, feeds: Feeds, calls: int, folder: Path) -> RawProfile:
        """Run `calls` calls on `feeds` under the engine's own profiler, outside any timed window, and hand
        back its events (core.measure.operators normalizes them). The default says there is none."""
        raise NotImplementedError(f"the {type(self).__name__} runtime has no profiler")

    def close(self) -> None:
        """Free engine resources."""


@dataclass(frozen=True)
class BackendSpec:
    name: str
    description: str
    config_class: type[BaseModel]
    compile_backend: type[CompileBackend]
    # A RuntimeBackend subclass, or any callable (compiled, config) -> RuntimeBackend that picks one
    # by the compiled model's engine.
    runtime_backend: Callable[[CompiledModel, BaseModel], RuntimeBackend]
    # Why this hardware cannot run a configuration here (one line), or None: asked before any work.
    unavailable: Callable[[BaseModel], str | None] = lambda config: None
    # The same from what is on disk, without importing frameworks (listings answer in a second).
    listing_note: Callable[[], str | None] = lambda: None
    # The accelerator facts the Host section records ({"summary", "count", "devices", ...}), or None (a CPU).
    device_facts: Callable[[BaseModel], dict[str, Any]] | None = None
    # The part of those facts that makes a tuning decision valid only on this kind of device.
    device_fingerprint: Callable[[dict[str, Any]], dict[str, Any]] = lambda facts: facts
    # The torch device LLM tasks run on (backends.llm_transformers), or None: this backend runs none.
    llm_device: Callable[[BaseModel], str] | None = None
    # The energy counter an LLM run reads around each load point: (meter with read() and joules(before,
    # after), or None, and a line saying which counter or why none). Default: the host's RAPL.
    llm_energy: Callable[[BaseModel], tuple[Any, str]] | None = None
    # The engines whose matrix-multiply probes (RuntimeBackend.peak_probe) make this hardware's roof at a
    # precision, besides the one that ran: the fastest of them is what every engine's share is held against.
    roof_engines: Callable[[str], list[str]] = lambda precision: []

    def make_config(self, engine: str | None, engine_options: dict[str, Any], *, source: Path | str) -> BaseModel:
        """Validate the workload's engine choice and options against this backend's config."""
        data = dict(engine_options)
        if engine is not None:
            data["engine"] = engine
        try:
            return self.config_class.model_validate(data)
        except ValidationError as err:
            first = err.errors()[0]
            loc = "engine_options." + ".".join(str(p) for p in first["loc"]) if first["loc"] else "engine_options"
            if loc == "engine_options.engine":
                loc = "engine"
            known = ", ".join(self.config_class.model_fields)
            raise UserError(
                first["msg"].removeprefix("Value error, "),
                file=source,
                field=loc,
                fix=f"{self.name} backend options: {known}",
            ) from None
