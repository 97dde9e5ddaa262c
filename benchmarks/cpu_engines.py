"""CPU engines side by side: our default (engine and precision auto) and our FP32-pinned run against
what a user would run instead, each as its users run it, on the same model, inputs and threads.

    python benchmarks/cpu_engines.py                       # albert, batch 1 (about 10 minutes on 2 cores)
    python benchmarks/cpu_engines.py --model bert --batch-size 8 --repeats 5
    python benchmarks/cpu_engines.py --tiny                # seconds: checks the script itself, figures meaningless

Peers: OpenVINO with its defaults, OpenVINO with f32 pinned, PyTorch eager fp32 and bf16
autocast, plain onnxruntime (no fusion), and the ByteMLPerf method. Every contender is measured
once per round, rounds alternate, and medians are compared, so machine noise hits all alike. The
host's ISA is printed first, the ratios last. Synthetic weights: same compute as the real model.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cpu_runtime import GEMM_SIZE, bytemlperf_call, gemm_rates, make_setup, model_flops, policy, spread  # noqa: E402

from core.measure.timing import measure  # noqa: E402

MODELS = {
    "albert": "albert-torch-fp32",
    "bert": "bert-torch-fp32",
    "roberta": "roberta-torch-fp32",
    "deberta": "deberta-torch-fp32",
    "tiny-bert": "tiny-bert-squad",
}
FP32_PEERS = ("OpenVINO f32", "PyTorch eager fp32", "onnxruntime plain", "ByteMLPerf method")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="albert", choices=sorted(MODELS))
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="rounds; every contender is measured once a round")
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per contender and round")
    parser.add_argument("--threads", type=int, default=None, help="threads for every contender (default: usable cores)")
    parser.add_argument("--tiny", action="store_true", help="tiny model, short rounds: a smoke test of the script")
    return parser.parse_args(argv)


def ours(setup, batch_size: int, precision: str):
    """The runner's own compile stage (auto engine; auto or pinned precision) and the runtime it would measure."""
    from backends import load_backend
    from backends.base import Candidate
    from core.reporting.report import RunReport
    from core.run.compile import compile_model
    from core.run.context import RunContext, RunOptions, make_loader

    spec = load_backend("CPU")
    config = spec.make_config("auto", {"intra_op_threads": setup.threads}, source="benchmark")
    report = RunReport(model=setup.task.model.model, backend="CPU", precision=precision, dataset=None)
    report.sections["Config"] = {}
    run = RunContext(
        setup.task,
        RunOptions(hardware_type="CPU"),
        spec,
        config,
        precision,
        report,
        source=setup.source,
        inputs=setup.inputs,
        batch_sizes=[batch_size],
    )
    run.loader = make_loader(setup.task, setup.inputs) if setup.task.model.dataset_name else None
    compiled = compile_model(run)
    runtime = spec.runtime_backend(compiled, run.config)
    runtime.load(batch_size)
    return runtime, Candidate(compiled.engine, compiled.precision, run.config)


def peers(setup, feeds: dict, threads: int) -> dict[str, tuple[str, object]]:
    """label -> (precision that runs, zero-argument call), each set up the way its users do it."""
    import onnxruntime as ort
    import openvino as ov
    import torch

    from backends.base import CompileRequest
    from backends.CPU.export import exported_onnx
    from core.common.paths import state_dir

    request = CompileRequest(
        model=setup.task.model,
        source=setup.source,
        precision="FP32",
        batch_sizes=[1],
        cache_dir=state_dir(),
        sample_feeds=lambda bs: feeds,
    )
    onnx_path, _, _ = exported_onnx(request, 17)
    core = ov.Core()
    ov_model = core.read_model(str(onnx_path))
    ov_default = core.compile_model(ov_model, "CPU")
    ov_f32 = core.compile_model(ov_model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    default_request, f32_request = ov_default.create_infer_request(), ov_f32.create_infer_request()
    session_options = ort.SessionOptions()
    session_options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(onnx_path), session_options, providers=["CPUExecutionProvider"])
    module = setup.source.torch_module()
    tensors = [torch.from_numpy(v) for v in feeds.values()]

    def eager():
        with torch.no_grad():
            return module(*tensors)

    def autocast_bf16():
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            return module(*tensors)

    return {
        "OpenVINO defaults": (
            ov_default.get_property("INFERENCE_PRECISION_HINT").get_type_name(),
            lambda: default_request.infer(feeds),
        ),
        "OpenVINO f32": ("f32", lambda: f32_request.infer(feeds)),
        "PyTorch eager fp32": ("f32", eager),
        "PyTorch eager bf16 autocast": ("bf16", autocast_bf16),
        "onnxruntime plain": ("f32", lambda: session.run(None, feeds)),
        "ByteMLPerf method": ("f32", bytemlperf_call(setup, feeds)),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from core.measure.host import cpu_isa, cpu_model, software_versions, usable_cores
    from datasets.fake_dataset import fake_inputs

    threads = args.threads or usable_cores()
    torch.set_num_threads(threads)
    name = "tiny-bert" if args.tiny else args.model
    seconds = 0.3 if args.tiny else args.seconds
    repeats = 1 if args.tiny else args.repeats
    bs = args.batch_size
    isa = cpu_isa()
    versions = software_versions()
    print(
        f"host: {cpu_model()}, ISA {isa.summary()}, {threads} threads; "
        + ", ".join(f"{k} {versions[k]}" for k in ("torch", "onnxruntime", "openvino") if k in versions),
        flush=True,
    )

    rates = gemm_rates(threads, seconds)
    fp32_rate = max(rates["torch"], rates["onnxruntime"])
    print(
        f"GEMM {GEMM_SIZE}^3 GFLOP/s: fp32 torch {rates['torch']:.1f}, fp32 onnxruntime {rates['onnxruntime']:.1f}, "
        f"bf16 torch {rates['torch_bf16']:.1f}",
        flush=True,
    )

    setup = make_setup(name, MODELS[name], threads)
    feeds = fake_inputs(setup.inputs, bs, seed=0)
    flops = model_flops(setup, feeds)
    print(
        f"model {MODELS[name]} bs {bs} seq {setup.inputs.seq_len}: {flops / 1e9:.1f} GFLOP per batch (flop counter)",
        flush=True,
    )

    default_runtime, default_choice = ours(setup, bs, "auto")
    fp32_runtime, fp32_choice = ours(setup, bs, "FP32")
    contenders = {
        f"perfbench default ({default_choice.label})": (default_choice.precision, default_runtime.bind(feeds)),
        f"perfbench FP32-pinned ({fp32_choice.label})": ("FP32", fp32_runtime.bind(feeds)),
        **peers(setup, feeds, threads),
    }
    qps: dict[str, list[float]] = {label: [] for label in contenders}
    for round_ in range(repeats):
        for label, (_, call) in contenders.items():
            qps[label].append(measure(call, policy(seconds), bs).qps)
        print(f"round {round_ + 1}/{repeats} done", flush=True)

    median = {label: statistics.median(values) for label, values in qps.items()}
    print(f"\n{'contender':48s} {'runs':>6s} {'QPS median [min..max]':>28s}")
    for label in sorted(median, key=median.get, reverse=True):
        print(f"{label:48s} {str(contenders[label][0]):>6s} {spread(qps[label]):>28s}")

    default_label, fp32_label = list(contenders)[:2]
    peer_labels = list(contenders)[2:]
    best_peer = max(peer_labels, key=median.get)
    best_fp32_peer = max(FP32_PEERS, key=median.get)
    ran_low = default_choice.precision in ("BF16", "INT8")
    default_rate = rates["torch_bf16"] if ran_low else fp32_rate

    def roofline(label: str, rate: float) -> str:
        achieved = flops * median[label] / bs / 1e9
        kind = "bf16" if rate == rates["torch_bf16"] else "fp32"
        return f"{achieved:.1f} GFLOP/s = {achieved / rate:.0%} of the {kind} GEMM rate"

    print(f"\n--- ratios (host ISA {isa.summary()}) ---")
    print(
        f"default ({default_choice.label}) / fastest peer ({best_peer}): "
        f"{median[default_label] / median[best_peer]:.2f}x"
    )
    print(
        f"FP32-pinned ({fp32_choice.label}) / fastest fp32 peer ({best_fp32_peer}): "
        f"{median[fp32_label] / median[best_fp32_peer]:.2f}x"
    )
    print(f"default roofline: {roofline(default_label, default_rate)}")
    print(f"FP32-pinned roofline: {roofline(fp32_label, fp32_rate)}")
    default_runtime.close()
    fp32_runtime.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
