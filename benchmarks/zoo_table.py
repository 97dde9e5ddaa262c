"""ByteMLPerf's 17 workloads on this host: what each runs on offline, and its first batch size's QPS.

    python benchmarks/zoo_table.py                     # all 17 (tens of minutes on 2 cores)
    python benchmarks/zoo_table.py --tasks clip-onnx-fp32,resnet50-tf-fp32

Each task runs through the real command (`python -m core.perf_engine`, its own process) with a copy of
its workload that keeps the first batch size and the performance section only (accuracy and numeric
checks are what the tests and the full runs cover), engine and precision pinned (default onnxruntime
FP32, so every model meets the same engine; `--engine auto` lets each tune). A task that is refused
shows the one-line refusal. The host (CPU, ISA) is printed first; the table is the result.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.config import registry  # noqa: E402
from core.measure.host import cpu_isa, host_info  # noqa: E402
from core.reporting.schema import PerfRow  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", default=",".join(registry.BYTEMLPERF_TASKS))
    parser.add_argument("--engine", default="onnxruntime", choices=("auto", "onnxruntime", "openvino", "pytorch"))
    parser.add_argument("--precision", default="FP32")
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring time cap per task")
    return parser.parse_args(argv)


def what_runs(task) -> tuple[str, str, str]:
    """(weights, inputs, dataset) a run uses offline, from the entry alone."""
    model = task.model
    weights = f"synthetic ({model.architecture})" if model.architecture else "file only"
    inputs = ", ".join(f"{n} {model.input_types[i]}{model.input_shape[n]}" for i, n in enumerate(model.input_names))
    return weights, inputs, model.dataset_name or "generated"


def run_one(name: str, task, args, work: Path) -> tuple[str, str, float]:
    """(status, QPS or refusal, wall seconds) of one task at its first batch size."""
    workload = task.workload.model_dump(mode="json", exclude_none=True)
    workload.update(
        batch_sizes=workload["batch_sizes"][:1],
        test_accuracy=False,
        test_numeric=False,
        engine=args.engine,
        precision=args.precision,
        max_seconds=args.seconds,
        min_seconds=min(workload.get("min_seconds", 0), args.seconds),
    )
    path = work / f"{name}.json"
    path.write_text(json.dumps(workload), encoding="utf-8")
    out = work / "reports"
    start = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "core.perf_engine",
            "--hardware_type",
            "CPU",
            "--task",
            str(path),
            "--output-dir",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        line = (errors or proc.stderr.splitlines()[-1:] or ["?"])[0]
        return f"refused (exit {proc.returncode})", line.split(".json: ", 1)[-1], seconds
    report = json.loads(
        max((out / "CPU" / task.model.model).glob("result-*.json"), key=lambda p: p.stat().st_mtime).read_text(
            encoding="utf-8"
        )
    )
    row = PerfRow.from_dict(report["Performance"][0])
    ran = report.get("Graph Compile", {}).get("Compile Precision", "")
    if not row.ok:
        return f"failed ({ran})", f"bs {row.bs}: {row.error}", seconds
    return f"ok ({ran})", f"bs {row.bs}: {row.qps:.2f} QPS, p50 {row.p50_latency:.0f} ms", seconds


def main(argv=None) -> int:
    args = parse_args(argv)
    host = host_info()
    print(f"host: {host.get('cpu', '?')}, {host.get('cores', '?')} cores, ISA {cpu_isa().summary()}")
    print(f"engine {args.engine}, precision {args.precision}, first batch size, performance only\n")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.tasks.split(","):
            task = registry.load_task(name)
            weights, inputs, dataset = what_runs(task)
            status, result, seconds = run_one(name, task, args, Path(tmp))
            rows.append((name, weights, inputs, dataset, status, result, seconds))
            print(f"  {name}: {status}: {result} ({seconds:.0f} s)", flush=True)
    print("\n| workload | weights offline | inputs | dataset | status | first batch size |")
    print("|---|---|---|---|---|---|")
    for name, weights, inputs, dataset, status, result, _ in rows:
        print(f"| {name} | {weights} | {inputs} | {dataset} | {status} | {result} |")
    ran = sum(1 for row in rows if row[4].startswith("ok"))
    print(f"\n{ran} of {len(rows)} ran offline on {cpu_isa().summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
