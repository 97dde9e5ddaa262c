"""LLM engines side by side at batch size 1: plain transformers `generate()` (what most users run) and
onnxruntime-genai as its users run it (where installed) against perfbench's engines as its LLM server runs
them: the static slot cache at FP32 and at BF16 where the CPU has it natively, and onnxruntime-genai through
our engine (engine auto picks the fastest of these its gate passes). Same synthetic weights, prompt, threads.

    python benchmarks/llm_peers.py                     # 2 of Llama-3.2-1B's 16 layers, 128 in, 32 out
    python benchmarks/llm_peers.py --layers 16 --repeats 5
    python benchmarks/llm_peers.py --model tiny        # seconds: checks the script itself

TTFT: from the call to the first new token. Decode tokens/s: the new tokens after the first over the time
they took (generate()'s stamped by a streamer). Contenders alternate round by round and
medians are compared, so a shared host's noise hits all alike. The host's ISA is printed first, the ratio of
our best to the best peer's last. Peers not installed (OpenVINO GenAI, llama.cpp) are named.
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


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="llama3.2-1b", choices=sorted(MODELS))
    parser.add_argument("--layers", type=int, default=2, help="decoder layers built (default 2; shapes unchanged)")
    parser.add_argument("--input-tokens", type=int, default=128)
    parser.add_argument("--output-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="rounds; every contender runs once a round")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    return parser.parse_args(argv)


def generate_contender(model, prompt: list[int], new_tokens: int):
    """Plain generate(): greedy, its default (dynamic) cache; a streamer stamps each new token."""
    import torch
    from transformers.generation.streamers import BaseStreamer

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
            model.generate(
                input_ids=ids,
                attention_mask=mask,
                do_sample=False,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                pad_token_id=0,
                streamer=stamps,
            )
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
    print(
        f"model: {task.model.model_name} ({source.scaled or 'every layer'}), synthetic weights, batch size 1, "
        f"{args.input_tokens} in, {args.output_tokens} out"
    )
    fp32 = build_model(source, 0, "FP32")
    folder = None
    if importlib.util.find_spec("onnxruntime_genai") is not None:  # converted first: its builder needs memory
        from backends.CPU.llm_genai import GenaiModel, convert
        from core.common.paths import state_dir

        print("onnxruntime-genai: converting the FP32 weights (cached)")
        folder = convert(fp32, source.digest, state_dir() / "compiled" / "llm" / "onnxruntime-genai").path
    models = {"FP32": fp32}
    if isa.bf16:
        models["BF16"] = build_model(source, 0, "BF16")  # the same seeded values, rounded
    prompt = list(Prompts(int(source.config.vocab_size), args.input_tokens, seed=11).next())
    contenders = {}
    for precision, model in models.items():
        contenders[f"transformers generate() {precision}"] = generate_contender(model, prompt, args.output_tokens)
        contenders[f"perfbench transformers {precision}"] = ours_contender(model, prompt, args.output_tokens)
    if folder is not None:
        loaded = GenaiModel(folder, source.config)  # one copy of the weights for both
        contenders["onnxruntime-genai FP32"] = genai_contender(loaded.model, prompt, args.output_tokens)
        contenders["perfbench onnxruntime-genai FP32"] = ours_contender(loaded, prompt, args.output_tokens)
    for contender in contenders.values():  # warm-up: first calls allocate and pick kernels
        contender()
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
    for _ in range(args.repeats):
        for name, contender in contenders.items():
            results[name].append(contender())
    print(f"\n{'contender':<36} {'TTFT ms':>10} {'decode tokens/s':>16}   (median of {args.repeats}, min-max)")
    medians = {}
    for name, runs in results.items():
        ttfts, rates = [r[0] for r in runs], [r[1] for r in runs]
        medians[name] = (statistics.median(ttfts), statistics.median(rates))
        print(
            f"{name:<36} {medians[name][0]:>10.1f} {medians[name][1]:>16.2f}   "
            f"({min(ttfts):.1f}-{max(ttfts):.1f} ms, {min(rates):.2f}-{max(rates):.2f})"
        )
    for module, label in OPTIONAL.items():
        if importlib.util.find_spec(module) is None:
            print(f"{label}: not installed, not measured")
    ours = max((n for n in medians if n.startswith("perfbench")), key=lambda n: medians[n][1])
    peer = max((n for n in medians if not n.startswith("perfbench")), key=lambda n: medians[n][1])
    print(
        f"\nours ({ours}) vs the fastest peer ({peer}): decode "
        f"{medians[ours][1] / medians[peer][1]:.2f}x, TTFT {medians[peer][0] / medians[ours][0]:.2f}x "
        "(above 1: ours faster)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
