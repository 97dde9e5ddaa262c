"""GPU device check, one prepared call on a GPU host: our default (`--hardware_type GPU`, engine auto)
against what a GPU user would run instead, side by side in one process, on the same model and inputs.

    python3 benchmarks/gpu_check.py --plan                      # anywhere, no device: what it will run, how long
    python3 benchmarks/gpu_check.py --wheels build/gpu-wheels   # on the GPU host: about 7 minutes on one H200
    python3 benchmarks/gpu_check.py --wheels build/gpu-wheels --out build/gpu-check --resume   # after a kill
    python3 benchmarks/gpu_check.py --device cpu --tiny --no-compile   # seconds, anywhere: checks the script itself

Runs under the GPU host's own python3 and packages (torch with CUDA, transformers, numpy, rich, pyyaml,
psutil, nvidia-ml-py): what our code needs beyond them (pydantic) is installed from a folder of wheels
made beforehand on a machine that reaches the registry (`make gpu-wheels`), into a temporary target,
never into the host's interpreter. Nothing else of our CPU stack (OpenVINO, LoadGen, Ray) is imported.

For albert, bert, roberta and deberta (SQuAD, seq 384) and resnet50, synthetic weights (same compute
as the real models), at batch size 1 and a large one (within each model's max_batch_size):
  - ours: the product's run, engine auto over eager and cuda-graph at FP16 (compile cannot win at batch
    size 1, where the engine is chosen; --with-compile adds it);
  - PyTorch eager FP16 (`.half()`), torch.compile FP16 (static shapes, compiled per batch size: on the
    models in --compile-peer, bert by default, as each compile costs 20-60 s), and the ByteMLPerf CUDA
    method (TorchScript traced per batch size, `.half()`, `torch.tensor(...).cuda()` per call, `.cpu()` back);
  - the fp16/bf16/tf32 matrix-multiply rate measured in this run, for the roofline share;
  - energy per sample from NVML's counter where readable.
And one LLM, Llama-3.2-1B's architecture (synthetic weights, 128 prompt tokens, 32 new), served as the product
serves it (`--hardware_type GPU`, the transformers slot engine with its static KV cache, 1 and 4 concurrent
requests), against plain transformers `generate()` on the same weights and batch: TTFT, TPOT, decode tokens/s
(batch x 1000 / TPOT) and the prefill's share of the matrix rate.
The GPU, driver and library versions come first, the ratios and targets last.
Targets: ours >= 1.0x the fastest peer for every model (the LLM: in decode tokens/s); >= 50% of the matrix rate
at the large batch size (the encoders).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODELS = {  # name -> (task, large batch size; capped at the model's max_batch_size)
    # An LLM task (served by core.run.llm; its batch is the concurrency), first: the budget never skips it.
    "llama3.2": ("llama3.2-torch-bf16-1b", 4),
    "albert": ("albert-torch-fp32", 32),
    "bert": ("bert-torch-fp32", 32),
    "roberta": ("roberta-torch-fp32", 32),
    "deberta": ("deberta-torch-fp32", 32),
    "resnet50": ("resnet50-torch-fp32", 64),
}
# The plan's estimate, in seconds, until a device has measured them: the report of BERT-base
# (torch.compile 20-60 s a shape), a few seconds per timed window and candidate.
COMPILE_SECONDS = 40.0
WINDOW_SECONDS = 5.0
MODEL_SETUP_SECONDS = 15.0  # building the module, the CPU reference on the gate's sample
TINY = {
    "tiny-bert": ("tiny-bert-squad", 2),
    "tiny-resnet": ("tiny-resnet-imagenet", 2),
    "tiny-llama": ("tiny-llama-torch-fp32", 2),
}
LLM_WINDOW_SECONDS = 5.0  # each load point's perf_time; --tiny: 0.3
LLM_PEER = "transformers generate()"
# Ours beyond the GPU host's packages; versions from constraints.txt (make gpu-wheels downloads these).
WHEELS = ("pydantic", "pydantic-core", "annotated-types", "typing-inspection", "typing-extensions")
ROOFLINE_TARGET = 0.5


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wheels", type=Path, help="folder of wheels for what this python lacks (make gpu-wheels)")
    parser.add_argument("--device", default="cuda", help="torch device (default cuda; cpu checks the script)")
    parser.add_argument("--models", default=None, help=f"comma-separated, of {', '.join(MODELS)} (default all)")
    parser.add_argument(
        "--minutes", type=float, default=8.0, help="the whole check's budget; models past it are skipped"
    )
    parser.add_argument(
        "--precisions", default="FP16", help="what engine auto tries (the product default: FP16,BF16,TF32)"
    )
    parser.add_argument("--no-compile", action="store_true", help="leave torch.compile out, ours and the peer's")
    parser.add_argument("--with-compile", action="store_true", help="add the compile engine to ours' candidates")
    parser.add_argument(
        "--compile-peer", default="bert", help="models that get the torch.compile peer (comma-separated, or all)"
    )
    parser.add_argument("--tiny", action="store_true", help="tiny models, short windows: a check of the script")
    parser.add_argument("--out", type=Path, default=None, help="folder for the reports and the JSON summary")
    parser.add_argument("--resume", action="store_true", help="keep the models --out's gpu_check.json already has")
    parser.add_argument("--plan", action="store_true", help="print what would run and an estimate, then stop")
    return parser.parse_args(argv)


def constraint_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        name, sep, version = line.split("#")[0].strip().partition("==")
        if sep:
            pins[name.lower().replace("_", "-")] = version
    return pins


def ensure_dependencies(wheels: Path | None) -> None:
    """pydantic (and its own dependencies) from the wheel folder into a temporary target, when missing."""
    if importlib.util.find_spec("pydantic") is not None:
        return
    if wheels is None or not wheels.is_dir():
        sys.exit(
            "gpu_check: this python has no pydantic; make the wheel folder on a machine that reaches the registry "
            "(make gpu-wheels) and pass --wheels <folder>"
        )
    target = Path(tempfile.gettempdir()) / "perfbench-gpu-deps"
    pins = constraint_pins()
    requirements = [f"{name}=={pins[name]}" if name in pins else name for name in WHEELS]
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--find-links", str(wheels)]
        + ["--target", str(target), "--upgrade", *requirements],
        check=True,
    )
    sys.path.insert(0, str(target))


def policy(tiny: bool):
    from core.measure.timing import MeasurePolicy

    if tiny:
        return MeasurePolicy(
            warmup_iterations=1, warmup_seconds=0.2, min_iterations=3, min_seconds=0.1, max_seconds=0.5
        )
    return MeasurePolicy(warmup_iterations=10, warmup_seconds=1.0, min_iterations=50, min_seconds=1.5, max_seconds=3.0)


def matmul_rates(device: str, tiny: bool) -> dict[str, float]:
    """TFLOP/s of a square matrix multiply per precision, measured here (median of timed repeats)."""
    import torch

    size = 256 if tiny else 8192
    rates = {}
    for label, dtype, tf32 in (
        ("FP16", torch.float16, False),
        ("BF16", torch.bfloat16, False),
        ("TF32", torch.float32, True),
    ):
        torch.set_float32_matmul_precision("high" if tf32 else "highest")
        a = torch.randn(size, size, device=device, dtype=dtype)
        b = torch.randn(size, size, device=device, dtype=dtype)
        times = [_timed(functools.partial(torch.matmul, a, b), device) for _ in range(3 if tiny else 12)]
        times = times[2:]  # the first calls pick kernels
        rates[label] = 2 * size**3 / sorted(times)[len(times) // 2] / 1e12
    torch.set_float32_matmul_precision("highest")
    return rates


def _timed(work, device: str) -> float:
    """Seconds of `work` on the device: CUDA events around it (no host clock, no .item() in the timed span)."""
    import torch

    if not device.startswith("cuda"):
        start = time.perf_counter()
        work()
        return time.perf_counter() - start
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    begin.record()
    work()
    end.record()
    end.synchronize()
    return begin.elapsed_time(end) / 1e3


def large_batch(task_name: str, large: int) -> int:
    """The check's large batch size within the model's max_batch_size (resnet50's entry allows 64)."""
    from core.config import registry

    return min(large, registry.load_task(task_name).model.max_batch_size)


def our_engines(args) -> list[str]:
    engines = ["eager"] if args.device == "cpu" else ["eager", "cuda-graph"]
    return engines + (["compile"] if args.with_compile and not args.no_compile else [])


def compile_peer(name: str, args) -> bool:
    return not args.no_compile and (args.compile_peer == "all" or name in args.compile_peer.split(","))


def plan(names: list[str], chosen: dict, args) -> dict[str, dict]:
    """What each model will run and how long it should take (no device needed)."""
    out = {}
    for name in names:
        task_name, large = chosen[name]
        if is_llm(task_name):
            out[name] = llm_plan(task_name, large, args)
            continue
        sizes = [1, large_batch(task_name, large)]
        candidates = [f"{e} {p}" for e in our_engines(args) for p in args.precisions.split(",")]
        peer_names = ["PyTorch eager FP16", "ByteMLPerf CUDA method"] + (
            ["torch.compile FP16"] if compile_peer(name, args) else []
        )
        seconds = MODEL_SETUP_SECONDS + len(candidates) * 2 * WINDOW_SECONDS  # each: brief timing and the gate
        seconds += len(sizes) * WINDOW_SECONDS * (1 + len(peer_names))  # ours and every peer at each size
        seconds += COMPILE_SECONDS * len(sizes) * (1 if compile_peer(name, args) else 0)
        seconds += COMPILE_SECONDS * len(sizes) * sum(c.startswith("compile") for c in candidates)
        out[name] = {
            "task": task_name,
            "batch_sizes": sizes,
            "ours": candidates,
            "peers": peer_names,
            "estimate_s": round(seconds),
        }
    return out


def is_llm(task_name: str) -> bool:
    from core.config import registry

    return registry.load_task(task_name).is_llm


def llm_plan(task_name: str, large: int, args) -> dict:
    """An LLM's entry in the plan: both load points served for a window each, then generate() at each batch."""
    sizes = [1, large]
    window = 0.3 if args.tiny else LLM_WINDOW_SECONDS
    seconds = MODEL_SETUP_SECONDS + len(sizes) * (window + 2 * WINDOW_SECONDS)  # ours (warm-up too), the peer
    return {
        "task": task_name,
        "batch_sizes": sizes,
        "ours": ["transformers BF16 (slot engine, static KV cache)"],
        "peers": [f"{LLM_PEER} BF16"],
        "estimate_s": round(seconds),
    }


def our_run(task_name: str, batch_sizes: list[int], args, out: Path) -> dict:
    """The product's own run on the GPU backend (engine auto), from a workload written for this check."""
    from core.config import registry
    from core.run.runner import RunOptions, run_task

    base = registry.load_task(task_name)
    measure = policy(args.tiny)
    workload = {
        "model": base.model.model,
        "batch_sizes": batch_sizes,
        "clients": 1,
        "test_accuracy": False,
        "test_numeric": False,
        "iterations": measure.min_iterations,
        "warmup_iterations": measure.warmup_iterations,
        "warmup_seconds": measure.warmup_seconds,
        "min_seconds": measure.min_seconds,
        "max_seconds": measure.max_seconds,
        "engine": "auto",
        "engine_options": {
            "device": args.device,
            "auto_precisions": args.precisions.split(","),
            "auto_engines": our_engines(args),
        },
    }
    path = out / f"{task_name}-gpu-check.json"
    path.write_text(json.dumps(workload), encoding="utf-8")
    report = run_task(registry.load_task(str(path)), RunOptions(hardware_type="GPU", output_dir=out / "reports"))
    return {
        "label": f"ours ({report.engine} {report.precision_ran})",
        "precision": report.precision_ran,
        "rows": {row.bs: row for row in report.performance if row.ok},
        "compile_seconds": report.graph_compile.compile_duration if report.graph_compile else None,
    }


def peers(task_name: str, device: str, with_compile: bool):
    """label -> make(feeds) -> zero-argument call; each set up the way its users run it."""
    import copy

    import torch

    from backends.GPU.device import as_tuple
    from core.config import registry
    from core.model.source import resolve_source

    task = registry.load_task(task_name)
    source = resolve_source(task.model, model_file=task.model_file, seed=0)
    half = copy.deepcopy(source.torch_module()).eval().half().to(device)
    if device.startswith("cuda"):  # GPU users run SDPA attention, ours does too
        from core.model.builder import use_attention

        use_attention(half, "sdpa")
    compiled = torch.compile(half, dynamic=False) if with_compile else None  # static shapes, like ours
    traced = {}

    def synchronized(module):
        def make(feeds):
            tensors = half_inputs(feeds, device)

            def call():
                with torch.inference_mode():
                    module(*tensors)
                if device.startswith("cuda"):
                    torch.cuda.synchronize()

            return call

        return make

    def bytemlperf(feeds):
        bs = next(iter(feeds.values())).shape[0]
        if bs not in traced:  # traced at the batch size it runs (a trace at 1 would freeze shapes)
            with torch.no_grad():
                traced[bs] = torch.jit.trace(half, tuple(half_inputs(feeds, device)), strict=False)
        module = traced[bs]

        def call():
            with torch.no_grad():
                tensors = [torch.tensor(v).to(device) for v in feeds.values()]
                outputs = module(*[t.half() if t.is_floating_point() else t for t in tensors])
            return [o.cpu() for o in as_tuple(outputs)]

        return call

    made = {"PyTorch eager FP16": synchronized(half)}
    if compiled is not None:
        made["torch.compile FP16"] = synchronized(compiled)
    made["ByteMLPerf CUDA method"] = bytemlperf
    return task, source, half, made


def half_inputs(feeds, device: str) -> list:
    """The inputs on the device, floating-point ones (images) in FP16 like the weights."""
    import torch

    from backends.GPU.device import Device, device_tensors

    return device_tensors(feeds, list(feeds), Device(device), torch.float16)


def flops_per_sample(module, feeds, device: str) -> float:
    """The product's own counter (FlopCounterMode's module tracker fails on DeBERTa under inference mode)."""
    from core.measure.work import op_flops

    total = sum(op_flops(module, half_inputs(feeds, device)).values())
    return total / next(iter(feeds.values())).shape[0]


def energy_meters(device: str) -> list:
    """NVML's energy counter as a meter (one for the whole model: it restarts at each window), or none."""
    if not device.startswith("cuda"):
        return []
    from backends.GPU.device import Device
    from backends.GPU.meters import EnergyMeter
    from backends.GPU.nvml import Nvml

    nvml = Nvml.open()
    gpu = Device(device)
    uuid = getattr(gpu.properties(), "uuid", None)  # by UUID: CUDA_VISIBLE_DEVICES renumbers the indices
    handle = nvml.handle(gpu.index, str(uuid) if uuid else None)
    return [EnergyMeter(nvml, handle)]


def check_model(name: str, task_name: str, large: int, args, out: Path, rates: dict, say) -> list[dict]:
    import torch

    from core.measure.timing import measure
    from core.run.context import model_inputs
    from datasets.fake_dataset import fake_inputs

    batch_sizes = [1, large_batch(task_name, large)]
    ours = our_run(task_name, batch_sizes, args, out)
    task, source, half, made = peers(task_name, args.device, compile_peer(name, args))
    inputs = model_inputs(task, source)
    flops = flops_per_sample(half, fake_inputs(inputs, 1, seed=0), args.device)
    meters = energy_meters(args.device)
    results = []
    for bs in batch_sizes:
        feeds = fake_inputs(inputs, bs, seed=0)
        row = ours["rows"].get(bs)
        entry = {
            "model": name,
            "bs": bs,
            "ours": ours["label"],
            "ours_qps": row.qps if row else None,
            "ours_precision": ours["precision"],
            "ours_energy_j": row.energy_j_per_sample if row else None,
            "ours_device_ms": row.device_avg_latency if row else None,
            "peers": {},
        }
        for label, make in made.items():
            try:
                result = measure(make(feeds), policy(args.tiny), bs, meters=meters)
            except Exception as err:  # a peer that cannot run this model is reported, not fatal
                entry["peers"][label] = {"error": f"{type(err).__name__}: {str(err)[:200]}"}
                continue
            fields = meters[0].row_fields(result) if meters else {}
            entry["peers"][label] = {"qps": result.qps, "p50_ms": result.latency.p50, **fields}
        rate = rates.get(ours["precision"] if ours["precision"] in rates else "TF32")
        entry["roofline"] = flops * entry["ours_qps"] / (rate * 1e12) if entry["ours_qps"] and rate else None
        results.append(entry)
        say(line(entry))
    del half, made
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
    return results


def check_llm(name: str, task_name: str, large: int, args, out: Path, rates: dict, say) -> list[dict]:
    """The LLM: the product's serving run on the GPU backend (slot engine, no accuracy pass), then plain
    generate() on the same synthetic weights at each batch size. Compared in decode tokens/s."""
    import torch

    from core.config import registry
    from core.model.llm import build_model, resolve_llm_source
    from core.model.llm_work import count
    from core.run.context import RunOptions
    from core.run.llm import run_llm_task

    planned = llm_plan(task_name, large, args)
    task = registry.load_task(task_name)
    data = json.loads(task.workload_file.read_text(encoding="utf-8"))
    data["perf_config"].update(batch_sizes=planned["batch_sizes"], perf_time=0.3 if args.tiny else LLM_WINDOW_SECONDS)
    data.update(test_accuracy=False, engine_options={"device": args.device})  # no gate: the slot engine runs
    path = out / f"{task_name}.json"  # the task's own name: an LLM task finds its model-zoo entry by it
    path.write_text(json.dumps(data), encoding="utf-8")
    report = run_llm_task(registry.load_task(str(path)), RunOptions(hardware_type="GPU", output_dir=out / "reports"))
    precision = report.precision_ran or "BF16"
    rows = {row.batch_size: row for row in report.llm_rows if row.ok}
    seed = task.workload.seed
    source = resolve_llm_source(
        task.model, task.model_file, layers=task.workload.layers, seed=seed, trust_remote_code=False
    )
    model = build_model(source, seed, precision).to(args.device)
    tokens_in, tokens_out = data["perf_config"]["input_tokens"][0], data["perf_config"]["output_tokens"]
    prefill_flops = count(source.config).prefill_flops(tokens_in)
    rate = rates.get(precision, rates.get("TF32"))
    results = []
    for bs in planned["batch_sizes"]:
        row = rows.get(bs)
        tpot = row.tpot.avg if row and row.tpot else None
        prefill_ms = row.prefill.avg if row and row.prefill else None
        entry = {
            "model": name,
            "bs": bs,
            "kind": "llm",
            "ours": f"ours (transformers {precision})",
            "ours_qps": bs * 1e3 / tpot if tpot else None,  # decode tokens/s
            "ours_precision": precision,
            "ours_ttft_ms": row.ttft.avg if row and row.ttft else None,
            "ours_tpot_ms": tpot,
            "ours_energy_j": None,
            "ours_device_ms": None,
            "peers": {},
            # the prefill's share of the matrix rate measured in this run
            "roofline": prefill_flops / (prefill_ms / 1e3) / (rate * 1e12) if prefill_ms and rate else None,
        }
        peer = f"{LLM_PEER} {precision}"
        try:
            entry["peers"][peer] = generate_figures(
                model, bs, tokens_in, tokens_out, args, int(source.config.vocab_size)
            )
        except Exception as err:  # a peer that cannot run is reported, not fatal
            entry["peers"][peer] = {"error": f"{type(err).__name__}: {str(err)[:200]}"}
        results.append(entry)
        say(line(entry))
    del model
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
    return results


def generate_figures(model, bs: int, tokens_in: int, tokens_out: int, args, vocab: int) -> dict:
    """Plain generate() on a static batch of `bs` prompts, greedy, exactly `tokens_out` new tokens: TTFT from a
    one-token call, TPOT from the full call's rest (medians of whole calls; a streamer's per-token callback
    would synchronize the device every token)."""
    import statistics

    import torch

    from backends.llm_transformers import plain_generate

    ids = torch.randint(0, vocab, (bs, tokens_in), generator=torch.Generator().manual_seed(bs)).to(args.device)
    mask = torch.ones_like(ids)

    def seconds(new_tokens: int) -> float:
        return _timed(lambda: plain_generate(model, ids, mask, new_tokens), args.device)

    repeats = 2 if args.tiny else 3
    with torch.inference_mode():
        seconds(tokens_out)  # warm-up
        ttft = statistics.median(seconds(1) for _ in range(repeats))
        full = statistics.median(seconds(tokens_out) for _ in range(repeats))
    tpot = (full - ttft) / max(1, tokens_out - 1)
    return {"qps": bs / tpot, "ttft_ms": ttft * 1e3, "tpot_ms": tpot * 1e3}


def best_peer(entry: dict) -> tuple[str | None, float | None]:
    scored = [(p["qps"], label) for label, p in entry["peers"].items() if p.get("qps")]
    if not scored:
        return None, None
    qps, label = max(scored)
    return label, qps


def line(entry: dict) -> str:
    if entry.get("kind") == "llm":
        return llm_line(entry)
    label, qps = best_peer(entry)
    ratio = f"{entry['ours_qps'] / qps:.2f}x" if qps and entry["ours_qps"] else "—"
    peers = "; ".join(
        f"{name} {p['qps']:.1f}" if p.get("qps") else f"{name} failed ({p.get('error')})"
        for name, p in entry["peers"].items()
    )
    roof = f"{entry['roofline'] * 100:.0f}%" if entry["roofline"] is not None else "—"
    energy = f", {entry['ours_energy_j']:.4g} J/sample" if entry["ours_energy_j"] else ""
    ours = f"{entry['ours_qps']:.1f}" if entry["ours_qps"] else "failed"
    return (
        f"{entry['model']:>9} bs {entry['bs']:>3}: {entry['ours']} {ours} QPS{energy} | {peers} | "
        f"vs best ({label}) {ratio} | roofline {roof}"
    )


def llm_line(entry: dict) -> str:
    """An LLM load point: ours and the peer in TTFT, TPOT and decode tokens/s, the ratio of those."""
    label, rate = best_peer(entry)
    ratio = f"{entry['ours_qps'] / rate:.2f}x" if rate and entry["ours_qps"] else "—"
    peers = "; ".join(
        f"{name} TTFT {fmt(p['ttft_ms'])} ms, TPOT {fmt(p['tpot_ms'])} ms, {fmt(p['qps'])} tokens/s"
        if p.get("qps")
        else f"{name} failed ({p.get('error')})"
        for name, p in entry["peers"].items()
    )
    ours = (
        f"TTFT {fmt(entry['ours_ttft_ms'])} ms, TPOT {fmt(entry['ours_tpot_ms'])} ms, {fmt(entry['ours_qps'])} tokens/s"
        if entry["ours_qps"]
        else "failed"
    )
    return (
        f"{entry['model']:>9} bs {entry['bs']:>3}: {entry['ours']} {ours} | {peers} | vs best ({label}) {ratio} "
        f"in decode tokens/s | prefill {pct(entry['roofline'])} of the matrix rate"
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    chosen = TINY if args.tiny else MODELS
    names = args.models.split(",") if args.models else list(chosen)
    unknown = [n for n in names if n not in chosen]
    if unknown:
        print(f"gpu_check: unknown model(s) {', '.join(unknown)}; known: {', '.join(chosen)}", file=sys.stderr)
        return 2
    if args.plan:
        return print_plan(plan(names, chosen, args), args)
    ensure_dependencies(args.wheels)
    import torch

    from backends.GPU.device import device_facts, unavailable_reason
    from core.measure.host import cpu_isa, cpu_model, software_versions

    reason = unavailable_reason(args.device)
    if reason:
        print(f"gpu_check: {args.device} cannot run here: {reason}", file=sys.stderr)
        return 2
    out = args.out or Path(tempfile.mkdtemp(prefix="gpu-check-"))
    out.mkdir(parents=True, exist_ok=True)
    facts = device_facts(args.device)
    versions = software_versions()
    say = print
    say(f"device: {facts['summary']}")
    say(f"host: {cpu_model()} ({cpu_isa().summary()})")
    say(
        f"torch {torch.__version__}, CUDA {torch.version.cuda}, transformers {versions.get('transformers')}, "
        f"triton {versions.get('triton', 'absent')}, NVML {facts.get('nvml', 'not read')}, "
        f"python {sys.version.split()[0]}"
    )
    rates = matmul_rates(args.device, args.tiny)
    say("matrix multiply: " + ", ".join(f"{k} {v:.1f} TFLOP/s" for k, v in rates.items()))
    results, skipped, took = [], [], []
    done = resumed(out) if args.resume else []
    if done:
        results += done
        say(f"resumed: {', '.join(sorted({r['model'] for r in done}))} already measured in {out / 'gpu_check.json'}")
    for name in names:
        if any(r["model"] == name for r in done):
            continue
        left = args.minutes * 60 - (time.monotonic() - started)
        if took and left < max(took):  # the next model would likely overrun the budget: say so instead
            skipped.append(name)
            continue
        task_name, large = chosen[name]
        begun = time.monotonic()
        check = check_llm if is_llm(task_name) else check_model
        try:
            results += check(name, task_name, large, args, out, rates, say)
        except Exception as err:  # one model failing must not hide the others' figures
            say(f"{name}: failed: {type(err).__name__}: {str(err)[:300]}")
            results.append({"model": name, "error": f"{type(err).__name__}: {err}"})
        took.append(time.monotonic() - begun)
        write_json(out, facts, rates, results, skipped)  # after every model: a kill keeps what was measured
    summary(results, skipped, facts, rates, out, started, say)
    return 1 if any("error" in r for r in results) else 0


def write_json(out: Path, facts, rates, results, skipped) -> None:
    path = out / "gpu_check.json"
    body = {"device": facts, "matmul_tflops": rates, "results": results, "skipped": skipped}
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(body, indent=2, default=str), encoding="utf-8")
    temporary.replace(path)


def resumed(out: Path) -> list[dict]:
    """The models an earlier (killed) check measured, from its JSON; failed ones are tried again."""
    path = out / "gpu_check.json"
    if not path.is_file():
        return []
    results = json.loads(path.read_text(encoding="utf-8")).get("results", [])
    return [r for r in results if isinstance(r, dict) and "error" not in r and "model" in r]


def print_plan(planned: dict[str, dict], args) -> int:
    total = 0
    for name, entry in planned.items():
        total += entry["estimate_s"]
        print(
            f"{name:>9}: {entry['task']}, batch sizes {entry['batch_sizes']}; ours: {', '.join(entry['ours'])}; "
            f"peers: {', '.join(entry['peers'])}; ~{entry['estimate_s'] / 60:.1f} min"
        )
    print(f"total ~{total / 60:.1f} min (budget {args.minutes:g} min; matrix rates add ~0.2 min)")
    return 0


def summary(results, skipped, facts, rates, out: Path, started: float, say) -> None:
    say("")
    say(
        f"{'model':>9} {'bs':>4} {'ours':>26} {'QPS':>9} {'best peer':>24} {'QPS':>9} {'ratio':>6} "
        f"{'roofline':>8} {'J/sample':>9}"
    )
    ratios, roofs = [], []
    for entry in results:
        if "error" in entry:
            say(f"{entry['model']:>9}  failed: {entry['error'][:120]}")
            continue
        label, qps = best_peer(entry)
        ratio = entry["ours_qps"] / qps if qps and entry["ours_qps"] else None
        ratios.append((entry["model"], entry["bs"], ratio))
        if entry["bs"] != 1 and entry.get("kind") != "llm":  # an LLM's prefill share is shown, not targeted
            roofs.append((entry["model"], entry["roofline"]))
        say(
            f"{entry['model']:>9} {entry['bs']:>4} {entry['ours']:>26} {fmt(entry['ours_qps']):>9} {label or '—':>24} "
            f"{fmt(qps):>9} {fmt(ratio):>6} {pct(entry['roofline']):>8} {fmt(entry['ours_energy_j']):>9}"
        )
    if skipped:
        say(f"skipped for time (the budget left was shorter than a model took): {', '.join(skipped)}")
    behind = [f"{m} bs {bs} ({fmt(r)}x)" for m, bs, r in ratios if r is None or r < 1.0]
    low = [f"{m} ({pct(r)})" for m, r in roofs if r is None or r < ROOFLINE_TARGET]
    say(f"target ours >= 1.0x the fastest peer: {verdict(behind, ratios)}")
    say(f"target >= 50% of the matrix rate at the large batch size: {verdict(low, roofs)}")
    say(f"check took {(time.monotonic() - started) / 60:.1f} min; device {facts['summary']}")
    write_json(out, facts, rates, results, skipped)
    say(f"summary: {out / 'gpu_check.json'}")


def verdict(failing: list[str], checked: list) -> str:
    return "MISSED: " + ", ".join(failing) if failing else "met" if checked else "not checked (nothing ran)"


def fmt(value) -> str:
    return "—" if value is None else f"{value:.3g}" if value < 10 else f"{value:,.1f}"


def pct(value) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


if __name__ == "__main__":
    sys.exit(main())
