"""open_cifar: CIFAR-100 python `test` pickles, read only through the restricted unpickler."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from core.common.errors import UserError
from datasets.base import DatasetRequest, ModelInputs
from datasets.open_cifar.loader import CIFAR_MEAN, CIFAR_STD, CifarLoader
from datasets.safe_pickle import restricted_load


def image_model(size: int = 32, layout: str = "NCHW") -> ModelInputs:
    shape = (1, 3, size, size) if layout == "NCHW" else (1, size, size, 3)
    return ModelInputs(
        names=("image",),
        dtypes=("FLOAT32",),
        seq_len=shape[1],
        vocab_size=1000,
        type_vocab_size=0,
        outputs=("logits",),
        shapes=(shape,),
        layout=layout,
    )


def write_cifar(folder, count=6, protocol=pickle.HIGHEST_PROTOCOL, override=None):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    content = {
        b"data": rng.integers(0, 256, size=(count, 3072), dtype=np.uint8),
        b"fine_labels": [int(i * 7 % 100) for i in range(count)],
        b"coarse_labels": [0] * count,
        b"filenames": [b"x.png"] * count,
        b"batch_label": b"testing batch 1 of 1",
    }
    content.update(override or {})
    (folder / "test").write_bytes(pickle.dumps(content, protocol=protocol))
    return folder, content


def loader(tmp_path, data, model=None, percent=100.0) -> CifarLoader:
    return CifarLoader(
        DatasetRequest(model=model or image_model(), data_path=data, data_percent=percent, cache_dir=tmp_path / "cache")
    )


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_reads_cifar_pickles_of_each_protocol_and_normalizes(tmp_path, protocol):
    folder, content = write_cifar(tmp_path / "cifar-100-python", protocol=protocol)
    features = loader(tmp_path, folder).load()
    pixels = features.inputs["image"]
    assert pixels.shape == (6, 3, 32, 32) and pixels.dtype == np.float32 and not features.sequence
    raw = content[b"data"][2].reshape(3, 32, 32)
    expected = (raw[1, 5, 7] / 255 - CIFAR_MEAN[1]) / CIFAR_STD[1]
    assert pixels[2, 1, 5, 7] == pytest.approx(expected, abs=1e-5)
    assert features.provenance["source"] == "file" and len(features.provenance["sha256"]) == 64


def test_layout_resize_percent_and_top_k(tmp_path):
    folder, content = write_cifar(tmp_path / "c", count=4)
    nhwc = loader(tmp_path, folder, image_model(layout="NHWC")).load().inputs["image"]
    assert nhwc.shape == (4, 32, 32, 3)
    assert loader(tmp_path, folder, image_model(size=48)).load().inputs["image"].shape == (4, 3, 48, 48)
    assert len(loader(tmp_path, folder, percent=50).load()) == 2
    ld = loader(tmp_path, folder)
    ld.load()
    gold = content[b"fine_labels"]  # 0, 7, 14, 21
    scores = np.zeros((4, 100), np.float32)
    scores[0, gold[0]] = 1  # top-1
    scores[1, [50, 51, 52, 53]] = 3
    scores[1, gold[1]] = 2  # 5th: top-5
    scores[2, :] = np.arange(100)  # gold 14 far down: wrong
    scores[3, gold[3]] = np.inf  # non-finite: wrong
    assert ld.evaluate({"logits": scores}) == {"Top-1": 25.0, "Top-5": 50.0, "Examples": 4, "Non-finite Outputs": 1}


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


@pytest.mark.parametrize("payload", [Exploit(), {b"data": Exploit()}, print, np.random.default_rng])
def test_any_other_global_is_refused_in_one_line(tmp_path, payload, monkeypatch):
    path = tmp_path / "test"
    path.write_bytes(pickle.dumps(payload))
    ran = []
    monkeypatch.setattr(os, "system", lambda *a: ran.append(a))
    with pytest.raises(UserError, match="refused to load") as err:
        restricted_load(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path)) and "CIFAR-100" in message
    assert not ran
    with pytest.raises(UserError, match="refused to load"):
        loader(tmp_path, tmp_path).load()


def test_malformed_files_are_one_line_errors(tmp_path):
    path = tmp_path / "test"
    path.write_bytes(b"\x80\x05garbage")
    with pytest.raises(UserError, match="not a readable pickle.*CIFAR-100"):
        restricted_load(path)
    path.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(UserError, match="expected a dict"):
        loader(tmp_path, tmp_path).load()
    write_cifar(tmp_path, count=3, override={b"data": np.zeros((3, 100), np.uint8)})
    with pytest.raises(UserError, match=r"data: data is \[3, 100\]"):
        loader(tmp_path, tmp_path).load()
    write_cifar(tmp_path, count=3, override={b"fine_labels": [0, 1, 100]})
    with pytest.raises(UserError, match="fine_labels"):
        loader(tmp_path, tmp_path).load()
    (tmp_path / "test").unlink()
    with pytest.raises(UserError, match="not found"):
        loader(tmp_path, tmp_path / "test").load()


def test_generated_sample_without_the_file(tmp_path, monkeypatch):
    monkeypatch.delenv("PERFBENCH_OPEN_CIFAR_PATH", raising=False)
    first = loader(tmp_path, None).load()
    assert len(first) == 64 and first.provenance["source"] == "generated sample"
    assert "not CIFAR-100" in first.provenance["note"]
    np.testing.assert_array_equal(first.inputs["image"], loader(tmp_path, None).load().inputs["image"])


def test_tiny_cifar_workload_reports_top1_top5(tmp_path):
    import json

    from core.config import registry
    from core.run.runner import RunOptions, run_task

    workload = tmp_path / "tiny-cifar.yaml"
    workload.write_text(
        "model: tiny-resnet-cifar\nengine: onnxruntime\nprecision: FP32\ntest_accuracy: true\n"
        "test_numeric: false\niterations: 2\nbatch_sizes: [1]\nmin_seconds: 0\nmax_seconds: 0.5\n"
        "warmup_iterations: 1\n",
        encoding="utf-8",
    )
    folder, _ = write_cifar(tmp_path / "cifar-100-python", count=10)
    path = run_task(
        registry.load_task(str(workload)),
        RunOptions(hardware_type="CPU", output_dir=tmp_path / "out", data_path=folder),
    ).written
    accuracy = json.loads(path.read_text())["Accuracy"]
    assert accuracy["Examples"] == 10 and accuracy["Top-1"] <= accuracy["Top-5"]
    assert accuracy["Dataset Provenance"]["source"] == "file"
