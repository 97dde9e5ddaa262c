"""Load scenarios benchmark: LoadGen Offline against the plain loop, and the Server peak under a p99 bound.

    python benchmarks/scenarios.py                 # albert (a few minutes on 2 cores)
    python benchmarks/scenarios.py --tiny          # seconds: checks the script itself, figures meaningless

Same process, same compiled model, engine, inputs (generated, full sequence length) and threads:
1. the plain loop times each batch size; its best QPS is the baseline;
2. LoadGen Offline through our batching SUT (dynamic batches up to the largest batch size):
   target >= 0.9x the plain loop's best (dynamic batching should cost little);
3. LoadGen Server, FindPeakPerformance: the highest QPS whose p99 meets a bound of
   --latency-factor x the plain loop's batch-1 p50 latency.
The host (model, ISA) is printed first, the ratio last.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import backends  # noqa: E402
from core.config import registry  # noqa: E402
from core.measure.timing import MeasurePolicy, measure  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny BERT and short runs: a smoke test of the script")
    parser.add_argument("--task", default="albert-torch-fp32")
    parser.add_argument("--engine", default="onnxruntime", choices=("onnxruntime", "openvino", "pytorch"))
    parser.add_argument("--batch-sizes", default="1,4,8")
    parser.add_argument("--seconds", type=float, default=10.0, help="plain loop: seconds per batch size")
    parser.add_argument("--min-duration", type=float, default=15.0, help="LoadGen: minimum seconds per run")
    parser.add_argument(
        "--latency-factor", type=float, default=4.0, help="Server p99 bound = this x batch-1 p50 latency"
    )
    args = parser.parse_args(argv)
    if args.tiny:
        args.task, args.batch_sizes, args.seconds, args.min_duration = "tiny-bert-squad", "1,4", 0.5, 0.3
    args.batch_sizes = sorted({int(b) for b in args.batch_sizes.split(",")})
    return args


def compile_runtime(task, engine: str):
    from backends.base import CompileRequest
    from core.common.paths import state_dir
    from core.model.source import resolve_source
    from core.run.context import model_inputs
    from datasets.fake_dataset import fake_inputs

    spec = backends.load_backend("CPU")
    config = spec.make_config(engine, {}, source="benchmark")
    source = resolve_source(task.model, model_file=task.model_file, seed=0)
    inputs = model_inputs(task, source)
    feeds = lambda bs: fake_inputs(inputs, bs, seed=0)  # noqa: E731 - what the runner's sample_feeds is
    request = CompileRequest(
        model=task.model, source=source, precision="FP32", batch_sizes=[1], cache_dir=state_dir(), sample_feeds=feeds
    )
    compiled = spec.compile_backend(config).compile(request)
    return spec.runtime_backend(compiled, config), compiled, feeds


def main(argv=None) -> int:
    from core.measure.clients import open_instances
    from core.measure.host import cpu_isa, cpu_model, usable_cores
    from core.scenarios import loadgen

    args = parse_args(argv)
    print(f"host: {cpu_model()}, ISA {cpu_isa().summary()}, {usable_cores()} usable cores")
    task = registry.load_task(args.task)
    runtime, compiled, feeds = compile_runtime(task, args.engine)
    print(f"model: {task.model.model}, engine {compiled.engine} {compiled.precision}, seq {task.model.seq_len}")

    policy = MeasurePolicy(
        warmup_iterations=2,
        warmup_seconds=5.0,
        min_iterations=3,
        min_seconds=args.seconds,
        max_seconds=args.seconds * 3,
    )
    rows = []
    for batch_size in args.batch_sizes:
        runtime.load(batch_size)
        result = measure(runtime.bind(feeds(batch_size)), policy, batch_size)
        rows.append(result.perf_row())
        print(
            f"plain loop bs {batch_size}: {result.qps:.2f} QPS, p50 {result.latency.p50:.1f} ms "
            f"({result.latency.count} iterations)"
        )
    best = max(rows, key=lambda row: row.qps)
    max_batch = max(args.batch_sizes)
    runtime.load(max_batch)
    instances = open_instances(runtime, 1)
    estimate = loadgen.estimate_speed(runtime, feeds, max_batch, rows)
    samples = loadgen.generated_samples(feeds)
    folder = Path(tempfile.mkdtemp(prefix="perfbench-scenarios-"))

    offline = loadgen.run_scenario(
        loadgen.ScenarioSpec("Offline", args.min_duration, 1, max_batch),
        instances,
        samples,
        estimate,
        folder / "Offline",
        folder,
    )
    print(loadgen.scenario_line(offline))
    bs1 = next((row for row in rows if row.bs == 1), rows[0])
    bound_ms = round(args.latency_factor * bs1.p50_latency, 1)
    server = loadgen.run_scenario(
        loadgen.ScenarioSpec("Server", args.min_duration, 1, max_batch, target_latency_ms=bound_ms, find_peak=True),
        instances,
        samples,
        estimate,
        folder / "Server",
        folder,
    )
    print(loadgen.scenario_line(server))
    print(f"LoadGen logs: {folder}")
    runtime.close()

    ratio = offline.qps / best.qps if offline.qps else float("nan")
    print("\n== ratios")
    print(
        f"Offline (dynamic batches up to {max_batch}) / plain loop best (bs {best.bs}, {best.qps:.2f} QPS): "
        f"{ratio:.3f}x  [target >= 0.9x] {'ok' if ratio >= 0.9 else 'BELOW TARGET'}"
    )
    print(
        f"Server peak under p99 <= {bound_ms:g} ms: {server.peak_qps} QPS ({server.result} at the peak), "
        f"{(server.get('Peak QPS') or 0) / best.qps:.2f}x the plain loop's best"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
