"""Typed workload and model-zoo configuration, read from JSON or YAML.

Every ByteMLPerf field is accepted with the same meaning, so their files load unchanged; our own
fields are optional with defaults. Unknown keys are errors with a did-you-mean suggestion.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.assets.spec import AssetSpec
from core.common.errors import UserError, printable

CONFIG_SUFFIXES = (".json", ".yaml", ".yml")
MAX_YAML_ALIASES = 100  # YAML anchors are legitimate; thousands of them are an expansion bomb
MAX_CONFIG_BYTES = 1 << 20

Precision = Literal["FP32", "TF32", "FP16", "BF16", "INT8"]
# "auto": the backend picks the fastest precision that passes the accuracy gate (CPU: by host ISA).
RunPrecision = Literal["FP32", "TF32", "FP16", "BF16", "INT8", "auto"]
# MLPerf LoadGen's scenarios, spelled as LoadGen spells them.
SCENARIOS = ("SingleStream", "MultiStream", "Offline", "Server")


def scenario_names(value: Any) -> list[str]:
    """One scenario name or a list of them, matched case-insensitively, in LoadGen's spelling, without repeats."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names:
        raise ValueError(f"expected a scenario name or a list of them ({', '.join(SCENARIOS)})")
    known = {name.lower(): name for name in SCENARIOS}
    result: list[str] = []
    for name in names:
        canonical = known.get(str(name).strip().lower()) if isinstance(name, str) else None
        if canonical is None:
            close = difflib.get_close_matches(str(name), SCENARIOS, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ValueError(f"unknown scenario {str(name)[:40]!r}{hint} (known: {', '.join(SCENARIOS)})")
        if canonical not in result:
            result.append(canonical)
    return result


class _Strict(BaseModel):
    # NaN/Infinity parse from JSON and YAML; as durations or percentages they would mean "run forever".
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)


class Workload(_Strict):
    """A task: which model, which checks, which batch sizes, how long to measure."""

    # ByteMLPerf fields, same meaning.
    model: str = Field(min_length=1, description="model-zoo entry name")
    test_perf: bool = Field(True, description="measure throughput and latency per batch size")
    test_accuracy: bool = Field(False, description="score the dataset with the task's metric (EM/F1, accuracy)")
    test_numeric: bool = Field(
        False, description="compare the outputs with the CPU FP32 reference (numeric drift: Mean/Max Diff)"
    )
    clients: int = Field(
        1,
        ge=1,
        le=1024,
        description="concurrent clients issuing queries, each on its own runtime instance where the backend has them",
    )
    iterations: int = Field(
        100, ge=1, description="minimum timed iterations per batch size, unless max_seconds ends it first"
    )
    batch_sizes: list[int] = Field(
        default_factory=lambda: [1], min_length=1, description="batch sizes to measure, each up to max_batch_size"
    )
    data_percent: float = Field(100, gt=0, le=100, description="share of the dataset's questions used for accuracy")
    compile_only: bool = Field(False, description="compile (export, optimize, cache) and stop before measuring")

    # Our fields.
    description: str = Field("", description="one line shown by --show_task_list")
    warmup_iterations: int = Field(3, ge=1, description="warm-up iterations before timing (at least one)")
    warmup_seconds: float = Field(5.0, gt=0, description="warm-up stops after this long, even before warmup_iterations")
    min_seconds: float = Field(2.0, ge=0, description="keep measuring at least this long")
    max_seconds: float = Field(15.0, gt=0, description="stop measuring a batch size after this long")
    time_budget_minutes: Annotated[float, Field(gt=0)] | Literal["off"] | None = Field(
        None,
        description="the whole run (tuning, accuracy, measuring) within this many minutes; 'off' for none; "
        "default: 10 for a workload that sets no durations (core.run.plan.run_budget)",
    )
    tuning_budget_minutes: float | None = Field(
        None,
        gt=0,
        description="at most this many minutes choosing the engine (default: half of the run's budget, else none)",
    )
    seed: int = Field(
        0,
        ge=0,
        le=2**32 - 1,
        description="seed of the synthetic weights and generated inputs (32-bit, as numpy and torch take)",
    )
    precision: RunPrecision | None = Field(
        None, description="compile precision, or auto (the default): the fastest that passes the accuracy gate"
    )
    engine: str | None = Field(None, description="backend engine, e.g. auto, onnxruntime, openvino or pytorch")
    engine_options: dict[str, Any] = Field(
        default_factory=dict, description="the backend's own options (CPU and GPU engine_options below)"
    )
    data_path: str | None = Field(None, description="dataset file or folder; default: the loader's")
    length_aware: bool = Field(True, description="dataset runs group features by length and trim padding")
    spec_peak_gflops: dict[Precision, float] | None = Field(
        None,
        description="the hardware's spec-sheet peak per precision (GFLOP/s, or GOP/s for INT8), shown "
        "beside the measured one",
    )
    spec_bandwidth_gbs: float | None = Field(None, gt=0, description="the spec sheet's memory bandwidth in GB/s")
    profile: bool = Field(False, description="after the timed windows, profile a few calls with the engine's profiler")
    profile_batch_size: int | None = Field(None, ge=1, description="the batch size to profile (default: the first)")

    # MLPerf LoadGen scenarios (core/loadgen.py), run after the per-batch-size loop.
    scenario: list[str] | None = Field(
        None, description="LoadGen scenario or list of them: SingleStream, MultiStream, Offline, Server"
    )
    target_qps: float | None = Field(
        None, gt=0, description="Server: the queries per second LoadGen offers (its server_target_qps)"
    )
    target_latency_ms: float | None = Field(
        None, gt=0, description="Server: the p99 latency bound in ms (LoadGen's default 100)"
    )
    min_duration_s: float = Field(10.0, gt=0, description="LoadGen: minimum seconds per scenario run")
    min_query_count: int = Field(100, ge=1, description="LoadGen: minimum queries per scenario run")
    find_peak: bool = Field(False, description="Server: search for the highest target QPS LoadGen judges VALID")

    @field_validator("scenario", mode="before")
    @classmethod
    def _scenarios(cls, value: Any) -> list[str] | None:
        return None if value is None else scenario_names(value)

    @field_validator("spec_peak_gflops")
    @classmethod
    def _positive_peaks(cls, peaks: dict[str, float] | None) -> dict[str, float] | None:
        for precision, value in (peaks or {}).items():
            if not value > 0:
                raise ValueError(f"{precision}: a peak must be a positive number of GFLOP/s, not {value}")
        return peaks

    @field_validator("batch_sizes")
    @classmethod
    def _positive_batches(cls, sizes: list[int]) -> list[int]:
        for size in sizes:
            if size < 1:
                raise ValueError(f"batch size {size} must be at least 1")
        return sorted(set(sizes))

    @model_validator(mode="after")
    def _time_bounds(self) -> Workload:
        if self.max_seconds < self.min_seconds:
            raise ValueError(f"max_seconds ({self.max_seconds}) is below min_seconds ({self.min_seconds})")
        scenarios = self.scenario or []
        if "Server" in scenarios and self.target_qps is None and not self.find_peak:
            raise ValueError(
                "the Server scenario needs target_qps (queries per second to offer), "
                "or find_peak: true to search for it"
            )
        if self.find_peak and "Server" not in scenarios:
            raise ValueError("find_peak searches the Server scenario's peak QPS: add Server to scenario")
        return self


class Published(_Strict):
    """Figures a paper or README reports for this model and task, keyed by our report's metric names."""

    source: str = Field(min_length=1, description="where the figures are published")
    figures: dict[str, float] = Field(min_length=1, description="metric (as the report names it) -> value")


class ModelEntry(_Strict):
    """A model-zoo entry: the model file and how to feed it."""

    # ByteMLPerf fields, same meaning.
    model: str = Field(min_length=1, description="the entry's name, as workloads name it")
    model_path: str | None = Field(
        None, description="the model file: TorchScript .pt or ONNX (relative: the repository)"
    )
    framework: str = Field("Pytorch", description="the framework that made the model file")
    framework_version: str | None = Field(None, description="its version, as recorded (not checked)")
    model_format: str = Field("pt", description="pt (TorchScript), onnx, or saved_model (refused: convert it)")
    model_precision: Precision = Field("FP32", description="the precision of the weights in the file")
    inputs: str = Field(min_length=1, description="comma-separated input names")
    outputs: str = Field(min_length=1, description="comma-separated output names")
    input_shape: dict[str, list[int]] = Field(description="input name -> shape at batch size 1, e.g. [1, 384]")
    input_type: str = Field(min_length=1, description="comma-separated types, e.g. LONG,LONG,LONG")
    dataset_name: str | None = Field(None, description="the dataset loader (a package under datasets/)")
    max_batch_size: int = Field(64, ge=1, description="the largest batch size a workload may ask for")
    is_quantized: bool = Field(False, description="the file holds quantized weights (recorded)")
    layout: str | None = Field(None, description="image layout of vision models, e.g. NCHW (recorded)")

    # Our fields.
    description: str = Field("", description="one line about the model")
    architecture: str | None = Field(
        None, description="bundled config under model_zoo/architectures/, for synthetic weights"
    )
    hf_model: str | None = Field(None, description="Hugging Face id or local checkpoint folder")
    tokenizer: str | None = Field(None, description="Hugging Face id or local folder of the tokenizer")
    labels: list[str] = Field(default_factory=list, description="classification label order")
    num_labels: int | None = Field(
        None, ge=1, description="the architecture's classification head size, for synthetic weights (1: regression)"
    )
    published: Published | None = Field(None, description="a published accuracy figure to show beside ours")
    sha256: str | None = Field(None, description="expected digest of model_path")
    assets: list[AssetSpec] = Field(
        default_factory=list, description="real files perfbench prepare downloads and verifies (AssetSpec below)"
    )

    @property
    def input_names(self) -> list[str]:
        return [n.strip() for n in self.inputs.split(",")]

    @property
    def output_names(self) -> list[str]:
        return [n.strip() for n in self.outputs.split(",")]

    @property
    def input_types(self) -> list[str]:
        return [t.strip().upper() for t in self.input_type.split(",")]

    @property
    def seq_len(self) -> int:
        shape = self.input_shape[self.input_names[0]]
        return shape[1] if len(shape) > 1 else 1

    @model_validator(mode="after")
    def _consistent_inputs(self) -> ModelEntry:
        from datasets.base import NUMPY_DTYPES

        names, types = self.input_names, self.input_types
        if len(names) != len(types):
            raise ValueError(f"inputs lists {len(names)} names but input_type lists {len(types)} types")
        missing = [n for n in names if n not in self.input_shape]
        if missing:
            raise ValueError(f"input_shape has no shape for {', '.join(missing)}")
        unknown = [t for t in types if t not in NUMPY_DTYPES]
        if unknown:
            raise ValueError(f"unknown input_type {', '.join(unknown)}; expected one of {', '.join(NUMPY_DTYPES)}")
        for name, shape in self.input_shape.items():
            if not shape or any(d < 1 for d in shape):
                raise ValueError(f"input_shape[{name}] = {shape} must be a list of positive sizes")
        return self


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a JSON or YAML file into a mapping, or raise a one-line UserError."""
    if path.suffix.lower() not in CONFIG_SUFFIXES:
        raise UserError("not a .json/.yaml/.yml file", file=path)
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise UserError(f"file is larger than {MAX_CONFIG_BYTES} bytes", file=path)
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise UserError(f"cannot read file: {err.strerror}", file=path) from None
    except UnicodeDecodeError:
        raise UserError("file is not UTF-8 text", file=path) from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text, object_pairs_hook=lambda pairs: _unique_keys(pairs, path))
        except json.JSONDecodeError as err:
            raise UserError(f"invalid JSON at line {err.lineno} column {err.colno}: {err.msg}", file=path) from None
        except RecursionError:
            raise UserError("nested too deeply to be a config file", file=path) from None
    else:
        data = _load_yaml(text, path)
    if not isinstance(data, dict):
        raise UserError(f"expected a mapping of fields at the top level, got {type(data).__name__}", file=path)
    return data


def _unique_keys(pairs: list[tuple[str, Any]], path: Path) -> dict[str, Any]:
    """A JSON object whose keys are unique (json keeps the last of a repeated key, silently)."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            shown = printable(key)
            raise UserError(f"'{shown}' appears twice", file=path, field=shown, fix="keep one of them")
        found[key] = value
    return found


def _load_yaml(text: str, path: Path) -> Any:
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        aliases_seen = 0

        def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
            if self.check_event(yaml.AliasEvent):
                BoundedLoader.aliases_seen += 1
                if BoundedLoader.aliases_seen > MAX_YAML_ALIASES:
                    raise UserError(
                        f"more than {MAX_YAML_ALIASES} YAML aliases; refusing a possible expansion bomb", file=path
                    )
            return super().compose_node(parent, index)

        def construct_mapping(self, node, deep=False):  # noqa: ANN001 - PyYAML's signature
            # YAML says keys are unique, PyYAML keeps the last: a field written twice is a mistake, not a choice.
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                if isinstance(key, (str, int, float, bool)) and key in seen:
                    raise UserError(
                        f"'{printable(str(key))}' appears twice (lines {seen[key]} and {line})",
                        file=path,
                        field=printable(str(key)),
                        fix="keep one of them",
                    )
                if isinstance(key, (str, int, float, bool)):
                    seen[key] = line
            return super().construct_mapping(node, deep=deep)

    try:
        return yaml.load(text, Loader=BoundedLoader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise UserError("nested too deeply to be a config file", file=path) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UserError(f"invalid YAML{where}: {problem}", file=path) from None


def validate(model_cls: type[_Strict], data: dict[str, Any], path: Path | str) -> Any:
    """Validate a mapping into `model_cls`, turning the first problem into a one-line UserError."""
    try:
        return model_cls.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = printable(".".join(str(part) for part in first["loc"]))
        if first["type"] == "extra_forbidden":
            key = str(first["loc"][-1])
            close = difflib.get_close_matches(key, list(model_cls.model_fields), n=1)
            fix = f"did you mean '{close[0]}'?" if close else f"known fields: {', '.join(model_cls.model_fields)}"
            raise UserError("unknown field", file=path, field=loc, fix=fix) from None
        message = printable(first["msg"].removeprefix("Value error, "))
        field = loc or None
        expected = _expected(model_cls, first["loc"])
        raise UserError(message, file=path, field=field, fix=expected) from None


def _expected(model_cls: type[_Strict], loc: tuple) -> str | None:
    """A short 'expected …' hint from the field's declared type and description."""
    if not loc or loc[0] not in model_cls.model_fields:
        return None
    info = model_cls.model_fields[str(loc[0])]
    hint = f"expected {_type_name(info.annotation)}"
    if info.description:
        hint += f": {info.description}"
    return hint


def _type_name(annotation: Any) -> str:
    """'int', 'list[int]', "Literal['FP32', ...] | None": a class by its name, anything else as written."""
    if isinstance(annotation, type):
        return annotation.__name__
    text = str(annotation).replace("typing.", "")
    if text.startswith("Optional[") and text.endswith("]"):
        text = text[len("Optional[") : -1] + " | None"
    return text


def load_workload(path: Path) -> Workload:
    return validate(Workload, read_config_file(path), path)


def load_model_entry(path: Path) -> ModelEntry:
    return validate(ModelEntry, read_config_file(path), path)
