"""What exists: tasks (workloads/), models (model_zoo/), architectures, datasets; each a `Registry`.

Names are looked up in listings, never joined into paths: a task name with '/' or '..' is not a name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.common.errors import UserError
from core.common.paths import REPO_ROOT
from core.common.registry import NAME, Registry, file_listing, package_listing
from core.config.llm import LlmModelEntry, LlmWorkload, is_llm_workload
from core.config.schema import CONFIG_SUFFIXES, ModelEntry, Workload, load_model_entry, read_config_file, validate

# ByteMLPerf general_perf's workloads, all bundled (the zoo benchmark runs them; a test checks each).
BYTEMLPERF_TASKS = (
    "albert-torch-fp32",
    "bert-tf-fp32",
    "bert-torch-fp32",
    "clip-onnx-fp32",
    "conformer-encoder-onnx-fp32",
    "deberta-torch-fp32",
    "resnet50-tf-fp32",
    "resnet50-torch-fp32",
    "roberta-torch-fp32",
    "roformer-tf-fp32",
    "swin-large-torch-fp32",
    "unet-onnx-fp32",
    "vae-decoder-onnx-fp32",
    "vae-encoder-onnx-fp32",
    "videobert-onnx-fp32",
    "widedeep-tf-fp32",
    "yolov5-onnx-fp32",
)
WORKLOADS_DIR = REPO_ROOT / "workloads"
MODEL_ZOO_DIR = REPO_ROOT / "model_zoo"
ARCHITECTURES_DIR = MODEL_ZOO_DIR / "architectures"
DATASETS_DIR = REPO_ROOT / "datasets"

# The folders are read when a name is asked for (tests point them elsewhere).
TASKS: Registry[Path] = Registry("task", lambda: file_listing(WORKLOADS_DIR, CONFIG_SUFFIXES))
MODELS: Registry[Path] = Registry("model", lambda: file_listing(MODEL_ZOO_DIR, CONFIG_SUFFIXES))
ARCHITECTURES: Registry[Path] = Registry("architecture", lambda: file_listing(ARCHITECTURES_DIR, (".json",)))
DATASETS: Registry[type] = Registry("dataset", lambda: package_listing(DATASETS_DIR, "datasets", "LOADER"))

# ByteMLPerf datasets we know of and do not load, with the reason.
UNSUPPORTED_DATASETS = {
    "open_criteo_kaggle": "ByteMLPerf preprocesses Criteo with TensorFlow feature columns, and its Wide & Deep "
    "model (the one user) is a TensorFlow saved_model",
}


def task_names() -> list[str]:
    return TASKS.names()


# --show_task_list's groups, in the order they are listed.
TASK_GROUPS = (
    "ByteMLPerf general_perf",
    "LLMs (ByteMLPerf llm_perf's format)",
    "GLUE (DeBERTa base and large)",
    "tiny (tests and smoke checks)",
    "other",
)
# ByteMLPerf llm_perf's task files, bundled unchanged.
BYTEMLPERF_LLM_TASKS = (
    "chatglm2-torch-fp16-6b",
    "falcon-torch-bf16-180b",
    "llama3-torch-bf16-70b",
    "mixtral-torch-bf16-8x22b",
)


def task_group(name: str, *, llm: bool = False) -> str:
    if name in BYTEMLPERF_TASKS:
        return TASK_GROUPS[0]
    if name.startswith("tiny-"):
        return TASK_GROUPS[3]
    if llm or name in BYTEMLPERF_LLM_TASKS:
        return TASK_GROUPS[1]
    if "-glue-" in name:
        return TASK_GROUPS[2]
    return TASK_GROUPS[4]


def task_listing() -> dict[str, list[tuple[str, str]]]:
    """Group -> [(task, one line of what it runs)], for --show_task_list; a task that does not load says why."""
    groups: dict[str, list[tuple[str, str]]] = {group: [] for group in TASK_GROUPS}
    for name in task_names():
        llm = False
        try:
            task = load_task(name)
            model, workload, llm = task.model, task.workload, task.is_llm
            if llm:
                perf = workload.perf_config
                lengths = ",".join(map(str, perf.input_tokens))
                what = f"(input tokens {lengths}, {perf.output_tokens} out; batch sizes "
            else:
                what = f"({model.dataset_name or 'generated inputs'}; batch sizes "
            what += f"{','.join(map(str, workload.batch_sizes))})"
            line = f"{(model.description or model.model).split(';')[0]} {what}"
        except UserError as err:
            line = f"does not load: {err.message}"
        groups[task_group(name, llm=llm)].append((name, line))
    return {group: tasks for group, tasks in groups.items() if tasks}


def resolve_task_file(task: str) -> Path:
    """A task is a name from workloads/ or an explicit path to a .json/.yaml/.yml file."""
    path = Path(task)
    if path.suffix.lower() in CONFIG_SUFFIXES:
        if not path.is_file():
            raise UserError(
                "workload file not found", file=task, fix="pass an existing .json/.yaml file or a task name"
            )
        return path
    if not NAME.match(task) or ".." in task:
        raise UserError(
            f"'{task}' is neither a task name nor a .json/.yaml/.yml file",
            fix="use --show_task_list for names, or pass a workload file path",
        )
    return TASKS.get(task, fix_extra="; or pass a workload file path")


@dataclass(frozen=True)
class Task:
    workload: Workload | LlmWorkload
    workload_file: Path
    model: ModelEntry | LlmModelEntry
    model_file: Path

    @property
    def is_llm(self) -> bool:
        return isinstance(self.workload, LlmWorkload)


def load_task(task: str) -> Task:
    """Load a workload and the model-zoo entry it names, and check that they fit together."""
    workload_file = resolve_task_file(task)
    data = read_config_file(workload_file)
    if is_llm_workload(data):
        return llm_task_from(validate(LlmWorkload, data, workload_file), workload_file)
    return task_from(validate(Workload, data, workload_file), workload_file)


def llm_task_from(workload: LlmWorkload, workload_file: Path, *, source: Path | str | None = None) -> Task:
    """An LLM task: llm_perf finds the model-zoo entry by the task's name; ours may also name it in `model`."""
    blame = source or workload_file
    stem = workload_file.stem
    name = stem if stem in MODELS.names() else workload.model
    model_file = MODELS.get(name, file=blame, field="model", fix_extra=f"; or add model_zoo/{stem}.json")
    data = read_config_file(model_file)
    if not isinstance(data.get("network"), dict):
        raise UserError(
            "not an LLM model-zoo entry (it has no `network` block)",
            file=model_file,
            fix="an llm_perf entry inlines the model's Hugging Face config.json as `network`",
        )
    return Task(workload, workload_file, validate(LlmModelEntry, data, model_file), model_file)


def task_from(workload: Workload, workload_file: Path, *, source: Path | str | None = None) -> Task:
    """A Task for a validated workload; `source` is what is blamed for its fields (default workload_file),
    e.g. a sweep file or the command line whose overrides changed them."""
    blame = source or workload_file
    model_file = MODELS.get(workload.model, file=blame, field="model")
    model = load_model_entry(model_file)
    too_big = [bs for bs in workload.batch_sizes if bs > model.max_batch_size]
    if too_big:
        raise UserError(
            f"batch size {too_big[0]} exceeds the model's max_batch_size {model.max_batch_size}",
            file=blame,
            field="batch_sizes",
            fix=f"use sizes up to {model.max_batch_size} or raise max_batch_size in {model_file.name}",
        )
    if (
        model.dataset_name
        and (workload.test_accuracy or workload.test_numeric)
        and model.dataset_name not in UNSUPPORTED_DATASETS
    ):  # refused when the run needs it, after the model
        dataset_loader_class(model.dataset_name, model_file)
    return Task(workload, workload_file, model, model_file)


def architecture_config(name: str, *, model_file: Path | None = None) -> dict[str, Any]:
    """The bundled Hugging Face config for synthetic weights."""
    return read_config_file(ARCHITECTURES.get(name, file=model_file, field="architecture"))


def dataset_loader_class(name: str, model_file: Path | None = None) -> type:
    if name in UNSUPPORTED_DATASETS:
        raise UserError(
            f"dataset '{name}' has no loader here: {UNSUPPORTED_DATASETS[name]}",
            file=model_file,
            field="dataset_name",
            fix="set test_accuracy and test_numeric to false in the workload to measure performance only",
        )
    return DATASETS.get(name, file=model_file, field="dataset_name")


def dataset_assets(name: str) -> list:
    """Asset specs of a dataset, from datasets/<name>/assets.json (empty when it has none)."""
    from core.assets.spec import AssetSpec

    if name in UNSUPPORTED_DATASETS:
        return []
    DATASETS.get(name)  # an unknown name raises, listing the known ones
    path = DATASETS_DIR / name / "assets.json"
    if not path.is_file():
        return []
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
        return [AssetSpec.model_validate(item) for item in items]
    except (ValueError, TypeError) as err:
        raise UserError(f"invalid asset list: {str(err).splitlines()[0]}", file=path) from None
