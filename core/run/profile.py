"""Stage (--profile): where the time went. After every timed window, a few calls at one batch size run under
the engine's own profiler; the events become the report's `Profile` section in one vocabulary, and the raw
trace is kept under runs/<run id>-profile/ (Chrome trace format: Perfetto opens it).

A profiler slows what it watches, so its calls are never the timed ones: the section says by how much
(profiled call time against the timed median), and one more than 1.3x slower is marked unrepresentative.
The profiled calls run with the instances and threads the timed rows ran with (with several clients, one
instance's threads): all threads in one call where the timed rows split them made every short operator
wait at a thread barrier on a shared host (ALBERT on PyTorch: profiled 2.9x the timed call, elementwise
ops at 31%). An engine without a profiler, or one that fails, leaves a one-line note instead of failing
the run.
"""

from __future__ import annotations

import logging
import os

from core.common import console
from core.common.errors import UserError
from core.measure.operators import OUTSIDE, normalize
from core.run.context import RunContext

log = logging.getLogger(__name__)

PROFILE_SECONDS = 3.0  # about this long under the profiler, in 3 to 20 calls
MIN_CALLS, MAX_CALLS = 3, 20


def profile_batch_size(run: RunContext) -> int | None:
    """The batch size --profile will profile, checked before anything is measured (None: no profile)."""
    if not run.workload.profile:
        return None
    chosen = run.workload.profile_batch_size or run.batch_sizes[0]
    if chosen not in run.batch_sizes:
        raise UserError(
            f"batch size {chosen} is not among those measured ({', '.join(map(str, run.batch_sizes))})",
            field="--profile-batch-size",
            fix="profile one of the measured batch sizes, or add it to --batch-sizes",
        )
    return chosen


def profile_calls(timed_ms: float | None) -> int:
    """Calls to profile: about PROFILE_SECONDS of them at the timed speed, within MIN_CALLS..MAX_CALLS."""
    return MIN_CALLS if not timed_ms else int(min(MAX_CALLS, max(MIN_CALLS, PROFILE_SECONDS * 1e3 / timed_ms)))


def profile_run(run: RunContext, runtime, batch_size: int) -> None:
    row = run.report.perf_by_bs.get(batch_size)
    # What one timed call took (with several clients, beside the others): what a profiled call is held against.
    timed_ms = row.p50_latency if row is not None and row.ok else None
    calls = profile_calls(timed_ms)
    kept = run.folder() / "runs"
    folder = kept / f"{run.report.run_id}-profile"
    try:
        runtime.load(batch_size)
        runtime.instances(run.workload.clients)  # the timed rows' instances and threads; one instance is profiled
        settings = runtime.settings()
        with console.status(f"profiling {calls} calls at batch size {batch_size}"):
            raw = runtime.profile(run.sample_feeds(batch_size), calls, folder)
    except NotImplementedError as err:
        run.report.sections["Profile"] = {"Batch Size": batch_size, "Note": str(err)}
        console.info(f"profile: {err}")
        return
    except UserError:
        raise
    except Exception as err:  # a profiler is an extra: its failure is a note, never a failed run
        log.debug("profiler failed", exc_info=True)
        note = f"the profiler failed: {type(err).__name__}: {err}"[:300]
        run.report.sections["Profile"] = {"Batch Size": batch_size, "Note": note}
        console.warn(f"profile: {note}")
        return
    work = run.roofline.work if run.roofline else None
    section = normalize(
        raw,
        batch_size=batch_size,
        timed_ms=timed_ms,
        work_gflop=work.gflop_per_sample if work else None,
        work_by_type=work.by_type if work else None,
    )
    if raw.trace is not None:
        section["Trace"] = os.path.relpath(raw.trace, run.folder())
    section["Runtime"] = settings
    run.report.sections["Profile"] = section
    shown = ", ".join(
        f"{entry['Type']} {entry['Share']:.0%}"
        for entry in section["Types"][:5]
        if entry["Share"] is not None and entry["Type"] != OUTSIDE
    )
    overhead = section.get("Profiler Overhead")
    console.info(
        f"profile at batch size {batch_size} ({raw.profiler}, {calls} calls): {shown}"
        + (f"; a profiled call took {1 + overhead:.2f}x a timed one" if overhead is not None else "")
    )
    if section.get("Warning"):
        console.warn(f"profile: {section['Warning']}")
    if raw.trace is not None:
        console.path_line("profile trace", raw.trace)
