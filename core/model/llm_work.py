"""An LLM's work per phase, counted once from its config: the FLOPs of a prefill and the bytes a decode step reads.

Prefill is compute-bound: 2 FLOPs per weight per token through the matrix multiplies, plus attention (QK^T and
AV over the causal pairs). The embedding table is a lookup, not a matrix multiply; the LM head runs only for
the positions whose logits are computed (the engine asks for the last one); a mixture of experts counts only
the experts routed (num_experts_per_tok of num_local_experts).

Decode is memory-bound: every weight read once a step at the precision that ran (the experts a step's tokens
route to, expected under uniform routing), the embedding rows of the batch, and each request's KV cache up to
its context.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core.model.llm import kv_geometry


@dataclass(frozen=True)
class LlmWork:
    """Parameter counts by role, and the attention geometry."""

    dense: int  # matrix-multiply weights every token runs through (attention, dense MLP, routers)
    experts: int  # every expert's weights, stored
    lm_head: int
    embedding: int  # a lookup table (0 when tied to the LM head: one matrix, counted there)
    other: int  # norms, biases: read every step, no matrix multiply
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    experts_total: int = 0  # 0: a dense model
    experts_routed: int = 0  # per token

    @property
    def parameters(self) -> int:
        return self.dense + self.experts + self.lm_head + self.embedding + self.other

    @property
    def routed_share(self) -> float:
        return self.experts_routed / self.experts_total if self.experts_total else 1.0

    def prefill_flops(self, tokens: int, logit_positions: int = 1) -> float:
        """One request's prefill of `tokens` prompt tokens, logits computed for `logit_positions` of them."""
        per_token = self.dense + self.experts * self.routed_share
        causal_pairs = tokens * (tokens + 1) / 2  # query i attends to keys 0..i
        attention = self.layers * 2 * 2 * self.heads * self.head_dim * causal_pairs  # QK^T and AV
        return 2.0 * per_token * tokens + 2.0 * self.lm_head * logit_positions + attention

    def expert_share(self, batch: int) -> float:
        """Share of the experts a step of `batch` tokens reads: 1 - (1 - k/E)^batch (k/E for one token)."""
        if not self.experts_total:
            return 1.0
        return 1.0 - (1.0 - self.routed_share) ** batch

    def weight_bytes(self, weight_bytes: float) -> float:
        """Every weight stored, at `weight_bytes` a weight."""
        return self.parameters * weight_bytes

    def decode_bytes(self, batch: int, context: float, weight_bytes: float, kv_bytes: float) -> float:
        """Bytes one decode step reads: the weights once (experts as routed), `batch` embedding rows, and each
        request's K and V over `context` positions."""
        weights = self.dense + self.lm_head + self.other + self.experts * self.expert_share(batch)
        rows = batch * self.hidden if self.embedding else 0
        kv = batch * 2 * self.layers * self.kv_heads * self.head_dim * context * kv_bytes
        return (weights + rows) * weight_bytes + kv

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def count(config) -> LlmWork:
    """The counts of a transformers config, read from its module on the meta device (nothing allocated)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    head = model.get_output_embeddings()
    head_id = id(head.weight) if head is not None else None
    lookups = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    counts = {"dense": 0, "experts": 0, "lm_head": 0, "embedding": 0, "other": 0}
    for name, param in model.named_parameters():  # a tied weight appears once
        if id(param) == head_id:
            role = "lm_head"
        elif id(param) in lookups:
            role = "embedding"
        elif ".experts." in name:
            role = "experts"
        elif param.dim() >= 2:
            role = "dense"
        else:
            role = "other"
        counts[role] += param.numel()
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    layers, kv_heads, head_dim = kv_geometry(config)
    total = int(getattr(text, "num_local_experts", 0) or getattr(text, "num_experts", 0) or 0)
    routed = int(getattr(text, "num_experts_per_tok", 0) or 0) if total else 0
    return LlmWork(
        **counts,
        hidden=int(text.hidden_size),
        layers=layers,
        heads=int(text.num_attention_heads),
        kv_heads=kv_heads,
        head_dim=head_dim,
        experts_total=total if counts["experts"] else 0,
        experts_routed=routed if counts["experts"] else 0,
    )


def cached_count(config, path: Path) -> LlmWork:
    """count(config), kept as JSON at `path` (keyed by the caller: config, code, versions)."""
    from core.common.atomic import atomic_write_text

    if path.is_file():
        try:
            return LlmWork(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            pass  # unreadable or from another shape: count again
    work = count(config)
    atomic_write_text(path, json.dumps(work.to_dict(), indent=2) + "\n")
    return work
