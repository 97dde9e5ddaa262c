"""perfbench core: configuration, measurement, orchestration and reports."""

import os as _os
import sys as _sys
from importlib import util as _util
from pathlib import Path as _Path


def _claim_datasets_package() -> None:
    """Make this project's top-level `datasets` the one imported, whatever else is installed.

    The project layout fixes the name `datasets/`, which Hugging Face's `datasets` library also uses.
    perfbench never uses that library; when it is installed beside us (common in ML environments),
    an editable install's finder would lose to it outside the repository root. So the first import of
    `core` binds the name to our package explicitly. A process that already imported Hugging Face's
    `datasets` cannot also use ours: that is refused with a message instead of failing later.
    """
    ours = _Path(__file__).resolve().parent.parent / "datasets"
    loaded = _sys.modules.get("datasets")
    if loaded is not None:
        if _Path(getattr(loaded, "__file__", "") or "").resolve().parent != ours:
            raise ImportError(
                f"the `datasets` module already imported ({getattr(loaded, '__file__', '?')}) is not "
                f"perfbench's ({ours}): import core before Hugging Face `datasets`, or run perfbench in "
                "its own process"
            )
        return
    spec = _util.spec_from_file_location("datasets", ours / "__init__.py", submodule_search_locations=[str(ours)])
    module = _util.module_from_spec(spec)
    _sys.modules["datasets"] = module
    spec.loader.exec_module(module)


_claim_datasets_package()


def _silence_openvino_telemetry() -> None:
    """Keep OpenVINO's usage telemetry out of every run: runs never reach for the network.

    Importing `openvino` (its ovc tools) and NNCF's quantizer send Google Analytics events through
    `openvino_telemetry` unless CI=true or the user opted out in a consent file under their home; on a
    machine without DNS the forked senders then hold the process open at exit. Both fall back to their
    own no-op stubs when that module cannot be imported, so it is made unimportable in our processes
    (nothing of the user's is changed). A process that imported it before `core` keeps its choice.
    """
    _sys.modules.setdefault("openvino_telemetry", None)


_silence_openvino_telemetry()


def _hub_offline_by_default() -> None:
    """Runs read Hugging Face files from local folders and the cache only, yet huggingface_hub reaches for
    the Hub on its own (it fetches an "agent harnesses" registry when it builds an HTTP session, even for
    local_files_only loads). So every perfbench process starts hub-offline unless the user set
    HF_HUB_OFFLINE; core.prepare, the one command that downloads, lifts it (core.assets.install)."""
    from core.common.paths import HUB_OFFLINE_DEFAULT

    if "HF_HUB_OFFLINE" not in _os.environ:
        _os.environ["HF_HUB_OFFLINE"] = "1"
        _os.environ[HUB_OFFLINE_DEFAULT] = "1"


_hub_offline_by_default()
