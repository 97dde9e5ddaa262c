"""A transformers causal LM served with a static KV cache of fixed slots, each request at its own position.

transformers' StaticCache writes every row of a batch at one shared position, so requests that joined at
different times cannot share a decode step. Here each slot keeps its own length: a prefill writes one slot's
prompt, a decode step writes one token per slot at that slot's position, and a boolean 4D mask (which
transformers passes to attention as it is) lets each row see only its own filled positions. The cache is
allocated once, at its largest, so its memory is known before the first request. Used by the CPU and the
GPU backends alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.model.llm import kv_geometry


def _cache_class():
    from transformers.cache_utils import Cache

    class SlotCache(Cache):
        """Per-layer K/V buffers [slots, kv_heads, max_len, head_dim]; `rows` and `positions` say where the
        next forward writes (set by the engine before each call)."""

        def __init__(self, layers: int, slots: int, kv_heads: int, head_dim: int, max_len: int, dtype, device):
            import torch

            super().__init__(layers=[])
            shape = (slots, kv_heads, max_len, head_dim)
            self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
            self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(layers)]
            self.rows: Any = None  # [b] slot of each batch row
            self.positions: Any = None  # decode: [b] the position each row writes; None: a prefill
            self.span = 0  # key positions attention reads: the longest filled length among the rows
            self.contiguous = 0  # rows are slots 0..b-1 in order: read a view, not a gathered copy

        def update(self, key_states, value_states, layer_idx: int, *args, **kwargs):
            keys, values = self.keys[layer_idx], self.values[layer_idx]
            if self.positions is None:  # a prefill: one slot, its prompt at positions 0..span-1
                slot = self.rows[0]
                keys[slot, :, : self.span] = key_states[0]
                values[slot, :, : self.span] = value_states[0]
                return keys[slot : slot + 1, :, : self.span], values[slot : slot + 1, :, : self.span]
            keys[self.rows, :, self.positions] = key_states[:, :, 0]
            values[self.rows, :, self.positions] = value_states[:, :, 0]
            if self.contiguous:
                return keys[: self.contiguous, :, : self.span], values[: self.contiguous, :, : self.span]
            return keys[self.rows, :, : self.span], values[self.rows, :, : self.span]

        def get_seq_length(self, layer_idx: int = 0) -> int:
            return self.span

        def nbytes(self) -> int:
            return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))

    return SlotCache


class SlotEngine:
    """Greedy prefill and batched decode over a transformers causal LM (the server's LlmEngine)."""

    def __init__(self, model, slots: int, max_len: int):
        import torch

        self.model = model
        self.slots = slots
        self.max_len = max_len
        self.device = next(model.parameters()).device
        layers, kv_heads, head_dim = kv_geometry(model.config)
        dtype = next(model.parameters()).dtype
        self.cache = _cache_class()(layers, slots, kv_heads, head_dim, max_len, dtype, self.device)
        self.lengths = [0] * slots
        self._torch = torch

    @property
    def cache_bytes(self) -> int:
        return self.cache.nbytes()

    def prefill(self, slot: int, ids: Sequence[int]) -> int:
        torch = self._torch
        n = len(ids)
        if n + 1 > self.max_len:
            raise ValueError(f"a prompt of {n} tokens does not fit the cache's {self.max_len} positions")
        positions = torch.arange(n, device=self.device)
        cache = self.cache
        cache.rows, cache.positions, cache.span, cache.contiguous = [slot], None, n, 0
        mask = torch.ones(n, n, dtype=torch.bool, device=self.device).tril_().view(1, 1, n, n)
        with torch.inference_mode():
            out = self.model(
                input_ids=torch.tensor([list(ids)], device=self.device),
                position_ids=positions.view(1, n),
                attention_mask=mask,
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,
            )
        self.lengths[slot] = n
        return int(out.logits[0, -1].argmax())

    def decode(self, slots: Sequence[int], tokens: Sequence[int]) -> list[int]:
        torch = self._torch
        b = len(slots)
        positions = [self.lengths[s] for s in slots]
        span = max(positions) + 1
        if span > self.max_len:
            raise ValueError(f"a request outgrew the cache's {self.max_len} positions")
        cache = self.cache
        cache.rows = torch.tensor(list(slots), device=self.device)
        cache.positions = torch.tensor(positions, device=self.device)
        cache.span = span
        cache.contiguous = b if list(slots) == list(range(b)) else 0
        mask = torch.arange(span, device=self.device).view(1, span) <= cache.positions.view(b, 1)
        with torch.inference_mode():
            out = self.model(
                input_ids=torch.tensor(list(tokens), device=self.device).view(b, 1),
                position_ids=cache.positions.view(b, 1),
                attention_mask=mask.view(b, 1, 1, span),
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,
            )
        for s in slots:
            self.lengths[s] += 1
        return [int(t) for t in out.logits[:, -1].argmax(-1)]

    def release(self, slot: int) -> None:
        self.lengths[slot] = 0

    def logits(self, ids: Sequence[int]):
        """Teacher-forced logits [len(ids), vocab] in FP32, without the cache: what the accuracy gate compares."""
        torch = self._torch
        with torch.inference_mode():
            out = self.model(input_ids=torch.tensor([list(ids)], device=self.device), use_cache=False)
        return out.logits[0].float()


def plain_generate(model, ids, mask, new_tokens: int, streamer=None):
    """transformers' own generate() as most users run it (the peer our engine is held against): greedy, its
    default cache, exactly `new_tokens` new tokens a row."""
    return model.generate(
        input_ids=ids,
        attention_mask=mask,
        do_sample=False,
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        pad_token_id=0,
        streamer=streamer,
    )


def serving_engine(model, slots: int, max_len: int):
    """The server's engine for `model`: a converted model (one with `engine`, e.g. onnxruntime-genai's) makes its
    own; a transformers module gets a SlotEngine."""
    make = getattr(model, "engine", None)
    return make(slots, max_len) if callable(make) else SlotEngine(model, slots=slots, max_len=max_len)
