"""LLM tasks in ByteMLPerf llm_perf's own format: a workload with `perf_config`, a model-zoo entry with `network`.

Their files load unchanged. The model-zoo entry is found by the task's name, as llm_perf finds it
(`workloads/llama3-torch-bf16-70b.json` names model "llama3-70b", its entry is
`model_zoo/llama3-torch-bf16-70b.json`). Our own fields are optional, with defaults.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from core.config.schema import _Strict

# Keys only an llm_perf workload has: how a workload file is told apart from general_perf's.
LLM_WORKLOAD_KEYS = ("perf_config", "accuracy_config", "min_tp_size")


# MLPerf Inference's LLM Server limits (ms): TTFT and TPOT P99, standard and interactive. GPU-class figures.
SLO_PRESETS = {
    "llama2-70b": {"ttft_p99": 2000.0, "tpot_p99": 200.0},
    "llama2-70b-interactive": {"ttft_p99": 450.0, "tpot_p99": 40.0},
    "llama3.1-8b": {"ttft_p99": 2000.0, "tpot_p99": 100.0},
    "llama3.1-8b-interactive": {"ttft_p99": 500.0, "tpot_p99": 30.0},
}
SLO_KEY = re.compile(r"^(ttft|tpot|e2e)_(p50|p90|p99)$")


def is_llm_workload(data: dict[str, Any]) -> bool:
    return any(key in data for key in LLM_WORKLOAD_KEYS)


class AccuracyConfig(_Strict):
    """llm_perf's accuracy block: a multiple-choice CSV in merged_52_test.csv's format, for perplexity."""

    dataset: str | None = Field(None, description="CSV of multiple-choice questions (merged_52_test.csv's columns)")
    min_new_tokens: int = Field(1, ge=1, description="llm_perf's generation minimum for its accuracy pass")
    max_new_tokens: int = Field(512, ge=1, description="llm_perf's generation maximum for its accuracy pass")


class PerfConfig(_Strict):
    """llm_perf's load: per TP size, batch size and input length, B closed-loop clients for perf_time seconds."""

    tp_sizes: list[int] = Field(default_factory=lambda: [1], min_length=1, description="tensor-parallel sizes")
    batch_sizes: list[int] = Field(
        default_factory=lambda: [1], min_length=1, description="concurrent requests (closed-loop clients)"
    )
    input_tokens: list[int] = Field(
        default_factory=lambda: [128], min_length=1, description="prompt lengths in tokens, each run apart"
    )
    output_tokens: int = Field(32, ge=1, description="new tokens per request, exactly (greedy, no early stop)")
    perf_time: float = Field(100, gt=0, description="seconds each (batch size, input length) point runs at most")

    @field_validator("tp_sizes", "batch_sizes", "input_tokens")
    @classmethod
    def _positive_sorted(cls, values: list[int]) -> list[int]:
        for value in values:
            if value < 1:
                raise ValueError(f"{value} must be at least 1")
        return sorted(set(values))


class LengthsConfig(_Strict):
    """Prompt and answer lengths: llm_perf's fixed ones, seeded uniform ranges, or a ShareGPT file's turns."""

    kind: Literal["fixed", "uniform", "sharegpt"] = Field("fixed", description="how lengths are chosen")
    input_range: tuple[int, int] | None = Field(None, description="uniform: prompt tokens, low and high (inclusive)")
    output_range: tuple[int, int] | None = Field(None, description="uniform: answer tokens, low and high (inclusive)")
    path: str | None = Field(None, description="sharegpt: a ShareGPT-format JSON file (a conversations list)")

    @model_validator(mode="after")
    def _complete(self) -> LengthsConfig:
        if self.kind == "uniform":
            for name in ("input_range", "output_range"):
                low_high = getattr(self, name)
                if low_high is None or not 1 <= low_high[0] <= low_high[1]:
                    raise ValueError(f"uniform lengths need {name} [low, high] with 1 <= low <= high")
        if self.kind == "sharegpt" and not self.path:
            raise ValueError("sharegpt lengths need path: the JSON file")
        return self


class LoadGenLlmConfig(_Strict):
    """LoadGen's LLM runs: sized to the host (MLPerf's own minimums are 10 minutes and thousands of queries)."""

    target_qps: float | None = Field(
        None, gt=0, description="Server's request rate; default: the max rate found, else the lowest request_rate"
    )
    min_duration_s: float = Field(10.0, gt=0, description="LoadGen's minimum duration of a run")
    min_query_count: int = Field(8, ge=1, description="LoadGen's minimum number of queries")
    samples: int = Field(16, ge=1, description="distinct prompts in LoadGen's sample library")


class LlmWorkload(_Strict):
    """An llm_perf workload, plus our optional fields."""

    # llm_perf's fields, same meaning.
    model: str = Field(min_length=1, description="the model's name (llm_perf's; the entry is found by task name)")
    test_accuracy: bool = Field(False, description="compare logits with the CPU FP32 reference; PPL with a dataset")
    test_perf: bool = Field(True, description="measure TTFT, TPOT and token throughput")
    min_tp_size: int = Field(1, ge=1, description="the smallest TP size the full model runs at on its accelerators")
    accuracy_config: AccuracyConfig = Field(default_factory=AccuracyConfig, description="llm_perf's accuracy block")
    perf_config: PerfConfig = Field(default_factory=PerfConfig, description="llm_perf's load: sizes, lengths, time")

    # Our fields.
    description: str = Field("", description="one line shown by --show_task_list")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seed of the synthetic weights and the prompts")
    precision: str | None = Field(
        None,
        description="FP32, BF16, FP16, or weights and activations apart ('INT4 weights', 'INT4 weights, INT8 "
        "activations'); default auto (the fastest candidate the gate passes)",
    )
    engine: str | None = Field(None, description="backend engine, e.g. auto or transformers")
    engine_options: dict[str, Any] = Field(default_factory=dict, description="the LLM engine's own options")
    layers: int | None = Field(
        None, ge=1, description="build this many of the model's decoder layers, every shape unchanged (a scaled model)"
    )
    warmup_requests: int = Field(1, ge=0, description="requests served before the timed window of each point")
    min_requests: int = Field(
        0, ge=0, description="keep serving until this many requests finished (default: one round of B requests)"
    )
    stagger_seconds: float = Field(
        1.0, ge=0, description="client i starts i x this after the first (llm_perf staggers by 1 s)"
    )
    time_budget_minutes: Annotated[float, Field(gt=0)] | Literal["off"] | None = Field(
        None, description="share this many minutes among the load points; off (or unset): each runs perf_time"
    )
    trust_remote_code: bool = Field(False, description="run code from a model folder (only with this set)")

    # Serving load.
    concurrency: list[int] | None = Field(
        None, description="closed-loop concurrencies to sweep; replaces perf_config.batch_sizes (the same thing)"
    )
    request_rate: list[float] | None = Field(
        None, description="open loop: request rates (per second) to sweep, Poisson arrivals; closed loop if unset"
    )
    burstiness: float = Field(1.0, gt=0, description="open loop: gamma shape of inter-arrival times (1: Poisson)")
    max_concurrency: int | None = Field(
        None, ge=1, description="open loop: requests in flight at most (the engine's slots); default the largest batch"
    )
    lengths: LengthsConfig = Field(default_factory=LengthsConfig, description="prompt and answer lengths")
    shared_prefix_tokens: int = Field(
        0, ge=0, description="every prompt starts with the same this many tokens (measures prefix caching)"
    )
    slo: dict[str, float] | str | None = Field(
        None, description="latency objectives in ms, e.g. {ttft_p99: 2000, tpot_p99: 100}, or a preset's name"
    )
    find_max_rate: bool = Field(False, description="search the highest request rate whose P99s meet the SLO")
    max_rate_probes: int = Field(8, ge=1, description="find_max_rate: load points the search may add at most")
    loadgen_scenarios: list[Literal["Server", "Offline"]] | None = Field(
        None, description="MLPerf LoadGen LLM scenarios run after the load points"
    )
    loadgen: LoadGenLlmConfig = Field(default_factory=LoadGenLlmConfig, description="LoadGen's LLM run sizes")
    profile: bool = Field(
        False, description="after the timed windows, profile a prefill and decode steps of the first load point"
    )

    @field_validator("precision")
    @classmethod
    def _precision_name(cls, value: str | None) -> str | None:
        from core.config.llm_precision import parse

        return value if value in (None, "auto") else parse(value).label

    @field_validator("concurrency")
    @classmethod
    def _concurrency(cls, values: list[int] | None) -> list[int] | None:
        if values is not None and (not values or min(values) < 1):
            raise ValueError("concurrencies must be at least 1")
        return sorted(set(values)) if values else values

    @field_validator("request_rate")
    @classmethod
    def _rates(cls, values: list[float] | None) -> list[float] | None:
        if values is not None and (not values or min(values) <= 0):
            raise ValueError("request rates must be positive")
        return sorted(set(values)) if values else values

    @field_validator("slo")
    @classmethod
    def _slo(cls, value: dict[str, float] | str | None) -> dict[str, float] | str | None:
        if isinstance(value, str) and value not in SLO_PRESETS:
            raise ValueError(f"unknown SLO preset '{value}': use one of {', '.join(SLO_PRESETS)} or ttft_p99=MS,...")
        if isinstance(value, dict):
            for key, limit in value.items():
                if not SLO_KEY.match(key):
                    raise ValueError(f"unknown objective '{key}': use (ttft|tpot|e2e)_(p50|p90|p99)")
                if limit <= 0:
                    raise ValueError(f"{key} must be a positive number of ms")
        return value

    @field_validator("find_max_rate")
    @classmethod
    def _search_needs_slo(cls, value: bool, info: ValidationInfo) -> bool:
        if value and not info.data.get("slo"):
            raise ValueError("find_max_rate needs an slo: the objectives the rate must meet")
        return value

    @model_validator(mode="after")
    def _prefix_fits(self) -> LlmWorkload:
        if self.shared_prefix_tokens and self.lengths.kind == "fixed":
            shortest = min(self.perf_config.input_tokens)
            if self.shared_prefix_tokens >= shortest:
                raise ValueError(f"shared_prefix_tokens must be under the shortest prompt ({shortest} tokens)")
        return self

    @property
    def batch_sizes(self) -> list[int]:
        """Closed loop: the concurrencies (llm_perf's batch sizes); open loop: the slots."""
        if self.open_loop:
            return [self.max_concurrency or max(self.concurrency or self.perf_config.batch_sizes)]
        return self.concurrency or self.perf_config.batch_sizes

    @property
    def open_loop(self) -> bool:
        return bool(self.request_rate) or (self.find_max_rate and bool(self.slo))

    @property
    def slo_limits(self) -> dict[str, float]:
        return dict(SLO_PRESETS[self.slo]) if isinstance(self.slo, str) else dict(self.slo or {})


class TokenizerEntry(_Strict):
    path: str | None = Field(None, description="folder of the tokenizer (a Hugging Face tokenizer folder)")
    support_chn: bool = Field(False, description="llm_perf: the tokenizer handles Chinese text")
    apply_chat_template: bool = Field(False, description="llm_perf: wrap prompts in the chat template")


class LlmModelEntry(_Strict):
    """An llm_perf model-zoo entry: the model's Hugging Face config inlined as `network`."""

    model_name: str = Field(min_length=1, description="the model's short name")
    model_path: str | None = Field(None, description="local Hugging Face folder (config, safetensors, tokenizer)")
    model_interface: str | None = Field(None, description="llm_perf's model class; `network.architectures` decides")
    tokenizer: TokenizerEntry = Field(default_factory=TokenizerEntry, description="where the tokenizer comes from")
    network: dict[str, Any] = Field(description="the model's Hugging Face config.json")

    # Our fields.
    description: str = Field("", description="one line about the model")

    @model_validator(mode="after")
    def _has_architecture(self) -> LlmModelEntry:
        if not self.network.get("model_type"):
            raise ValueError("network has no model_type: it must be the model's Hugging Face config.json")
        return self

    @property
    def architecture(self) -> str | None:
        names = self.network.get("architectures") or []
        return str(names[0]) if names else None

    @property
    def model(self) -> str:
        return self.model_name

    # What general_perf's entries also answer, so listings and `prepare` treat both kinds alike: an LLM
    # entry names no downloadable assets or dataset (its weights are a local folder at model_path).
    assets: ClassVar[tuple] = ()
    dataset_name: ClassVar[None] = None

    @property
    def max_positions(self) -> int | None:
        value = self.network.get("max_position_embeddings") or self.network.get("seq_length")
        return int(value) if value else None
