"""Unsafe archives are refused with our own error and leave nothing installed."""

from __future__ import annotations

import gzip
import tarfile
from pathlib import Path

import pytest

from core.assets import AssetSpec, ensure_assets
from core.assets.extract import extract_archive
from core.common.errors import UserError
from tests.assets_helpers import FAST, Served, asset_env, http_server, make_tar, make_zip, tar_link, tree  # noqa: F401


def _device(name: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    return info


UNSAFE_TARS = {
    "dotdot": (make_tar([("data/ok.txt", b"ok"), ("data/../../x", b"bad")]), "contains '..'"),
    "absolute": (make_tar([("data/ok.txt", b"ok"), ("/tmp/perfbench-abs", b"bad")]), "absolute member path"),
    "symlink_out": (make_tar([("data/ok.txt", b"ok"), tar_link("data/link", "../../etc/passwd")]), "leaves the folder"),
    "symlink_abs": (make_tar([tar_link("data/link", "/etc/passwd"), ("data/ok.txt", b"ok")]), "leaves the folder"),
    "hardlink_out": (make_tar([tar_link("data/hl", "../outside", tarfile.LNKTYPE)]), "contains '..'"),
    "chardev": (make_tar([("data/ok.txt", b"ok"), _device("data/null", tarfile.CHRTYPE)]), "device or FIFO"),
    "fifo": (make_tar([_device("data/pipe", tarfile.FIFOTYPE)]), "device or FIFO"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE_TARS))
def test_unsafe_tar_is_refused_and_nothing_installed(asset_env, case):
    root, home = asset_env
    archive, problem = UNSAFE_TARS[case]
    (root / "datasets").mkdir()
    (root / "datasets/keep.py").write_text("code")
    before = tree(root)
    spec = AssetSpec(
        name="bad", kind="archive", url="{base_url}/bad.tar", dest="datasets", provides=["datasets/data/ok.txt"]
    )
    with http_server(Served({"/bad.tar": archive})) as url:
        with pytest.raises(UserError, match=f"bad.tar: unsafe archive, nothing installed: .*{problem}"):
            ensure_assets([spec], allow_network=True, base_url=url, root=root, net=FAST)
    assert tree(root) == before
    assert [p.name for p in (root / "datasets").iterdir()] == ["keep.py"]
    assert list((home / "downloads").iterdir()) == []
    assert not Path("/tmp/perfbench-abs").exists()


@pytest.mark.parametrize(
    "name,problem",
    [("../x", "contains '..'"), ("/abs", "absolute"), ("C:/win", "absolute"), ("a\\..\\..\\x", "contains '..'")],
)
def test_unsafe_zip_names_are_refused(tmp_path, name, problem):
    archive = tmp_path / "a.zip"
    archive.write_bytes(make_zip([("ok.txt", b"ok"), (name, b"bad")]))
    (tmp_path / "out").mkdir()
    with pytest.raises(UserError, match=problem):
        extract_archive(archive, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_zip_symlink_is_refused(tmp_path):
    import zipfile

    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = 0o120777 << 16
        zf.writestr(info, "../../etc/passwd")
    (tmp_path / "out").mkdir()
    with pytest.raises(UserError, match="symlink member 'link'"):
        extract_archive(archive, tmp_path / "out")


@pytest.mark.parametrize("fmt", ["tar", "zip"])
def test_size_limit(tmp_path, fmt):
    members = [("a.bin", b"0" * 600), ("b.bin", b"0" * 600)]
    archive = tmp_path / f"a.{fmt}"
    archive.write_bytes(make_tar(members) if fmt == "tar" else make_zip(members))
    (tmp_path / "out").mkdir()
    with pytest.raises(UserError, match="uncompressed size 1200 bytes exceeds the limit of 1000 bytes"):
        extract_archive(archive, tmp_path / "out", max_total_bytes=1000)
    assert list((tmp_path / "out").iterdir()) == []
    assert len(extract_archive(archive, tmp_path / "out", max_total_bytes=1200)) == 2


def test_truncated_tar_is_a_clear_error(tmp_path):
    data = make_tar([("a.bin", bytes(range(256)) * 40), ("b.bin", b"b" * 5000)])
    archive = tmp_path / "t.tar.gz"
    archive.write_bytes(gzip.compress(data)[: len(gzip.compress(data)) // 2])
    (tmp_path / "out").mkdir()
    with pytest.raises(UserError, match="t.tar.gz: cannot extract archive: .*damaged or truncated"):
        extract_archive(archive, tmp_path / "out")


def test_strip_include_and_internal_links(tmp_path):
    archive = tmp_path / "MNLI.zip"
    archive.write_bytes(
        make_zip(
            [
                ("MNLI/dev_matched.tsv", b"m"),
                ("MNLI/dev_mismatched.tsv", b"mm"),
                ("MNLI/train.tsv", b"big"),
                ("MNLI/original/x.jsonl", b"x"),
            ]
        )
    )
    out = tmp_path / "out"
    out.mkdir()
    got = extract_archive(archive, out, strip_components=1, include=["MNLI/dev_*.tsv"])
    assert sorted(map(str, got)) == ["dev_matched.tsv", "dev_mismatched.tsv"]
    assert tree(out) == {"dev_matched.tsv": b"m", "dev_mismatched.tsv": b"mm"}

    tar = tmp_path / "links.tar"
    tar.write_bytes(
        make_tar(
            [
                ("./top/a/file.txt", b"f"),
                tar_link("./top/a/sym", "file.txt"),
                tar_link("./top/hard", "./top/a/file.txt", tarfile.LNKTYPE),
            ]
        )
    )
    out2 = tmp_path / "out2"
    out2.mkdir()
    extract_archive(tar, out2, strip_components=1)
    assert (out2 / "a/sym").is_symlink() and (out2 / "a/sym").read_bytes() == b"f"
    assert (out2 / "hard").read_bytes() == b"f"


@pytest.mark.parametrize("member", ["../escape.txt", "/etc/passwd-copy"])
def test_without_tarfiles_data_filter_our_checks_still_refuse_and_modes_are_masked(tmp_path, monkeypatch, member):
    """Pythons before 3.11.4 (Debian's 3.11.2) have neither tarfile's data filter nor TarInfo.replace."""
    import io

    monkeypatch.delattr(tarfile, "data_filter", raising=False)
    monkeypatch.delattr(tarfile.TarInfo, "replace", raising=False)
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w") as tar:
        for name, mode in (("pkg/run.sh", 0o4777), (member, 0o644)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = 2, mode
            tar.addfile(info, io.BytesIO(b"ok"))
    with pytest.raises(UserError, match="unsafe archive"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()
    with tarfile.open(archive, "w") as tar:  # the safe member alone extracts, without its setuid bit
        info = tarfile.TarInfo("pkg/run.sh")
        info.size, info.mode = 2, 0o4777
        tar.addfile(info, io.BytesIO(b"ok"))
    extract_archive(archive, tmp_path / "out")
    extracted = tmp_path / "out" / "pkg" / "run.sh"
    assert extracted.read_bytes() == b"ok" and extracted.stat().st_mode & 0o7777 == 0o755


# ---------------------------------------------------------------- every refusal, word for word
TRUSTED = "(use an archive from a trusted source)"
EXACT_REFUSALS = {
    "dotdot": (UNSAFE_TARS["dotdot"][0], "member path 'data/../../x' contains '..'"),
    "absolute": (UNSAFE_TARS["absolute"][0], "absolute member path '/tmp/perfbench-abs'"),
    "symlink_out": (UNSAFE_TARS["symlink_out"][0], "symlink 'data/link' -> '../../etc/passwd' leaves the folder"),
    "symlink_abs": (UNSAFE_TARS["symlink_abs"][0], "symlink 'data/link' -> '/etc/passwd' leaves the folder"),
    "chardev": (UNSAFE_TARS["chardev"][0], "device or FIFO member 'data/null'"),
    "fifo": (UNSAFE_TARS["fifo"][0], "device or FIFO member 'data/pipe'"),
    "zip_dotdot": (make_zip([("ok.txt", b"ok"), ("../x", b"bad")]), "member path '../x' contains '..'"),
    "zip_drive": (make_zip([("C:/win", b"bad")]), "absolute member path 'C:/win'"),
}


@pytest.mark.parametrize("case", sorted(EXACT_REFUSALS))
def test_each_refusal_is_one_exact_line_naming_the_source(tmp_path, case):
    data, problem = EXACT_REFUSALS[case]
    archive = tmp_path / "archive.bin"
    archive.write_bytes(data)
    (tmp_path / "out").mkdir()
    with pytest.raises(UserError) as caught:
        extract_archive(archive, tmp_path / "out", source="https://example.invalid/a.tar")
    assert str(caught.value) == f"https://example.invalid/a.tar: unsafe archive, nothing installed: {problem} {TRUSTED}"
    assert list((tmp_path / "out").iterdir()) == []


def test_the_size_limit_and_a_damaged_archive_word_for_word(tmp_path):
    archive = tmp_path / "a.tar"
    archive.write_bytes(make_tar([("a.bin", b"0" * 600), ("b.bin", b"0" * 600)]))
    (tmp_path / "out").mkdir()
    with pytest.raises(UserError) as caught:
        extract_archive(archive, tmp_path / "out", max_total_bytes=1199)
    assert str(caught.value) == (
        f"{archive}: unsafe archive, nothing installed: uncompressed size 1200 bytes exceeds the limit of "
        f"1199 bytes {TRUSTED}"
    )
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"PK\x03\x04" + b"\0" * 10)  # a zip's magic, nothing after it
    with pytest.raises(UserError) as caught:
        extract_archive(junk, tmp_path / "out")
    text = str(caught.value)
    assert text.startswith(f"{junk}: cannot extract archive: ")
    assert text.endswith("(the file is damaged or truncated; delete it and download again)")
    empty_zip = tmp_path / "empty.zip"
    empty_zip.write_bytes(make_zip([]))  # an empty zip starts with the end-of-directory magic PK\x05\x06
    assert extract_archive(empty_zip, tmp_path / "out") == []
