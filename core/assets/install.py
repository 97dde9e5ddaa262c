"""Make assets present: check, download, verify, extract to a staging folder, then move into place.

The move is all-or-nothing: files are checked for conflicts first, moved with os.replace (whole new
sub-trees at once), and moved back if anything fails. Existing files the asset did not install are never
overwritten, so an archive can be merged into a folder that also holds code (datasets/open_squad/).
"""

from __future__ import annotations

import filecmp
import hashlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from core.assets.download import NetOptions, download, network_available, offline_forced
from core.assets.extract import DEFAULT_MAX_EXTRACT_BYTES, extract_archive
from core.assets.lockfile import file_lock, read_lock, update_lock
from core.assets.spec import DEFAULT_BASE_URL, AssetSpec
from core.common.digest import file_sha256
from core.common.errors import UserError
from core.common.paths import REPO_ROOT, state_dir

log = logging.getLogger(__name__)

# present: installed by us and unchanged; unverified: present but placed by hand (no record);
# modified: differs from what we installed; installed: installed by this call; missing: absent.
State = Literal["present", "unverified", "modified", "installed", "missing"]
USABLE_STATES = ("present", "unverified", "installed")


@dataclass(frozen=True)
class AssetStatus:
    name: str
    state: State
    path: Path | None = None
    sha256: str | None = None
    message: str = ""

    @property
    def usable(self) -> bool:
        return self.state in USABLE_STATES


def resolve_base_url(base_url: str | None = None) -> str:
    """The archive host: the argument, else $PERFBENCH_BASE_URL, else ByteMLPerf's."""
    value = (base_url or os.environ.get("PERFBENCH_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UserError(
            f"base URL {value!r} is not an http(s) URL",
            field="base_url",
            fix="e.g. --base-url https://mirror.example/bytemlperf-zoo or PERFBENCH_BASE_URL=...",
        )
    return value


def asset_status(spec: AssetSpec, *, root: Path = REPO_ROOT, deep: bool = False) -> AssetStatus:
    """What is there now, without touching the network. `deep` re-hashes installed files."""
    if spec.kind == "hf_snapshot":
        return _hf_status(spec)
    missing = [p for p in spec.provides if not (root / p).exists()]
    if missing:
        return AssetStatus(spec.name, "missing", root / missing[0], message=f"{missing[0]} not found")
    record = read_lock()["installed"].get(spec.name)
    dest = root / spec.dest
    if not record or record.get("root") != str(root):
        return AssetStatus(spec.name, "unverified", dest, message="present, not installed by perfbench")
    if spec.sha256 and record.get("sha256") != spec.sha256:
        return AssetStatus(
            spec.name, "modified", dest, record.get("sha256"), "installed from a different download than the spec names"
        )
    for rel, (size, digest) in record["files"].items():
        path = root / rel
        if not path.is_file() or path.stat().st_size != size or (deep and file_sha256(path) != digest):
            return AssetStatus(
                spec.name, "modified", dest, record.get("sha256"), f"{rel} changed since it was installed"
            )
    return AssetStatus(spec.name, "present", dest, record.get("sha256"), "verified" if deep else "")


def ensure_assets(
    specs: list[AssetSpec],
    *,
    allow_network: bool,
    base_url: str | None = None,
    root: Path = REPO_ROOT,
    net: NetOptions | None = None,
    max_extract_bytes: int = DEFAULT_MAX_EXTRACT_BYTES,
) -> list[AssetStatus]:
    """Install what is missing where the network allows; report the rest as missing without raising.

    Raises UserError for a failed download, a failed check or an unsafe archive; nothing is then installed.
    """
    if not root.is_dir():
        raise UserError("repository root not found", file=root)
    net = net or NetOptions()
    offline = not allow_network or offline_forced()
    statuses = []
    for spec in specs:
        with file_lock(f"asset-{spec.name}"):
            status = asset_status(spec, root=root)
            if status.usable:
                statuses.append(status)
                continue
            if spec.kind == "hf_snapshot":
                statuses.append(_hf_fetch(spec, offline, net))
                continue
            url = spec.resolved_url(resolve_base_url(base_url))
            if offline:
                statuses.append(
                    AssetStatus(spec.name, status.state, status.path, message=f"{status.message} (offline)")
                )
            elif not network_available(url, net.probe_timeout):
                statuses.append(
                    AssetStatus(
                        spec.name,
                        status.state,
                        status.path,
                        message=f"{status.message} ({urlsplit(url).netloc} unreachable)",
                    )
                )
            else:
                statuses.append(_install(spec, url, root, net, max_extract_bytes))
    return statuses


def _install(spec: AssetSpec, url: str, root: Path, net: NetOptions, max_extract_bytes: int) -> AssetStatus:
    lock = read_lock()
    pinned = lock["downloads"].get(spec.url, {})
    expected = spec.sha256 or pinned.get("sha256")
    key = hashlib.sha256(url.encode()).hexdigest()[:12]
    filename = Path(urlsplit(url).path).name or spec.name
    target = state_dir() / "downloads" / f"{key}-{filename}"
    got = download(url, target, sha256=expected, size=spec.size, options=net, label=spec.name)
    previous = lock["installed"].get(spec.name, {})
    ours = set(previous.get("files", {})) if previous.get("root") == str(root) else set()
    dest = root / spec.dest
    # Stage next to the deepest existing folder, so a failed install creates not even dest's parents.
    anchor = next(p for p in [dest, *dest.parents] if p.is_dir() or p == root)
    prefix = f".perfbench+{spec.name}+"  # '+' cannot occur in a name, so this matches only our own folders
    for stale in anchor.glob(f"{prefix}*"):  # left by a killed run; the asset lock rules out a live one
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=anchor))
    try:
        tree = staging / "tree"
        into = tree / dest.relative_to(anchor)
        into.mkdir(parents=True)
        if spec.kind == "archive":
            extract_archive(
                got.path,
                into,
                strip_components=spec.strip_components,
                include=spec.include,
                max_total_bytes=max_extract_bytes,
                source=url,
            )
        else:
            shutil.move(got.path, into / filename)
        files = sorted(p for p in tree.rglob("*") if p.is_file() and not p.is_symlink())
        for provided in spec.provides:
            if not (tree / (root / provided).relative_to(anchor)).exists() and not (root / provided).exists():
                raise UserError(
                    f"the download does not contain {provided}",
                    file=url,
                    field="provides",
                    fix="fix the asset's provides list or its url",
                )
        rel_root = anchor.relative_to(root)
        record = {
            "root": str(root),
            "url": url,
            "sha256": got.sha256,
            "size": got.size,
            "files": {(rel_root / p.relative_to(tree)).as_posix(): [p.stat().st_size, file_sha256(p)] for p in files},
        }
        _move_tree(tree, anchor, ours={root / rel for rel in ours}, source=url)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        got.path.unlink(missing_ok=True)
    if not spec.sha256 and not pinned:
        update_lock("downloads", spec.url, {"sha256": got.sha256, "size": got.size})
    update_lock("installed", spec.name, record)
    return AssetStatus(spec.name, "installed", dest, got.sha256)


def _move_tree(src: Path, dst: Path, *, ours: set[Path], source: str) -> None:
    """Merge `src` into `dst` atomically per entry; on any failure put everything back."""
    conflict = next(_conflicts(src, dst, ours), None)
    if conflict is not None:
        raise UserError(
            f"installing would overwrite {conflict}, which this asset did not install",
            file=source,
            fix=f"move {conflict} away (or delete it) and run again",
        )
    backup = src.parent / "replaced"
    backup.mkdir()
    journal: list[tuple[Path, Path]] = []  # (from, to) moves, undone in reverse order
    try:
        _move_entries(src, dst, backup, journal)
    except BaseException:
        for moved_from, moved_to in reversed(journal):
            os.replace(moved_to, moved_from)
        raise


def _conflicts(src: Path, dst: Path, ours: set[Path]):
    for entry in src.iterdir():
        target = dst / entry.name
        if not (target.exists() or target.is_symlink()):
            continue
        entry_is_dir = entry.is_dir() and not entry.is_symlink()
        target_is_dir = target.is_dir() and not target.is_symlink()
        if entry_is_dir and target_is_dir:
            yield from _conflicts(entry, target, ours)
        elif entry_is_dir or target_is_dir:
            yield target
        elif target not in ours and not (target.is_file() and filecmp.cmp(entry, target, shallow=False)):
            yield target


def _move_entries(src: Path, dst: Path, backup: Path, journal: list[tuple[Path, Path]]) -> None:
    for entry in sorted(src.iterdir()):
        target = dst / entry.name
        if entry.is_dir() and not entry.is_symlink() and target.is_dir() and not target.is_symlink():
            _move_entries(entry, target, backup, journal)
            continue
        if target.exists() or target.is_symlink():
            kept = backup / str(len(journal))
            os.replace(target, kept)
            journal.append((target, kept))
        os.replace(entry, target)
        journal.append((entry, target))


def _hf_status(spec: AssetSpec) -> AssetStatus:
    """Whether the snapshot is in the Hugging Face cache ($HF_HOME), checked without the network."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = Path(
            snapshot_download(
                spec.hf_repo_id, revision=spec.hf_revision, allow_patterns=spec.allow_patterns, local_files_only=True
            )
        )
    except LocalEntryNotFoundError:
        return AssetStatus(spec.name, "missing", message=f"{spec.hf_repo_id} not in the Hugging Face cache")
    missing = [p for p in spec.provides if not (folder / p).exists()]
    if missing:
        return AssetStatus(spec.name, "missing", folder, message=f"{missing[0]} not in the cached snapshot")
    return AssetStatus(spec.name, "present", folder)


def _hf_fetch(spec: AssetSpec, offline: bool, net: NetOptions) -> AssetStatus:
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    where = f"{spec.hf_repo_id}@{spec.hf_revision or 'main'}"
    if offline:
        return AssetStatus(spec.name, "missing", message=f"{where} not cached (offline)")
    if not network_available(constants.ENDPOINT, net.probe_timeout):
        return AssetStatus(
            spec.name, "missing", message=f"{where} not cached ({urlsplit(constants.ENDPOINT).netloc} unreachable)"
        )
    from core.common.paths import HUB_OFFLINE_DEFAULT

    if os.environ.get(HUB_OFFLINE_DEFAULT):  # core's default, not the user's: this download is asked for
        constants.HF_HUB_OFFLINE = False
    try:
        folder = Path(
            snapshot_download(
                spec.hf_repo_id,
                revision=spec.hf_revision,
                allow_patterns=spec.allow_patterns,
                local_files_only=False,
                etag_timeout=net.read_timeout,
            )
        )
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as err:
        raise UserError(
            f"Hugging Face download failed: {str(err).splitlines()[0]}",
            file=where,
            fix="check the repo id/revision, the network, or HF_TOKEN for gated repos",
        ) from None
    missing = [p for p in spec.provides if not (folder / p).exists()]
    if missing:
        raise UserError(
            f"the snapshot does not contain {missing[0]}",
            file=where,
            field="provides",
            fix="fix allow_patterns or the provides list",
        )
    return AssetStatus(spec.name, "installed", folder)
