"""The CPU engines by name, which precisions each runs, and the helpers their runtimes share.

An engine is one module (`<name>_engine.py` in this folder) defining `ENGINE = Engine(...)`: its compile
function and its runtime class. Adding an engine is adding such a module; the registry finds it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from backends.base import CompiledModel, CompileRequest, Feeds, RuntimeBackend
from backends.CPU.config import CpuConfig, engine_listing
from core.common.errors import UserError
from core.common.registry import Registry
from core.measure.host import CpuIsa


@dataclass(frozen=True)
class Engine:
    name: str
    precisions: tuple[str, ...]  # what it can run at all
    compile: Callable[[CompileRequest, CpuConfig], CompiledModel]
    runtime: type[RuntimeBackend]


ENGINES: Registry[Engine] = Registry("CPU engine", engine_listing, base=Engine)


def engine_names() -> list[str]:
    return ENGINES.names()


def engine(name: str) -> Engine:
    return ENGINES.get(name, field="engine")


def native(precision: str, isa: CpuIsa) -> bool:
    """Whether this host runs `precision` in hardware (FP32 always; BF16 and INT8 need their ISA)."""
    return {"FP32": True, "BF16": isa.bf16, "INT8": isa.int8}.get(precision, False)


def native_engines(precision: str) -> list[str]:
    """The engines that run `precision` natively on this host: their probes make the host's roof."""
    from core.measure.host import cpu_isa

    if not native(precision, cpu_isa()):
        return []
    return [name for name in engine_names() if precision in engine(name).precisions]


def calibration_batches(request: CompileRequest, samples: int) -> tuple[list[Feeds], str]:
    """What INT8 calibrates on, one sample a batch: the task's data when it has some, else generated inputs;
    and which it was (the engines record it in Optimizations)."""
    if request.calibration_feeds is not None:
        feeds = request.calibration_feeds()[:samples]
        if feeds:
            return feeds, "calibrated on the dataset"
    batch = request.sample_feeds(samples)
    return [{k: v[i : i + 1] for k, v in batch.items()} for i in range(samples)], "calibrated on generated inputs"


def pin_process(config: CpuConfig) -> None:
    """Pin this process to the configured CPUs, so a shared machine's other load stays off them."""
    if config.cpu_affinity:
        try:
            os.sched_setaffinity(0, set(config.cpu_affinity))
        except (AttributeError, OSError) as err:
            raise UserError(
                f"cannot pin to CPUs {config.cpu_affinity}: {err}", field="engine_options.cpu_affinity"
            ) from None


def unsupported_precision(engine_name: str, precision: str, supported: tuple[str, ...]) -> UserError:
    others = [name for name in engine_names() if name != engine_name and precision in engine(name).precisions]
    alternative = f", or engine {' or '.join(others)} for {precision}" if others else ""
    return UserError(
        f"precision {precision} is not supported by the CPU {engine_name} engine",
        field="precision",
        fix=f"use one of {', '.join(supported)}{alternative}",
    )
