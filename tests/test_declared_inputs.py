"""Inputs from the declared shapes and types (ByteMLPerf's fake data), and whole runs of non-NLP models.

The models are built here: a tiny conv net as an ONNX file (onnx.helper) and as TorchScript, each with
an image input [1, 3, 32, 32] FLOAT32 and no dataset.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core import perf_engine
from datasets.base import ModelInputs
from datasets.fake_dataset import DECLARED_FAKE_FEATURES, IMAGENET_MEAN, IMAGENET_STD, FakeDataset, fake_inputs

IMAGE = (1, 3, 32, 32)


def declared(shapes: dict[str, tuple[int, ...]], types: str, **fields) -> ModelInputs:
    names = tuple(shapes)
    return ModelInputs(
        names=names,
        dtypes=tuple(types.split(",")),
        seq_len=shapes[names[0]][1] if len(shapes[names[0]]) > 1 else 1,
        vocab_size=fields.pop("vocab_size", 1000),
        type_vocab_size=0,
        shapes=tuple(shapes.values()),
        **fields,
    )


# --- generated values ---------------------------------------------------------------------------


def test_an_image_input_gets_its_declared_shape_with_the_batch_first_and_imagenet_normalization():
    feeds = fake_inputs(declared({"images": (1, 3, 640, 64)}, "FLOAT32"), 4, seed=1)
    image = feeds["images"]
    assert image.shape == (4, 3, 640, 64) and image.dtype == np.float32
    for channel, (mean, std) in enumerate(zip(IMAGENET_MEAN, IMAGENET_STD)):
        values = image[:, channel]
        assert (0 - mean) / std - 1e-5 <= values.min() and values.max() <= (1 - mean) / std + 1e-5
        assert abs(values.mean() - (0.5 - mean) / std) < 0.05  # uniform pixels, normalized per channel


def test_nhwc_layout_normalizes_the_last_axis():
    image = fake_inputs(declared({"input_tensor:0": (1, 224, 224, 3)}, "FLOAT32", layout="NHWC"), 2)["input_tensor:0"]
    assert image.shape == (2, 224, 224, 3)
    assert abs(image[..., 0].mean() - (0.5 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]) < 0.05


def test_unet_inputs_latent_timestep_and_hidden_states():
    model = declared(
        {"sample": (1, 4, 32, 32), "timestep": (1,), "encoder_hidden_states": (1, 77, 768)}, "FLOAT32,INT64,FLOAT32"
    )
    feeds = fake_inputs(model, 3, seed=2)
    assert feeds["sample"].shape == (3, 4, 32, 32) and abs(float(feeds["sample"].std()) - 1) < 0.05  # a latent
    assert feeds["timestep"].shape == (3,) and feeds["timestep"].dtype == np.int64
    assert ((0 <= feeds["timestep"]) & (feeds["timestep"] < 1000)).all()
    assert feeds["encoder_hidden_states"].shape == (3, 77, 768)


def test_clip_text_ids_stay_in_the_vocabulary_and_are_padded_where_the_mask_is_zero():
    model = declared(
        {"input_ids": (2, 77), "pixel_values": (1, 3, 224, 224), "attention_mask": (2, 77)},
        "INT64,FLOAT32,INT64",
        vocab_size=49408,
        pad_token_id=1,
    )
    feeds = fake_inputs(model, 4, seed=3)
    ids, mask = feeds["input_ids"], feeds["attention_mask"]
    assert ids.shape == mask.shape == (4, 77) and feeds["pixel_values"].shape == (4, 3, 224, 224)
    assert ids.max() < 49408 and set(np.unique(mask)) <= {0, 1}
    assert (ids[mask == 0] == 1).all() and (ids[mask == 1] >= 5).all()
    lengths = mask.sum(axis=1)
    assert (mask == (np.arange(77)[None, :] < lengths[:, None])).all()  # a prefix mask
    assert 0 < lengths.min() and lengths.max() <= 77


def test_conformer_padding_mask_is_true_where_padded_and_dtypes_follow_input_type():
    model = declared({"src": (1, 3, 64, 512), "src_pad_mask": (1, 128)}, "FLOAT16,BOOL")
    feeds = fake_inputs(model, 2, seed=4)
    assert feeds["src"].dtype == np.float16 and feeds["src"].shape == (2, 3, 64, 512)
    pad = feeds["src_pad_mask"]
    assert pad.dtype == np.bool_ and pad.shape == (2, 128)
    assert not pad[:, :8].any() and pad.any()  # every row keeps some positions, some rows are padded


def test_widedeep_first_dimension_is_replaced_by_the_batch_size():
    feeds = fake_inputs(
        declared({"new_categorical_placeholder:0": (26, 2), "new_numeric_placeholder:0": (1, 13)}, "INT64,FLOAT32"), 16
    )
    assert feeds["new_categorical_placeholder:0"].shape == (16, 2)
    assert feeds["new_numeric_placeholder:0"].shape == (16, 13)
    assert feeds["new_categorical_placeholder:0"].max() < 1000  # ByteMLPerf's range without a vocabulary


def test_uint8_images_are_raw_pixels():
    image = fake_inputs(declared({"image": (1, 3, 8, 8)}, "UINT8"), 2)["image"]
    assert image.dtype == np.uint8 and image.max() > 200


def test_token_models_get_the_same_inputs_with_or_without_declared_shapes():
    # The NLP path is unchanged: compiled artifacts and cached references stay valid.
    plain = ModelInputs(names=("a", "b", "c"), dtypes=("LONG",) * 3, seq_len=64, vocab_size=500, type_vocab_size=2)
    shaped = ModelInputs(
        names=("a", "b", "c"),
        dtypes=("LONG",) * 3,
        seq_len=64,
        vocab_size=500,
        type_vocab_size=2,
        shapes=((1, 64),) * 3,
    )
    assert shaped.token_layout
    for name, array in fake_inputs(plain, 3, seed=5).items():
        np.testing.assert_array_equal(array, fake_inputs(shaped, 3, seed=5)[name])


def test_fake_dataset_of_a_non_token_model_has_no_sequence_axis():
    from datasets.base import DatasetRequest

    features = FakeDataset(DatasetRequest(model=declared({"images": IMAGE}, "FLOAT32"))).load()
    assert not features.sequence and features.inputs["images"].shape[1:] == IMAGE[1:]
    big = FakeDataset(DatasetRequest(model=declared({"images": (1, 3, 1024, 1024)}, "FLOAT32"))).load()
    assert 4 <= len(big) < len(features)  # big inputs: fewer samples for the numeric check


# --- whole runs -----------------------------------------------------------------------------------


def conv_onnx(path: Path) -> Path:
    """conv 3->4 -> relu -> global average pool -> flatten -> gemm to 5 logits, batch dynamic."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
        for name, shape in (("w", (4, 3, 3, 3)), ("b", (4,)), ("fc_w", (5, 4)), ("fc_b", (5,)))
    ]
    nodes = [
        helper.make_node("Conv", ["images", "w", "b"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["pool"]),
        helper.make_node("Flatten", ["pool"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_conv",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 5])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def conv_torchscript(path: Path) -> Path:
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 5),
    ).eval()
    torch.jit.save(torch.jit.trace(net, torch.zeros(1, 3, 32, 32)), str(path))
    return path


@pytest.fixture
def image_task(private_zoo):
    """A private model zoo with one image model (file given by the test); returns a function writing the task."""

    def make(model_path: Path, model_format: str, **workload) -> Path:
        entry = {
            "model": "tiny-conv",
            "model_path": str(model_path),
            "framework": "Onnx",
            "model_format": model_format,
            "model_precision": "FP32",
            "inputs": "images",
            "outputs": "logits",
            "input_shape": {"images": list(IMAGE)},
            "input_type": "FLOAT32",
            "dataset_name": None,
            "max_batch_size": 8,
        }
        return private_zoo(
            entry,
            {
                "batch_sizes": [1, 4],
                "iterations": 3,
                "warmup_iterations": 1,
                "min_seconds": 0,
                "max_seconds": 1,
                **workload,
            },
        )

    return make


def run_cli(task: Path, out: Path) -> dict:
    assert perf_engine.main(["--task", str(task), "--output-dir", str(out)]) == 0
    return json.loads((out / "CPU" / "tiny-conv" / "result-fp32.json").read_text(encoding="utf-8"))


def test_an_onnx_image_model_runs_every_batch_size(image_task, tmp_path):
    task = image_task(conv_onnx(tmp_path / "conv.onnx"), "onnx", test_numeric=True)
    report = run_cli(task, tmp_path / "reports")
    assert [(row["BS"], row["Status"]) for row in report["Performance"]] == [(1, "ok"), (4, "ok")]
    assert report["Weights"]["kind"] == "onnx" and report["Dataset"] == "fake_dataset"
    # Numeric on fake data: an ONNX file has no torch module, so plain onnxruntime FP32 is the reference.
    assert report["Accuracy"]["Numeric Reference"] == "CPU onnxruntime FP32 (unoptimized)"
    assert report["Accuracy"]["Compared Values"] == 5 * DECLARED_FAKE_FEATURES
    assert report["Accuracy"]["Dataset Provenance"]["source"] == "generated"


def test_a_torchscript_image_model_runs_and_its_numeric_check_uses_fake_data(image_task, tmp_path):
    # FP32 pinned: the check below expects the reference's own arithmetic (auto may pick BF16 or INT8)
    task = image_task(conv_torchscript(tmp_path / "conv.pt"), "pt", test_numeric=True, precision="FP32")
    report = run_cli(task, tmp_path / "reports")
    assert [row["Status"] for row in report["Performance"]] == ["ok", "ok"]
    accuracy = report["Accuracy"]
    assert accuracy["Numeric Reference"] == "CPU pytorch FP32"
    assert (
        accuracy["Compared Values"] == 5 * DECLARED_FAKE_FEATURES and accuracy["Max Diff"] < 1e-4
    )  # every logit of every sample
    assert "Mean True Length" not in report["Dataset Throughput"]
