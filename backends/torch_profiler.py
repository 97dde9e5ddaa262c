"""torch.profiler over a few calls, as the PyTorch engines (CPU's pytorch, the GPU backend) hand it back.

Self times per op and input shapes: they add up to the time spent inside operators, with no parent op
counted twice. On a GPU the CUDA activities are recorded too and the kernels' device time is what counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from core.measure.operators import OpEvent, RawProfile


def torch_profile(
    engine: str, call: Callable[[], object], calls: int, folder: Path, *, cuda: bool = False, sync=None
) -> RawProfile:
    import torch
    from torch.profiler import ProfilerActivity, profile

    folder.mkdir(parents=True, exist_ok=True)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    call()  # warm-up outside the profile
    if sync is not None:
        sync()
    with profile(activities=activities, record_shapes=True, with_flops=True) as prof:
        start = time.perf_counter()
        for _ in range(calls):
            call()
        if sync is not None:
            sync()
        wall = time.perf_counter() - start
    trace = folder / f"{engine}_torch_profiler.json"
    prof.export_chrome_trace(str(trace))
    events = []
    for average in prof.key_averages(group_by_input_shape=True):
        micros = average.self_device_time_total if cuda else average.self_cpu_time_total
        if micros <= 0:
            continue
        shapes = str(average.input_shapes)[:100] if average.input_shapes else ""
        flops = float(average.flops) if getattr(average, "flops", 0) else None
        events.append(OpEvent(f"{average.key} {shapes}".strip(), average.key, float(micros), int(average.count), flops))
    what = "device" if cuda else "CPU"
    return RawProfile(
        engine,
        f"torch.profiler {torch.__version__} ({what} self time per op and input shape)",
        calls,
        wall,
        events,
        trace,
        note="FLOP/s of a type only where torch's profiler counts every op of it (mm, addmm, bmm, conv)",
    )
