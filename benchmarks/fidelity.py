"""Can two runs be told apart from noise? The same configuration run five times in one process, and three
runs pinned to half the threads between them, all on one compiled tiny model.

    python benchmarks/fidelity.py                    # 3-7 minutes on 2 cores
    python benchmarks/fidelity.py --seconds 2 --runs 3 --half-runs 2 --batch-sizes 8,16

Prints, host ISA first and ratios last:
- coverage: how often a run's 95% QPS interval holds the median QPS of the other runs (target >= 80% of rows);
- identical runs: what `compare --threshold` says of each pair of consecutive identical runs (target: no row
  flagged);
- half the threads: compare of the first run against the first run with half the intra-op threads (target:
  every batch size's QPS flagged slower);
- the same two questions with several runs a side (`compare A1,A2,A3 B1,B2,B3`: the test over runs, whose
  spread is the run-to-run noise measured): the identical runs split in two halves (target: no row flagged),
  and all of them against the half-thread runs (target: every row flagged slower);
- how far the speed moved inside each window (per-second call rate, max/min), to tell drift a run's interval
  can see from a shift between runs, which it cannot.
The model is tiny (2 layers, hidden 32, seq 128) so the five runs take minutes; the batch sizes are large
enough that a call is compute, not overhead (at batch size 4 one thread is as fast as two here), or half the
threads would not be slower. It also prints the threshold at which identical runs flag no QPS row: on a
machine whose speed shifts between runs, that is the smallest --threshold worth using there.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TASK = "tiny-bert-squad"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="identical runs (at least 4)")
    parser.add_argument("--half-runs", type=int, default=3, help="runs at half the threads (at least 2)")
    parser.add_argument("--batch-sizes", default="8,16")
    parser.add_argument("--seconds", type=float, default=8.0, help="timed window per batch size (min and max)")
    parser.add_argument("--threshold", type=float, default=5.0, help="compare's threshold, percent")
    return parser.parse_args(argv)


def workload_file(folder: Path, name: str, batch_sizes: list[int], seconds: float, threads: int) -> Path:
    """The tiny task's workload, measuring only: fixed windows, a pinned engine and thread count."""
    import yaml

    from core.config import registry

    data = yaml.safe_load(registry.load_task(TASK).workload_file.read_text())
    data.update(
        test_accuracy=False,
        test_numeric=False,
        batch_sizes=batch_sizes,
        iterations=1,
        warmup_iterations=20,
        warmup_seconds=1.0,
        min_seconds=seconds,
        max_seconds=seconds,
        engine="onnxruntime",
        precision="FP32",
        engine_options={"intra_op_threads": threads},
    )
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run(path: Path, out: Path):
    """One run through the runner, read back as compare reads it (with its kept samples)."""
    from core.config import registry
    from core.reporting.report_io import read_report, samples_file
    from core.run.runner import RunOptions, run_task

    report = run_task(registry.load_task(str(path)), RunOptions(hardware_type="CPU", output_dir=out, offline=True))
    kept = report.written.parent / "runs" / f"{report.run_id}.json"
    back = read_report(kept)[1]
    assert back.samples, f"no samples read back from {samples_file(back)}"
    return back


def flagged_rows(base, other, threshold: float) -> tuple[list[str], list[str], float]:
    """compare's regressions of `other` against `base`, each QPS row's verdict, and the largest change
    among its QPS regressions (the threshold that would have let them pass)."""
    from core.reporting.comparison import build_comparison

    cmp = build_comparison([base, other], ["a", "b"], threshold)
    verdicts = [f"bs {row.bs} {row.verdicts[1].text()}" for row in cmp.perf if row.metric == "QPS" and row.verdicts[1]]
    largest = max((abs(r.change) for r in cmp.regressions if r.metric == "QPS" and r.change is not None), default=0.0)
    return [f"bs {r.bs} {r.metric}" for r in cmp.regressions], verdicts, largest


def window_drift(samples_ns, bin_seconds: float = 1.0) -> float:
    """How far the machine's speed moved inside one timed window: the max / min of the call rate per
    `bin_seconds` of back-to-back calls (one client). Near 1 on a quiet machine; a shift between runs that
    this does not show happened between the windows, where no within-run interval can see it."""
    import numpy as np

    seconds = np.asarray(samples_ns, dtype=np.float64) / 1e9
    bins = (np.cumsum(seconds) // bin_seconds).astype(int)
    counts, busy = np.bincount(bins), np.bincount(bins, weights=seconds)
    rates = counts[counts >= 3] / busy[counts >= 3]
    return float(rates.max() / rates.min()) if rates.size >= 2 else float("nan")


def main(argv=None) -> int:
    from core.common import console
    from core.measure.host import cpu_isa, cpu_model, usable_cores
    from core.reporting.pooled import pool_runs

    args = parse_args(argv)
    if args.runs < 4 or args.half_runs < 2:
        raise SystemExit("--runs must be at least 4 and --half-runs at least 2 (two runs a side at least)")
    batch_sizes = sorted({int(b) for b in args.batch_sizes.split(",")})
    threads = usable_cores()
    isa = cpu_isa()
    print(f"host: {cpu_model()}, ISA {isa.summary()}, {threads} threads; model {TASK}, batch sizes {batch_sizes}")
    threshold = args.threshold / 100
    with tempfile.TemporaryDirectory(prefix="fidelity-") as tmp:
        folder = Path(tmp)
        same = workload_file(folder, "same", batch_sizes, args.seconds, threads)
        half = workload_file(folder, "half", batch_sizes, args.seconds, max(1, threads // 2))
        console.console.quiet = True  # the runs' own lines would bury the figures
        try:
            # Interleaved, so both kinds of run span the same stretch of the machine's drift.
            runs, slow_runs = [], []
            for i in range(args.runs):
                runs.append(run(same, folder / "reports"))
                if i < args.half_runs:
                    slow_runs.append(run(half, folder / "reports"))
        finally:
            console.console.quiet = False
    slow = slow_runs[0]

    print("\n--- QPS per run, with its 95% interval ---")
    covered, rows = 0, 0
    for bs in batch_sizes:
        qps = [r.perf_by_bs[bs].qps for r in runs]
        cells = []
        for i, r in enumerate(runs):
            low, high = r.perf_by_bs[bs].qps_interval() or (float("nan"), float("nan"))
            others = statistics.median(q for j, q in enumerate(qps) if j != i)
            hit = low <= others <= high
            covered, rows = covered + hit, rows + 1
            cells.append(f"{qps[i]:.0f} [{low:.0f}-{high:.0f}]{'' if hit else '*'}")
        print(f"bs {bs:>3}: " + "  ".join(cells) + f"   (half threads: {slow.perf_by_bs[bs].qps:.0f})")
    print("(* the interval misses the median of the other runs)")
    for bs in batch_sizes:
        drifts = "  ".join(f"{window_drift(r.samples[bs]):.2f}x" for r in runs)
        print(f"bs {bs:>3}: the speed inside each run's window, per-second rate max/min: {drifts}")

    print("\n--- compare on identical runs (consecutive pairs) ---")
    identical_flags, needed = 0, 0.0
    for i in range(1, len(runs)):
        flags, verdicts, largest = flagged_rows(runs[i - 1], runs[i], threshold)
        identical_flags, needed = identical_flags + len(flags), max(needed, largest)
        print(f"run {i} vs {i + 1}: {len(flags)} flagged {flags or ''}; " + "; ".join(verdicts))
    print("\n--- compare: full threads vs half ---")
    flags, verdicts, _ = flagged_rows(runs[0], slow, threshold)
    slower = [bs for bs in batch_sizes if f"bs {bs} QPS" in flags]
    print("; ".join(verdicts))
    print("\n--- compare over runs (each side the mean of several, tested on the runs' spread) ---")
    halves = pool_runs(runs[: len(runs) // 2], "first"), pool_runs(runs[len(runs) // 2 :], "second")
    pooled_identical, verdicts, _ = flagged_rows(*halves, threshold)
    print(f"identical runs, first {len(runs) // 2} vs the other {len(runs) - len(runs) // 2}: " + "; ".join(verdicts))
    pooled_flags, verdicts, _ = flagged_rows(pool_runs(runs, "full"), pool_runs(slow_runs, "half"), threshold)
    pooled_slower = [bs for bs in batch_sizes if f"bs {bs} QPS" in pooled_flags]
    print(f"{len(runs)} full-thread runs vs {len(slow_runs)} half-thread runs: " + "; ".join(verdicts))
    # The threshold this host needs: just above the largest QPS change compare flagged between identical runs.
    quiet = max(threshold, math.ceil(needed * 100 + 1e-9) / 100)
    slower_at_quiet = [bs for bs in batch_sizes if f"bs {bs} QPS" in flagged_rows(runs[0], slow, quiet)[0]]

    print(f"\n--- ratios (host ISA {isa.summary()}, threshold {args.threshold:g}%) ---")
    share = covered / rows
    print(f"QPS intervals holding the others' median: {covered}/{rows} = {share:.0%} (target >= 80%)")
    print(f"rows flagged on identical runs: {identical_flags} (target 0)")
    print(f"batch sizes flagged slower at half the threads: {len(slower)}/{len(batch_sizes)} (target all)")
    for bs in batch_sizes:
        spread = max(r.perf_by_bs[bs].qps for r in runs) / min(r.perf_by_bs[bs].qps for r in runs)
        ratio = slow.perf_by_bs[bs].qps / runs[0].perf_by_bs[bs].qps
        print(f"  bs {bs}: identical runs' QPS max/min = {spread:.2f}x; half-thread QPS / full = {ratio:.2f}x")
    print(
        f"threshold at which identical runs flag no QPS row on this host: {quiet:.0%}; there, half threads "
        f"flagged slower on {len(slower_at_quiet)}/{len(batch_sizes)} batch sizes"
    )
    print(
        f"over runs: rows flagged on identical runs {len(pooled_identical)} (target 0); batch sizes flagged "
        f"slower at half the threads {len(pooled_slower)}/{len(batch_sizes)} (target all)"
    )
    met = share >= 0.8 and identical_flags == 0 and len(slower) == len(batch_sizes)
    pooled_met = not pooled_identical and len(pooled_slower) == len(batch_sizes)
    print(
        f"one run a side: {'all targets met' if met else 'a target is missed'}; "
        f"several runs a side: {'all targets met' if pooled_met else 'a target is missed'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
