"""Extraction edge by edge: include patterns in tars, skipped members followed by kept ones, names with
'./', '//' and backslashes, links that stay inside only relative to their own folder, real hard links,
special zip members, the data filter's mode masking and its errors (mutation testing found these open)."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile

import pytest

from core.assets.extract import extract_archive
from core.common.errors import UserError
from tests.assets_helpers import make_tar, make_zip, tar_link, tree

SOURCE = "https://example.invalid/a"
TRUSTED = "(use an archive from a trusted source)"


def extracted(tmp_path, data: bytes, out: str = "out", **options):
    archive, folder = tmp_path / "archive.bin", tmp_path / out
    archive.write_bytes(data)
    folder.mkdir(exist_ok=True)
    return sorted(map(str, extract_archive(archive, folder, source=SOURCE, **options))), tree(folder)


def refusal(tmp_path, data: bytes, **options) -> str:
    with pytest.raises(UserError) as caught:
        extracted(tmp_path, data, out="refused", **options)
    assert list((tmp_path / "refused").iterdir()) == []
    text = str(caught.value)
    prefix, suffix = f"{SOURCE}: unsafe archive, nothing installed: ", f" {TRUSTED}"
    assert text.startswith(prefix) and text.endswith(suffix), text
    return text[len(prefix) : -len(suffix)]


def directory(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info


def test_include_picks_tar_members_by_their_clean_name(tmp_path):
    data = make_tar(
        [
            directory("./top"),
            directory("top/empty"),
            ("./top/skip.txt", b"s"),
            ("./top/a.tsv", b"a"),
            ("top//b.tsv", b"b"),
            ("top/c.tsv", b"c"),
        ]
    )
    got, files = extracted(tmp_path, data, include=["top/?.tsv"])
    assert got == ["top/a.tsv", "top/b.tsv", "top/c.tsv"] and set(files) == set(got)
    assert not (tmp_path / "out/top/skip.txt").exists()
    assert not (tmp_path / "out/top/empty").exists()
    everything, _ = extracted(tmp_path, data, out="all")  # without include, folders come along and nothing is skipped
    assert everything == ["top/a.tsv", "top/b.tsv", "top/c.tsv", "top/skip.txt"]
    assert (tmp_path / "all/top/empty").is_dir()


def test_a_zip_member_with_backslashes_is_picked_and_placed_as_a_path(tmp_path):
    got, files = extracted(tmp_path, make_zip([("top\\a.tsv", b"a"), ("top\\x.txt", b"x")]), include=["top/?.tsv"])
    assert got == ["top/a.tsv"] and files == {"top/a.tsv": b"a"}


def test_strip_counts_components_after_collapsing_empty_ones(tmp_path):
    got, files = extracted(tmp_path, make_zip([("README", b"r"), ("top//a/x.txt", b"x")]), strip_components=2)
    assert got == ["x.txt"] and files == {"x.txt": b"x"}  # README, one component, is stripped away entirely


def test_zip_folders_are_created_with_their_parents_and_folder_entries_skipped(tmp_path):
    got, files = extracted(tmp_path, make_zip([("top/", b""), ("top/a/b/c.txt", b"c"), ("top/d.txt", b"d")]))
    assert got == ["top/a/b/c.txt", "top/d.txt"] and files == {"top/a/b/c.txt": b"c", "top/d.txt": b"d"}


def test_a_symlink_is_judged_from_its_own_folder(tmp_path):
    inside = make_tar([("top/file.txt", b"f"), tar_link("top/a/b/link", "../../file.txt")])
    got, _ = extracted(tmp_path, inside)
    assert got == ["top/a/b/link", "top/file.txt"] and (tmp_path / "out/top/a/b/link").read_bytes() == b"f"
    up = make_tar([tar_link("link", "..")])
    assert refusal(tmp_path, up) == "symlink 'link' -> '..' leaves the folder"
    windows = make_tar([tar_link("data/link", "..\\..\\etc\\passwd")])
    assert refusal(tmp_path, windows) == "symlink 'data/link' -> '..\\\\..\\\\etc\\\\passwd' leaves the folder"


def test_a_hard_link_is_a_hard_link_to_its_stripped_target(tmp_path):
    data = make_tar([("top/a/file.txt", b"f"), tar_link("top/hard", "top/a/file.txt", tarfile.LNKTYPE)])
    extracted(tmp_path, data, strip_components=1)
    out = tmp_path / "out"
    assert (out / "hard").stat().st_ino == (out / "a/file.txt").stat().st_ino
    outside = make_tar([tar_link("top/hl", "x", tarfile.LNKTYPE)])
    assert refusal(tmp_path, outside, strip_components=1) == "hard link 'top/hl' -> 'x' leaves the folder"


def test_only_regular_files_count_towards_the_size_limit(tmp_path):
    data = make_tar([directory("d"), tar_link("d/l", "f.bin"), ("d/f.bin", b"0" * 600)])
    assert extracted(tmp_path, data, max_total_bytes=600)[0] == ["d/f.bin", "d/l"]


def test_an_unknown_tar_member_type_is_refused(tmp_path):
    volume = tarfile.TarInfo("data/vol")
    volume.type = b"V"  # a GNU volume header: nothing a dataset needs
    assert refusal(tmp_path, make_tar([volume])) == "member 'data/vol' has an unsupported type"


@pytest.mark.parametrize(
    "kind", [stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK], ids=["chr", "blk", "fifo", "sock"]
)
def test_special_zip_members_are_refused(tmp_path, kind):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        info = zipfile.ZipInfo("dev/x")
        info.external_attr = (kind | 0o644) << 16
        zf.writestr(info, b"")
    assert refusal(tmp_path, buffer.getvalue()) == "device or FIFO member 'dev/x'"


def test_zip_refusals_name_the_source(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "target")
    assert refusal(tmp_path, buffer.getvalue()) == "symlink member 'link' (zip archives may not contain links)"
    big = make_zip([("a", b"0" * 10), ("b", b"0" * 10)])
    assert refusal(tmp_path, big, max_total_bytes=19) == "uncompressed size 20 bytes exceeds the limit of 19 bytes"


@pytest.mark.skipif(not hasattr(tarfile, "data_filter"), reason="this Python's tarfile has no data filter")
def test_the_data_filter_masks_modes_and_its_refusals_are_ours(tmp_path, monkeypatch):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, mode in (("bin/setuid", 0o4777), ("bin/shared", 0o777)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = 2, mode
            tar.addfile(info, io.BytesIO(b"ok"))
    extracted(tmp_path, buffer.getvalue())
    for name in ("setuid", "shared"):
        assert (tmp_path / "out/bin" / name).stat().st_mode & 0o7777 == 0o755

    def refuse(self, *args, **kwargs):
        raise tarfile.AbsoluteLinkError(tarfile.TarInfo("x"))

    monkeypatch.setattr(tarfile.TarFile, "extractall", refuse)
    assert refusal(tmp_path, make_tar([("a", b"a")])) == "'x' is a link to an absolute path"
