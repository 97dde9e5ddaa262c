"""Model and dataset assets: typed specs, safe downloads, verified installs.

`ensure_assets` is what the runner calls; `python -m core.prepare` is the command-line front end.
"""

from core.assets.download import NetOptions, network_available, offline_forced
from core.assets.install import AssetStatus, asset_status, ensure_assets, resolve_base_url
from core.assets.spec import DEFAULT_BASE_URL, AssetSpec

__all__ = [
    "DEFAULT_BASE_URL",
    "AssetSpec",
    "AssetStatus",
    "NetOptions",
    "asset_status",
    "ensure_assets",
    "network_available",
    "offline_forced",
    "resolve_base_url",
]
