"""open_imagenet: ByteMLPerf's layout (images + val_map.txt), preprocessing, Top-1/Top-5, and a tiny run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.common.errors import UserError
from core.config import registry
from core.run.runner import RunOptions, run_task
from datasets.base import DatasetRequest, ModelInputs
from datasets.images import IMAGENET_MEAN, IMAGENET_STD, top_k_accuracy
from datasets.open_imagenet.loader import ImagenetLoader


def image_model(size: int = 8, layout: str | None = "NCHW", outputs=("logits",)) -> ModelInputs:
    shape = (1, 3, size, size) if layout != "NHWC" else (1, size, size, 3)
    return ModelInputs(
        names=("pixels",),
        dtypes=("FLOAT32",),
        seq_len=shape[1],
        vocab_size=1000,
        type_vocab_size=0,
        outputs=outputs,
        shapes=(shape,),
        layout=layout,
    )


def write_set(folder, colours_labels, size=(12, 10)):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, (colour, label) in enumerate(colours_labels):
        name = f"img_{i}.png"
        Image.new("RGB", size, colour).save(folder / name)
        lines.append(f"{name} {label}")
    (folder / "val_map.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def loader(tmp_path, data, model=None, percent=100.0) -> ImagenetLoader:
    return ImagenetLoader(
        DatasetRequest(model=model or image_model(), data_path=data, data_percent=percent, cache_dir=tmp_path / "cache")
    )


def test_images_are_cropped_normalized_and_in_the_models_layout(tmp_path):
    data = write_set(tmp_path / "val", [((255, 0, 0), 3), ((0, 128, 255), 7)])
    features = loader(tmp_path, data).load()
    pixels = np.asarray(features.inputs["pixels"])
    assert pixels.shape == (2, 3, 8, 8) and pixels.dtype == np.float32 and not features.sequence
    expected_red = (np.array([1.0, 0.0, 0.0]) - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(pixels[0, :, 4, 4], expected_red, atol=1e-5)
    nhwc = loader(tmp_path, data, image_model(layout="NHWC")).load().inputs["pixels"]
    assert nhwc.shape == (2, 8, 8, 3)
    np.testing.assert_allclose(nhwc[1], pixels[1].transpose(1, 2, 0), atol=1e-6)
    # Cached: a second load reads the same arrays back.
    again = loader(tmp_path, data).load()
    assert again.provenance["feature_cache"]["hit"] is True
    np.testing.assert_array_equal(np.asarray(again.inputs["pixels"]), pixels)


def test_top1_top5_on_known_scores(tmp_path):
    data = write_set(tmp_path / "val", [((i * 20, 0, 0), label) for i, label in enumerate([0, 1, 2, 3])])
    ld = loader(tmp_path, data)
    ld.load()
    scores = np.zeros((4, 10), np.float32)
    scores[0, 0] = 9  # top-1 right
    scores[1, [5, 6, 7, 8]] = 9
    scores[1, 1] = 5  # 5th best: top-5 only
    scores[2, :6] = [9, 8, 7, 6, 5, 4]  # label 2 third: top-5 only; scores[2,3]..
    scores[3, :] = np.arange(10)
    scores[3, 3] = np.nan  # non-finite: wrong
    report = ld.evaluate({"logits": scores})
    assert report == {"Top-1": 25.0, "Top-5": 75.0, "Examples": 4, "Non-finite Outputs": 1}
    with pytest.raises(UserError, match="classes"):
        top_k_accuracy({"logits": scores[:, :2]}, image_model(), np.array([0, 1, 2, 3]))


def test_data_percent_and_bad_files(tmp_path):
    data = write_set(tmp_path / "val", [((i, i, i), i) for i in range(4)])
    assert len(loader(tmp_path, data, percent=50).load()) == 2
    (data / "val_map.txt").write_text("img_0.png three\n", encoding="utf-8")
    with pytest.raises(UserError, match="line 1") as err:
        loader(tmp_path, data).load()
    assert "\n" not in str(err.value) and "val_map.txt" in str(err.value)
    (data / "val_map.txt").write_text("../secret.png 1\n", encoding="utf-8")
    with pytest.raises(UserError, match="leaves the dataset folder"):
        loader(tmp_path, data).load()
    (data / "val_map.txt").write_text("missing.png 1\n", encoding="utf-8")
    with pytest.raises(UserError, match="image not found"):
        loader(tmp_path, data).load()
    (data / "broken.png").write_bytes(b"not an image")
    (data / "val_map.txt").write_text("broken.png 1\n", encoding="utf-8")
    with pytest.raises(UserError, match="not a readable image"):
        loader(tmp_path, data).load()


def test_bundled_sample_is_announced(tmp_path, monkeypatch):
    monkeypatch.delenv("PERFBENCH_OPEN_IMAGENET_PATH", raising=False)
    features = loader(tmp_path, None, image_model(size=16)).load()
    assert len(features) == 16
    assert features.provenance["source"] == "bundled sample" and "not ImageNet" in features.provenance["note"]


def test_a_token_model_is_refused(tmp_path):
    tokens = ModelInputs(
        names=("ids", "mask"),
        dtypes=("LONG", "LONG"),
        seq_len=16,
        vocab_size=100,
        type_vocab_size=0,
        shapes=((1, 16), (1, 16)),
    )
    with pytest.raises(UserError, match="not an image"):
        loader(tmp_path, None, tokens).load()


def test_resnet50_entry_builds_a_synthetic_resnet50():
    from core.model.source import resolve_source

    task = registry.load_task("resnet50-torch-fp32")
    source = resolve_source(task.model, model_file=task.model_file)
    assert source.synthetic and "SYNTHETIC" in source.note
    module = source.torch_module()
    assert sum(p.numel() for p in module.parameters()) == 25_557_032  # ResNet-50, 1000 classes


def test_tiny_image_workload_reports_top1_top5(tmp_path):
    workload = tmp_path / "tiny-image.yaml"
    workload.write_text(
        "model: tiny-resnet-imagenet\nengine: onnxruntime\nprecision: FP32\ntest_accuracy: true\n"
        "test_numeric: true\niterations: 2\nbatch_sizes: [1, 2]\nmin_seconds: 0\nmax_seconds: 0.5\n"
        "warmup_iterations: 1\n",
        encoding="utf-8",
    )
    path = run_task(
        registry.load_task(str(workload)), RunOptions(hardware_type="CPU", output_dir=tmp_path / "out")
    ).written
    report = json.loads(path.read_text())
    accuracy = report["Accuracy"]
    assert accuracy["Examples"] == 16 and accuracy["Top-1"] <= accuracy["Top-5"]
    assert accuracy["Dataset Provenance"]["source"] == "bundled sample"
    assert accuracy["Max Diff"] < 1e-3
    assert [row["BS"] for row in report["Performance"]] == [1, 2]
    assert report["Run"]["status"] == "complete"


def test_swin_large_entry_and_a_shrunken_swin_run_through_the_image_wrapper():
    import torch

    from core.config.registry import architecture_config
    from core.model.source import SourceModel

    task = registry.load_task("swin-large-torch-fp32")
    config = dict(architecture_config(task.model.architecture))
    assert config["architectures"] == ["SwinForImageClassification"] and config["image_size"] == 384
    assert task.model.input_shape["pixel_values.1"] == [1, 3, 384, 384]
    config.update(image_size=32, embed_dim=8, depths=[1, 1], num_heads=[1, 2], window_size=4, num_labels=7)
    module = SourceModel(kind="synthetic", digest="x", hf_config=config).torch_module()
    with torch.no_grad():
        (logits,) = module(torch.zeros(2, 3, 32, 32))
    assert logits.shape == (2, 7)


def test_bytemlperf_archive_layout_with_images_in_ilsvrc2012_img_val(tmp_path):
    """open_imagenet.tar: val_map.txt beside ILSVRC2012_img_val/, names relative to that folder."""
    data = tmp_path / "open_imagenet"
    write_set(data / "ILSVRC2012_img_val", [((255, 0, 0), 3), ((0, 0, 255), 5)])
    (data / "ILSVRC2012_img_val" / "val_map.txt").rename(data / "val_map.txt")
    features = loader(tmp_path, data).load()
    assert len(features) == 2
    np.testing.assert_allclose(
        features.inputs["pixels"][1, :, 4, 4], (np.array([0.0, 0.0, 1.0]) - IMAGENET_MEAN) / IMAGENET_STD, atol=1e-5
    )
