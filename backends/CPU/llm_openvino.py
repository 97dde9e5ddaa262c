"""OpenVINO as an LLM engine on the CPU: the run's weights written to GGUF (core/model/llm_gguf.py), read by
openvino-genai's own GGUF reader (`LLMPipeline(model.gguf, enable_save_ov_model=True)` saves the stateful IR
it builds: input_ids/attention_mask/position_ids/beam_idx in, logits out, the KV cache as model state), then run
through OpenVINO's runtime with one InferRequest a request, each holding its own KV state.

Two fixes are applied to the saved IR, whatever the precision: the reader computes rope frequencies from the
base alone (no llama3 scaling) and the saver compresses them to FP16, so the rope constant is replaced by the
module's own inverse frequencies in FP32. The reader rejects F32 matrices (make_weights_subgraph takes F16,
Q8_0, Q4_0, Q4_1, Q4_K, Q6_K), so FP32 is read from an F16 file and its FP16 weight constants are then replaced
by the module's FP32 weights (the graph is the reader's; no weight passes through FP16).

The IR is what runs and what the gate judges: at load time only a slice is added before the LM head, driven by
an extra input, so serving computes the last position's logits and `logits()` every position's, through the
same compiled model. Q8_0/Q4_0 weights run with the CPU plugin's dynamic quantization of activations
(DYNAMIC_QUANTIZATION_GROUP_SIZE 32, its default: INT8 activations in groups of 32), hence the labels.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from core.model.llm import kv_geometry
from core.model.llm_rounding import WeightRounding

NAME = "openvino"
Q4_0 = WeightRounding("Q4_0", 4.5, 32, gguf_type="Q4_0", embeddings=True)
Q8_0 = WeightRounding("Q8_0", 8.5, 32, gguf_type="Q8_0", embeddings=True)
# Label -> the weights' rounding, as the file stores it (every matrix, token embedding and LM head included, in
# GGUF blocks of 32 with one FP16 scale; norms FP32), likely-fastest first. INT8 activations: the CPU plugin's
# dynamic quantization (its default for compressed weights) is left on; FP32 activations: turned off.
RECIPES = {
    "Q4_0 weights, INT8 activations": Q4_0,
    "Q8_0 weights, INT8 activations": Q8_0,
    "Q4_0 weights, FP32 activations": Q4_0,
    "Q8_0 weights, FP32 activations": Q8_0,
    "FP32": WeightRounding("FP32", 32),
}
# Label -> (GGUF tensor type read, DYNAMIC_QUANTIZATION_GROUP_SIZE: activations quantized in groups of it, 0: not)
_SETTINGS = {
    "Q4_0 weights, INT8 activations": ("Q4_0", 32),
    "Q8_0 weights, INT8 activations": ("Q8_0", 32),
    "Q4_0 weights, FP32 activations": ("Q4_0", 0),
    "Q8_0 weights, FP32 activations": ("Q8_0", 0),
    "FP32": ("F16", 0),
}
IR = "openvino_model.xml"
KEEP = "logits_to_keep"  # the input added at load: how many final positions get logits


def missing() -> str | None:
    """Why the engine cannot run here, or None."""
    import importlib.util

    for module, package in (("openvino", "openvino"), ("openvino_genai", "openvino-genai"), ("gguf", "gguf")):
        if importlib.util.find_spec(module) is None:
            return f"{package} is not installed (pip install {package})"
    return None


def convert(module, digest: str, cache_parent: Path, precision: str):
    """The cached IR folder of `module`'s FP32 weights at `precision` (a CachedFolder: path, meta, hit). The GGUF
    it is read from is cached beside, under <cache_parent>/../gguf, where the llama.cpp engine finds it too."""
    import openvino_genai

    from core.common.artifact_cache import cached_folder, code_digest
    from core.model.llm_gguf import FILE, GGUF_CACHE, cached_gguf

    tensor_type, group = _SETTINGS[precision]

    def build(work: Path) -> dict:
        source = cached_gguf(module, digest, Path(cache_parent).parent / GGUF_CACHE, tensor_type)
        with tempfile.TemporaryDirectory(prefix="gguf-", dir=work.parent) as scratch:
            linked = Path(scratch) / FILE
            linked.symlink_to(source.path / FILE)  # the reader saves its IR beside the path it is given
            openvino_genai.LLMPipeline(str(linked), "CPU", enable_save_ov_model=True, INFERENCE_NUM_THREADS=1)
            _fixed_ir(Path(scratch) / IR, module, exact=tensor_type == "F16", out=work / IR)
            for extra in Path(scratch).glob("openvino_*tokenizer.*"):  # LLMPipeline(folder) runs it too
                shutil.copy(extra, work / extra.name)
        return {
            "engine": NAME,
            "precision": precision,
            "activation_quantization_group": group,
            "Format": f"OpenVINO IR read by openvino-genai from GGUF {tensor_type}"
            + (" (weights replaced by the FP32 module's)" if tensor_type == "F16" else ""),
            "Vocabulary": source.meta.get("vocabulary"),
            "GGUF MB": round(source.meta["file_bytes"] / 2**20, 1),
            "openvino_genai": openvino_genai.__version__,
        }

    payload = {"weights": digest, "engine": NAME, "version": openvino_genai.__version__, "precision": precision}
    payload["code"] = code_digest(Path(__file__))
    return cached_folder(cache_parent, payload, build)


def _fixed_ir(path: Path, module, *, exact: bool, out: Path) -> None:
    """The reader's IR, saved to `out` uncompressed, with the module's FP32 rope frequencies, its FP32 vectors
    (norms, biases: the saver stored them in FP16) and, when `exact`, its FP32 matrices."""
    import numpy as np
    import openvino as ov
    import openvino.opset13 as ops

    rotary = module.model.rotary_emb
    if float(getattr(rotary, "attention_scaling", 1.0)) != 1.0:
        raise ValueError("rope scaling with an attention factor is not supported by the GGUF reader's graph")
    inv_freq = rotary.inv_freq.detach().float().numpy()
    state = {k: v.detach().float().numpy() for k, v in module.state_dict().items()}
    matrices = {_ir_name(k): v for k, v in state.items() if v.ndim == 2} if exact else {}
    if module.get_output_embeddings().weight is module.get_input_embeddings().weight:
        matrices.pop("lm_head.weight", None)  # a tied head is the embedding's node in the reader's graph
    vectors: dict[bytes, list] = {}  # FP16 bytes -> the FP32 vectors that round to them
    for value in state.values():
        if value.ndim == 1:
            vectors.setdefault(value.astype(np.float16).tobytes(), []).append(value)
    model = ov.Core().read_model(path)
    ropes = 0
    for node in model.get_ops():
        if node.get_type_name() != "Constant" or node.get_element_type() not in (ov.Type.f16, ov.Type.f32):
            continue
        compressed = _only_convert(node) if node.get_element_type() == ov.Type.f16 else None
        target, shape, name = compressed or node, list(node.get_output_shape(0)), node.get_friendly_name()
        data = np.asarray(node.get_data()).reshape(-1)
        if shape == [1, inv_freq.size, 1] and _geometric(data):
            ropes += 1
            _replace(target, ops.constant(inv_freq.reshape(shape)), name)
        elif compressed is None:
            continue
        elif name in matrices:
            _replace(compressed, ops.constant(matrices.pop(name)), name)
        elif len(same := vectors.get(data.tobytes(), [])) and all(np.array_equal(same[0], v) for v in same):
            _replace(compressed, ops.constant(same[0].reshape(shape)), name)
    if ropes != 1 or matrices:
        raise ValueError(
            f"the GGUF reader's IR is not the graph expected (rope constants {ropes}, {sorted(matrices)[:3]})"
        )
    ov.save_model(model, out, compress_to_fp16=False)


def _ir_name(key: str) -> str:
    """A state-dict key as the reader names its constant: model.layers.0.x -> model.layers[0].x."""
    parts = key.split(".")
    if len(parts) > 2 and parts[1] == "layers":
        return f"model.layers[{parts[2]}]." + ".".join(parts[3:])
    return key


def _only_convert(node):
    targets = list(node.output(0).get_target_inputs())
    if len(targets) == 1 and targets[0].get_node().get_type_name() == "Convert":
        return targets[0].get_node()
    return None


def _geometric(values) -> bool:
    """1, r, r^2, ...: the reader's rope constant, 1 / base^(2i/d) (FP16 where the saver compressed it)."""
    import numpy as np

    values = values.astype(np.float64)
    expected = values[1] ** np.arange(values.size)  # FP16 keeps 3 digits, subnormals below 6e-5 fewer
    return values[0] == 1.0 and np.allclose(values, expected, rtol=2e-3, atol=1e-7)


def _replace(old, new, name: str) -> None:
    new.set_friendly_name(name)
    old.output(0).replace(new.output(0))


def load(folder: Path, config) -> OpenVinoModel:
    return OpenVinoModel(folder, config)


class OpenVinoModel:
    """A converted folder compiled once; `engine(slots, max_len)` makes the server's engines over it."""

    batched_decode = False  # an InferRequest (its own KV state) a request: decode steps run one after another
    kv_width = 4  # the KV cache is asked for in FP32

    def __init__(self, folder: Path, config, threads: int | None = None):
        import openvino as ov
        import torch

        meta = json.loads((folder / "compile.json").read_text(encoding="utf-8"))
        self.precision = meta["precision"]
        self.config = config
        settings = {
            "INFERENCE_PRECISION_HINT": "f32",  # else AVX-512 BF16 hosts run BF16 silently
            "KV_CACHE_PRECISION": "f32",
            "DYNAMIC_QUANTIZATION_GROUP_SIZE": int(meta["activation_quantization_group"]),
            "INFERENCE_NUM_THREADS": int(threads or torch.get_num_threads()),  # the run's intra_op_threads
            "NUM_STREAMS": 1,
        }
        core = ov.Core()
        self.model = _sliced(core.read_model(folder / IR))
        self.compiled = core.compile_model(self.model, "CPU", settings)
        self.settings = {k: _text(self.compiled.get_property(k)) for k in settings}  # what the plugin took
        self._asked = settings

    def engine(self, slots: int, max_len: int) -> OpenVinoEngine:
        return OpenVinoEngine(self, slots, max_len)

    def profiling_engine(self, slots: int, max_len: int) -> OpenVinoEngine:
        """An engine over a second compile of the same model and settings with OpenVINO's performance counters
        on (PERF_COUNT); its `profile` gathers them."""
        import openvino as ov

        compiled = ov.Core().compile_model(self.model, "CPU", {**self._asked, "PERF_COUNT": True})
        return OpenVinoEngine(self, slots, max_len, compiled)


def _text(value) -> str:
    return value.to_string() if hasattr(value, "to_string") else str(value)  # an element type as "f32"


def _sliced(model):
    """`model` with a `logits_to_keep` input: the LM head runs on that many final positions only."""
    import numpy as np
    import openvino as ov
    import openvino.opset13 as ops

    head = model.output("logits").get_node().input_value(0).get_node()  # Result <- the LM head's MatMul
    keep = ops.parameter([1], ov.Type.i64, name=KEEP)
    keep.output(0).set_names({KEEP})
    hidden = head.input_value(0)
    last = ops.slice(hidden, ops.negative(keep), np.array([np.iinfo(np.int64).max]), np.array([1]), np.array([1]))
    head.input(0).replace_source_output(last.output(0))
    model.add_parameters([keep])
    model.validate_nodes_and_infer_types()
    return model


class OpenVinoEngine:
    """The server's LlmEngine: greedy tokens by argmax of the logits each request's InferRequest returns."""

    def __init__(self, loaded: OpenVinoModel, slots: int, max_len: int, compiled=None):
        import numpy as np

        self._np = np
        self.compiled = compiled or loaded.compiled
        self.ran: list | None = None  # while profiling: the infer requests the current call ran
        # id(request) -> infers run, on a profiling engine: the performance counters' totals need it
        self.infers: dict[int, int] | None = {} if compiled is not None else None
        self.slots = slots
        self.max_len = max_len
        self.requests = [self.compiled.create_infer_request() for _ in range(slots)]
        self.lengths = [0] * slots
        layers, kv_heads, head_dim = kv_geometry(loaded.config)
        self.cache_bytes = slots * 2 * layers * kv_heads * head_dim * max_len * loaded.kv_width

    def _run(self, request, start: int, ids: Sequence[int], keep: int):
        np = self._np
        count = len(ids)
        feeds = {
            "input_ids": np.asarray([list(ids)], dtype=np.int64),
            "attention_mask": np.ones((1, start + count), dtype=np.int64),
            "position_ids": np.arange(start, start + count, dtype=np.int64)[None],
            "beam_idx": np.zeros(1, dtype=np.int32),
            KEEP: np.asarray([keep], dtype=np.int64),
        }
        if self.ran is not None:
            self.ran.append(request)
        if self.infers is not None:
            self.infers[id(request)] = self.infers.get(id(request), 0) + 1
        return request.infer(feeds)["logits"][0]  # [keep, vocab]

    def prefill(self, slot: int, ids: Sequence[int]) -> int:
        if len(ids) + 1 > self.max_len:
            raise ValueError(f"a prompt of {len(ids)} tokens does not fit the cache's {self.max_len} positions")
        request = self.requests[slot]
        request.reset_state()
        self.lengths[slot] = len(ids)
        return int(self._run(request, 0, ids, 1)[-1].argmax())

    def decode(self, slots: Sequence[int], tokens: Sequence[int]) -> list[int]:
        out = []
        for slot, token in zip(slots, tokens):
            out.append(int(self._run(self.requests[slot], self.lengths[slot], [token], 1)[-1].argmax()))
            self.lengths[slot] += 1
        return out

    def release(self, slot: int) -> None:
        self.requests[slot].reset_state()
        self.lengths[slot] = 0

    def logits(self, ids: Sequence[int]):
        """Teacher-forced logits [len(ids), vocab] in FP32 from the same compiled model, on a request of its own."""
        import torch

        request = self.compiled.create_infer_request()
        out = self._run(request, 0, ids, len(ids))
        return torch.from_numpy(self._np.array(out, dtype=self._np.float32))

    def profile(self, label: str, call, calls: int, folder: Path):
        """`call` (a prefill or a decode step on this engine) `calls` times after a warm-up, with the performance
        counters of every infer request it ran: a RawProfile (this engine must come from profiling_engine)."""
        import time

        from backends.CPU.openvino_engine import PerfCounters

        folder.mkdir(parents=True, exist_ok=True)
        call()  # warm-up outside the profile
        counters = PerfCounters()
        for request in self.requests:  # once: `add` marks anew each request a call ran, the others stand still
            counters.mark(request, self.infers.get(id(request), 0))
        for index in range(calls):
            self.ran = []
            started = time.perf_counter()
            call()
            counters.wall += time.perf_counter() - started
            offset = counters.wall * 1e6
            for request in dict.fromkeys(self.ran):  # each request once: its delta holds all its infers
                offset = counters.add(request, self.infers[id(request)], index, offset)
        self.ran = None
        return counters.raw(label, calls, folder / f"{label}_perf_counters.json")
