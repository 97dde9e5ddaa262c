"""How long measuring will take, before it starts, and how a time budget is shared among batch sizes.

The estimate rests on a rate already timed in the run (the engine selection's brief timing, the accuracy
pass, or the batch size measured last) and on the workload's stop rules, which are deterministic given a
call's duration: warm-up stops after `warmup_iterations` calls or `warmup_seconds`; the timed window after
`iterations` calls and `min_seconds`, or at `max_seconds`. Without a rate, the stop rules' caps bound it.
"""

from __future__ import annotations

import math
from dataclasses import replace

from core.measure.timing import MeasurePolicy


def call_seconds(seconds_per_item: float, batch_size: int, clients: int) -> float:
    """One call's latency as each of `clients` concurrent callers sees it, at a steady items-per-second rate."""
    return seconds_per_item * batch_size * clients


def _calls_until(seconds: float, call: float) -> int:
    """Calls of `call` seconds until `seconds` have passed (the stop rules check after each call)."""
    return max(1, math.ceil(seconds / call - 1e-9)) if call > 0 else 1


def warmup_estimate(call: float, policy: MeasurePolicy) -> float:
    """Warm-up's length: at least one call; stops after `warmup_iterations` calls or the first call that
    ends past `warmup_seconds` (clients warm up side by side, so one client's calls are the length)."""
    return min(policy.warmup_iterations, _calls_until(policy.warmup_seconds, call)) * call


def window_estimate(seconds_per_item: float, batch_size: int, clients: int, policy: MeasurePolicy) -> float:
    """The timed window's length: until `min_iterations` calls of all clients together and `min_seconds`,
    or the first call past `max_seconds`; never shorter than one call per client. With several clients the
    window closes only once the calls in flight when the rule was met have returned: one call more."""
    step = seconds_per_item * batch_size  # between two completions, all clients together
    enough = max(policy.min_iterations, _calls_until(policy.min_seconds, step)) * step
    capped = _calls_until(policy.max_seconds, step) * step
    call = call_seconds(seconds_per_item, batch_size, clients)
    return max(call, min(enough, capped)) + (call if clients > 1 else 0.0)


def batch_estimate(seconds_per_item: float | None, batch_size: int, clients: int, policy: MeasurePolicy) -> float:
    """Warm-up plus timed window for one batch size; without a rate, the stop rules' caps."""
    if seconds_per_item is None:
        return policy.warmup_seconds + policy.max_seconds
    call = call_seconds(seconds_per_item, batch_size, clients)
    return warmup_estimate(call, policy) + window_estimate(seconds_per_item, batch_size, clients, policy)


def budget_policy(
    policy: MeasurePolicy,
    remaining_seconds: float,
    batch_sizes_left: int,
    seconds_per_item: float | None,
    batch_size: int,
    clients: int,
) -> MeasurePolicy:
    """The policy of the next batch size under a time budget: an equal share of what is left of it, less the
    expected warm-up, caps the timed window (never above the workload's own cap). A share too small for one
    call still gets one call per client: the budget is then overrun, and the row says so in its stop reason."""
    share = max(0.0, remaining_seconds) / max(1, batch_sizes_left)
    warmup = warmup_estimate(call_seconds(seconds_per_item, batch_size, clients), policy) if seconds_per_item else 0.0
    cap = max(0.0, share - warmup)
    if cap >= policy.max_seconds:
        return policy
    # min_seconds stays: when it is above the cap, the budget is what ends the window, and the row says so.
    return replace(
        policy,
        max_seconds=cap,
        warmup_seconds=min(policy.warmup_seconds, max(share / 4, 1e-3)),
        cap_reason="time budget",
    )
