"""An LLM's weights: a local Hugging Face folder at `model_path`, else seeded synthetic weights of the entry's
`network` config built with transformers' own classes; a size check before anything is allocated.

`--layers N` builds N of the model's decoder layers with every other shape unchanged, so a 70B model's
layer, embedding and LM head run at their true sizes on a host that cannot hold 80 layers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.common.digest import json_digest
from core.common.errors import UserError
from core.config.llm import LlmModelEntry
from core.model.source import resolve_repo_path

BYTES = {"FP32": 4, "BF16": 2, "FP16": 2}
SYNTHETIC_NOTE = "SYNTHETIC WEIGHTS: seeded random values; performance is faithful, accuracy is not meaningful"
# Config fields that hold the decoder's layer count, by family.
LAYER_FIELDS = ("num_hidden_layers", "num_layers", "n_layer")


@dataclass
class LlmSource:
    """Where the weights come from and the config they are built from."""

    kind: str  # "hf_checkpoint" | "synthetic"
    config: Any  # the transformers config, with --layers applied
    architecture: str
    layers: int
    full_layers: int
    digest: str  # keys caches of anything built from these weights
    path: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def synthetic(self) -> bool:
        return self.kind == "synthetic"

    @property
    def scaled(self) -> str | None:
        """'2 of 80 layers' for a scaled model, else None."""
        return None if self.layers == self.full_layers else f"{self.layers} of {self.full_layers} layers"

    def report_entry(self) -> dict[str, Any]:
        entry = {"kind": self.kind, "architecture": self.architecture, "digest": self.digest}
        if self.path is not None:
            entry["path"] = str(self.path)
        if self.synthetic:
            entry["note"] = (
                "SYNTHETIC WEIGHTS: seeded random values; performance is faithful, accuracy is not meaningful"
            )
        if self.scaled:
            entry["scaled"] = self.scaled
        return entry


def resolve_llm_source(
    entry: LlmModelEntry, model_file: Path, *, layers: int | None, seed: int, trust_remote_code: bool
) -> LlmSource:
    """The weights' source and config; a refusal names the file and what to provide."""
    folder = resolve_repo_path(entry.model_path) if entry.model_path else None
    local = folder is not None and (folder / "config.json").is_file()
    notes: list[str] = []
    if local:
        config_dict = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    else:
        config_dict = dict(entry.network)
    architecture = _architecture(entry, config_dict, model_file, local, trust_remote_code, notes)
    config = _config(config_dict, folder if local else None, model_file, trust_remote_code)
    full = _layer_count(config, model_file)
    if layers is not None:
        if layers > full:
            raise UserError(
                f"--layers {layers} is more than the model's {full} decoder layers",
                file=model_file,
                fix=f"use 1 to {full}",
            )
        _set_layers(config, layers)
    if "max_position_embeddings" not in config_dict and hasattr(config, "max_position_embeddings"):
        notes.append(
            f"network has no max_position_embeddings: {architecture}'s default {config.max_position_embeddings} applies"
        )
    built = layers or full
    if local:
        digest = json_digest({"config": config_dict, "files": _weights_stamp(folder), "layers": built}, 16)
        return LlmSource("hf_checkpoint", config, architecture, built, full, digest, folder, notes)
    digest = json_digest({"config": config_dict, "seed": seed, "layers": built}, 16)
    return LlmSource("synthetic", config, architecture, built, full, digest, None, notes)


def _architecture(entry, config_dict, model_file, local, trust_remote_code, notes) -> str:
    import transformers

    names = config_dict.get("architectures") or []
    architecture = str(names[0]) if names else ""
    if entry.model_interface and architecture and entry.model_interface != architecture:
        notes.append(
            f"model_interface says {entry.model_interface} but network.architectures says {architecture}: "
            f"architectures decides"
        )
    if architecture and hasattr(transformers, architecture):
        return architecture
    if config_dict.get("auto_map") and local and trust_remote_code:
        return architecture or "custom code"
    shipped = f"transformers {transformers.__version__} does not ship {architecture or 'its architecture'}"
    if config_dict.get("auto_map"):
        fix = (
            "put the model's folder (config, weights and its modeling code) at model_path and pass "
            "--trust-remote-code to run that code"
            if not local
            else "pass --trust-remote-code to run the modeling code in that folder"
        )
        raise UserError(f"{shipped}: it names custom code (auto_map)", file=model_file, field="network", fix=fix)
    raise UserError(
        shipped,
        file=model_file,
        field="network.architectures",
        fix="use an architecture transformers ships (Llama, Mistral, Mixtral, Qwen2, Falcon, ...)",
    )


def _config(config_dict: dict, folder: Path | None, model_file: Path, trust_remote_code: bool):
    from transformers import AutoConfig

    try:
        if folder is not None:
            return AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code, local_files_only=True)
        values = {k: v for k, v in config_dict.items() if k not in ("model_type", "auto_map", "_name_or_path")}
        return AutoConfig.for_model(config_dict["model_type"], **values)
    except (ValueError, KeyError, TypeError, OSError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"transformers cannot read this config: {first}", file=model_file, field="network") from None


def _layer_count(config, model_file: Path) -> int:
    for name in LAYER_FIELDS:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    raise UserError("the config names no decoder layer count", file=model_file, field="network")


def _set_layers(config, layers: int) -> None:
    for name in LAYER_FIELDS:
        if isinstance(getattr(config, name, None), int):
            setattr(config, name, layers)
    if isinstance(getattr(config, "layer_types", None), list):  # per-layer attention kinds (sliding/full)
        config.layer_types = config.layer_types[:layers]


def _weights_stamp(folder: Path) -> str:
    """Names, sizes and times of the weight files: a checkpoint that changes keys new caches."""
    files = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".json"))
    return ";".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)


def kv_geometry(config) -> tuple[int, int, int]:
    """(decoder layers, KV heads, head dim) of a transformers config, across the families' field names."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    heads = int(text.num_attention_heads)
    kv_heads = getattr(text, "num_key_value_heads", None) or getattr(text, "num_kv_heads", None)
    if kv_heads is None:
        kv_heads = 1 if getattr(text, "multi_query", False) else heads
    if getattr(text, "new_decoder_architecture", False):  # transformers' Falcon caches K/V expanded to every head
        kv_heads = heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    return int(text.num_hidden_layers), int(kv_heads), int(head_dim)


@dataclass(frozen=True)
class Footprint:
    """What a run holds at once, in bytes."""

    parameters: int
    weights: int  # at the largest precision alive (the FP32 reference when accuracy is checked)
    kv_cache: int
    activations: int
    reference: bool  # the weights are held at FP32 for the CPU FP32 reference first

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.activations


def count_parameters(config) -> int:
    """The model's parameters, counted on the meta device (nothing allocated)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


def footprint(source: LlmSource, precision: str, reference: bool, slots: int, max_len: int) -> Footprint:
    """The run's peak: the weights at FP32 while the reference exists (the candidate is the same module cast
    afterwards), the KV cache of every slot at full length, and the largest logits a step makes."""
    parameters = count_parameters(source.config)
    width = 4 if reference else BYTES[precision]
    layers, kv_heads, head_dim = kv_geometry(source.config)
    kv = 2 * layers * kv_heads * head_dim * max_len * slots * BYTES[precision]
    vocab = int(getattr(source.config, "vocab_size", 0) or 0)
    hidden = int(getattr(source.config, "hidden_size", 0) or 0)
    # Teacher-forced reference logits of one sequence, and a prefill's hidden states (x8 for the MLP's).
    activations = max_len * vocab * 4 * 2 + max_len * hidden * 4 * 8
    return Footprint(parameters, parameters * width, kv, activations, reference)


def check_fits(fp: Footprint, available: int, model_file: Path, scaled: str | None, full_layers: int) -> None:
    """Refuse, in one line with the figures, a run that cannot fit in this host's memory."""
    if fp.total <= available:
        return
    gib = 1 << 30
    what = "FP32 for the reference" if fp.reference else "at the run's precision"
    figures = (
        f"{fp.parameters / 1e9:.2f} B parameters: weights {fp.weights / gib:.1f} GiB ({what}) + KV cache "
        f"{fp.kv_cache / gib:.1f} GiB + activations {fp.activations / gib:.1f} GiB = {fp.total / gib:.1f} GiB, "
        f"{available / gib:.1f} GiB available"
    )
    hint = "lower --layers" if scaled else f"pass --layers N (of {full_layers}) to build N decoder layers"
    raise UserError(
        f"does not fit this host: {figures}",
        file=model_file,
        fix=f"{hint}, fewer --batch-sizes or shorter --input-tokens/--output-tokens",
    )


def build_model(source: LlmSource, seed: int, dtype_name: str = "FP32", *, trust_remote_code: bool = False):
    """The torch module, in eval mode: the checkpoint, or seeded random weights."""
    import torch
    from transformers import AutoModelForCausalLM

    dtype = {"FP32": torch.float32, "BF16": torch.bfloat16, "FP16": torch.float16}[dtype_name]
    if source.path is not None:
        model = AutoModelForCausalLM.from_pretrained(
            source.path,
            config=source.config,
            dtype=dtype,
            local_files_only=True,
            trust_remote_code=trust_remote_code,
        )
    else:
        from transformers.initialization import no_init_weights

        with no_init_weights():  # allocated, not initialised: fill_synthetic writes every parameter
            model = AutoModelForCausalLM.from_config(source.config, dtype=dtype)
        model.tie_weights()  # a tied LM head shares the embedding, as the config says (and as it is counted)
        fill_synthetic(model, seed, std=float(getattr(source.config, "initializer_range", 0.02) or 0.02))
    model.config.use_cache = True
    return model.eval()


POOL = 1 << 24  # random values drawn once; every weight is a window of them (drawing 10^9 takes a minute)


def fill_synthetic(model, seed: int, std: float) -> None:
    """Seeded weights as transformers initialises them: normal(0, std) for matrices and embeddings, ones
    for normalisation weights, zeros for biases. Each matrix copies a window of one random pool at its own
    seeded offset, so a 1B model fills in seconds, not minutes, and the same seed gives the same weights."""
    import numpy as np
    import torch

    generator = torch.Generator().manual_seed(seed)
    pool = torch.empty(POOL).normal_(0.0, std, generator=generator)
    pool = torch.cat([pool, pool])
    offsets = np.random.default_rng(seed)
    norms = {id(p) for m in model.modules() if "norm" in type(m).__name__.lower() for p in m.parameters(False)}
    with torch.no_grad():
        for name, param in model.named_parameters():
            if id(param) in norms:
                param.fill_(1.0 if name.endswith("weight") else 0.0)
            elif name.endswith("bias"):
                param.zero_()
            else:
                flat = param.view(-1)
                for start in range(0, flat.numel(), POOL):
                    length = min(POOL, flat.numel() - start)
                    at = int(offsets.integers(0, POOL))
                    flat[start : start + length].copy_(pool[at : at + length])
