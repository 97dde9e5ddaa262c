"""Where weights come from: a local Hugging Face checkpoint folder, the HF cache, or synthetic."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from core.common.errors import UserError
from core.config import registry
from core.model.source import resolve_source
from core.run.context import model_inputs
from datasets.fake_dataset import fake_inputs


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny BERT QA checkpoint saved the Hugging Face way (config.json + safetensors)."""
    import transformers

    task = registry.load_task("tiny-bert-squad")
    config = json.loads((registry.ARCHITECTURES_DIR / "tiny-bert-squad.json").read_text())
    torch.manual_seed(42)
    model = transformers.BertForQuestionAnswering(transformers.BertConfig(**config)).eval()
    folder = tmp_path_factory.mktemp("ckpt")
    model.save_pretrained(folder)
    return task, folder, model


def outputs_of(source, task):
    feeds = fake_inputs(model_inputs(task, source), 2, seed=4)
    with torch.no_grad():
        return source.torch_module()(*[torch.from_numpy(v) for v in feeds.values()]), feeds


def test_local_checkpoint_folder_is_used_before_synthetic(checkpoint):
    task, folder, model = checkpoint
    entry = task.model.model_copy(update={"hf_model": str(folder)})
    source = resolve_source(entry, model_file=task.model_file)
    assert source.kind == "hf_checkpoint" and source.path == folder
    assert not source.synthetic and source.report_entry()["kind"] == "hf_checkpoint"
    (start, end), feeds = outputs_of(source, task)
    with torch.no_grad():
        expected = model(
            **{
                k: torch.from_numpy(v)
                for k, v in zip(("input_ids", "attention_mask", "token_type_ids"), feeds.values())
            }
        )
    np.testing.assert_allclose(start.numpy(), expected.start_logits.numpy(), atol=1e-6)


def test_checkpoint_in_the_hf_cache_is_found_offline(checkpoint, tmp_path, monkeypatch):
    import huggingface_hub.constants as hub_constants

    task, folder, _ = checkpoint
    snapshot = tmp_path / "hub" / "models--someone--tiny-bert" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    for file in folder.iterdir():
        (snapshot / file.name).write_bytes(file.read_bytes())
    (tmp_path / "hub" / "models--someone--tiny-bert" / "refs").mkdir()
    (tmp_path / "hub" / "models--someone--tiny-bert" / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    entry = task.model.model_copy(update={"hf_model": "someone/tiny-bert"})
    source = resolve_source(entry, model_file=task.model_file)
    assert source.kind == "hf_checkpoint" and source.path == snapshot
    # Not in the cache: synthetic from the architecture, loudly.
    missing = task.model.model_copy(update={"hf_model": "someone/absent"})
    fallback = resolve_source(missing, model_file=task.model_file)
    assert fallback.synthetic and "SYNTHETIC" in fallback.note


def test_no_source_at_all_is_a_clear_error(checkpoint):
    task, _, _ = checkpoint
    bare = task.model.model_copy(update={"architecture": None, "hf_model": None, "model_path": "model_zoo/none/x.pt"})
    with pytest.raises(UserError) as err:
        resolve_source(bare, model_file=task.model_file)
    assert "no file at model_zoo/none/x.pt" in str(err.value) and "put the model file at" in str(err.value)
    assert "core.prepare" not in str(err.value)  # the entry declares nothing to download


def test_a_missing_file_points_at_core_prepare_only_when_the_entry_declares_assets():
    from core.assets import AssetSpec

    task = registry.load_task("tiny-bert-squad")
    asset = AssetSpec(
        name="x", kind="archive", url="{base_url}/x.tar", dest="model_zoo/none", provides=["model_zoo/none/x.pt"]
    )
    entry = task.model.model_copy(update={"architecture": None, "model_path": "model_zoo/none/x.pt", "assets": [asset]})
    with pytest.raises(UserError, match="core.prepare"):
        resolve_source(entry, model_file=task.model_file)


def test_an_onnx_entry_without_its_file_names_the_file_to_provide():
    task = registry.load_task("tiny-bert-squad")
    entry = task.model.model_copy(
        update={
            "architecture": None,
            "model_format": "onnx",
            "model_path": "general_perf/model_zoo/sota/unet/model.onnx",
        }
    )
    with pytest.raises(UserError) as err:
        resolve_source(entry, model_file=task.model_file)
    message = str(err.value)
    assert len(message.splitlines()) == 1 and "core.prepare" not in message
    assert f"put the ONNX model file at {registry.REPO_ROOT / 'model_zoo/sota/unet/model.onnx'}" in message


def test_an_existing_tensorflow_saved_model_is_refused_with_how_to_convert_it(tmp_path):
    task = registry.load_task("tiny-bert-squad")
    folder = tmp_path / "resnet50-fp32"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"\x08\x01")
    entry = task.model.model_copy(
        update={"architecture": None, "model_format": "saved_model", "model_path": str(folder)}
    )
    with pytest.raises(UserError) as err:
        resolve_source(entry, model_file=task.model_file)
    message = str(err.value)
    assert "no file at" not in message and "TensorFlow saved_model folder cannot run here" in message
    assert "tf2onnx" in message and str(folder) in message and len(message.splitlines()) == 1
    # With an architecture to fall back on, the run goes on with synthetic weights and says why.
    fallback = resolve_source(entry.model_copy(update={"architecture": "tiny-bert-squad"}), model_file=task.model_file)
    assert fallback.synthetic and "tf2onnx" in fallback.note


def test_model_file_digest_is_checked(checkpoint, tmp_path):
    task, _, _ = checkpoint
    pt = tmp_path / "m.pt"
    pt.write_bytes(b"weights")
    entry = task.model.model_copy(update={"model_path": str(pt), "sha256": "0" * 64})
    with pytest.raises(UserError, match="has sha256"):
        resolve_source(entry, model_file=task.model_file)


def test_changed_wrapper_code_changes_the_synthetic_digest(monkeypatch):
    """The digest keys the export and reference caches: a new calling convention must not reuse them."""
    import core.model.source as model_source

    task = registry.load_task("tiny-bert-squad")
    before = resolve_source(task.model, model_file=task.model_file).digest
    monkeypatch.setattr(model_source, "_builder_digest", lambda: "another wrapper")
    assert resolve_source(task.model, model_file=task.model_file).digest != before
