"""Safe extraction of tar and zip archives into a folder.

Refused, with our own one-line error: absolute names, '..' components, links whose target leaves the
folder, device/FIFO members, and archives whose uncompressed size passes a limit. Tar extraction also
runs with tarfile's "data" filter as a second line of defence where the Python has it (3.11.4 and later;
Debian's 3.11.2 does not): there our own checks stand alone, and permission bits are masked as the
filter would (no setuid/setgid/sticky, no group/other write).
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from core.common.errors import UserError

FILTER_ERRORS = (tarfile.FilterError,) if hasattr(tarfile, "FilterError") else ()
SAFE_MODE_BITS = 0o755  # what tarfile's "data" filter keeps of a member's mode

DEFAULT_MAX_EXTRACT_BYTES = 20 * 2**30
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


def extract_archive(
    archive: Path,
    into: Path,
    *,
    strip_components: int = 0,
    include: list[str] | None = None,
    max_total_bytes: int = DEFAULT_MAX_EXTRACT_BYTES,
    source: str | None = None,
) -> list[PurePosixPath]:
    """Extract `archive` (tar, tar.gz/bz2/xz, or zip) into the existing folder `into`.

    Returns the relative paths of the extracted files. `source` names the archive in errors (its URL).
    """
    where = source or str(archive)
    with open(archive, "rb") as f:
        is_zip = f.read(4) in (b"PK\x03\x04", b"PK\x05\x06")
    try:
        if is_zip:
            return _extract_zip(archive, into, strip_components, include, max_total_bytes, where)
        return _extract_tar(archive, into, strip_components, include, max_total_bytes, where)
    except UserError:
        raise
    except FILTER_ERRORS as err:
        raise _unsafe(where, str(err)) from None
    except (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
        raise UserError(
            f"cannot extract archive: {err}",
            file=where,
            fix="the file is damaged or truncated; delete it and download again",
        ) from None


def _unsafe(where: str, problem: str) -> UserError:
    return UserError(
        f"unsafe archive, nothing installed: {problem}", file=where, fix="use an archive from a trusted source"
    )


def _member_path(name: str, strip: int, where: str) -> PurePosixPath | None:
    """The member's path inside the extraction folder, or None when stripping leaves nothing."""
    clean = name.replace("\\", "/")
    if clean.startswith("/") or _WINDOWS_DRIVE.match(clean):
        raise _unsafe(where, f"absolute member path {name!r}")
    parts = [p for p in clean.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _unsafe(where, f"member path {name!r} contains '..'")
    parts = parts[strip:]
    return PurePosixPath(*parts) if parts else None


def _selected(name: str, include: list[str] | None) -> bool:
    """Whether `include` (patterns over the member name, './' dropped) picks this member."""
    if include is None:
        return True
    clean = "/".join(p for p in name.replace("\\", "/").split("/") if p not in ("", "."))
    return any(fnmatch.fnmatchcase(clean, pattern) for pattern in include)


def _check_total(total: int, limit: int, where: str) -> None:
    if total > limit:
        raise _unsafe(where, f"uncompressed size {total} bytes exceeds the limit of {limit} bytes")


def _extract_tar(
    archive: Path, into: Path, strip: int, include: list[str] | None, limit: int, where: str
) -> list[PurePosixPath]:
    with tarfile.open(archive, "r:*") as tar:
        chosen: list[tarfile.TarInfo] = []
        total = 0
        for member in tar.getmembers():
            path = _member_path(member.name, strip, where)
            if member.isdev():
                raise _unsafe(where, f"device or FIFO member {member.name!r}")
            if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
                raise _unsafe(where, f"member {member.name!r} has an unsupported type")
            if path is None or not _selected(member.name, include) or (include is not None and member.isdir()):
                continue
            changes: dict[str, object] = {"name": str(path)}
            if member.issym():
                target = member.linkname.replace("\\", "/")
                resolved = posixpath.normpath(posixpath.join(str(path.parent), target))
                if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
                    raise _unsafe(where, f"symlink {member.name!r} -> {member.linkname!r} leaves the folder")
            elif member.islnk():
                target_path = _member_path(member.linkname, strip, where)
                if target_path is None:
                    raise _unsafe(where, f"hard link {member.name!r} -> {member.linkname!r} leaves the folder")
                changes["linkname"] = str(target_path)
            total += member.size if member.isreg() else 0
            chosen.append(_renamed(member, changes))
        _check_total(total, limit, where)
        if hasattr(tarfile, "data_filter"):
            tar.extractall(into, members=chosen, filter="data")
        else:
            tar.extractall(into, members=chosen)
    return [PurePosixPath(m.name) for m in chosen if not m.isdir()]


def _renamed(member: tarfile.TarInfo, changes: dict[str, object]) -> tarfile.TarInfo:
    """A copy of `member` with `changes` (TarInfo.replace where the Python has it)."""
    if hasattr(member, "replace"):
        return member.replace(**changes, deep=False)
    copy = tarfile.TarInfo(member.name)
    for attribute in ("size", "mtime", "type", "linkname", "uid", "gid", "uname", "gname", "pax_headers"):
        setattr(copy, attribute, getattr(member, attribute))
    copy.mode = member.mode & SAFE_MODE_BITS
    copy.offset, copy.offset_data, copy.sparse = member.offset, member.offset_data, member.sparse
    for attribute, value in changes.items():
        setattr(copy, attribute, value)
    return copy


def _extract_zip(
    archive: Path, into: Path, strip: int, include: list[str] | None, limit: int, where: str
) -> list[PurePosixPath]:
    with zipfile.ZipFile(archive) as zf:
        chosen: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
        for info in zf.infolist():
            path = _member_path(info.filename, strip, where)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                # zipfile would write the link target as file contents; links are not worth supporting here.
                raise _unsafe(where, f"symlink member {info.filename!r} (zip archives may not contain links)")
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
                raise _unsafe(where, f"device or FIFO member {info.filename!r}")
            if path is None or info.is_dir() or not _selected(info.filename, include):
                continue
            chosen.append((info, path))
        _check_total(sum(info.file_size for info, _ in chosen), limit, where)
        for info, path in chosen:
            target = into / path
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    return [path for _, path in chosen]
