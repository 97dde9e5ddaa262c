"""What every stage of a run shares: the task as it will run, the backend, the weights, the inputs, the report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.common.paths import state_dir
from core.config.overrides import Overrides
from core.config.registry import Task, architecture_config, dataset_loader_class
from core.model.source import SourceModel, resolve_repo_path
from core.reporting.report import RunReport
from datasets.base import DatasetRequest, ModelInputs

# Command-line flag -> the workload field it overrides.
FLAGS = {
    "batch_sizes": "--batch-sizes",
    "compile_only": "--compile_only",
    "data_path": "--data-path",
    "engine": "--engine",
    "precision": "--precision",
    "scenario": "--scenario",
    "time_budget_minutes": "--time-budget",
    "min_seconds": "--min-seconds",
    "max_seconds": "--max-seconds",
    "profile": "--profile",
    "profile_batch_size": "--profile-batch-size",
}


@dataclass(frozen=True)
class RunOptions:
    hardware_type: str
    output_dir: Path = Path("reports")
    batch_sizes: list[int] | None = None
    compile_only: bool | None = None
    data_path: Path | None = None
    engine: str | None = None  # pins the backend's engine (overrides the workload)
    precision: str | None = None  # pins the precision, or "auto" (overrides the workload)
    offline: bool = False
    debug: bool = False
    scenario: list[str] | None = None  # LoadGen scenarios (overrides the workload's)
    time_budget_minutes: float | str | None = None  # the whole run within this many minutes, or "off"
    min_seconds: float | None = None  # each batch size's window at least / at most this long (override the workload)
    max_seconds: float | None = None
    profile: bool | None = None  # profile a few calls after the timed windows (overrides the workload)
    profile_batch_size: int | None = None
    # LLM tasks only
    input_tokens: list[int] | None = None
    output_tokens: int | None = None
    layers: int | None = None
    trust_remote_code: bool = False
    concurrency: list[int] | None = None
    request_rate: list[float] | None = None
    burstiness: float | None = None
    max_concurrency: int | None = None
    slo: dict[str, float] | str | None = None
    find_max_rate: bool | None = None

    def overrides(self) -> Overrides:
        """What the command line changes in the workload (applied by core.config.overrides)."""
        values = {name: getattr(self, name) for name in FLAGS if getattr(self, name) is not None}
        if "data_path" in values:  # relative to where the command ran, not to the repository
            values["data_path"] = str(Path(values["data_path"]).resolve())
        return Overrides(values, source=None, spelled=FLAGS)


@dataclass
class RunContext:
    """Filled in stage by stage; each stage reads what the earlier ones left."""

    task: Task
    options: RunOptions
    spec: Any  # the BackendSpec
    config: Any  # the backend's validated config (pinned to the chosen engine once chosen)
    precision: str
    report: RunReport
    source: SourceModel | None = None
    inputs: ModelInputs | None = None
    loader: Any = None  # the dataset loader the accuracy checks and calibration read
    device_facts: dict[str, Any] | None = None  # an accelerator backend's device, as read at the start
    roofline: Any = None  # core.run.roofline.Roofline: the work per sample and the peaks, once measured
    batch_sizes: list[int] = field(default_factory=list)

    @property
    def workload(self):
        return self.task.workload

    @property
    def model(self):
        return self.task.model

    def sample_feeds(self, batch_size: int) -> dict[str, np.ndarray]:
        """Generated inputs of the model's full shape: what performance is measured on."""
        from datasets.fake_dataset import fake_inputs

        return fake_inputs(self.inputs, batch_size, seed=self.workload.seed)

    def folder(self) -> Path:
        return self.report.folder(self.options.output_dir)


def model_inputs(task: Task, source: SourceModel) -> ModelInputs:
    """The facts a data loader needs, from the entry and (where known) the architecture config."""
    model = task.model
    arch = source.hf_config or (architecture_config(model.architecture) if model.architecture else {})
    return ModelInputs(
        names=tuple(model.input_names),
        dtypes=tuple(model.input_types),
        seq_len=model.seq_len,
        vocab_size=int(arch.get("vocab_size", 1000)),
        type_vocab_size=int(arch.get("type_vocab_size", 2) or 0),
        pad_token_id=int(arch.get("pad_token_id", 0) or 0),
        outputs=tuple(model.output_names),
        shapes=tuple(tuple(model.input_shape[name]) for name in model.input_names),
        layout=model.layout,
    )


def accuracy_meaningful(source: SourceModel, tokenizer: dict[str, Any]) -> bool:
    """Whether a task metric means something: real weights and the model's own tokenizer (a loader's
    tokenizer provenance says `meaningful_accuracy: false` for the fallback)."""
    return not source.synthetic and tokenizer.get("meaningful_accuracy") is not False


def make_loader(task: Task, inputs: ModelInputs, dataset: str | None = None, data_percent: float | None = None):
    """The dataset loader of the task's model (or `dataset`), reading the workload's data_path when set."""
    model, workload = task.model, task.workload
    loader_class = dataset_loader_class(dataset or model.dataset_name, task.model_file)
    # The workload's data_path (the command line's when given); the loader falls back to
    # $PERFBENCH_<DATASET>_PATH, its default file, its sample.
    data_path = resolve_repo_path(workload.data_path) if workload.data_path else None
    tokenizer = model.tokenizer or loader_class.default_tokenizer(model.model)
    local = resolve_repo_path(tokenizer) if tokenizer else None
    if local is not None and local.exists():  # a repo-relative folder or vocab file, not a hub id
        tokenizer = str(local)
    request = DatasetRequest(
        model=inputs,
        tokenizer=tokenizer,
        data_path=data_path,
        data_percent=data_percent or workload.data_percent,
        cache_dir=state_dir() / "features",
        seed=workload.seed,
        labels=tuple(model.labels),
    )
    return loader_class(request)


def calibration_feeds(loader, count: int = 32) -> list[dict[str, np.ndarray]]:
    features = loader.load()
    return [
        {name: array[i : i + 1] for name, array in features.inputs.items()} for i in range(min(count, len(features)))
    ]
