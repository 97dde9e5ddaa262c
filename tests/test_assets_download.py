"""Downloads against a real loopback HTTP server: verify, pin, resume, time out, fail cleanly."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from core.assets import AssetSpec, ensure_assets, network_available
from core.assets.download import download
from core.common.errors import UserError
from tests.assets_helpers import (  # noqa: F401
    FAST,
    Served,
    asset_env,
    closed_port,
    http_server,
    make_tar,
    sha256,
    silent_server,
    tree,
)

ALBERT_TAR = make_tar([("open_albert/albert-base-squad.pt", b"weights" * 1000), ("open_albert/config.json", b"{}")])


def albert_spec(**overrides) -> AssetSpec:
    fields = dict(
        name="open_albert",
        kind="archive",
        url="{base_url}/open_albert.tar",
        dest="model_zoo/popular",
        provides=["model_zoo/popular/open_albert/albert-base-squad.pt"],
    )
    return AssetSpec(**(fields | overrides))


def leftovers(root: Path, home: Path) -> list[Path]:
    """Temporary files an install may leave: staging folders in the repo, partial or finished downloads."""
    staged = list(root.rglob(".perfbench+*"))
    downloads = list((home / "downloads").glob("*")) if (home / "downloads").is_dir() else []
    return staged + downloads


def test_installs_and_verifies_with_sha256_in_spec(asset_env):
    root, home = asset_env
    with http_server(Served({"/zoo/open_albert.tar": ALBERT_TAR})) as url:
        [status] = ensure_assets(
            [albert_spec(sha256=sha256(ALBERT_TAR), size=len(ALBERT_TAR))],
            allow_network=True,
            base_url=f"{url}/zoo",
            root=root,
            net=FAST,
        )
    assert status.state == "installed" and status.sha256 == sha256(ALBERT_TAR)
    assert (root / "model_zoo/popular/open_albert/albert-base-squad.pt").read_bytes() == b"weights" * 1000
    assert leftovers(root, home) == []
    # A second call finds it present and does not download again.
    [again] = ensure_assets(
        [albert_spec(sha256=sha256(ALBERT_TAR))], allow_network=True, base_url="http://127.0.0.1:9", root=root, net=FAST
    )
    assert again.state == "present"


def test_first_download_is_pinned_and_a_changed_file_is_rejected(asset_env):
    root, home = asset_env
    served = Served({"/open_albert.tar": ALBERT_TAR})
    with http_server(served) as url:
        ensure_assets([albert_spec()], allow_network=True, base_url=url, root=root, net=FAST)
        lock = json.loads((home / "assets.lock.json").read_text())
        assert lock["downloads"]["{base_url}/open_albert.tar"]["sha256"] == sha256(ALBERT_TAR)

        # The server now sends other bytes; a fresh install of the same URL must refuse them.
        (root / "model_zoo/popular/open_albert/albert-base-squad.pt").unlink()
        served.files["/open_albert.tar"] = make_tar([("open_albert/albert-base-squad.pt", b"evil")])
        with pytest.raises(UserError, match=r"open_albert\.tar.*sha256 .*expected " + sha256(ALBERT_TAR)):
            ensure_assets([albert_spec()], allow_network=True, base_url=url, root=root, net=FAST)
    assert not (root / "model_zoo/popular/open_albert/albert-base-squad.pt").exists()
    assert leftovers(root, home) == []


def test_wrong_digest_installs_nothing_and_leaves_no_temp_files(asset_env):
    root, home = asset_env
    (root / "model_zoo").mkdir()
    (root / "model_zoo/keep.json").write_text("{}")
    before = tree(root)
    with http_server(Served({"/open_albert.tar": ALBERT_TAR})) as url:
        with pytest.raises(UserError, match="failed verification: sha256"):
            ensure_assets([albert_spec(sha256="0" * 64)], allow_network=True, base_url=url, root=root, net=FAST)
    assert tree(root) == before
    assert not (root / "model_zoo/popular").exists()
    assert leftovers(root, home) == []


def test_wrong_size_is_refused(asset_env):
    root, _ = asset_env
    with http_server(Served({"/open_albert.tar": ALBERT_TAR})) as url:
        with pytest.raises(UserError, match=f"size {len(ALBERT_TAR)} bytes, expected 5"):
            ensure_assets([albert_spec(size=5)], allow_network=True, base_url=url, root=root, net=FAST)
    assert tree(root) == {}


def test_interrupted_download_resumes_with_range(asset_env):
    root, _ = asset_env
    cut = len(ALBERT_TAR) // 3
    served = Served({"/open_albert.tar": ALBERT_TAR}, cut_after={"/open_albert.tar": cut})
    with http_server(served) as url:
        [status] = ensure_assets(
            [albert_spec(sha256=sha256(ALBERT_TAR))], allow_network=True, base_url=url, root=root, net=FAST
        )
    assert status.state == "installed"
    ranges = [headers.get("Range") for _, headers in served.requests]
    assert ranges == [None, f"bytes={cut}-"]


def test_server_ignoring_range_restarts_from_zero(asset_env, tmp_path):
    _, home = asset_env
    served = Served({"/f.bin": b"x" * 5000}, cut_after={"/f.bin": 1000}, ignore_range=True)
    with http_server(served) as url:
        got = download(f"{url}/f.bin", tmp_path / "f.bin", sha256=sha256(b"x" * 5000), options=FAST)
    assert got.path.read_bytes() == b"x" * 5000
    assert served.requests[1][1].get("Range") == "bytes=1000-"


def test_server_that_never_answers_times_out(asset_env, tmp_path):
    started = time.monotonic()
    with silent_server() as url:
        with pytest.raises(UserError, match=r"127\.0\.0\.1.*failed after 3 attempt\(s\): timed out"):
            download(f"{url}/never.tar", tmp_path / "never.tar", options=FAST)
    # 3 attempts with a 1 s read timeout each; generous bound against a hang, not a speed target.
    assert time.monotonic() - started < 20
    assert not list(tmp_path.glob("never.tar*.part"))


def test_http_404_is_one_clear_error_without_retries(asset_env):
    root, _ = asset_env
    served = Served()
    with http_server(served) as url:
        with pytest.raises(UserError) as caught:
            ensure_assets([albert_spec()], allow_network=True, base_url=url, root=root, net=FAST)
    assert str(caught.value).startswith(f"{url}/open_albert.tar: HTTP 404")
    assert "\n" not in str(caught.value)
    assert len(served.requests) == 1
    assert tree(root) == {}


def test_network_available_on_open_and_closed_ports(asset_env, monkeypatch):
    with http_server(Served()) as url:
        assert network_available(url, timeout=2.0)
        monkeypatch.setenv("PERFBENCH_OFFLINE", "1")
        assert not network_available(url, timeout=2.0)  # offline means never touch the network
    assert not network_available(f"http://127.0.0.1:{closed_port()}/x.tar", timeout=2.0)


def test_offline_reports_missing_without_raising(asset_env, monkeypatch):
    root, _ = asset_env
    served = Served({"/open_albert.tar": ALBERT_TAR})
    with http_server(served) as url:
        [status] = ensure_assets([albert_spec()], allow_network=False, base_url=url, root=root, net=FAST)
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        [status_env] = ensure_assets([albert_spec()], allow_network=True, base_url=url, root=root, net=FAST)
    assert status.state == status_env.state == "missing"
    assert "offline" in status.message and "offline" in status_env.message
    assert served.requests == []


def test_unreachable_host_reports_missing(asset_env):
    root, _ = asset_env
    [status] = ensure_assets(
        [albert_spec()], allow_network=True, base_url=f"http://127.0.0.1:{closed_port()}", root=root, net=FAST
    )
    assert status.state == "missing" and "unreachable" in status.message


def test_base_url_from_environment(asset_env, monkeypatch):
    root, _ = asset_env
    with http_server(Served({"/mirror/open_albert.tar": ALBERT_TAR})) as url:
        monkeypatch.setenv("PERFBENCH_BASE_URL", f"{url}/mirror/")
        [status] = ensure_assets([albert_spec()], allow_network=True, root=root, net=FAST)
    assert status.state == "installed"


def test_reads_use_the_read_timeout_not_the_connect_timeout():
    from core.assets.download import _HTTPConnection

    with silent_server() as url:
        conn = _HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=7.0, read_timeout=0.25)
        conn.connect()
        try:
            assert conn.sock.gettimeout() == 0.25
        finally:
            conn.close()
