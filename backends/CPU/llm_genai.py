"""onnxruntime-genai as an LLM engine on the CPU: the run's weights converted by its model builder, at FP32 or
with its weight-only INT8/INT4 recipes (MatMulNBits, blocks of 32, symmetric; on the CPU the builder's default
accuracy level 4 quantizes the activations to INT8 inside those MatMuls, so the labels say so), one
og.Generator per request.

The builder reads a Hugging Face folder with a tokenizer, so the module is saved with `save_pretrained` beside
a small BPE tokenizer (token ids are all the engine is given; the tokenizer only satisfies the builder). The
converted folder is cached like every artifact, keyed by the weights' digest, the builder's version and this
file. A request's generator holds its own KV cache; decode steps run request by request (no batching across
requests), and the logits the gate judges come from the same model file through the same generator.
--profile switches on onnxruntime's session profiling in a second load of the model (GenaiEngine.profile).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

from core.common.errors import UserError
from core.model.llm import kv_geometry
from core.model.llm_rounding import WeightRounding

NAME = "onnxruntime-genai"
# Label -> the weights' rounding. The builder quantizes every MatMul (LM head included) and keeps the embedding's
# Gather table in FP32; a block of 32 weights shares one FP32 scale (+1 bit a weight).
RECIPES = {
    "INT4 weights, INT8 activations": WeightRounding("INT4", 5.0, block=32),
    "INT8 weights, INT8 activations": WeightRounding("INT8", 9.0, block=32),
    "FP32": WeightRounding("FP32", 32),
}
_BUILDER = {"FP32": "fp32", "INT8": "int8", "INT4": "int4"}


def missing() -> str | None:
    """Why the engine cannot run here, or None."""
    import importlib.util

    if importlib.util.find_spec("onnxruntime_genai") is None:
        return "onnxruntime-genai is not installed (pip install onnxruntime-genai)"
    return None


def convert(module, digest: str, cache_parent: Path, precision: str):
    """The cached ONNX folder of `module`'s FP32 weights converted at `precision` (a CachedFolder: path, meta,
    hit)."""
    import onnxruntime_genai as og

    from core.common.artifact_cache import cached_folder, code_digest

    def build(work: Path) -> dict:
        with tempfile.TemporaryDirectory(prefix="hf-", dir=work.parent) as scratch:
            folder = Path(scratch) / "hf"
            with _quiet_progress():
                module.save_pretrained(folder)
            _tokenizer(int(module.config.vocab_size)).save_pretrained(folder)
            command = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(folder), "-o", str(work)]
            command += ["-p", builder, "-e", "cpu", "-c", str(Path(scratch) / "cache")]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
                raise UserError(f"onnxruntime-genai's model builder failed: {tail[0][:200]}", field="engine")
        return {"engine": NAME, "precision": precision, "builder": og.__version__}

    builder = _BUILDER[RECIPES[precision].name]
    payload = {"weights": digest, "engine": NAME, "version": og.__version__, "precision": precision}
    payload["code"] = code_digest(Path(__file__))
    return cached_folder(cache_parent, payload, build)


def _tokenizer(vocab: int):
    """A small byte-level BPE (the builder wants a tokenizer; ids are what the engine is fed)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=min(vocab, 300), special_tokens=["<unk>", "<s>", "</s>"], show_progress=False
    )
    tokenizer.train_from_iterator(["a synthetic model has no text of its own"], trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def load(folder: Path, config) -> GenaiModel:
    return GenaiModel(folder, config)


class GenaiModel:
    """A converted folder loaded once; `engine(slots, max_len)` makes the server's engines over it."""

    batched_decode = False  # a generator a request: decode steps run one request after another
    kv_width = 4  # its CPU KV cache is FP32 whatever the weights

    def __init__(self, folder: Path, config):
        import onnxruntime_genai as og

        self.folder = folder
        self.config = config
        self.model = og.Model(str(folder))

    def engine(self, slots: int, max_len: int) -> GenaiEngine:
        return GenaiEngine(self, slots, max_len)

    def profiling_engine(self, slots: int, max_len: int) -> GenaiEngine:
        """An engine that keeps each slot's tokens, so its `profile` can replay them into a profiled model."""
        return GenaiEngine(self, slots, max_len, keep_tokens=True)


class GenaiEngine:
    """The server's LlmEngine: greedy tokens by argmax of the logits each request's generator returns."""

    def __init__(self, loaded: GenaiModel, slots: int, max_len: int, keep_tokens: bool = False):
        import numpy as np
        import onnxruntime_genai as og

        self._og, self._np = og, np
        self.loaded = loaded
        self.model = loaded.model
        self.slots = slots
        self.max_len = max_len
        self.generators: list = [None] * slots
        self.tokens: list[list[int]] | None = [[] for _ in range(slots)] if keep_tokens else None  # per slot
        layers, kv_heads, head_dim = kv_geometry(loaded.config)
        self.cache_bytes = slots * 2 * layers * kv_heads * head_dim * max_len * 4  # FP32, allocated per request

    def _generator(self, max_len: int):
        params = self._og.GeneratorParams(self.model)
        params.set_search_options(max_length=max_len, do_sample=False)
        return self._og.Generator(self.model, params)

    def _append(self, generator, ids: Sequence[int], slot: int | None = None):
        generator.append_tokens(self._np.asarray(list(ids), dtype=self._np.int32))
        if self.tokens is not None and slot is not None:
            self.tokens[slot].extend(ids)
        return generator.get_output("logits")  # [1, tokens appended, vocab]

    def prefill(self, slot: int, ids: Sequence[int]) -> int:
        if len(ids) + 1 > self.max_len:
            raise ValueError(f"a prompt of {len(ids)} tokens does not fit the cache's {self.max_len} positions")
        self.release(slot)
        self.generators[slot] = self._generator(self.max_len)
        return int(self._append(self.generators[slot], ids, slot)[0, -1].argmax())

    def decode(self, slots: Sequence[int], tokens: Sequence[int]) -> list[int]:
        return [int(self._append(self.generators[s], [t], s)[0, -1].argmax()) for s, t in zip(slots, tokens)]

    def release(self, slot: int) -> None:
        self.generators[slot] = None
        if self.tokens is not None:
            self.tokens[slot] = []

    def logits(self, ids: Sequence[int]):
        """Teacher-forced logits [len(ids), vocab] in FP32 from the same model file."""
        import torch

        out = self._append(self._generator(len(ids) + 1), ids)
        return torch.from_numpy(self._np.array(out[0], dtype=self._np.float32))

    def profile(self, label: str, call, calls: int, folder: Path):
        """`call` (a prefill or a decode step on this engine) `calls` times after a warm-up, under onnxruntime's
        session profiling: a RawProfile of the node kernel times (this engine must come from profiling_engine).

        onnxruntime-genai has no call that ends a profile: the trace is written when the session goes. So the
        phase runs on a second load of the model with profiling on in its session options, each live slot's
        tokens replayed into it first (one run each), and the slots are released after. The trace's runs are
        then the replays, the warm-up and the calls, the same number each: the last calls' runs are kept."""
        import gc
        import json
        import time

        from backends.CPU.onnxruntime_engine import kernel_events, op_events, trace_events
        from core.measure.operators import RawProfile

        og = self._og
        folder.mkdir(parents=True, exist_ok=True)
        prefix = folder / f"{label}_onnxruntime"
        config = og.Config(str(self.loaded.folder))
        profiling = {"model": {"decoder": {"session_options": {"enable_profiling": str(prefix)}}}}
        config.overlay(json.dumps(profiling))
        served, self.model = self.model, og.Model(config)
        live = {slot: list(tokens) for slot, tokens in enumerate(self.tokens) if tokens}
        wall = 0.0
        try:
            for slot, tokens in live.items():
                self.generators[slot] = self._generator(self.max_len)
                self._append(self.generators[slot], tokens)
            call()  # warm-up outside the profile
            for _ in range(calls):
                started = time.perf_counter()
                call()
                wall += time.perf_counter() - started
        finally:
            for slot in range(self.slots):
                self.release(slot)
            self.model = served
            gc.collect()  # the profiled model's last reference: its session ends and writes the trace
        traces = sorted(folder.glob(f"{prefix.name}*.json"), key=lambda path: path.stat().st_mtime)
        if not traces:
            raise RuntimeError(f"onnxruntime wrote no profile under {prefix}")
        events = trace_events(traces[-1])
        runs = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: float(e["ts"]))
        per_call, left = divmod(len(runs) - len(live), calls + 1)
        if left or per_call < 1:
            raise RuntimeError(
                f"onnxruntime's trace holds {len(runs)} runs, not {len(live)} replays and {calls + 1} equal calls"
            )
        kept = runs[len(runs) - calls * per_call :]
        start, end = float(kept[0]["ts"]), float(kept[-1]["ts"]) + float(kept[-1]["dur"])
        kernels = [kernel for kernel in kernel_events(events) if start <= float(kernel[2]["ts"]) <= end]
        return RawProfile(
            label,
            "onnxruntime session profiling (enable_profiling in genai_config's session options)",
            calls,
            wall,
            op_events(kernels),
            traces[-1],
            note="the phase ran on a second load of the model, profiling on; its trace holds every run",
        )


@contextmanager
def _quiet_progress():
    """transformers' progress bars off (save_pretrained's "Writing model shards" would cut into our console)."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()
