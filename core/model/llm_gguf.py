"""A transformers Llama-family causal LM written to a GGUF file with the `gguf` package, for the engines that
read GGUF (OpenVINO GenAI, llama.cpp).

Matrices are stored at the asked type (F32, F16, Q8_0, Q4_0), quantized by `gguf.quants.quantize`, the same
numpy reference the gate's weight rounding uses, so the stored values are reproducible bit for bit; norms stay
F32. Q and K are permuted as llama.cpp's converter does for the llama architecture (its rope rotates adjacent
pairs, transformers' rotates halves). The tokenizer is MADE: tokens "<tok_N>" up to the model's vocabulary
size, with bos/eos/unk ids; engines are fed token ids, the list only satisfies the readers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TENSOR_TYPES = ("F32", "F16", "Q8_0", "Q4_0")
# architecture -> GGUF arch; llama's Q/K are permuted to llama.cpp's pairwise rope, qwen2 uses the halves rope
ARCHES = {"llama": "llama", "qwen2": "qwen2"}
FILE = "model.gguf"


def write_gguf(module, path: Path, tensor_type: str) -> dict[str, Any]:
    """Write `module` (FP32 weights) to `path` as GGUF with its matrices at `tensor_type`; the facts written."""
    import gguf

    config = module.config.get_text_config() if hasattr(module.config, "get_text_config") else module.config
    arch = ARCHES.get(config.model_type)
    if arch is None:
        raise ValueError(f"no GGUF writer for model_type {config.model_type!r} (have: {', '.join(ARCHES)})")
    if tensor_type not in TENSOR_TYPES:
        raise ValueError(f"tensor type {tensor_type!r} is not one of {', '.join(TENSOR_TYPES)}")
    qtype = gguf.GGMLQuantizationType[tensor_type]
    heads, kv_heads = int(config.num_attention_heads), int(config.num_key_value_heads or config.num_attention_heads)
    head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
    vocab = int(config.vocab_size)

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_context_length(int(config.max_position_embeddings))
    writer.add_embedding_length(int(config.hidden_size))
    writer.add_block_count(int(config.num_hidden_layers))
    writer.add_feed_forward_length(int(config.intermediate_size))
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(vocab)
    writer.add_file_type(_file_type(gguf, tensor_type))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    theta, factors = _rope(config, head_dim)
    writer.add_rope_freq_base(theta)
    _add_vocabulary(writer, config, vocab)

    tensors = _tensors(module, arch, heads, kv_heads)
    if factors is not None:  # llama3 rope scaling, as llama.cpp stores it: one divisor per frequency
        tensors.insert(0, ("rope_freqs.weight", factors))
    for name, array in tensors:
        matrix = array.ndim == 2 and array.shape[-1] % gguf.GGML_QUANT_SIZES[qtype][0] == 0
        kind = qtype if matrix else gguf.GGMLQuantizationType.F32
        writer.add_tensor(name, gguf.quants.quantize(array, kind), raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {
        "tensor_type": tensor_type,
        "arch": arch,
        "file_bytes": Path(path).stat().st_size,
        "vocabulary": f"made: {vocab} tokens '<tok_N>' (synthetic; engines are fed token ids)",
        "gguf": _gguf_version(),
    }


def _file_type(gguf, tensor_type: str):
    names = {"F32": "ALL_F32", "F16": "MOSTLY_F16", "Q8_0": "MOSTLY_Q8_0", "Q4_0": "MOSTLY_Q4_0"}
    return gguf.LlamaFileType[names[tensor_type]]


def _rope(config, head_dim: int):
    """(rope base, llama3 frequency divisors or None), from the config's rope fields."""
    import numpy as np

    params = dict(getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {})
    theta = float(params.get("rope_theta") or getattr(config, "rope_theta", 10000.0))
    kind = params.get("rope_type") or params.get("type") or "default"
    if kind == "default":
        return theta, None
    if kind != "llama3":
        raise ValueError(f"no GGUF writer for rope_type {kind!r} (have: default, llama3)")
    # llama.cpp's convert_hf_to_gguf.py LlamaModel: the divisor of each frequency under llama3 scaling
    factor, low, high = float(params["factor"]), float(params["low_freq_factor"]), float(params["high_freq_factor"])
    original = float(params["original_max_position_embeddings"])
    freqs = 1.0 / (theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    wavelen = 2 * np.pi / freqs
    smooth = (original / wavelen - low) / (high - low)
    divisors = np.where(wavelen < original / high, 1.0, np.where(wavelen > original / low, factor, 0.0))
    between = (wavelen >= original / high) & (wavelen <= original / low)
    divisors = np.where(between, 1.0 / ((1 - smooth) / factor + smooth), divisors)
    return theta, divisors.astype(np.float32)


def _add_vocabulary(writer, config, vocab: int) -> None:
    """A MADE byte-level BPE vocabulary of the model's size: GPT-2's 256 byte symbols, one merge (so both
    readers accept the list: OpenVINO's converter needs merges, llama.cpp a newline token), then '<tok_N>'
    fillers and bos/eos/unk control tokens (eos spelled "<|endoftext|>", a name llama.cpp knows as an end of
    generation). Engines are fed ids; the list only satisfies the readers."""
    if vocab < len(BYTES) + 4:
        raise ValueError(f"a vocabulary of {vocab} is too small for a made byte-level vocabulary")
    tokens = list(BYTES) + ["\u0120t"] + [f"<tok_{i}>" for i in range(len(BYTES) + 1, vocab)]
    bos = _token_id(config, "bos_token_id", vocab - 3, vocab)
    eos = _token_id(config, "eos_token_id", vocab - 2, vocab)
    unk = vocab - 1 if vocab - 1 not in (bos, eos) else vocab - 4
    normal, unknown, control = 1, 2, 3  # llama.cpp's token types
    types = [normal] * vocab
    for index, name, kind in ((bos, "<|bos|>", control), (eos, "<|endoftext|>", control), (unk, "<|unk|>", unknown)):
        tokens[index], types[index] = name, kind
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(["\u0120 t"])
    writer.add_bos_token_id(bos)
    writer.add_eos_token_id(eos)
    writer.add_unk_token_id(unk)


def _token_id(config, field: str, default: int, vocab: int) -> int:
    """The config's special token id when it lies past the made byte symbols, else `default`."""
    value = getattr(config, field, None)
    value = value[0] if isinstance(value, list) and value else value
    return int(value) if isinstance(value, int) and len(BYTES) < value < vocab - 1 else default


def _byte_symbols() -> tuple[str, ...]:
    """GPT-2's printable stand-in for each byte (its bytes_to_unicode), in byte order."""
    printable = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    extra = iter(range(256, 512))
    return tuple(chr(b) if b in printable else chr(next(extra)) for b in range(256))


BYTES = _byte_symbols()


def _tensors(module, arch: str, heads: int, kv_heads: int) -> list[tuple[str, Any]]:
    """(GGUF name, FP32 numpy array) for every weight, in llama.cpp's names and layouts."""
    import torch

    state = {k: v.detach().to(torch.float32).numpy() for k, v in module.state_dict().items()}
    names = {
        "self_attn.q_proj": "attn_q",
        "self_attn.k_proj": "attn_k",
        "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output",
        "mlp.gate_proj": "ffn_gate",
        "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down",
        "input_layernorm": "attn_norm",
        "post_attention_layernorm": "ffn_norm",
    }
    out = [
        ("token_embd.weight", state["model.embed_tokens.weight"]),
        ("output_norm.weight", state["model.norm.weight"]),
    ]
    tied = bool(getattr(module.config, "tie_word_embeddings", False))
    if not tied:  # a tied head is read from token_embd, as llama.cpp's files leave it
        out.append(("output.weight", state["lm_head.weight"]))
    layers = int(module.config.get_text_config().num_hidden_layers)
    for layer in range(layers):
        for hf, short in names.items():
            for suffix in ("weight", "bias"):
                array = state.get(f"model.layers.{layer}.{hf}.{suffix}")
                if array is None:
                    continue
                if arch == "llama" and short in ("attn_q", "attn_k"):
                    array = _permute(array, heads if short == "attn_q" else kv_heads)
                out.append((f"blk.{layer}.{short}.{suffix}", array))
    return out


def _permute(weights, heads: int):
    """llama.cpp's LlamaModel.permute: each head's rotary halves interleaved into adjacent pairs."""
    return (
        weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def _gguf_version() -> str:
    from importlib.metadata import version

    return version("gguf")


GGUF_CACHE = "gguf"  # the folder, beside each engine's own cache, where engines that read GGUF share files


def cached_gguf(module, digest: str, cache_parent: Path, tensor_type: str):
    """The cached folder holding `module` written at `tensor_type` as FILE (a CachedFolder: path, meta, hit), keyed
    by the weights' digest, the gguf package's version, the type and this file."""
    from core.common.artifact_cache import cached_folder, code_digest

    payload = {"weights": digest, "format": "gguf", "gguf": _gguf_version(), "type": tensor_type}
    payload["code"] = code_digest(Path(__file__))
    return cached_folder(cache_parent, payload, lambda work: write_gguf(module, work / FILE, tensor_type))
