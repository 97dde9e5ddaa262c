"""A torch module from a bundled config or a checkpoint, called the way the model-zoo entry feeds it.

Every module we build takes the entry's inputs positionally, in the entry's order, and returns a tuple
in the entry's output order, so tracing, ONNX export and ByteMLPerf's TorchScript files all look alike.
Two libraries build the architectures: transformers (configs with `architectures`) and diffusers (configs
with `_class_name`). Which keyword each input becomes is read from the input's name.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from core.common.errors import UserError

# transformers classes we build from a config: task heads, and the bare text encoder CLIP is shipped as.
TRANSFORMERS_CLASSES = ("ForQuestionAnswering", "ForSequenceClassification", "ForImageClassification", "CLIPTextModel")
DIFFUSERS_CLASSES = ("UNet2DConditionModel", "AutoencoderKL")
# An AutoencoderKL config says which half the entry runs: ByteMLPerf ships the VAE as two graphs.
VAE_PARTS = ("encoder", "decoder")
# Token-model roles in ByteMLPerf's positional order: ids, mask, token types.
TOKEN_ROLES = ("input_ids", "attention_mask", "token_type_ids")
# The keyword each input name means (ByteMLPerf's suffixes `.1` and `:0` dropped first), where the
# name alone is not already the keyword.
NAME_ALIASES = {
    "input_mask": "attention_mask",
    "segment_ids": "token_type_ids",
    "input_segment": "token_type_ids",
    "input_token": "input_ids",
    "input_1": "pixel_values",
    "input_tensor": "pixel_values",
    "images": "pixel_values",
    "image": "pixel_values",
    "latent_sample": "sample",
}
_SUFFIX = re.compile(r"(\.\d+|:\d+)$")


@dataclass(frozen=True)
class CallingConvention:
    """How the entry feeds the model: input names in order, image layout, and the outputs it names."""

    input_names: tuple[str, ...] = ()
    output_names: tuple[str, ...] = ()
    layout: str | None = None  # "NHWC": image inputs arrive channels-last and are permuted for the model

    def keywords(self, allowed: tuple[str, ...]) -> tuple[str, ...] | None:
        """The keyword of each input by its name, or None when a name means none of `allowed`."""
        words = tuple(NAME_ALIASES.get(_SUFFIX.sub("", n), _SUFFIX.sub("", n)) for n in self.input_names)
        if words and all(w in allowed for w in words) and len(set(words)) == len(words):
            return words
        return None


def library_of(config: dict[str, Any]) -> str:
    return "diffusers" if "_class_name" in config else "transformers"


def build_module(
    kind: str,
    config: dict[str, Any],
    *,
    seed: int = 0,
    checkpoint=None,
    convention: CallingConvention = CallingConvention(),
    where: object = None,
):
    """The model in eval mode, wrapped to take positional inputs and return a tuple."""
    if library_of(config) == "diffusers":
        model = _diffusers_model(config, seed, where)
    else:
        model = _transformers_model(kind, config, seed, checkpoint, where)
    return wrap(model, convention)


def use_attention(module, implementation: str) -> bool:
    """Switch a built transformers model (behind our wrapper) to another attention implementation ("sdpa" on
    accelerators, where users run it; the builder builds "eager" for the CPU reference). False when the module
    is not one (TorchScript, diffusers) or the architecture has no such kernel."""
    model = getattr(module, "model", None)
    switch = getattr(model, "set_attn_implementation", None)
    if switch is None:
        return False
    try:
        switch(implementation)
    except (ValueError, ImportError):  # an architecture without that kernel keeps eager
        return False
    return True


def wrap(model, convention: CallingConvention):
    """A built model behind the entry's calling convention: positional inputs in its order, a tuple out."""
    return _wrapper_class()(model, convention).eval()


def _transformers_model(kind: str, config: dict[str, Any], seed: int, checkpoint, where):
    import torch
    import transformers

    plain = {k: v for k, v in config.items() if not k.startswith("_")}
    classes = [a for a in plain.get("architectures", []) if a.endswith(TRANSFORMERS_CLASSES)]
    if not classes or not hasattr(transformers, classes[0]):
        raise UserError(
            f"config architectures {plain.get('architectures')} name no class we build",
            file=where,
            field="architectures",
            fix=f"use a class ending in {' or '.join(TRANSFORMERS_CLASSES)}",
        )
    model_class = getattr(transformers, classes[0])
    if kind == "hf_checkpoint":
        return model_class.from_pretrained(str(checkpoint), local_files_only=True, attn_implementation="eager")
    hf_config = transformers.AutoConfig.for_model(**plain)
    hf_config._attn_implementation = "eager"
    torch.manual_seed(seed)
    return model_class(hf_config)


def _diffusers_model(config: dict[str, Any], seed: int, where):
    import torch

    try:
        import diffusers
    except ImportError:
        raise UserError(
            "this architecture is built by diffusers, which is not installed",
            file=where,
            field="architecture",
            fix="pip install diffusers -c constraints.txt",
        ) from None
    name = config["_class_name"]
    if name not in DIFFUSERS_CLASSES:
        raise UserError(
            f"_class_name {name!r} is not a class we build",
            file=where,
            field="_class_name",
            fix=f"use one of {', '.join(DIFFUSERS_CLASSES)}",
        )
    if name == "AutoencoderKL" and config.get("_part") not in VAE_PARTS:
        raise UserError(
            "an AutoencoderKL config must say which half runs",
            file=where,
            field="_part",
            fix=f"set _part to {' or '.join(VAE_PARTS)}",
        )
    plain = {k: v for k, v in config.items() if not k.startswith("_") or k == "_class_name"}
    torch.manual_seed(seed)
    model = getattr(diffusers, name).from_config(plain)
    model.perfbench_part = config.get("_part")
    if name == "AutoencoderKL":  # ByteMLPerf's graphs hold one half: the other would only take memory
        unused = ("decoder", "post_quant_conv") if model.perfbench_part == "encoder" else ("encoder", "quant_conv")
        for attribute in unused:
            setattr(model, attribute, None)
    return model


@functools.cache
def _wrapper_class():
    import torch

    class _EntryModel(torch.nn.Module):
        """Positional inputs in the entry's order in, a tuple in the entry's output order out."""

        def __init__(self, model, convention: CallingConvention):
            super().__init__()
            self.model = model
            self.config = model.config
            self.convention = convention
            name = type(model).__name__
            self.stack_logits = name.endswith("ForQuestionAnswering") and len(convention.output_names) == 1
            self.family = (
                "image"
                if name.endswith("ForImageClassification")
                else "unet"
                if name == "UNet2DConditionModel"
                else f"vae-{model.perfbench_part}"
                if name == "AutoencoderKL"
                else "tokens"
            )
            if self.family == "tokens":
                known = convention.keywords(TOKEN_ROLES)
                self.keywords = known or TOKEN_ROLES  # names we cannot read: ByteMLPerf's positional order
                no_types = getattr(self.config, "type_vocab_size", 0) in (0, None)
                self.drop = {"token_type_ids"} if no_types else set()
                # bert4keras models (ByteMLPerf's RoFormer) take no mask and mask padding ids themselves.
                self.mask_padding = "attention_mask" not in self.keywords and getattr(
                    self.config, "perfbench_mask_padding", False
                )
            elif self.family == "unet":
                self.keywords = convention.keywords(("sample", "timestep", "encoder_hidden_states")) or (
                    "sample",
                    "timestep",
                    "encoder_hidden_states",
                )

        def forward(self, *inputs):
            if self.family == "image":
                pixels = inputs[0].permute(0, 3, 1, 2) if self.convention.layout == "NHWC" else inputs[0]
                return self.model(pixel_values=pixels, return_dict=False)
            if self.family == "unet":
                return self.model(**dict(zip(self.keywords, inputs)), return_dict=False)
            if self.family == "vae-encoder":
                return (self.model.encode(inputs[0], return_dict=False)[0].mode(),)  # the mean: deterministic
            if self.family == "vae-decoder":
                return self.model.decode(inputs[0], return_dict=False)
            kwargs = {
                k: (v.long() if v.is_floating_point() else v)  # ByteMLPerf's RoFormer takes ids as floats
                for k, v in zip(self.keywords, inputs)
                if k not in self.drop
            }
            if self.mask_padding:
                kwargs["attention_mask"] = (kwargs["input_ids"] != self.config.pad_token_id).long()
            outputs = self.model(**kwargs, return_dict=False)
            if self.stack_logits:
                return (torch.stack(outputs, dim=-1),)  # one [N, L, 2] `logits` (BERT in TensorFlow)
            return outputs

    return _EntryModel
