"""Stage (--profile on an LLM task): where a prefill's and a decode step's time went, after the timed windows.

The first load point is profiled (`--batch-sizes` picks it): prefills of one prompt at the point's input length,
then decode steps of the point's batch, every slot at the contexts the timed run decoded at, under torch.profiler
with the threads the rows ran with. Each phase becomes a profile in the encoders' shape (core.measure.operators:
types, top nodes, shares of the profiled call) held against the row's own timing, as encoder profiles are: the
profiled prefill against the row's Prefill Time (TTFT less its queue), the profiled step against the row's decode
step (Decode Model Time over its steps); a phase more than 1.3x its timed figure is marked unrepresentative.
TTFT and TPOT sit beside them. The transformers engine is profiled by torch.profiler, OpenVINO by its performance
counters (a second compile with PERF_COUNT, every infer request a step runs), llama.cpp by ggml's eval callback
(each node run on its own and timed), onnxruntime-genai by onnxruntime's session profiling (a second load of the
model, profiling on); an engine without a profiler gets a note. A profiler is an extra: its failure is a note,
never a failed run.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from core.common import console
from core.measure.operators import normalize
from core.reporting.llm_profile import PHASES, print_llm_profile
from core.reporting.llm_rows import LlmRow
from core.run.context import RunContext
from core.run.profile import profile_calls

log = logging.getLogger(__name__)

SECTION = "Profile"
# At most this many prefills and as many decode steps: torch takes seconds to tabulate 20 tiny steps' events.
MAX_CALLS = 10


def profile_llm(run: RunContext, module, engine: str, points: list, roof=None) -> None:
    """The report's Profile section for the first load point, shown on the console."""
    point = points[0]
    row = next((r for r in run.report.llm_rows if r.point == _key(point)), None)
    head: dict[str, Any] = {"Engine": engine, "Load Point": row.label if row else _label(point)}
    if not _is_torch(module) and not hasattr(module, "profiling_engine"):
        head["Note"] = f"{engine} has no operator profiler here (profile the same weights with --engine transformers)"
        run.report.sections[SECTION] = head
        console.info(f"profile: {head['Note']}")
        return
    folder = run.folder() / "runs" / f"{run.report.run_id}-profile"
    try:
        with console.status(f"profiling a prefill and decode steps at {head['Load Point']}"):
            work = roof.work if roof else None
            phases = profile_phases(module, point, row, work, folder, run.workload.seed, engine)
    except Exception as err:  # a profiler is an extra: its failure is a note, never a failed run
        log.debug("LLM profiler failed", exc_info=True)
        head["Note"] = f"the profiler failed: {type(err).__name__}: {err}"[:300]
        run.report.sections[SECTION] = head
        console.warn(f"profile: {head['Note']}")
        return
    import torch

    section = {**head, "Threads": torch.get_num_threads(), **phases}
    for phase in PHASES:
        trace = section.get(phase, {}).get("Trace")
        if trace:
            section[phase]["Trace"] = os.path.relpath(trace, run.folder())
    run.report.sections[SECTION] = section
    print_llm_profile(section)
    for phase in PHASES:
        if section.get(phase, {}).get("Warning"):
            console.warn(f"profile, {phase.lower()}: {section[phase]['Warning']}")
    if folder.is_dir():
        console.path_line("profile traces", folder)


def profile_phases(
    module, point, row: LlmRow | None, work, folder, seed: int = 0, name: str = "transformers"
) -> dict[str, Any]:
    """{"Prefill": section, "Decode": section} of engine `name` serving `module` (a transformers module, under
    torch.profiler; or a converted model with a `profiling_engine`, under its own profiler) at `point`, each in
    operators.normalize's shape plus what it is held against."""
    import numpy as np

    n, batch, steps = point.input_tokens, point.batch_size, point.output_tokens - 1
    engine, collect, rewinds = _profiled_engine(module, batch, n + point.output_tokens, folder)
    rng = np.random.default_rng(seed)
    prompts = [rng.integers(0, int(module.config.vocab_size), n).tolist() for _ in range(batch)]
    timed_prefill = row.prefill.avg if row is not None and row.ok and row.prefill else None
    raw = collect(
        f"{_slug(name)}-prefill", lambda: engine.prefill(0, prompts[0]), min(MAX_CALLS, profile_calls(timed_prefill))
    )
    gflop = work.prefill_flops(n) / 1e9 if work is not None else None
    prefill = normalize(raw, batch_size=1, timed_ms=timed_prefill, work_gflop=gflop)
    prefill.update(
        {
            "Engine": name,
            "Input Tokens": n,
            "Timed Against": "the row's Prefill Time AVG (TTFT less its queue)",
            "Row TTFT AVG": row.ttft.avg if row is not None and row.ttft else None,
        }
    )
    out: dict[str, Any] = {"Prefill": prefill}
    if steps < 1:
        out["Decode"] = {"Note": "one output token: no decode step to profile"}
        return out
    tokens = [engine.prefill(slot, prompts[slot]) for slot in range(batch)]
    slots = list(range(batch))
    last = n + steps  # the timed run's last step leaves a request at this length

    def step() -> None:
        if rewinds and engine.lengths[0] >= last:  # back to the prompt's end: the contexts the timed run decoded at
            for slot in slots:
                engine.lengths[slot] = n
        tokens[:] = engine.decode(slots, tokens)

    timed_step = row.roofline.decode_step_ms if row is not None and row.ok and row.roofline else None
    if timed_step is None and row is not None and row.ok and row.server and row.server.decode_model_avg:
        timed_step = row.server.decode_model_avg / steps  # the same figure where no roofline was measured
    calls = min(MAX_CALLS, profile_calls(timed_step))
    if not rewinds:  # a KV state that cannot be cut back: the warm-up and the calls stay within the steps
        calls = max(1, min(calls, steps - 1))
    raw = collect(f"{_slug(name)}-decode", step, calls)
    decode = normalize(raw, batch_size=batch, timed_ms=timed_step, work_gflop=None)
    decode.update(
        {
            "Engine": name,
            "Contexts": f"{n} to {last - 1} tokens, as the timed run decoded",
            "Timed Against": f"the row's Decode Model Time AVG over its {steps} steps",
            "Row TPOT AVG": row.tpot.avg if row is not None and row.tpot else None,
        }
    )
    out["Decode"] = decode
    return out


def _profiled_engine(module, slots: int, max_len: int, folder):
    """(engine, collect(label, call, calls) -> RawProfile, whether its slots can be rewound to an earlier length)
    for `module`: the transformers slot engine under torch.profiler, or a converted model's profiling engine."""
    if not _is_torch(module):
        engine = module.profiling_engine(slots, max_len)
        return engine, lambda label, call, calls: engine.profile(label, call, calls, folder), False
    import torch

    from backends.llm_transformers import SlotEngine
    from backends.torch_profiler import torch_profile

    engine = SlotEngine(module, slots=slots, max_len=max_len)
    cuda = engine.device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else None

    def collect(label, call, calls):
        return torch_profile(label, call, calls, folder, cuda=cuda, sync=sync)

    return engine, collect, True


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name)


def _is_torch(module) -> bool:
    import torch

    return isinstance(module, torch.nn.Module)


def _key(point) -> tuple[int, int, int, int, float]:
    return (point.tp_size, point.batch_size, point.input_tokens, point.output_tokens, point.rate or 0.0)


def _label(point) -> str:
    return f"bs {point.batch_size}, {point.input_tokens} in, {point.output_tokens} out"
