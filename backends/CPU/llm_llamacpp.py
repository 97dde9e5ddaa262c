"""llama.cpp (through llama-cpp-python's bindings of llama.h) as an LLM engine on the CPU.

The run's weights are written to one GGUF file by core.model.llm_gguf (Q4_0, Q8_0 or F32 matrices, norms in
F32; a made vocabulary, since engines are fed token ids), cached like every artifact. One llama.cpp context
serves all slots: its KV cache holds one sequence per slot (a stream each, not unified), and a decode step is
one llama_decode over every slot's token, so decode is batched across requests.

What ggml's CPU kernels do with activations: a Q4_0 or Q8_0 matrix is multiplied by activations quantized to
Q8_0 (INT8 in blocks of 32, a scale each), hence "INT8 activations" in those labels; F32 weights multiply F32
activations. The quantized recipes keep llama.cpp's defaults (F16 KV cache, flash attention where it decides
to, which rounds attention through F16); FP32 asks for an F32 cache and no flash attention, so FP32 stays FP32
throughout (logits within 1e-5 of the module's std, against 2e-3 with flash attention). The gate's logits
come from the same GGUF through a second context that keeps an output for every position (what
`Llama(logits_all=True)` does). --profile times each ggml node through the scheduler's eval callback
(`_NodeTimer`), on an engine of its own.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from pathlib import Path

from core.model.llm import kv_geometry
from core.model.llm_rounding import WeightRounding

NAME = "llama.cpp"
# llama.cpp's CPU dot products quantize activations to Q8_0 for Q4_0 and Q8_0 weights; likely-fastest first.
RECIPES: dict[str, WeightRounding] = {
    "Q4_0 weights, INT8 activations": WeightRounding("Q4_0", 4.5, 32, gguf_type="Q4_0", embeddings=True),
    "Q8_0 weights, INT8 activations": WeightRounding("Q8_0", 8.5, 32, gguf_type="Q8_0", embeddings=True),
    "FP32": WeightRounding("FP32", 32, gguf_type="F32", embeddings=True),
}
BUILD_MINUTES = 9  # llama-cpp-python 0.3.36 built from source: 9.4 min wall, 533 s CPU on 2 shared cores


def missing() -> str | None:
    """Why the engine cannot run here, or None."""
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        return (
            "llama-cpp-python is not installed (pip install -e .[llamacpp], or pip install llama-cpp-python: "
            f"a source build of ~{BUILD_MINUTES} min on 2 cores)"
        )
    return None


def _recipe(precision: str) -> WeightRounding:
    if precision not in RECIPES:
        raise ValueError(f"llama.cpp has no recipe {precision!r} (have: {', '.join(RECIPES)})")
    return RECIPES[precision]


def convert(module, digest: str, cache_parent: Path, precision: str):
    """The cached folder holding `module`'s weights as a GGUF file at `precision` (a CachedFolder). The file is
    llama.cpp's own format, nothing engine-specific is built, so it is the GGUF cache shared with OpenVINO's
    reader (<cache_parent>/../gguf), keyed by the weights, the type and the writer, not llama.cpp's version."""
    from core.model.llm_gguf import GGUF_CACHE, cached_gguf

    tensor_type = _recipe(precision).gguf_type
    return cached_gguf(module, digest, Path(cache_parent).parent / GGUF_CACHE, tensor_type)


def load(folder: Path, config) -> LlamaCppModel:
    return LlamaCppModel(folder, config)


_LOG_CALLBACK = []  # the ctypes callback llama.cpp holds, kept alive here


def _route_logs(llama_cpp) -> None:
    """llama.cpp's own log (load and context messages it prints to stderr by default, cutting into our console)
    into ours: its errors as errors, the rest at debug level (--debug shows them)."""
    if _LOG_CALLBACK:
        return
    import ctypes
    import logging

    log = logging.getLogger(__name__)

    @llama_cpp.llama_log_callback
    def callback(level, text, user_data):
        # ggml's levels: 1 debug, 2 info, 3 warn, 4 error, 5 continued (llama-cpp-python's comment is older)
        log.log(logging.ERROR if level == 4 else logging.DEBUG, "%s", text.decode("utf-8", "replace").rstrip())

    _LOG_CALLBACK.append(callback)
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))


def system_info() -> str:
    """The CPU features ggml was built with and uses (llama_print_system_info)."""
    import llama_cpp

    return llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()


class LlamaCppModel:
    """A GGUF file loaded once (memory-mapped); `engine(slots, max_len)` makes the server's engines over it."""

    batched_decode = True  # one llama_decode a step over every slot's sequence

    def __init__(self, folder: Path, config, threads: int | None = None):
        import json

        import llama_cpp
        import torch

        from core.common.artifact_cache import META
        from core.model.llm_gguf import FILE

        _route_logs(llama_cpp)
        llama_cpp.llama_backend_init()
        self._llama = llama_cpp
        self.config = config
        self.tensor_type = json.loads((folder / META).read_text(encoding="utf-8"))["tensor_type"]
        self.threads = int(threads or torch.get_num_threads())  # the run's threads
        path = folder / FILE
        self.handle = llama_cpp.llama_model_load_from_file(str(path).encode(), llama_cpp.llama_model_default_params())
        if not self.handle:
            raise RuntimeError(f"llama.cpp could not load {path}")
        weakref.finalize(self, llama_cpp.llama_model_free, self.handle)
        self.vocab = int(llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(self.handle)))
        layers, kv_heads, head_dim = kv_geometry(config)
        kv_bytes = 4 if self.tensor_type == "F32" else 2
        self.kv_bytes_per_position = 2 * layers * kv_heads * head_dim * kv_bytes

    def engine(self, slots: int, max_len: int) -> LlamaCppEngine:
        return LlamaCppEngine(self, slots, max_len)

    def profiling_engine(self, slots: int, max_len: int) -> LlamaCppEngine:
        """An engine whose serving context times each ggml node it runs (`_NodeTimer`); its `profile` gathers
        them. The serving engines have no callback: their graphs run whole."""
        return LlamaCppEngine(self, slots, max_len, _NodeTimer())


# ggml ops that compute nothing (a view of another tensor's data): no node time of their own.
_NO_COMPUTE = {b"NONE", b"VIEW", b"RESHAPE", b"PERMUTE", b"TRANSPOSE"}


class _NodeTimer:
    """ggml's scheduler eval callback (the hook llama.cpp's eval-callback tool uses) as a per-node timer. Before
    a graph runs, the scheduler asks about each node; a node we want ends a piece, the scheduler runs that piece
    (on all threads, as the whole graph would) and calls back, so the time from the ask to the call back is that
    node's (plus the views before it, which compute nothing). The time between pieces (the scheduler's call,
    ours) lands outside operators. ggml_op_desc and ggml_get_name read the tensor, so no struct layout is
    assumed. While not profiling the timer wants no node and the graph runs whole."""

    def __init__(self):
        import ctypes
        import time

        import llama_cpp
        from llama_cpp._ggml import libggml

        for function in (libggml.ggml_op_desc, libggml.ggml_get_name):
            function.argtypes, function.restype = [ctypes.c_void_p], ctypes.c_char_p
        op_of, name_of, clock = libggml.ggml_op_desc, libggml.ggml_get_name, time.perf_counter_ns
        self.events: dict | None = None  # (node name, op) -> OpEvent while profiling
        self.trace: list[dict] = []
        self.call = 0
        self.origin = self.asked = 0

        @llama_cpp.ggml_backend_sched_eval_callback
        def callback(tensor, ask, user_data):
            if self.events is None:
                return False
            if ask:
                if op_of(tensor) in _NO_COMPUTE:
                    return False
                self.asked = clock()
                return True
            self._record(name_of(tensor).decode(), op_of(tensor).decode(), self.asked, clock())
            return True

        self.callback = callback  # llama.cpp holds a pointer to it: kept alive with the timer

    def _record(self, name: str, op: str, started_ns: int, ended_ns: int) -> None:
        from core.measure.operators import ATTENTION, OpEvent

        micros = (ended_ns - started_ns) / 1e3
        found = self.events.get((name, op))
        if found is None:
            # Without flash attention, QK^T and its product with V are plain MUL_MATs, named kq and kqv.
            kind = ATTENTION if op == "MUL_MAT" and name.startswith("kq") else None
            found = self.events[name, op] = OpEvent(name, op, 0.0, 0, kind=kind)
        found.microseconds += micros
        found.count += 1
        start = (started_ns - self.origin) / 1e3
        self.trace.append(
            {
                "name": name,
                "cat": op,
                "ph": "X",
                "ts": round(start, 1),
                "dur": round(micros, 1),
                "pid": 0,
                "tid": 0,
                "args": {"call": self.call},
            }
        )

    def profile(self, label: str, call, calls: int, path: Path):
        """`call` run `calls` times with every node timed: a RawProfile, its Chrome trace written to `path`."""
        import json
        import time

        from core.measure.operators import RawProfile

        self.events, self.trace, wall = {}, [], 0
        self.origin = time.perf_counter_ns()
        try:
            for self.call in range(calls):
                started = time.perf_counter_ns()
                call()
                wall += time.perf_counter_ns() - started
            events = list(self.events.values())
        finally:
            self.events = None
        path.write_text(json.dumps({"traceEvents": self.trace}), encoding="utf-8")
        return RawProfile(
            label,
            "ggml eval callback (each node run on its own and timed)",
            calls,
            wall / 1e9,
            events,
            path,
            note="a node's time runs from the scheduler's ask to its call back, so it holds the views before it",
        )


class _Context:
    """A llama context over `loaded` (`sequences` streams sharing `positions` cells) and a llama_batch of up to
    `batch` tokens, one sequence id each; both freed with this object."""

    def __init__(self, loaded: LlamaCppModel, positions: int, batch: int, sequences: int, timer=None):
        llama_cpp = loaded._llama
        self._llama, self.loaded, self.positions = llama_cpp, loaded, positions  # the model outlives its contexts
        params = llama_cpp.llama_context_default_params()
        params.n_ctx, params.n_batch, params.n_seq_max = positions, batch, sequences
        params.n_threads = params.n_threads_batch = loaded.threads
        params.kv_unified = False  # a stream per sequence: a slot's attention reads its own cells only
        if loaded.tensor_type == "F32":  # FP32 throughout: ggml's CPU flash attention rounds through F16
            params.type_k = params.type_v = llama_cpp.GGML_TYPE_F32
            params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        if timer is not None:
            params.cb_eval = timer.callback
        self.ctx = llama_cpp.llama_init_from_model(loaded.handle, params)
        if not self.ctx:
            raise RuntimeError(f"llama.cpp could not make a context of {positions} positions, {sequences} sequences")
        weakref.finalize(self, llama_cpp.llama_free, self.ctx)
        self.batch = llama_cpp.llama_batch_init(batch, 0, 1)
        weakref.finalize(self, llama_cpp.llama_batch_free, self.batch)
        self.memory = llama_cpp.llama_get_memory(self.ctx)

    def decode(self, tokens: Sequence[int], positions: Sequence[int], seqs: Sequence[int], outputs: Sequence[bool]):
        batch = self.batch
        for i, (token, pos, seq, out) in enumerate(zip(tokens, positions, seqs, outputs)):
            batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = token, pos, 1, out
            batch.seq_id[i][0] = seq
        batch.n_tokens = len(tokens)
        code = self._llama.llama_decode(self.ctx, batch)
        if code != 0:
            raise RuntimeError(f"llama_decode returned {code} for {len(tokens)} tokens")

    def rows(self, index: int, count: int):
        """`count` output rows of logits from output `index` on (a numpy view into llama.cpp's buffer)."""
        import numpy as np

        start = self._llama.llama_get_logits_ith(self.ctx, index)
        return np.ctypeslib.as_array(start, shape=(count, self.loaded.vocab))


class LlamaCppEngine:
    """The server's LlmEngine: greedy tokens by argmax of llama.cpp's logits, a sequence per slot."""

    def __init__(self, loaded: LlamaCppModel, slots: int, max_len: int, timer: _NodeTimer | None = None):
        llama_cpp = loaded._llama
        self.loaded, self.slots, self.max_len, self.timer = loaded, slots, max_len, timer
        self.main = _Context(loaded, slots * max_len, max(max_len, slots), slots, timer)
        per_slot = llama_cpp.llama_n_ctx_seq(self.main.ctx)
        if per_slot < max_len:
            raise RuntimeError(f"llama.cpp gave a slot {per_slot} positions, not {max_len}")
        self.cache_bytes = int(llama_cpp.llama_n_ctx(self.main.ctx)) * loaded.kv_bytes_per_position
        self._llama = llama_cpp
        self.lengths = [0] * slots
        self.scoring: _Context | None = None  # the logits path's own context, made on first use

    def prefill(self, slot: int, ids: Sequence[int]) -> int:
        if len(ids) + 1 > self.max_len:
            raise ValueError(f"a prompt of {len(ids)} tokens does not fit the cache's {self.max_len} positions")
        self.release(slot)
        n = len(ids)
        self.main.decode(ids, range(n), [slot] * n, [i == n - 1 for i in range(n)])
        self.lengths[slot] = n
        return int(self.main.rows(n - 1, 1)[0].argmax())

    def decode(self, slots: Sequence[int], tokens: Sequence[int]) -> list[int]:
        self.main.decode(tokens, [self.lengths[s] for s in slots], slots, [True] * len(slots))
        for slot in slots:
            self.lengths[slot] += 1
        return [int(row.argmax()) for row in self.main.rows(0, len(slots))]

    def release(self, slot: int) -> None:
        self._llama.llama_memory_seq_rm(self.main.memory, slot, -1, -1)
        self.lengths[slot] = 0

    def logits(self, ids: Sequence[int]):
        """Teacher-forced logits [len(ids), vocab] in FP32 from the same GGUF: one batch, an output a position
        (in a context of its own, so the slots' caches are untouched and any length fits)."""
        import torch

        n = len(ids)
        if self.scoring is None or self.scoring.positions < n:
            size = -(-n // 256) * 256  # grown in steps: a longer call rarely makes a new context
            self.scoring = _Context(self.loaded, size, size, 1)
        self._llama.llama_memory_clear(self.scoring.memory, True)
        self.scoring.decode(ids, range(n), [0] * n, [True] * n)
        return torch.from_numpy(self.scoring.rows(0, n).copy())

    def profile(self, label: str, call, calls: int, folder: Path):
        """`call` (a prefill or a decode step on this engine) `calls` times after a warm-up, every ggml node it
        runs timed: a RawProfile (this engine must come from profiling_engine)."""
        folder.mkdir(parents=True, exist_ok=True)
        call()  # warm-up outside the profile
        return self.timer.profile(label, call, calls, folder / f"{label}_ggml_nodes.json")
