"""What an engine's weight format does to a model, applied to the FP32 reference: the LLM gate's scale model.

An engine that stores weights in INT4 blocks or GGUF's Q8_0 runs a slightly different model than the FP32
reference. `rounded(module, rounding)` gives the reference the same rounding (each weight quantized and
dequantized as the engine's format stores it, then run in FP32), so the gate's bound is measured for that
format rather than assumed: an INT4 engine fails only for error beyond INT4's.

Which weights are rounded follows the engines: the decoder's linear layers always, the LM head unless the
format keeps it, the token embedding only where the format stores it rounded (GGUF files do; onnxruntime-genai
keeps the Gather table in FP32). GGUF types are rounded by the gguf package's own quantizer, so the scale
model is bit-exact with the file; the INT blocks follow onnxruntime's MatMulNBits round-to-nearest (the
signed value of largest magnitude maps to the most negative code).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class WeightRounding:
    name: str  # "FP32", "BF16", "INT8", "INT4", "Q8_0", "Q4_0"
    bits: float  # stored bits per weight, scales included: the decode roof's bytes
    block: int = 0  # weights sharing one scale along the input dimension (INT schemes)
    symmetric: bool = True
    gguf_type: str | None = None  # rounded by gguf.quants exactly as the file stores it
    embeddings: bool = False  # the token embedding table is stored rounded too
    lm_head: bool = True  # the LM head is stored rounded too

    @property
    def bytes_per_weight(self) -> float:
        return self.bits / 8

    @property
    def lossless(self) -> bool:
        return self.name == "FP32"


FP32 = WeightRounding("FP32", 32)
BF16 = WeightRounding("BF16", 16, embeddings=True)


def round_tensor(weight, rounding: WeightRounding):
    """`weight` [out, in] (FP32) as `rounding` stores it, dequantized back to FP32."""
    import torch

    if rounding.lossless:
        return weight.clone()
    if rounding.name in ("BF16", "FP16"):
        return weight.to(torch.bfloat16 if rounding.name == "BF16" else torch.float16).to(torch.float32)
    if rounding.gguf_type:
        return _gguf(weight, rounding.gguf_type)
    if rounding.name in ("INT8", "INT4"):
        return _int_blocks(weight, 8 if rounding.name == "INT8" else 4, rounding.block, rounding.symmetric)
    raise ValueError(f"no rounding for {rounding.name}")


def _gguf(weight, gguf_type: str):
    import numpy as np
    import torch
    from gguf import GGMLQuantizationType, quants

    qtype = GGMLQuantizationType[gguf_type]
    array = weight.detach().cpu().numpy().astype(np.float32, copy=False)
    back = quants.dequantize(quants.quantize(array, qtype), qtype).reshape(array.shape)
    return torch.from_numpy(np.ascontiguousarray(back, dtype=np.float32)).to(weight.device)


def _int_blocks(weight, bits: int, block: int, symmetric: bool):
    """Round-to-nearest in blocks of `block` input weights (0: one block per output row)."""
    import torch

    rows, cols = weight.shape
    size = block or cols
    pad = (-cols) % size
    values = torch.nn.functional.pad(weight.detach().float(), (0, pad)).reshape(rows, -1, size)
    if symmetric:
        low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        # The signed value of largest magnitude maps to `low` (MLAS's rule), so one code is never wasted.
        extreme = values.gather(-1, values.abs().argmax(-1, keepdim=True))
        scale = torch.where(extreme == 0, torch.ones_like(extreme), extreme / low)
        back = (values / scale).round().clamp(low, high) * scale
    else:
        levels = 2**bits - 1
        low_v, high_v = values.amin(-1, keepdim=True).clamp(max=0), values.amax(-1, keepdim=True).clamp(min=0)
        scale = ((high_v - low_v) / levels).clamp(min=1e-12)
        zero = (-low_v / scale).round().clamp(0, levels)
        back = ((values / scale).round() + zero).clamp(0, levels).sub(zero) * scale
    return back.reshape(rows, -1)[:, :cols].contiguous()


def _targets(module, rounding: WeightRounding) -> list:
    """The parameters `rounding` stores rounded: each once, even when the LM head shares the embedding's."""
    import torch

    embedding = module.get_input_embeddings()
    head = module.get_output_embeddings()
    found, seen = [], set()
    for sub in module.modules():
        if sub is head and not rounding.lm_head:
            continue
        if isinstance(sub, torch.nn.Linear) or (sub is embedding and rounding.embeddings):
            if id(sub.weight) not in seen:
                seen.add(id(sub.weight))
                found.append(sub)
    return found


@contextmanager
def rounded(module, rounding: WeightRounding) -> Iterator[None]:
    """Within: `module`'s FP32 weights carry `rounding` (its stored weights, dequantized); restored on exit.
    Holds one FP32 copy of the rounded weights meanwhile. A tied LM head that the format rounds while the
    embedding table stays exact (onnxruntime-genai's INT blocks) is rounded only while the head runs."""
    import torch

    embedding = module.get_input_embeddings()
    head = module.get_output_embeddings()
    tied = head is not None and embedding is not None and head.weight is embedding.weight
    saved: dict = {}
    hooks = []
    with torch.no_grad():
        for sub in _targets(module, rounding):
            if tied and sub is head and not rounding.embeddings:
                hooks += _while_running(head, round_tensor(head.weight.data, rounding))
                continue
            saved[sub] = sub.weight.data
            sub.weight.data = round_tensor(sub.weight.data, rounding)
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()
        for sub, data in saved.items():
            sub.weight.data = data


def _while_running(sub, data) -> list:
    """Hooks that give `sub` the weights `data` during its own forward only."""
    held: list = []

    def swap_in(_module, _args):
        held.append(sub.weight.data)
        sub.weight.data = data

    def swap_out(_module, _args, _output):
        sub.weight.data = held.pop()

    return [sub.register_forward_pre_hook(swap_in), sub.register_forward_hook(swap_out)]
