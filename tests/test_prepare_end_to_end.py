"""Real assets end to end: a TorchScript model served on 127.0.0.1 is installed by the run itself,
verified, and then used, and the report names it with its digest."""

from __future__ import annotations

import io
import json
import shutil
import uuid

import pytest
import torch
from assets_helpers import Served, http_server, make_tar, sha256

from core.common.paths import REPO_ROOT
from core.config import registry
from core.model.source import resolve_source
from core.run.context import model_inputs
from core.run.runner import RunOptions, run_task
from datasets.fake_dataset import fake_inputs


@pytest.fixture
def zoo(tmp_path, monkeypatch):
    """A private model zoo and workload folder; the model's asset installs under a git-ignored test folder."""
    dest = f"model_zoo/popular/_test_{uuid.uuid4().hex[:8]}"
    zoo_dir, workloads = tmp_path / "zoo", tmp_path / "workloads"
    zoo_dir.mkdir()
    workloads.mkdir()
    monkeypatch.setattr(registry, "MODEL_ZOO_DIR", zoo_dir)
    monkeypatch.setattr(registry, "WORKLOADS_DIR", workloads)
    monkeypatch.setenv("PERFBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PERFBENCH_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    yield zoo_dir, workloads, dest
    shutil.rmtree(REPO_ROOT / dest, ignore_errors=True)


@pytest.fixture(scope="module")
def torchscript_bytes() -> bytes:
    """The tiny BERT, traced the way ByteMLPerf ships its models."""
    task = registry.load_task("tiny-bert-squad")
    source = resolve_source(task.model, model_file=task.model_file, seed=3)
    example = tuple(torch.from_numpy(v) for v in fake_inputs(model_inputs(task, source), 1).values())
    with torch.no_grad():
        traced = torch.jit.trace(source.torch_module(), example, strict=False)
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer)
    return buffer.getvalue()


def test_run_installs_verifies_and_uses_real_weights(torchscript_bytes, zoo, monkeypatch, tmp_path):
    zoo_dir, workloads, dest = zoo
    model_file = torchscript_bytes
    archive = make_tar([("open_tiny/tiny-bert-squad.pt", model_file)])
    entry = json.loads((REPO_ROOT / "model_zoo" / "tiny-bert-squad.json").read_text())
    entry.update(
        model="tiny-bert-pt",
        model_path=f"{dest}/open_tiny/tiny-bert-squad.pt",
        assets=[
            {
                "name": "open_tiny",
                "kind": "archive",
                "url": "{base_url}/open_tiny.tar",
                "sha256": sha256(archive),
                "dest": dest,
                "provides": [f"{dest}/open_tiny/tiny-bert-squad.pt"],
            }
        ],
    )
    (zoo_dir / "tiny-bert-pt.json").write_text(json.dumps(entry))
    (workloads / "tiny-bert-pt.yaml").write_text(
        "model: tiny-bert-pt\niterations: 3\nbatch_sizes: [1]\nwarmup_iterations: 1\nmin_seconds: 0\nmax_seconds: 1\n"
    )
    served = Served(files={"/open_tiny.tar": archive})
    with http_server(served) as base_url:
        monkeypatch.setenv("PERFBENCH_BASE_URL", base_url)
        report_path = run_task(
            registry.load_task("tiny-bert-pt"), RunOptions(hardware_type="CPU", output_dir=tmp_path / "r")
        ).written
    assert [path for path, _ in served.requests] == ["/open_tiny.tar"]
    report = json.loads(report_path.read_text())
    weights = report["Weights"]
    assert weights["kind"] == "torchscript"
    assert weights["sha256"] == sha256(model_file)
    assert weights["path"].endswith("open_tiny/tiny-bert-squad.pt")
    assert {a["name"]: a["state"] for a in report["Assets"]} == {"open_tiny": "installed"}
    assert report["Performance"][0]["Status"] == "ok"

    # Offline now, the installed file is found on disk and verified, with no request.
    monkeypatch.setenv("PERFBENCH_OFFLINE", "1")
    again = json.loads(
        run_task(
            registry.load_task("tiny-bert-pt"), RunOptions(hardware_type="CPU", output_dir=tmp_path / "r")
        ).written.read_text()
    )
    assert again["Weights"]["sha256"] == sha256(model_file)
    assert {a["name"]: a["state"] for a in again["Assets"]}["open_tiny"] == "present"


def test_a_corrupted_download_installs_nothing_and_the_run_stops(zoo, monkeypatch, tmp_path):
    zoo_dir, workloads, dest = zoo
    archive = make_tar([("open_tiny/tiny-bert-squad.pt", b"not a model")])
    entry = json.loads((REPO_ROOT / "model_zoo" / "tiny-bert-squad.json").read_text())
    entry.update(
        model="tiny-bert-pt",
        model_path=f"{dest}/open_tiny/tiny-bert-squad.pt",
        assets=[
            {
                "name": "open_tiny",
                "kind": "archive",
                "url": "{base_url}/open_tiny.tar",
                "sha256": "0" * 64,
                "dest": dest,
                "provides": [f"{dest}/open_tiny/tiny-bert-squad.pt"],
            }
        ],
    )
    (zoo_dir / "tiny-bert-pt.json").write_text(json.dumps(entry))
    (workloads / "tiny-bert-pt.yaml").write_text("model: tiny-bert-pt\nbatch_sizes: [1]\n")
    from core.perf_engine import main

    with http_server(Served(files={"/open_tiny.tar": archive})) as base_url:
        monkeypatch.setenv("PERFBENCH_BASE_URL", base_url)
        assert main(["--task", "tiny-bert-pt", "--output-dir", str(tmp_path / "r")]) == 2
    assert not (REPO_ROOT / dest).exists()
