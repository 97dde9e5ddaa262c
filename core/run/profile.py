"""Stage (--profile): where the time went. After every timed window, a few calls at one batch size run under
the engine's own profiler; the events become the report's `Profile` section in one vocabulary, and the raw
trace is kept under runs/<run id>-profile/ (Chrome trace format: Perfetto opens it).

A profiler slows what it watches, so its calls are never the timed ones: the section says by how much
(profiled call time against the timed median). An engine without a profiler, or one that fails, leaves
a one-line note instead of failing the run.
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


def profile_run(run: RunContext, runtime, batch_size: int) -> None:
    row = run.report.perf_by_bs.get(batch_size)
    timed_ms = None
    if row is not None and row.ok:
        # Several clients share the cores: a call's latency is theirs, the window's time per call is comparable.
        timed_ms = row.p50_latency if not row.clients else round(row.bs / row.qps * 1e3, 4)
    calls = MIN_CALLS if not timed_ms else int(min(MAX_CALLS, max(MIN_CALLS, PROFILE_SECONDS * 1e3 / timed_ms)))
    kept = run.folder() / "runs"
    folder = kept / f"{run.report.run_id}-profile"
    try:
        runtime.load(batch_size)
        runtime.instances(1)  # one client, all threads: what a single timed call had
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
    work = run.roofline.work.gflop_per_sample if run.roofline else None
    section = normalize(raw, batch_size=batch_size, timed_ms=timed_ms, work_gflop=work)
    if raw.trace is not None:
        section["Trace"] = os.path.relpath(raw.trace, run.folder())
    run.report.sections["Profile"] = section
    shown = ", ".join(
        f"{entry['Type']} {entry['Share']:.0%}"
        for entry in section["Types"][:5]
        if entry["Share"] is not None and entry["Type"] != OUTSIDE
    )
    overhead = section.get("Profiler Overhead")
    console.info(
        f"profile at batch size {batch_size} ({raw.profiler}, {calls} calls): {shown}"
        + (f"; the profiler added {overhead:+.0%} to a call" if overhead is not None else "")
    )
    if raw.trace is not None:
        console.path_line("profile trace", raw.trace)
