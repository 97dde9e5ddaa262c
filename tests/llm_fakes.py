"""Helpers of the LLM tests: a fake clock for the server (engines advance it, the server's sleeps advance it,
nothing waits) and a tiny seeded Llama."""

from __future__ import annotations


class FakeClock:
    def __init__(self):
        self.ns = 0

    def __call__(self):
        return self.ns

    def advance(self, ms):
        self.ns += int(ms * 1e6)

    def sleep(self, seconds):
        self.ns += int(seconds * 1e9)


def tiny_llama(seed: int = 0, **config):
    """A seeded two-layer Llama with GQA (hidden 64, 4 heads, 2 KV heads), in eval mode; `config` overrides."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    fields = dict(
        vocab_size=256,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(**{**fields, **config})).eval()
