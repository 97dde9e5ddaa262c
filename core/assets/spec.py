"""What an asset is: a typed description of one archive, file or Hugging Face snapshot to install."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# ByteMLPerf's asset host; `{base_url}` in a spec's url is replaced by it (or by an override).
DEFAULT_BASE_URL = "https://lf-bytemlperf.17mh.cn/obj/bytemlperf-zoo"

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _repo_relative(value: str, what: str) -> str:
    path = PurePosixPath(value)
    if not value or path.is_absolute() or ".." in path.parts or "\\" in value:
        raise ValueError(f"{what} must be a relative path inside the repository without '..', got {value!r}")
    return value


class AssetSpec(BaseModel):
    """One thing to download and install. Paths are repository-relative (POSIX separators)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", description="the asset's name in prepare --list")
    kind: Literal["archive", "file", "hf_snapshot"] = Field(
        description="a tar/zip archive, a single file, or a Hugging Face snapshot"
    )
    url: str | None = Field(None, description="where to download it; may contain {base_url}")
    sha256: str | None = Field(
        None, description="digest of the downloaded file; none: the first download is recorded in the lock file"
    )
    size: int | None = Field(default=None, gt=0, description="expected size in bytes")
    dest: str | None = Field(None, description="folder the archive extracts into or the file goes into")
    provides: list[str] = Field(
        default_factory=list, description="repository-relative paths it installs (hf_snapshot: in the snapshot)"
    )
    strip_components: int = Field(default=0, ge=0, description="leading path parts dropped, like tar's")
    include: list[str] | None = Field(None, description="fnmatch patterns of archive members to extract; none: all")
    hf_repo_id: str | None = Field(None, description="hf_snapshot: the Hugging Face repository id")
    hf_revision: str | None = Field(None, description="hf_snapshot: the revision (commit) to fetch")
    allow_patterns: list[str] | None = Field(None, description="hf_snapshot: the files to fetch; none: all")

    @field_validator("sha256")
    @classmethod
    def _hex_digest(cls, value: str | None) -> str | None:
        if value is not None and not _SHA256.match(value.lower()):
            raise ValueError("sha256 must be 64 hex digits")
        return value.lower() if value else value

    @field_validator("dest")
    @classmethod
    def _dest_inside(cls, value: str | None) -> str | None:
        return None if value is None else _repo_relative(value, "dest")

    @field_validator("provides")
    @classmethod
    def _provides_inside(cls, values: list[str]) -> list[str]:
        return [_repo_relative(v, "provides entry") for v in values]

    @model_validator(mode="after")
    def _fields_for_kind(self) -> AssetSpec:
        if self.kind == "hf_snapshot":
            if not self.hf_repo_id:
                raise ValueError("an hf_snapshot asset needs hf_repo_id")
            if self.url or self.dest:
                raise ValueError("an hf_snapshot asset takes hf_repo_id, not url/dest (it lives in the HF cache)")
        else:
            if not self.url or not self.dest:
                raise ValueError(f"a {self.kind} asset needs url and dest")
            if not self.provides:
                raise ValueError(f"a {self.kind} asset needs provides (the paths that exist once installed)")
            outside = [p for p in self.provides if not PurePosixPath(p).is_relative_to(PurePosixPath(self.dest))]
            if outside:
                raise ValueError(f"provides entry {outside[0]!r} is not inside dest {self.dest!r}")
            if self.hf_repo_id or self.hf_revision or self.allow_patterns:
                raise ValueError("hf_repo_id/hf_revision/allow_patterns are for hf_snapshot assets only")
        if self.kind != "archive" and (self.strip_components or self.include is not None):
            raise ValueError("strip_components/include apply to archive assets only")
        return self

    def resolved_url(self, base_url: str) -> str:
        assert self.url is not None
        return self.url.replace("{base_url}", base_url.rstrip("/"))
