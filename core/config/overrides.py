"""The effective configuration: the workload file with the command line's or a sweep's changes applied.

Every override goes through here, is validated like the file itself, and is blamed on what gave it
(`--batch-sizes`, a sweep file's field), so a bad value is the same one-line error wherever it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.common.errors import UserError
from core.config.registry import Task, task_from
from core.config.schema import Workload, validate


@dataclass(frozen=True)
class Overrides:
    values: dict[str, Any] = field(default_factory=dict)  # workload field -> value
    source: Path | str | None = None  # the file blamed for them (None: the command line)
    spelled: dict[str, str] = field(default_factory=dict)  # workload field -> how the user wrote it (--batch-sizes)

    def record(self) -> dict[str, Any]:
        """What the report's Config says was changed from the workload file."""
        return {key: str(value) if isinstance(value, Path) else value for key, value in self.values.items()}


def apply_overrides(task: Task, overrides: Overrides) -> Task:
    """The task with `overrides` applied to its workload, checked as a whole (a Server scenario still needs
    its target, batch sizes still fit the model)."""
    if not overrides.values:
        return task
    merged = {**task.workload.model_dump(exclude_unset=True), **overrides.values}
    if "min_seconds" in overrides.values and "max_seconds" not in overrides.values:
        # "measure at least this long" outranks the file's cap
        merged["max_seconds"] = max(overrides.values["min_seconds"], task.workload.max_seconds)
    blame = overrides.source or task.workload_file
    try:
        workload = validate(Workload, merged, blame)
        return task_from(workload, task.workload_file, source=blame)
    except UserError as err:
        key = (err.field or "").split(".")[0]
        if overrides.source is None and key in overrides.spelled:  # the flag, not the file, was wrong
            raise UserError(err.message, field=overrides.spelled[key], fix=err.fix) from None
        raise


# Command-line flag -> where it lands in an llm_perf workload (perf_config's fields, or the workload's).
LLM_FLAGS = {
    "batch_sizes": ("--batch-sizes", "perf_config"),
    "input_tokens": ("--input-tokens", "perf_config"),
    "output_tokens": ("--output-tokens", "perf_config"),
    "layers": ("--layers", None),
    "precision": ("--precision", None),
    "engine": ("--engine", None),
    "time_budget_minutes": ("--time-budget", None),
    "trust_remote_code": ("--trust-remote-code", None),
    "concurrency": ("--concurrency", None),
    "request_rate": ("--request-rate", None),
    "burstiness": ("--burstiness", None),
    "max_concurrency": ("--max-concurrency", None),
    "slo": ("--slo", None),
    "find_max_rate": ("--find-max-rate", None),
    "loadgen_scenarios": ("--scenario", None),
    "profile": ("--profile", None),
}


def apply_llm_overrides(task: Task, values: dict[str, Any]) -> Task:
    """An LLM task with the command line's changes, validated like the file (a bad value names the flag)."""
    from core.config.llm import LlmWorkload
    from core.config.registry import llm_task_from

    unknown = [key for key in values if key not in LLM_FLAGS]
    if unknown:
        raise UserError(f"{unknown[0]} does not apply to LLM tasks", field=unknown[0], fix="drop it")
    if not values:
        return task
    data = task.workload.model_dump(exclude_unset=True)
    perf = dict(data.get("perf_config") or {})
    for key, value in values.items():
        if LLM_FLAGS[key][1] == "perf_config":
            perf[key] = value
        else:
            data[key] = value
    data["perf_config"] = perf
    try:
        workload = validate(LlmWorkload, data, "command line")
    except UserError as err:
        key = next((k for k in (err.field or "").split(".") if k in LLM_FLAGS), "")
        flag = LLM_FLAGS.get(key, (err.field,))[0]
        raise UserError(err.message, field=flag, fix=err.fix) from None
    return llm_task_from(workload, task.workload_file)
