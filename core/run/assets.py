"""Stage: the run's real assets (model files, datasets), installed when the network allows."""

from __future__ import annotations

from typing import Any

from core.common import console
from core.run.context import RunContext


def prepare_assets(run: RunContext) -> list[dict[str, Any]]:
    """Install missing real assets when the network allows; otherwise say so and go on with fallbacks."""
    from core.assets import ensure_assets, network_available, offline_forced, resolve_base_url
    from core.config.registry import dataset_assets

    workload, model = run.workload, run.model
    specs = list(model.assets)
    if model.dataset_name and (workload.test_accuracy or workload.test_numeric):
        specs += dataset_assets(model.dataset_name)
    if not specs:
        return []
    allow = not run.options.offline and not offline_forced()
    statuses = ensure_assets(specs, allow_network=False)  # cheap: looks at the disk only
    if allow and not all(s.usable for s in statuses):
        # One quick probe for the whole run, so an offline machine answers in seconds.
        if network_available(resolve_base_url(), timeout=3.0):
            statuses = ensure_assets(specs, allow_network=True)
        else:
            console.warn(
                "network unreachable: using what is on disk (synthetic weights / bundled samples where missing)"
            )
    missing = [s.name for s in statuses if not s.usable]
    if missing:
        console.info(
            f"assets not installed: {', '.join(missing)} "
            f"(install with: python -m core.prepare --task {run.task.workload_file.stem})"
        )
    return [
        {
            "name": s.name,
            "state": s.state,
            "path": str(s.path) if s.path else None,
            "sha256": s.sha256,
            "message": s.message,
        }
        for s in statuses
    ]
