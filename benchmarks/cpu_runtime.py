"""CPU runtime benchmark: our runtime against the ByteMLPerf method and the machine's roofline.

    python benchmarks/cpu_runtime.py                  # albert and bert, batch 1 and 8 (about 15 minutes on 2 cores)
    python benchmarks/cpu_runtime.py --models albert --batch-sizes 1 --repeats 3
    python benchmarks/cpu_runtime.py --tiny           # seconds: checks the script itself, figures meaningless

Everything is compared side by side in one process, on the same model (synthetic weights: same
compute as the real one), the same inputs and the same threads; A and B alternate over repeats and
the medians are compared, so machine noise hits both sides alike. Ratios are printed last.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

import backends  # noqa: E402
from core.config import registry  # noqa: E402
from core.measure.timing import MeasurePolicy, measure  # noqa: E402

MODELS = {"albert": "albert-torch-fp32", "bert": "bert-torch-fp32"}
TINY_MODELS = {"tiny-bert": "tiny-bert-squad"}
GEMM_SIZE = 2048


@dataclass
class Setup:
    name: str
    task: object
    inputs: object
    source: object
    threads: int


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="albert,bert", help="comma list of albert,bert")
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--repeats", type=int, default=3, help="alternating A/B rounds per comparison")
    parser.add_argument("--seconds", type=float, default=6.0, help="measuring time per round and side")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: usable cores)")
    parser.add_argument("--tiny", action="store_true", help="tiny model, short rounds: a smoke test of the script")
    parser.add_argument("--skip", default="", help="comma list of sections to skip: peer,roofline,length,overhead,int8")
    return parser.parse_args(argv)


def policy(seconds: float) -> MeasurePolicy:
    return MeasurePolicy(
        warmup_iterations=2, warmup_seconds=seconds, min_iterations=3, min_seconds=seconds, max_seconds=seconds
    )


def alternate(a, b, rounds: int, seconds: float, batch_size: int) -> tuple[list[float], list[float]]:
    """QPS of two bound calls, measured in alternation: ABAB…"""
    qa, qb = [], []
    for _ in range(rounds):
        qa.append(measure(a, policy(seconds), batch_size).qps)
        qb.append(measure(b, policy(seconds), batch_size).qps)
    return qa, qb


def spread(values: list[float]) -> str:
    med = statistics.median(values)
    lo, hi = min(values), max(values)
    return f"{med:9.3f} [{lo:.3f}..{hi:.3f}]"


def make_setup(name: str, task_name: str, threads: int) -> Setup:
    from core.model.source import resolve_source
    from core.run.context import model_inputs

    task = registry.load_task(task_name)
    source = resolve_source(task.model, model_file=task.model_file, seed=0)
    return Setup(name, task, model_inputs(task, source), source, threads)


def our_runtime(setup: Setup, precision: str = "FP32"):
    """The runner's own path: compile (cached) through the CPU backend, load, return the runtime."""
    from backends.base import CompileRequest
    from core.common.paths import state_dir
    from datasets.fake_dataset import fake_inputs

    spec = backends.load_backend("CPU")
    config = spec.make_config("onnxruntime", {"intra_op_threads": setup.threads}, source="benchmark")
    request = CompileRequest(
        model=setup.task.model,
        source=setup.source,
        precision=precision,
        batch_sizes=[1],
        cache_dir=state_dir(),
        sample_feeds=lambda bs: fake_inputs(setup.inputs, bs, seed=0),
    )
    compiled = spec.compile_backend(config).compile(request)
    runtime = spec.runtime_backend(compiled, config)
    runtime.load(1)
    return runtime, compiled


def bytemlperf_call(setup: Setup, feeds: dict):
    """The ByteMLPerf CPU method: a TorchScript module, torch.tensor(...) from numpy on every call, no_grad."""
    import torch

    module = setup.source.torch_module()
    example = tuple(torch.tensor(v) for v in feeds.values())
    with torch.no_grad():
        traced = torch.jit.trace(module, example, strict=False)

    def call():
        with torch.no_grad():
            return traced(*[torch.tensor(feeds[name]) for name in feeds])

    return call


def gemm_rates(threads: int, seconds: float) -> dict[str, float]:
    """fp32 GEMM GFLOP/s of torch and of onnxruntime's own MatMul, and torch's bf16 GEMM, measured now.

    The faster fp32 one is the practical fp32 roofline: on AVX-512 hosts onnxruntime's MatMul runs at
    about twice torch's rate, so a torch-only roofline would flatter onnxruntime. bf16 is the roofline
    of bf16 and int8 runs (AMX and AVX512-BF16 hosts; elsewhere torch emulates it, slowly).
    """
    import onnxruntime as ort
    import torch
    from onnx import TensorProto, helper

    flops = 2 * GEMM_SIZE**3
    torch.set_num_threads(threads)
    a = torch.randn(GEMM_SIZE, GEMM_SIZE)
    b = torch.randn(GEMM_SIZE, GEMM_SIZE)
    rates = {"torch": flops / (measure(lambda: torch.mm(a, b), policy(seconds), 1).latency.p50 / 1e3) / 1e9}
    a16, b16 = a.bfloat16(), b.bfloat16()
    rates["torch_bf16"] = flops / (measure(lambda: torch.mm(a16, b16), policy(seconds), 1).latency.p50 / 1e3) / 1e9

    shape = [GEMM_SIZE, GEMM_SIZE]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "gemm",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, shape),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, shape),
        ],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, shape)],
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    session = ort.InferenceSession(model.SerializeToString(), options)
    feeds = {"a": a.numpy(), "b": b.numpy()}
    rates["onnxruntime"] = (
        flops / (measure(lambda: session.run(None, feeds), policy(seconds), 1).latency.p50 / 1e3) / 1e9
    )
    return rates


def model_flops(setup: Setup, feeds: dict) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        setup.source.torch_module()(*[torch.from_numpy(v) for v in feeds.values()])
    return float(counter.get_total_flops())


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from core.measure.host import usable_cores
    from datasets.fake_dataset import fake_inputs

    threads = args.threads or usable_cores()
    torch.set_num_threads(threads)
    models = TINY_MODELS if args.tiny else {k: MODELS[k] for k in args.models.split(",")}
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    seconds = 0.3 if args.tiny else args.seconds
    repeats = 1 if args.tiny else args.repeats
    skip = set(filter(None, args.skip.split(",")))
    lines: list[str] = []

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    say(f"threads {threads}, repeats {repeats}, {seconds:.1f} s per round and side; QPS as median [min..max]")
    gemm = None
    if "roofline" not in skip:
        rates = gemm_rates(threads, seconds)
        gemm = max(rates["torch"], rates["onnxruntime"])
        say(
            f"fp32 GEMM {GEMM_SIZE}^3: torch {rates['torch']:.1f}, "
            f"onnxruntime MatMul {rates['onnxruntime']:.1f} GFLOP/s; "
            f"roofline for this run: {gemm:.1f}"
        )

    for name, task_name in models.items():
        setup = make_setup(name, task_name, threads)
        runtime, compiled = our_runtime(setup)
        say(f"\n== {name} ({task_name}, seq {setup.inputs.seq_len}): {'; '.join(compiled.optimizations)}")
        for batch_size in batch_sizes:
            feeds = fake_inputs(setup.inputs, batch_size, seed=0)
            ours = runtime.bind(feeds)
            if "peer" not in skip:
                peer = bytemlperf_call(setup, feeds)
                q_ours, q_peer = alternate(ours, peer, repeats, seconds, batch_size)
                ratio = statistics.median(q_ours) / statistics.median(q_peer)
                say(
                    f"bs {batch_size}: ours {spread(q_ours)} QPS | ByteMLPerf method {spread(q_peer)} QPS | "
                    f"ratio {ratio:.2f}x"
                )
            if gemm is not None:
                flops = model_flops(setup, feeds)
                result = measure(ours, policy(seconds), batch_size)
                achieved = flops / (result.latency.p50 / 1e3) / 1e9
                say(
                    f"bs {batch_size}: {flops / 1e9:.1f} GFLOP per batch, p50 {result.latency.p50:.1f} ms -> "
                    f"{achieved:.1f} GFLOP/s = {achieved / gemm:.1%} of GEMM"
                )
        if "overhead" not in skip:
            overhead(setup, runtime, repeats, seconds, say)
        if "length" not in skip:
            length_grouping(setup, runtime, say)
        if "int8" not in skip:
            int8(setup, runtime, repeats, seconds, say)
        runtime.close()

    print("\n--- summary ---")
    for line in lines:
        if "ratio" in line or "% of GEMM" in line or "x " in line:
            print(line)
    return 0


def overhead(setup: Setup, runtime, repeats: int, seconds: float, say) -> None:
    """The runner's reported mean latency against a bare loop around the same bound session call.

    Machine noise per round is a few percent, so: many short pairs, the same iteration count on both
    sides, the order alternating within pairs, and the median ratio.
    """
    from datasets.fake_dataset import fake_inputs

    call = runtime.bind(fake_inputs(setup.inputs, 1, seed=0))

    def bare(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            call()
        return (time.perf_counter() - t0) / n * 1e3

    per_call_ms = bare(3)
    n = max(3, int(seconds / 3 * 1e3 / per_call_ms))
    harness = MeasurePolicy(warmup_iterations=1, warmup_seconds=0.0, min_iterations=n, min_seconds=0.0, max_seconds=1e9)
    ratios = []
    for i in range(max(7, 3 * repeats)):
        if i % 2:
            reported = measure(call, harness, 1).latency.mean
            bare_ms = bare(n)
        else:
            bare_ms = bare(n)
            reported = measure(call, harness, 1).latency.mean
        ratios.append(reported / bare_ms)
    ratio = statistics.median(ratios)
    say(
        f"harness overhead at bs 1 ({len(ratios)} alternating pairs of {n} calls): reported mean / bare loop mean = "
        f"{ratio:.4f}x ({ratio - 1:+.2%}); pairs ranged {min(ratios):.3f}..{max(ratios):.3f}"
    )


def length_grouping(setup: Setup, runtime, say) -> None:
    """Dataset throughput, length-grouped batches against fully padded ones, on two length distributions:
    the bundled SQuAD-format sample as this machine tokenizes it, and SQuAD-dev-like lengths
    (datasets.fake_dataset: mean 45% of 384 tokens, as BERT-tokenized dev-v1.1 features are)."""
    from core.measure.dataset_pass import run_features
    from core.run.context import make_loader
    from datasets.base import DatasetRequest
    from datasets.fake_dataset import FakeDataset

    batch = 8
    loader = make_loader(setup.task, setup.inputs)
    for label, features, scorer in (
        ("bundled sample", loader.load(), loader),
        ("SQuAD-like lengths", FakeDataset(DatasetRequest(model=setup.inputs)).load(), None),
    ):
        padded, t_padded = run_features(runtime, features, batch, length_aware=False)
        grouped, t_grouped = run_features(runtime, features, batch, length_aware=True)
        same = "EM/F1 identical: " + str(scorer.evaluate(grouped) == scorer.evaluate(padded)) if scorer else "no labels"
        mean_len = float(np.mean(features.lengths))
        say(
            f"length grouping, {label} ({len(features)} features, "
            f"mean length {mean_len:.0f} of {setup.inputs.seq_len}, "
            f"bs {batch}): padded {len(features) / t_padded:.2f} features/s, grouped {len(features) / t_grouped:.2f} "
            f"features/s, ratio {t_padded / t_grouped:.2f}x; {same}"
        )


def int8(setup: Setup, runtime, repeats: int, seconds: float, say) -> None:
    """Dynamic int8 quantization: speed and numeric drift against fp32, reported even where it does not help."""
    from core.quality.drift import compare_outputs
    from datasets.fake_dataset import fake_inputs

    quantized, _ = our_runtime(setup, precision="INT8")
    feeds = fake_inputs(setup.inputs, 1, seed=0)
    q_fp32, q_int8 = alternate(runtime.bind(feeds), quantized.bind(feeds), repeats, seconds, 1)
    lengths = np.asarray(feeds[setup.inputs.names[1]].sum(axis=1))
    drift = compare_outputs(runtime.predict(feeds), quantized.predict(feeds), lengths)
    say(
        f"int8 dynamic at bs 1: fp32 {spread(q_fp32)} QPS, int8 {spread(q_int8)} QPS, "
        f"ratio {statistics.median(q_int8) / statistics.median(q_fp32):.2f}x; drift mean {drift['Mean Diff']:.4g}, "
        f"max {drift['Max Diff']:.4g}"
    )
    quantized.close()


if __name__ == "__main__":
    sys.exit(main())
