"""Installing into folders that hold code, states, re-installs, single files and Hugging Face snapshots."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from core.assets import AssetSpec, asset_status, ensure_assets
from core.common.errors import UserError
from tests.assets_helpers import FAST, Served, asset_env, http_server, make_tar, make_zip, sha256, tree  # noqa: F401

REPO_ROOT = Path(__file__).resolve().parent.parent
SQUAD_TAR = make_tar(
    [
        ("dev-v1.1.json", b'{"data": []}'),
        ("vocab.txt", b"[PAD]\n"),
        ("extra.pickle", b"junk"),
        ("__init__.py", b"# not ours"),
    ]
)


def squad_spec() -> AssetSpec:
    """The repository's own open_squad asset spec."""
    [spec] = [
        AssetSpec.model_validate(item)
        for item in json.loads((REPO_ROOT / "datasets/open_squad/assets.json").read_text())
    ]
    return spec


def test_repository_asset_files_are_valid():
    for path in sorted(REPO_ROOT.glob("datasets/*/assets.json")):
        specs = [AssetSpec.model_validate(item) for item in json.loads(path.read_text())]
        assert specs and all(spec.kind in ("archive", "file") for spec in specs), path


def test_archive_merges_into_a_folder_with_code_without_touching_it(asset_env):
    root, _ = asset_env
    code = root / "datasets/open_squad"
    code.mkdir(parents=True)
    (code / "__init__.py").write_text("LOADER = 1\n")
    (code / "loader.py").write_text("code\n")
    with http_server(Served({"/open_squad.tar": SQUAD_TAR})) as url:
        [status] = ensure_assets([squad_spec()], allow_network=True, base_url=url, root=root, net=FAST)
    assert status.state == "installed"
    assert tree(code) == {
        "__init__.py": b"LOADER = 1\n",
        "loader.py": b"code\n",
        "dev-v1.1.json": b'{"data": []}',
        "vocab.txt": b"[PAD]\n",
    }


def test_existing_foreign_file_is_never_overwritten(asset_env):
    root, home = asset_env
    code = root / "datasets/open_squad"
    code.mkdir(parents=True)
    (code / "vocab.txt").write_text("my own vocab\n")
    before = tree(root)
    with http_server(Served({"/open_squad.tar": SQUAD_TAR})) as url:
        with pytest.raises(UserError, match=r"would overwrite .*vocab\.txt, which this asset did not install"):
            ensure_assets([squad_spec()], allow_network=True, base_url=url, root=root, net=FAST)
    assert tree(root) == before
    assert list((home / "downloads").iterdir()) == []


def test_missing_provided_file_is_refused(asset_env):
    root, _ = asset_env
    spec = AssetSpec(
        name="x",
        kind="archive",
        url="{base_url}/x.tar",
        dest="model_zoo/popular",
        provides=["model_zoo/popular/open_x/model.pt"],
    )
    with http_server(Served({"/x.tar": make_tar([("open_x/other.pt", b"1")])})) as url:
        with pytest.raises(UserError, match="does not contain model_zoo/popular/open_x/model.pt"):
            ensure_assets([spec], allow_network=True, base_url=url, root=root, net=FAST)
    assert tree(root) == {}


def test_states_present_unverified_modified_and_reinstall(asset_env):
    root, _ = asset_env
    spec = squad_spec()
    assert asset_status(spec, root=root).state == "missing"
    served = Served({"/open_squad.tar": SQUAD_TAR})
    with http_server(served) as url:
        ensure_assets([spec], allow_network=True, base_url=url, root=root, net=FAST)
        assert asset_status(spec, root=root, deep=True).state == "present"

        data = root / "datasets/open_squad/dev-v1.1.json"
        data.write_bytes(b'{"data": {}}')  # same size: only the deep check sees it
        assert asset_status(spec, root=root).state == "present"
        assert asset_status(spec, root=root, deep=True).state == "modified"
        data.write_bytes(b"truncated")
        assert asset_status(spec, root=root).state == "modified"

        # A modified install is re-installed over the files it owns.
        [status] = ensure_assets([spec], allow_network=True, base_url=url, root=root, net=FAST)
        assert status.state == "installed" and data.read_bytes() == b'{"data": []}'
        assert len(served.requests) == 2

    # Files put there by hand count as present but unverified (another repository root has no record).
    other = root.parent / "other"
    (other / "datasets/open_squad").mkdir(parents=True)
    for name in ("dev-v1.1.json", "vocab.txt"):
        (other / "datasets/open_squad" / name).write_text("by hand")
    [status] = ensure_assets([spec], allow_network=False, root=other)
    assert status.state == "unverified" and status.usable


def test_single_file_asset(asset_env):
    root, _ = asset_env
    spec = AssetSpec(
        name="vocab",
        kind="file",
        url="{base_url}/files/vocab.txt",
        dest="datasets/open_squad",
        sha256=sha256(b"[CLS]\n"),
        provides=["datasets/open_squad/vocab.txt"],
    )
    with http_server(Served({"/files/vocab.txt": b"[CLS]\n"})) as url:
        [status] = ensure_assets([spec], allow_network=True, base_url=url, root=root, net=FAST)
    assert status.state == "installed"
    assert tree(root) == {"datasets/open_squad/vocab.txt": b"[CLS]\n"}


def test_spec_validation():
    with pytest.raises(ValueError, match="'..'"):
        AssetSpec(name="a", kind="archive", url="u", dest="../outside", provides=["x"])
    with pytest.raises(ValueError, match="needs hf_repo_id"):
        AssetSpec(name="a", kind="hf_snapshot")
    with pytest.raises(ValueError, match="64 hex"):
        AssetSpec(name="a", kind="file", url="u", dest="d", provides=["d/x"], sha256="abc")
    with pytest.raises(ValueError, match="not inside dest"):
        AssetSpec(name="a", kind="archive", url="u", dest="model_zoo/popular", provides=["datasets/x"])
    with pytest.raises(ValueError, match="extra"):
        AssetSpec(name="a", kind="file", url="u", dest="d", provides=["d/x"], md5="abc")


TOKENIZER = AssetSpec(
    name="albert-squad-tokenizer",
    kind="hf_snapshot",
    hf_repo_id="madlag/albert-base-v2-squad",
    hf_revision="main",
    allow_patterns=["*.json", "*.model"],
    provides=["config.json"],
)


class FakeHub:
    """Stands in for huggingface_hub.snapshot_download: a cache that fills up when asked online."""

    def __init__(self, folder: Path):
        self.folder, self.calls, self.cached = folder, [], False

    def __call__(self, repo_id, **kwargs):
        from huggingface_hub.errors import LocalEntryNotFoundError

        self.calls.append((repo_id, kwargs))
        if not kwargs["local_files_only"]:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / "config.json").write_text("{}")
            self.cached = True
        if not self.cached:
            raise LocalEntryNotFoundError("not cached")
        return str(self.folder)


@pytest.fixture
def fake_hub(asset_env, monkeypatch):
    import huggingface_hub

    hub = FakeHub(asset_env[1] / "hf" / "snapshot")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub)
    return hub


def test_hf_snapshot_offline_never_goes_online(fake_hub, monkeypatch):
    import core.assets.install as install

    probes = []
    monkeypatch.setattr(install, "network_available", lambda *a, **k: probes.append(a) or True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    [status] = ensure_assets([TOKENIZER], allow_network=True)
    assert status.state == "missing" and "offline" in status.message
    assert probes == []
    assert [kwargs["local_files_only"] for _, kwargs in fake_hub.calls] == [True]


def test_hf_snapshot_download_arguments(fake_hub, monkeypatch):
    import core.assets.install as install

    monkeypatch.setattr(install, "network_available", lambda url, timeout: True)  # no real probe of huggingface.co
    [status] = ensure_assets([TOKENIZER], allow_network=True, net=FAST)
    assert status.state == "installed" and status.path == fake_hub.folder
    repo_id, kwargs = fake_hub.calls[-1]
    assert repo_id == "madlag/albert-base-v2-squad"
    assert kwargs["revision"] == "main" and kwargs["allow_patterns"] == ["*.json", "*.model"]
    assert kwargs["local_files_only"] is False
    # Now cached: present without going online.
    [again] = ensure_assets([TOKENIZER], allow_network=False)
    assert again.state == "present" and fake_hub.calls[-1][1]["local_files_only"] is True


def test_hf_snapshot_without_network_is_missing(fake_hub, monkeypatch):
    import core.assets.install as install

    monkeypatch.setattr(install, "network_available", lambda url, timeout: False)
    [status] = ensure_assets([TOKENIZER], allow_network=True, net=FAST)
    assert status.state == "missing" and "unreachable" in status.message
    assert all(kwargs["local_files_only"] for _, kwargs in fake_hub.calls)


def test_hf_offline_real_library_reports_missing(asset_env, monkeypatch, tmp_path):
    """The real snapshot_download with an empty HF cache: missing, no exception, no network."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    [status] = ensure_assets([TOKENIZER], allow_network=True)
    assert status.state == "missing"


def test_failed_move_puts_everything_back(asset_env, monkeypatch):
    root, _ = asset_env
    code = root / "datasets/open_squad"
    code.mkdir(parents=True)
    (code / "loader.py").write_text("code\n")
    before = tree(root)
    real_replace = os.replace

    def failing_replace(src, dst):
        if Path(dst) == code / "vocab.txt":  # moved after dev-v1.1.json: the first move must be undone
            raise OSError("disk trouble")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with http_server(Served({"/open_squad.tar": SQUAD_TAR})) as url:
        with pytest.raises(OSError, match="disk trouble"):
            ensure_assets([squad_spec()], allow_network=True, base_url=url, root=root, net=FAST)
    assert tree(root) == before
    assert not list(root.rglob(".perfbench+*"))


def test_staging_left_by_a_killed_run_is_removed(asset_env):
    root, _ = asset_env
    stale = root / "datasets/open_squad/.perfbench+open_squad+abc123"
    (stale / "tree").mkdir(parents=True)
    other = root / "datasets/open_squad/.perfbench+open_squad_v2+abc123"  # another asset's: left alone
    other.mkdir()
    with http_server(Served({"/open_squad.tar": SQUAD_TAR})) as url:
        ensure_assets([squad_spec()], allow_network=True, base_url=url, root=root, net=FAST)
    assert not stale.exists() and other.exists()


def test_repository_mnli_spec_takes_only_the_dev_files(asset_env):
    root, _ = asset_env
    [spec] = [
        AssetSpec.model_validate(item)
        for item in json.loads((REPO_ROOT / "datasets/open_mnli/assets.json").read_text())
    ]
    archive = make_zip(
        [
            ("MNLI/dev_matched.tsv", b"m\n"),
            ("MNLI/dev_mismatched.tsv", b"mm\n"),
            ("MNLI/train.tsv", b"t\n"),
            ("MNLI/original/multinli_1.0_dev_matched.jsonl", b"{}\n"),
        ]
    )
    with http_server(Served({"/glue/data/MNLI.zip": archive})) as url:
        local = spec.model_copy(update={"url": f"{url}/glue/data/MNLI.zip"})  # the real host is unreachable here
        [status] = ensure_assets([local], allow_network=True, root=root, net=FAST)
    assert status.state == "installed"
    assert tree(root) == {
        "datasets/open_mnli/dev_matched.tsv": b"m\n",
        "datasets/open_mnli/dev_mismatched.tsv": b"mm\n",
    }
