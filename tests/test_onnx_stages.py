"""CPU compile stages on tiny random-weight transformers: export, simplify, fusion, int8, fp16."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
transformers = pytest.importorskip("transformers")

from backends.CPU import onnx_stages  # noqa: E402
from core.common.errors import UserError  # noqa: E402
from core.model.builder import CallingConvention, wrap  # noqa: E402

QA_OUTPUTS = ["start_logits", "end_logits"]
BYTEMLPERF_NAMES = ["input_ids.1", "attention_mask.1", "token_type_ids.1"]
VOCAB = 120
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, vocab_size=VOCAB)
SHAPES = [(2, 16), (3, 24)]  # export at the first, check both: proves dynamic batch and sequence


def _tiny(arch: str):
    """A tiny Hugging Face model with eager attention, as core.model.builder builds them."""
    model = _tiny_model(arch)
    model.set_attn_implementation("eager")
    return model


def _tiny_model(arch: str):
    t = transformers
    torch.manual_seed(0)
    deberta = dict(relative_attention=True, position_biased_input=False, type_vocab_size=0, max_relative_positions=-1)
    if arch == "bert":
        return t.BertForQuestionAnswering(t.BertConfig(**TINY)).eval()
    if arch == "albert":
        return t.AlbertForQuestionAnswering(t.AlbertConfig(embedding_size=16, hidden_act="gelu_new", **TINY)).eval()
    if arch == "roberta":
        return t.RobertaForQuestionAnswering(t.RobertaConfig(type_vocab_size=1, pad_token_id=1, **TINY)).eval()
    if arch == "deberta":
        return t.DebertaForQuestionAnswering(t.DebertaConfig(pos_att_type=["c2p", "p2c"], **deberta, **TINY)).eval()
    config = t.DebertaV2Config(
        pos_att_type=["p2c", "c2p"],
        position_buckets=256,
        norm_rel_ebd="layer_norm",
        share_att_key=True,
        num_labels=3,
        **deberta,
        **TINY,
    )
    return t.DebertaV2ForSequenceClassification(config).eval()


# arch -> (feed names, feed dtype, output names); deberta-v3 follows the MNLI entry (int32 input_ids, input_mask)
SPECS = {
    "bert": (BYTEMLPERF_NAMES, np.int64, QA_OUTPUTS),
    "albert": (BYTEMLPERF_NAMES, np.int64, QA_OUTPUTS),
    "roberta": (BYTEMLPERF_NAMES, np.int64, QA_OUTPUTS),
    "deberta": (BYTEMLPERF_NAMES, np.int64, QA_OUTPUTS),
    "deberta-v2": (["input_ids", "input_mask"], np.int32, ["logits"]),
}
TWO_SEGMENTS = {"bert", "albert"}  # type_vocab 2; the others take all-zero token types


def _feeds(names, dtype, batch: int, seq: int, seed: int = 0, segments: bool = True) -> dict[str, np.ndarray]:
    """Random ids, a padded mask (right padding plus one hole, so 1-D mask shortcuts would show), types 0/1."""
    rng = np.random.default_rng(seed)
    mask = np.ones((batch, seq), dtype)
    mask[0, seq - 4 :] = 0
    mask[-1, 3:5] = 0
    types = np.zeros((batch, seq), dtype)
    types[:, seq // 3 :] = int(segments)
    values = [rng.integers(2, VOCAB, (batch, seq)).astype(dtype), mask, types]
    return dict(zip(names, values))


def _torch_outputs(model, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    roles = {
        "input_ids.1": "input_ids",
        "attention_mask.1": "attention_mask",
        "token_type_ids.1": "token_type_ids",
        "input_mask": "attention_mask",
    }
    kwargs = {roles.get(k, k): torch.from_numpy(v) for k, v in feeds.items()}
    with torch.no_grad():
        return [o.numpy() for o in model(**kwargs, return_dict=False)]


def _ort_outputs(path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    declared = {i.name for i in session.get_inputs()}
    return session.run(None, {k: v for k, v in feeds.items() if k in declared})


def _max_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    assert len(a) == len(b)
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """arch -> (model, exported StageResult); exported once per module run."""
    folder = tmp_path_factory.mktemp("export")
    done = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about data-dependent Python branches
        for arch, (names, dtype, outputs) in SPECS.items():
            model = _tiny(arch)
            done[arch] = (
                model,
                onnx_stages.export_onnx(
                    wrap(model, CallingConvention(tuple(names), tuple(outputs))),
                    _feeds(names, dtype, *SHAPES[0], segments=arch in TWO_SEGMENTS),
                    outputs,
                    folder / f"{arch}.onnx",
                ),
            )
    return done


@pytest.mark.parametrize("arch", list(SPECS))
def test_export_matches_torch_at_two_shapes(exported, arch):
    model, result = exported[arch]
    names, dtype, outputs = SPECS[arch]
    assert result.name == "export" and result.path.is_file()
    assert not list(result.path.parent.glob(f"{arch}.onnx.data")), "single-file ONNX expected"
    assert result.details["outputs"] == outputs
    assert set(result.details["inputs"]) <= set(names) and names[0] in result.details["inputs"]
    for batch, seq in SHAPES:
        feeds = _feeds(names, dtype, batch, seq, seed=batch, segments=arch in TWO_SEGMENTS)
        assert _max_diff(_ort_outputs(result.path, feeds), _torch_outputs(model, feeds)) < 1e-4


def test_export_drops_unused_deberta_token_types_and_records_the_attention_it_traced(exported):
    _, result = exported["deberta"]
    assert "token_type_ids.1" not in result.details["inputs"]
    assert result.details["attention"] == "eager"


def test_torchscript_module_exports_and_fuses(tmp_path):
    model = _tiny("bert")
    model.set_attn_implementation("eager")  # as ByteMLPerf's .pt files were traced (pre-SDPA transformers)
    model.config.return_dict = False  # tuple outputs, as tracing needs
    feeds = _feeds(BYTEMLPERF_NAMES, np.int64, *SHAPES[0])
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, tuple(torch.from_numpy(v) for v in feeds.values()))
        result = onnx_stages.export_onnx(traced, feeds, QA_OUTPUTS, tmp_path / "ts.onnx")
    assert result.details["inputs"] == BYTEMLPERF_NAMES
    for batch, seq in SHAPES:
        other = _feeds(BYTEMLPERF_NAMES, np.int64, batch, seq, seed=7)
        assert _max_diff(_ort_outputs(result.path, other), _torch_outputs(model, other)) < 1e-4
    fused = onnx_stages.optimize_transformer(
        result.path, tmp_path / "ts_fused.onnx", model_type="bert", num_heads=2, hidden_size=32
    )
    assert fused.details["fused"].get("Attention") == TINY["num_hidden_layers"]


def test_simplify_shrinks_graph_and_keeps_outputs(exported, tmp_path):
    _, result = exported["bert"]
    slim = onnx_stages.simplify(result.path, tmp_path / "slim.onnx")
    assert slim.details["nodes_after"] < slim.details["nodes_before"]
    for batch, seq in SHAPES:
        feeds = _feeds(BYTEMLPERF_NAMES, np.int64, batch, seq)
        assert _max_diff(_ort_outputs(slim.path, feeds), _ort_outputs(result.path, feeds)) < 1e-6


@pytest.mark.parametrize("arch", ["bert", "albert", "roberta"])
def test_optimizer_fuses_every_attention_layer(exported, tmp_path, arch):
    model, result = exported[arch]
    out = onnx_stages.optimize_transformer(
        result.path, tmp_path / "fused.onnx", model_type="bert", num_heads=2, hidden_size=32
    )
    # ALBERT's first layer only fuses after the residual-Add reordering; the others need none of it.
    assert out.details["fused"].get("Attention") == TINY["num_hidden_layers"], out.details
    assert out.details["fused"].get("SkipLayerNormalization", 0) > 0
    assert onnx_stages.fused_operator_counts(out.path)["Attention"] == TINY["num_hidden_layers"]
    for batch, seq in SHAPES:
        feeds = _feeds(BYTEMLPERF_NAMES, np.int64, batch, seq, seed=3, segments=arch in TWO_SEGMENTS)
        assert _max_diff(_ort_outputs(out.path, feeds), _torch_outputs(model, feeds)) < 1e-4


@pytest.mark.parametrize("arch", ["deberta", "deberta-v2"])
def test_optimizer_on_deberta_fuses_norms_but_not_attention(exported, tmp_path, arch):
    model, result = exported[arch]
    names, dtype, _ = SPECS[arch]
    model_type = onnx_stages.fusion_model_type(model.config.model_type)
    out = onnx_stages.optimize_transformer(
        result.path, tmp_path / "fused.onnx", model_type=model_type, num_heads=2, hidden_size=32
    )
    assert "Attention" not in out.details["fused"]  # relative-position attention: no ORT fusion
    assert out.details["fused"].get("SkipLayerNormalization", 0) > 0
    feeds = _feeds(names, dtype, *SHAPES[1], segments=False)
    assert _max_diff(_ort_outputs(out.path, feeds), _torch_outputs(model, feeds)) < 1e-4


def test_int8_dynamic_quantization_runs_with_bounded_drift(exported, tmp_path):
    model, result = exported["bert"]
    out = onnx_stages.quantize_int8_dynamic(result.path, tmp_path / "int8.onnx", per_channel=True)
    ops = out.details["operators"]
    assert ops.get("MatMulInteger", 0) > 0 and ops.get("DynamicQuantizeLinear", 0) > 0
    feeds = _feeds(BYTEMLPERF_NAMES, np.int64, *SHAPES[1])
    reference = _torch_outputs(model, feeds)
    drift = _max_diff(_ort_outputs(out.path, feeds), reference)
    scale = max(float(np.abs(r).max()) for r in reference)
    assert 0 < drift < 0.2 * scale, f"int8 dynamic drift {drift:.3g} vs output scale {scale:.3g}"


def test_int8_static_quantization_is_qdq_with_bounded_drift(exported, tmp_path):
    model, result = exported["bert"]
    calibration = [_feeds(BYTEMLPERF_NAMES, np.int64, 2, 16, seed=s) for s in range(4)]
    out = onnx_stages.quantize_int8_static(result.path, tmp_path / "qdq.onnx", calibration)
    ops = out.details["operators"]
    assert ops.get("QuantizeLinear", 0) > 0 and ops.get("DequantizeLinear", 0) > 0
    assert out.details["calibration_batches"] == 4
    feeds = _feeds(BYTEMLPERF_NAMES, np.int64, *SHAPES[1], seed=9)
    reference = _torch_outputs(model, feeds)
    drift = _max_diff(_ort_outputs(out.path, feeds), reference)
    scale = max(float(np.abs(r).max()) for r in reference)
    assert 0 < drift < 0.3 * scale, f"int8 static drift {drift:.3g} vs output scale {scale:.3g}"


def test_int8_static_without_calibration_data_is_a_user_error(exported, tmp_path):
    _, result = exported["bert"]
    with pytest.raises(UserError, match="calibration"):
        onnx_stages.quantize_int8_static(result.path, tmp_path / "qdq.onnx", [])


def test_fp16_runs_on_cpu_through_inserted_casts(exported, tmp_path):
    import onnx

    model, result = exported["bert"]
    fused = onnx_stages.optimize_transformer(
        result.path, tmp_path / "fused.onnx", model_type="bert", num_heads=2, hidden_size=32
    )
    half = onnx_stages.convert_fp16(fused.path, tmp_path / "fp16.onnx")
    weights = onnx.load(str(half.path)).graph.initializer
    assert any(w.data_type == onnx.TensorProto.FLOAT16 for w in weights)
    feeds = _feeds(BYTEMLPERF_NAMES, np.int64, *SHAPES[0])
    outputs = _ort_outputs(half.path, feeds)
    assert all(o.dtype == np.float32 for o in outputs)  # keep_io_types
    assert 0 < _max_diff(outputs, _torch_outputs(model, feeds)) < 1e-2


def test_export_failure_names_stage_and_operator(tmp_path):
    class Spectrum(torch.nn.Module):
        def forward(self, x):
            return torch.fft.fft(x.float()).real

    with pytest.raises(UserError) as err:
        onnx_stages.export_onnx(Spectrum(), {"x": np.ones((2, 4), np.float32)}, ["y"], tmp_path / "bad.onnx")
    assert err.value.field == "export" and "aten::fft_fft" in str(err.value)


def test_optimizer_rejects_unknown_model_type(exported, tmp_path):
    _, result = exported["bert"]
    with pytest.raises(UserError, match="model_type"):
        onnx_stages.optimize_transformer(
            result.path, tmp_path / "o.onnx", model_type="albert", num_heads=2, hidden_size=32
        )


@pytest.mark.parametrize(
    ("hf", "ort_type"),
    [
        ("albert", "bert"),
        ("bert", "bert"),
        ("roberta", "bert"),
        ("deberta", "bert"),
        ("deberta-v2", "bert"),
        ("deberta_v2", "bert"),
        ("gpt2", None),
    ],
)
def test_fusion_model_type(hf, ort_type):
    assert onnx_stages.fusion_model_type(hf) == ort_type


def test_int8_dynamic_quantizes_a_fused_graph(exported, tmp_path):
    model, result = exported["bert"]
    fused = onnx_stages.optimize_transformer(
        result.path, tmp_path / "fused.onnx", model_type="bert", num_heads=2, hidden_size=32
    )
    out = onnx_stages.quantize_int8_dynamic(fused.path, tmp_path / "int8.onnx")
    assert out.details["operators"].get("QAttention") == TINY["num_hidden_layers"]
    feeds = _feeds(BYTEMLPERF_NAMES, np.int64, *SHAPES[1])
    reference = _torch_outputs(model, feeds)
    scale = max(float(np.abs(r).max()) for r in reference)
    assert _max_diff(_ort_outputs(out.path, feeds), reference) < 0.2 * scale


def test_graphs_past_the_protobuf_limit_keep_their_weights_in_one_data_file(exported, tmp_path, monkeypatch):
    """The SD UNet (3.4 GB) cannot be one protobuf: simulated here by lowering the limit on a tiny BERT."""
    import onnx

    model, result = exported["bert"]
    names, dtype, _ = SPECS["bert"]
    feeds = _feeds(names, dtype, *SHAPES[0])
    expected = _ort_outputs(result.path, feeds)
    # What the exporter writes past 2 GiB: one file per weight. gather_weights makes it one .data file.
    many = tmp_path / "many" / "exported.onnx"
    many.parent.mkdir()
    onnx.save_model(
        onnx.load(str(result.path)),
        str(many),
        save_as_external_data=True,
        all_tensors_to_one_file=False,
        size_threshold=0,
    )
    assert len(list(many.parent.iterdir())) > 10
    monkeypatch.setattr(onnx_stages, "PROTOBUF_LIMIT", 1024)
    onnx_stages.gather_weights(many)
    assert sorted(p.name for p in many.parent.iterdir()) == ["exported.onnx", "exported.onnx.data"]
    # Stages keep the weights beside their own output, and a move carries them along.
    simplified = onnx_stages.simplify(many, tmp_path / "simplified.onnx")
    assert "skipped" in simplified.details and (tmp_path / "simplified.onnx.data").is_file()
    int8 = onnx_stages.quantize_int8_dynamic(many, tmp_path / "int8.onnx")
    (tmp_path / "final").mkdir()
    onnx_stages.move_onnx(tmp_path / "simplified.onnx", tmp_path / "final" / "model.onnx")
    assert (tmp_path / "final" / "model.onnx.data").is_file() and not (tmp_path / "simplified.onnx").exists()
    assert _max_diff(_ort_outputs(tmp_path / "final" / "model.onnx", feeds), expected) < 1e-5
    assert _max_diff(_ort_outputs(int8.path, feeds), expected) < 0.5
