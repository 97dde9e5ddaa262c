"""ByteMLPerf's 17 workloads: which run offline on synthetic weights, how each new architecture is fed,
and the clean refusal of the networks no library builds."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from core import perf_engine
from core.common.errors import UserError
from core.config import registry
from core.model.builder import CallingConvention, build_module
from core.model.source import SourceModel, resolve_source
from core.run.context import model_inputs
from datasets.fake_dataset import fake_inputs

BYTEMLPERF_TASKS = registry.BYTEMLPERF_TASKS
# Networks no library we depend on builds: they run from ByteMLPerf's file only.
FILE_ONLY = {"conformer-encoder-onnx-fp32", "videobert-onnx-fp32", "widedeep-tf-fp32", "yolov5-onnx-fp32"}


def test_every_bytemlperf_task_has_a_synthetic_architecture_or_a_download():
    assert len(set(BYTEMLPERF_TASKS)) == 17 and set(BYTEMLPERF_TASKS) <= set(registry.task_names())
    offline = []
    for name in BYTEMLPERF_TASKS:
        model = registry.load_task(name).model
        provided = {path for spec in model.assets for path in spec.provides}
        # A TensorFlow saved_model is a folder: its saved_model.pb is what the archive provides.
        assert model.model_path in provided or f"{model.model_path}/saved_model.pb" in provided, name
        if model.architecture:
            registry.architecture_config(model.architecture)  # bundled
            offline.append(name)
    assert set(BYTEMLPERF_TASKS) - set(offline) == FILE_ONLY and len(offline) == 13


@pytest.mark.parametrize("task", sorted(FILE_ONLY))
def test_a_network_no_library_builds_is_refused_in_one_line_naming_the_file(task, tmp_path, capsys):
    assert perf_engine.main(["--task", task, "--output-dir", str(tmp_path)]) == 2
    error = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    model = registry.load_task(task).model
    assert len(error) == 1 and model.model_path in error[0] and f"core.prepare --task {task}" in error[0]
    assert "Traceback" not in error[0] and not list(tmp_path.rglob("*.json"))


def test_tensorflow_tasks_say_what_stands_in_for_the_tensorflow_model():
    task = registry.load_task("bert-tf-fp32")
    source = resolve_source(task.model, model_file=task.model_file)
    assert (
        source.synthetic and "Tensorflow model is stood in for by the same architecture built in PyTorch" in source.note
    )
    torch_task = registry.load_task("bert-torch-fp32")
    assert "stood in" not in resolve_source(torch_task.model, model_file=torch_task.model_file).note


# --- how each architecture is fed -----------------------------------------------------------

TINY_BERT_QA = {
    "model_type": "bert",
    "architectures": ["BertForQuestionAnswering"],
    "vocab_size": 100,
    "hidden_size": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "max_position_embeddings": 64,
    "type_vocab_size": 2,
}
TINY_CLIP = {
    "model_type": "clip_text_model",
    "architectures": ["CLIPTextModel"],
    "vocab_size": 100,
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "max_position_embeddings": 12,
    "eos_token_id": 2,
}
TINY_VAE = {
    "_class_name": "AutoencoderKL",
    "block_out_channels": [8, 16],
    "norm_num_groups": 4,
    "latent_channels": 4,
    "layers_per_block": 1,
    "down_block_types": ["DownEncoderBlock2D"] * 2,
    "up_block_types": ["UpDecoderBlock2D"] * 2,
}


def _module(config, inputs, outputs, layout=None):
    return build_module("synthetic", config, seed=3, convention=CallingConvention(inputs, outputs, layout))


def test_one_logits_output_stacks_start_and_end_like_bert_in_tensorflow():
    ids = torch.randint(0, 100, (2, 10), dtype=torch.int32)
    mask, types = torch.ones_like(ids), torch.zeros_like(ids)
    names = ("input_ids:0", "input_mask:0", "segment_ids:0")
    (logits,) = _module(TINY_BERT_QA, names, ("logits:0",))(ids, mask, types)
    start, end = _module(TINY_BERT_QA, names, ("start", "end"))(ids, mask, types)
    assert logits.shape == (2, 10, 2)
    torch.testing.assert_close(logits[..., 0], start)
    torch.testing.assert_close(logits[..., 1], end)


def test_inputs_are_matched_to_keywords_by_name_not_position():
    """ByteMLPerf's RoFormer lists segments before tokens; a mask is derived from padding ids."""
    config = json.loads((registry.ARCHITECTURES_DIR / "tiny-roformer-cail2019.json").read_text())
    module = _module(config, ("input_segment:0", "input_token:0"), ("Identity:0",))
    ids = torch.randint(1, 500, (2, 16))
    ids[:, 12:] = 0
    types = torch.zeros_like(ids)
    types[:, 6:12] = 1
    (score,) = module(types.float(), ids.float())
    with torch.no_grad():
        (expected,) = module.model(
            input_ids=ids, token_type_ids=types, attention_mask=(ids != 0).long(), return_dict=False
        )
    assert score.shape == (2, 1)
    torch.testing.assert_close(score, expected)


def test_nhwc_images_are_permuted_for_the_model():
    config = json.loads((registry.ARCHITECTURES_DIR / "tiny-resnet-imagenet.json").read_text())
    pixels = torch.randn(2, 3, 16, 16)
    (nchw,) = _module(config, ("input_1.1",), ("softmax_tensor:0",), "NCHW")(pixels)
    (nhwc,) = _module(config, ("input_tensor:0",), ("softmax_tensor:0",), "NHWC")(pixels.permute(0, 2, 3, 1))
    torch.testing.assert_close(nchw, nhwc)


@pytest.mark.parametrize(
    "config, inputs, outputs, feeds, shapes",
    [
        (
            TINY_CLIP,
            ("input_ids",),
            ("last_hidden_state", "pooler_output"),
            lambda n: [np.random.default_rng(0).integers(0, 100, (n, 12)).astype(np.int32)],
            [(12, 16), (16,)],
        ),
        (
            {**TINY_VAE, "_part": "encoder"},
            ("sample",),
            ("latent_sample",),
            lambda n: [np.random.default_rng(0).standard_normal((n, 3, 16, 16)).astype(np.float32)],
            [(4, 8, 8)],
        ),
        (
            {**TINY_VAE, "_part": "decoder"},
            ("latent_sample",),
            ("sample",),
            lambda n: [np.random.default_rng(0).standard_normal((n, 4, 8, 8)).astype(np.float32)],
            [(3, 16, 16)],
        ),
    ],
    ids=["clip-text", "vae-encoder", "vae-decoder"],
)
def test_each_architecture_exports_and_matches_pytorch_at_another_batch_size(
    tmp_path, config, inputs, outputs, feeds, shapes
):
    import onnxruntime as ort

    from backends.CPU.onnx_stages import export_onnx

    module = _module(config, inputs, outputs)
    export_onnx(module, dict(zip(inputs, feeds(1))), list(outputs), tmp_path / "m.onnx", dynamic_sequence=False)
    batch = feeds(3)
    with torch.no_grad():
        expected = module(*[torch.from_numpy(a) for a in batch])
    got = ort.InferenceSession(str(tmp_path / "m.onnx")).run(list(outputs), dict(zip(inputs, batch)))
    assert [g.shape[1:] for g in got] == shapes
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e.numpy(), atol=1e-4, rtol=1e-3)


def test_an_autoencoder_config_must_say_which_half_runs():
    with pytest.raises(UserError, match="_part"):
        _module(TINY_VAE, ("sample",), ("latent_sample",))


def test_full_size_stable_diffusion_and_clip_configs_build_the_published_sizes():
    """Parameter counts of SD v1's VAE (its two halves, built one at a time) and CLIP ViT-L/14 text encoder
    (the UNet's 859.5M is left to the zoo benchmark: building it takes a minute here)."""
    counts = {}
    for name in ("sd-v1-vae-encoder", "sd-v1-vae-decoder", "clip-vit-large-patch14-text"):
        source = SourceModel(kind="synthetic", digest="x", hf_config=registry.architecture_config(name))
        counts[name] = sum(p.numel() for p in source.torch_module().parameters())
    assert counts["sd-v1-vae-encoder"] + counts["sd-v1-vae-decoder"] == 83_653_863
    assert counts["sd-v1-vae-encoder"] < counts["sd-v1-vae-decoder"]
    assert counts["clip-vit-large-patch14-text"] == 123_060_480


def test_float_token_ids_are_generated_inside_the_vocabulary():
    task = registry.load_task("tiny-roformer-cail2019")
    inputs = model_inputs(task, resolve_source(task.model, model_file=task.model_file))
    feeds = fake_inputs(inputs, 4)
    ids = feeds["input_token:0"]
    assert ids.dtype == np.float32 and np.all(ids == np.round(ids)) and 0 <= ids.min() and ids.max() < 500


# --- end to end on the tiny twins ------------------------------------------------------------


@pytest.mark.parametrize("task, section", [("tiny-roformer-cail2019", "Top-1"), ("tiny-sd-unet", "Mean Diff")])
def test_tiny_twins_run_end_to_end(task, section, tmp_path):
    workload = tmp_path / f"{task}.yaml"
    text = (registry.WORKLOADS_DIR / f"{task}.yaml").read_text(encoding="utf-8")
    workload.write_text(text + "engine: onnxruntime\nprecision: FP32\n", encoding="utf-8")
    assert perf_engine.main(["--task", str(workload), "--output-dir", str(tmp_path / "out")]) == 0
    report = json.loads(next((tmp_path / "out").rglob("result-fp32.json")).read_text())
    assert [row["BS"] for row in report["Performance"]] == [2, 4]
    assert all(row["QPS"] > 0 for row in report["Performance"])
    assert report["Weights"]["kind"] == "synthetic" and section in report["Accuracy"]
    assert report["Accuracy"].get("Max Diff", 0) < 1e-3


def test_core_prepare_knows_every_archive_of_bytemlperfs_download_script():
    """prepare_model_and_dataset.sh's files (CIFAR-100 comes from its publisher instead)."""
    script = {
        "open_bert.tar",
        "resnet50.tar",
        "open_wide_deep_saved_model.tar",
        "open_albert.tar",
        "open_roformer.tar",
        "open_videobert.tar",
        "open_yolov5.tar",
        "open_conformer.tar",
        "open_roberta.tar",
        "open_deberta.tar",
        "open-swin-large.tar",
        "stable_diffusion.tar",
        "unet.tar",
        "open_imagenet.tar",
        "open_squad.tar",
        "eval.csv",
        "open_cail2019.tar",
    }
    specs = [spec for name in registry.task_names() for spec in registry.load_task(name).model.assets]
    specs += [spec for name in registry.DATASETS.names() for spec in registry.dataset_assets(name)]
    known = {spec.url.rsplit("/", 1)[-1] for spec in specs if spec.url and spec.url.startswith("{base_url}/")}
    assert script <= known, sorted(script - known)


def test_stacked_qa_logits_pass_the_auto_engine_gate(private_zoo, tmp_path):
    """bert-tf-fp32's convention on a tiny BERT: one `logits:0` [N, L, 2] output, engine and precision auto.
    The gate masks padding on every trailing axis and judges start and end apart, so candidates pass."""
    entry = json.loads((registry.REPO_ROOT / "model_zoo" / "tiny-bert-squad.json").read_text())
    names = ("input_ids:0", "input_mask:0", "segment_ids:0")
    entry.update(
        model="tiny-bert-tf",
        inputs=",".join(names),
        outputs="logits:0",
        input_type="INT32,INT32,INT32",
        input_shape={name: [1, 128] for name in names},
    )
    workload = private_zoo(
        entry,
        {
            "batch_sizes": [1],
            "test_accuracy": True,
            "test_numeric": True,
            "iterations": 3,
            "warmup_iterations": 1,
            "min_seconds": 0,
            "max_seconds": 1,
        },
    )
    out = tmp_path / "out"
    assert perf_engine.main(["--task", str(workload), "--output-dir", str(out)]) == 0
    report = json.loads((out / "CPU" / "tiny-bert-tf" / "result-fp32.json").read_text())
    rows = report["Graph Compile"]["Engine Selection"]["Candidates"]
    judged = [row for row in rows if row["Gate"] not in ("dropped", "skipped")]  # never judged: slower, cannot win
    # FP32 is the reference's own arithmetic: a masking mistake would fail it. INT8 may fail honestly where a
    # loaded host sizes the gate's sample small enough to leave its verdict inconclusive.
    exact = [row for row in judged if row["Precision"] == "FP32"]
    assert exact and all(row["Gate"] == "pass" and row["Top-1 Agreement"] > 0.9 for row in exact), rows
    chosen = report["Graph Compile"]["Engine Selection"]["Chosen"]
    assert any(f"{row['Engine']} {row['Precision']}" == chosen and row["Gate"] == "pass" for row in judged), rows
    assert report["Accuracy"]["Compared Values"] > 0 and report["Performance"][0]["QPS"] > 0
