"""LLM engines side by side at batch size 1: plain transformers `generate()` (what most users run) and
onnxruntime-genai as its users run it (where installed) against perfbench's engines as its LLM server runs
them: the static slot cache at FP32 and at BF16 where the CPU has it natively, and onnxruntime-genai through
our engine (engine auto picks the fastest of these its gate passes). Where installed, GGUF files of the same
weights (core.model.llm_gguf, a made vocabulary; --gguf-types) are run by llama.cpp as `llama-bench` measures
it (ppN/tgN), by OpenVINO GenAI's LLMPipeline as its users run a GGUF file, and by our llama.cpp engine.
Same synthetic weights, prompt, threads.

    python benchmarks/llm_peers.py                     # 2 of Llama-3.2-1B's 16 layers, 128 in, 32 out
    python benchmarks/llm_peers.py --layers 16 --repeats 5
    python benchmarks/llm_peers.py --model tiny        # seconds: checks the script itself

TTFT: from the call to the first new token. Decode tokens/s: the new tokens after the first over the time
they took (generate()'s stamped by a streamer). Contenders alternate round by round and
medians are compared, so a shared host's noise hits all alike. The host's ISA is printed first, the ratio of
our best to the best peer's, and to each peer at our best's weight type, last. Peers not installed are named.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MODELS = {"llama3.2-1b": "llama3.2-torch-bf16-1b", "tiny": "tiny-llama-torch-fp32"}
OPTIONAL = {"onnxruntime_genai": "onnxruntime-genai", "openvino_genai": "OpenVINO GenAI", "llama_cpp": "llama.cpp"}
# llama.cpp's users mostly run Q4_K_M or Q4_0 files (the gguf package writes Q4_0, not the K-quants), OpenVINO
# GenAI's GGUF guide prefers Q4_0/Q8_0: Q4_0 is their default here; then our contenders' weight types, BF16's
# nearest being F16 (GGUF's 16-bit type that the writer makes).
GGUF_TYPES = ("Q4_0", "Q8_0", "F32", "F16")
GGUF_OF = {"FP32": "F32", "BF16": "F16"}
# onnxruntime-genai's recipes run here (ours and as its users run them), each with the GGUF type it is held
# against: its INT4 is 4-bit in blocks of 32 with a scale each, like Q4_0.
GENAI_RECIPES = {"INT4 weights, INT8 activations": "Q4_0", "FP32": "F32"}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="llama3.2-1b", choices=sorted(MODELS))
    parser.add_argument("--layers", type=int, default=2, help="decoder layers built (default 2; shapes unchanged)")
    parser.add_argument("--input-tokens", type=int, default=128)
    parser.add_argument("--output-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="rounds; every contender runs once a round")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument(
        "--gguf-types",
        default=",".join(GGUF_TYPES),
        help="GGUF files the llama.cpp and OpenVINO GenAI peers read (default: %(default)s: Q4_0, what they "
        "are run at, and the types of our contenders' weights)",
    )
    return parser.parse_args(argv)


def generate_contender(model, prompt: list[int], new_tokens: int):
    """Plain generate(): greedy, its default (dynamic) cache; a streamer stamps each new token."""
    import torch
    from transformers.generation.streamers import BaseStreamer

    from backends.llm_transformers import plain_generate

    ids = torch.tensor([prompt])
    mask = torch.ones_like(ids)

    class Stamps(BaseStreamer):
        def __init__(self) -> None:
            self.times: list[float] = []
            self.calls = 0

        def put(self, value) -> None:
            self.calls += 1
            if self.calls > 1:  # the first call hands over the prompt
                self.times.append(time.perf_counter())

        def end(self) -> None:
            pass

    def run() -> tuple[float, float]:
        stamps = Stamps()
        started = time.perf_counter()
        with torch.inference_mode():
            plain_generate(model, ids, mask, new_tokens, stamps)
        return _figures(started, stamps.times)

    return run


def ours_contender(model, prompt: list[int], new_tokens: int):
    """perfbench's server engine for `model` (the slot engine, or a converted model's): one prefill, then one
    decode step a token."""
    from backends.llm_transformers import serving_engine

    engine = serving_engine(model, 1, len(prompt) + new_tokens)

    def run() -> tuple[float, float]:
        started = time.perf_counter()
        token = engine.prefill(0, prompt)
        times = [time.perf_counter()]
        for _ in range(new_tokens - 1):
            token = engine.decode([0], [token])[0]
            times.append(time.perf_counter())
        engine.release(0)
        return _figures(started, times)

    return run


def genai_contender(model, prompt: list[int], new_tokens: int):
    """onnxruntime-genai as its users run it (an og.Model): og.Generator, the prompt appended,
    generate_next_token() a token."""
    import numpy as np
    import onnxruntime_genai as og

    ids = np.asarray(prompt, dtype=np.int32)

    def run() -> tuple[float, float]:
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=len(prompt) + new_tokens, do_sample=False)
        started = time.perf_counter()
        generator = og.Generator(model, params)
        generator.append_tokens(ids)
        times = []
        while len(times) < new_tokens:
            generator.generate_next_token()
            times.append(time.perf_counter())
        return _figures(started, times)

    return run


def llama_bench_contender(loaded, prompt: list[int], new_tokens: int):
    """llama.cpp as `llama-bench` measures it (its test_prompt/test_gen, here through llama-cpp-python's bindings,
    which ship no llama-bench binary), with its defaults: n_batch 2048, n_ubatch 512, F16 KV cache, flash
    attention auto, the cache cleared before each test. ppN: the N prompt tokens in one batch; tgN: N tokens
    decoded one at a time from an empty cache, over their whole time. Returns (pp ms, tg tokens/s)."""
    import random

    import llama_cpp

    params = llama_cpp.llama_context_default_params()
    params.n_ctx, params.n_batch, params.n_ubatch = len(prompt) + new_tokens, 2048, 512
    params.n_threads = params.n_threads_batch = loaded.threads
    ctx = llama_cpp.llama_init_from_model(loaded.handle, params)
    memory = llama_cpp.llama_get_memory(ctx)
    tokens = (llama_cpp.llama_token * len(prompt))(*prompt)
    draws = random.Random(0)

    def decode(array, count: int) -> None:
        if llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(array, count)) != 0:
            raise RuntimeError("llama_decode failed")
        llama_cpp.llama_synchronize(ctx)

    def run() -> tuple[float, float]:
        llama_cpp.llama_memory_clear(memory, False)
        started = time.perf_counter()
        decode(tokens, len(prompt))
        prompt_s = time.perf_counter() - started
        llama_cpp.llama_memory_clear(memory, False)
        gen = [(llama_cpp.llama_token * 1)(draws.randrange(loaded.vocab)) for _ in range(new_tokens)]
        started = time.perf_counter()
        for one in gen:
            decode(one, 1)
        return prompt_s * 1e3, new_tokens / (time.perf_counter() - started)

    return run


def openvino_genai_contender(path: Path, prompt: list[int], new_tokens: int, threads: int):
    """OpenVINO GenAI as its users run a GGUF file: LLMPipeline(file, "CPU") with its defaults (its GGUF reader,
    the CPU plugin's own precision hints) but prefix caching off, and our thread count; generate() greedy with
    max_new_tokens, token ids in, a streamer stamping each new token."""
    import numpy as np
    import openvino as ov
    import openvino_genai as ov_genai

    scheduler = ov_genai.SchedulerConfig()
    scheduler.enable_prefix_caching = False  # a repeated prompt would be served from its cache (TTFT ~0)
    pipe = ov_genai.LLMPipeline(str(path), "CPU", scheduler_config=scheduler, INFERENCE_NUM_THREADS=threads)
    rounds = iter(range(1 << 30))
    config = pipe.get_generation_config()
    config.max_new_tokens = config.min_new_tokens = new_tokens
    config.ignore_eos, config.do_sample = True, False

    class Stamps(ov_genai.StreamerBase):
        def __init__(self) -> None:
            super().__init__()
            self.times: list[float] = []

        def write(self, token) -> ov_genai.StreamingStatus:
            now = time.perf_counter()
            self.times += [now] * (len(token) if isinstance(token, list) else 1)
            return ov_genai.StreamingStatus.RUNNING

        def end(self) -> None:
            pass

    def run() -> tuple[float, float]:
        shift = next(rounds) % len(prompt)  # and each call's prompt is another rotation: no prefix in common
        ids = np.asarray([prompt[shift:] + prompt[:shift]], dtype=np.int64)
        inputs = ov_genai.TokenizedInputs(ov.Tensor(ids), ov.Tensor(np.ones_like(ids)))
        stamps = Stamps()
        started = time.perf_counter()
        pipe.generate(inputs, config, stamps)
        return _figures(started, stamps.times)

    return run


def gguf_contenders(fp32, source, prompt: list[int], args, types: list[str]) -> tuple[dict, dict[str, str]]:
    """llama.cpp (ours through our engine, and as llama-bench measures it) and OpenVINO GenAI on GGUF files of
    the same weights at `types`; the contenders and each one's GGUF type. Peers not installed are skipped."""
    import torch

    from core.common.paths import state_dir

    contenders, weights = {}, {}
    threads = torch.get_num_threads()
    have_llama = importlib.util.find_spec("llama_cpp") is not None
    have_openvino = importlib.util.find_spec("openvino_genai") is not None
    if not (have_llama or have_openvino):
        return contenders, weights
    from backends.CPU import llm_llamacpp
    from core.model.llm_gguf import FILE, GGUF_CACHE, cached_gguf

    recipes = {r.gguf_type: label for label, r in llm_llamacpp.RECIPES.items()}
    for kind in types:
        print(f"GGUF {kind}: writing the weights (cached, shared with our engines)")
        folder = cached_gguf(fp32, source.digest, state_dir() / "compiled" / "llm" / GGUF_CACHE, kind).path
        if have_llama:
            loaded = llm_llamacpp.LlamaCppModel(folder, source.config, threads)
            if kind in recipes:
                name = f"perfbench llama.cpp {recipes[kind]}"
                contenders[name], weights[name] = ours_contender(loaded, prompt, args.output_tokens), kind
            name = f"llama.cpp llama-bench {kind}"
            contenders[name], weights[name] = llama_bench_contender(loaded, prompt, args.output_tokens), kind
        if have_openvino and kind == "Q4_0":  # our OpenVINO engine: the IR its GGUF reader makes of this file
            from backends.CPU import llm_openvino

            recipe = "Q4_0 weights, INT8 activations"
            ir = llm_openvino.convert(fp32, source.digest, state_dir() / "compiled" / "llm" / "openvino", recipe)
            name = f"perfbench openvino {recipe}"
            loaded_ir = llm_openvino.OpenVinoModel(ir.path, source.config, threads)
            contenders[name], weights[name] = ours_contender(loaded_ir, prompt, args.output_tokens), kind
        if have_openvino and kind != "F32":  # its GGUF reader takes F16, Q8_0, Q4_0, ..., not F32 matrices
            name = f"OpenVINO GenAI {kind} GGUF"
            contenders[name] = openvino_genai_contender(folder / FILE, prompt, args.output_tokens, threads)
            weights[name] = kind
    return contenders, weights


def _figures(started: float, times: list[float]) -> tuple[float, float]:
    """(TTFT ms, decode tokens/s) of one request from its start and each token's time."""
    return (times[0] - started) * 1e3, (len(times) - 1) / (times[-1] - times[0])


def main(argv=None) -> int:
    import torch

    from core.config.registry import load_task
    from core.measure.host import cpu_isa
    from core.measure.llm_serving import Prompts
    from core.model.llm import build_model, resolve_llm_source

    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    isa = cpu_isa()
    task = load_task(MODELS[args.model])
    layers = None if args.model == "tiny" else args.layers
    source = resolve_llm_source(task.model, task.model_file, layers=layers, seed=0, trust_remote_code=False)
    print(f"host ISA: {isa.summary()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    if importlib.util.find_spec("llama_cpp") is not None:
        from backends.CPU.llm_llamacpp import system_info

        print(f"llama.cpp: {system_info()}")
    print(
        f"model: {task.model.model_name} ({source.scaled or 'every layer'}), synthetic weights, batch size 1, "
        f"{args.input_tokens} in, {args.output_tokens} out"
    )
    fp32 = build_model(source, 0, "FP32")
    folders = {}
    if importlib.util.find_spec("onnxruntime_genai") is not None:  # converted first: its builder needs memory
        from backends.CPU.llm_genai import GenaiModel, convert
        from core.common.paths import state_dir

        for recipe in GENAI_RECIPES:
            print(f"onnxruntime-genai: converting the FP32 weights to {recipe} (cached)")
            parent = state_dir() / "compiled" / "llm" / "onnxruntime-genai"
            folders[recipe] = convert(fp32, source.digest, parent, recipe).path
    models = {"FP32": fp32}
    if isa.bf16:
        models["BF16"] = build_model(source, 0, "BF16")  # the same seeded values, rounded
    prompt = list(Prompts(int(source.config.vocab_size), args.input_tokens, seed=11).next())
    contenders = {}
    for precision, model in models.items():
        contenders[f"transformers generate() {precision}"] = generate_contender(model, prompt, args.output_tokens)
        contenders[f"perfbench transformers {precision}"] = ours_contender(model, prompt, args.output_tokens)
    weights = {name: GGUF_OF.get(name.rsplit(" ", 1)[-1]) for name in contenders}
    for recipe, folder in folders.items():
        loaded = GenaiModel(folder, source.config)  # one copy of the weights for both
        short = recipe.split(" ")[0]
        contenders[f"onnxruntime-genai {short}"] = genai_contender(loaded.model, prompt, args.output_tokens)
        contenders[f"perfbench onnxruntime-genai {recipe}"] = ours_contender(loaded, prompt, args.output_tokens)
        weights[f"onnxruntime-genai {short}"] = weights[f"perfbench onnxruntime-genai {recipe}"] = GENAI_RECIPES[recipe]
    more, more_weights = gguf_contenders(fp32, source, prompt, args, args.gguf_types.split(","))
    contenders.update(more)
    weights.update(more_weights)
    for contender in contenders.values():  # warm-up: first calls allocate and pick kernels
        contender()
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
    for _ in range(args.repeats):
        for name, contender in contenders.items():
            results[name].append(contender())
    width = max(map(len, results))
    print(f"\n{'contender':<{width}} {'TTFT ms':>10} {'decode tokens/s':>16}   (median of {args.repeats}, min-max)")
    medians = {}
    for name, runs in results.items():
        ttfts, rates = [r[0] for r in runs], [r[1] for r in runs]
        medians[name] = (statistics.median(ttfts), statistics.median(rates))
        print(
            f"{name:<{width}} {medians[name][0]:>10.1f} {medians[name][1]:>16.2f}   "
            f"({min(ttfts):.1f}-{max(ttfts):.1f} ms, {min(rates):.2f}-{max(rates):.2f})"
        )
    for module, label in OPTIONAL.items():
        if importlib.util.find_spec(module) is None:
            print(f"{label}: not installed, not measured")
    bench = [name for name in medians if name.startswith("llama.cpp llama-bench")]
    if bench:  # its rows above: TTFT = the ppN batch's time, decode = tgN
        n, m = args.input_tokens, args.output_tokens
        print(f"\n{'llama-bench (median)':<{width}} {f'pp{n} tokens/s':>16} {f'tg{m} tokens/s':>16}")
        for name in bench:
            print(f"{name:<{width}} {n / medians[name][0] * 1e3:>16.1f} {medians[name][1]:>16.2f}")
    ours = max((n for n in medians if n.startswith("perfbench")), key=lambda n: medians[n][1])
    peer = max((n for n in medians if not n.startswith("perfbench")), key=lambda n: medians[n][1])
    same = [n for n in medians if not n.startswith("perfbench") and weights[ours] and weights[n] == weights[ours]]
    print()
    for label, other in [("the fastest peer", peer)] + [(f"at {weights[ours]} weights", n) for n in same]:
        print(
            f"ours ({ours}) vs {label} ({other}): decode {medians[ours][1] / medians[other][1]:.2f}x, "
            f"TTFT {medians[other][0] / medians[ours][0]:.2f}x (above 1: ours faster)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
