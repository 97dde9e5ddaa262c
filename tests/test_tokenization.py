"""Tokenizer resolution (offline only), the deterministic fallback, and packing into model inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.common.errors import UserError
from datasets.base import ModelInputs
from datasets.tokenization import model_inputs, pad_tokens, resolve_tokenizer

REPO = Path(__file__).resolve().parents[1]
TEXTS = [
    "The harbour lantern glows over the copper meadow.",
    "Who keeps the lantern?",
    "Violet granite walls line the willow road near the falcon tower.",
] * 3


def test_fallback_is_deterministic_bounded_and_has_offsets(tmp_path):
    tok1, prov1 = resolve_tokenizer(None, vocab_size=300, sample_texts=TEXTS, cache_dir=tmp_path / "a")
    tok2, prov2 = resolve_tokenizer(None, vocab_size=300, sample_texts=TEXTS, cache_dir=tmp_path / "b")
    files = [next((tmp_path / d).rglob("tokenizer.json")).read_bytes() for d in "ab"]
    assert files[0] == files[1] and prov1["identity"] == prov2["identity"]
    assert prov1["kind"] == "fallback" and not prov1["meaningful_accuracy"]
    assert "accuracy not meaningful" in prov1["note"]
    assert len(tok1) <= 300
    enc = tok1("Who keeps", "the harbour lantern", return_offsets_mapping=True, return_token_type_ids=True)
    assert enc["input_ids"][0] == tok1.cls_token_id and enc["input_ids"][-1] == tok1.sep_token_id
    assert enc["token_type_ids"][-1] == 1 and enc["token_type_ids"][0] == 0
    assert ("the harbour lantern"[slice(*enc["offset_mapping"][-2])]) == "lantern"
    _, prov3 = resolve_tokenizer(None, vocab_size=300, sample_texts=TEXTS[:2], cache_dir=tmp_path / "a")
    assert prov3["identity"] != prov1["identity"]


def test_too_small_vocabulary_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="vocab_size 8 is too small"):
        resolve_tokenizer(None, vocab_size=8, sample_texts=TEXTS, cache_dir=tmp_path)


# In a fresh process without the suite's HF_HUB_OFFLINE / PERFBENCH_OFFLINE, every name lookup and
# connection is recorded (a caller that catches errors must not hide one): the code alone has to keep
# off the network, huggingface_hub's own calls included.
GUARD = (
    "import socket, json\n"
    "attempts = []\n"
    "def refuse(*a, **k):\n"
    "    attempts.append(str(a[:1]))\n"
    "    raise OSError('network access attempted')\n"
    "socket.socket.connect = socket.getaddrinfo = refuse\n"
    "from pathlib import Path\n"
    "from datasets.tokenization import resolve_tokenizer\n"
)


def run_guarded(body: str, tmp_path: Path, hub: Path) -> list:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "PERFBENCH_OFFLINE")}
    env.update(HF_HUB_CACHE=str(hub), HF_HOME=str(tmp_path / "hf-home"))
    done = subprocess.run(
        [sys.executable, "-c", GUARD + body], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_uncached_hub_id_falls_back_without_network(tmp_path):
    kind, reason, attempts = run_guarded(
        "tok, prov = resolve_tokenizer('perfbench-test/not-a-real-model', vocab_size=300,\n"
        f"    sample_texts=['copper meadow', 'a b c'], cache_dir=Path({str(tmp_path)!r}))\n"
        "print(json.dumps([prov['kind'], prov['reason'], attempts]))\n",
        tmp_path,
        tmp_path / "empty-hub",
    )
    assert kind == "fallback" and "not in the local Hugging Face cache" in reason
    assert attempts == []


def test_local_folder_and_vocab_file(tmp_path):
    tok, _ = resolve_tokenizer(None, vocab_size=300, sample_texts=TEXTS, cache_dir=tmp_path)
    tok.save_pretrained(tmp_path / "tok")
    local, prov = resolve_tokenizer(str(tmp_path / "tok"), vocab_size=300, sample_texts=[], cache_dir=tmp_path)
    assert prov["kind"] == "local" and prov["meaningful_accuracy"]
    assert local("copper meadow")["input_ids"] == tok("copper meadow")["input_ids"]
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(sorted(tok.get_vocab(), key=tok.get_vocab().get)) + "\n")
    bert, prov = resolve_tokenizer(str(vocab), vocab_size=300, sample_texts=[], cache_dir=tmp_path)
    assert prov["kind"] == "local" and bert.is_fast
    assert bert.convert_ids_to_tokens(bert("copper")["input_ids"])[1:-1] == tok.tokenize("copper")
    with pytest.raises(UserError, match="does not exist"):
        resolve_tokenizer(str(tmp_path / "nope"), vocab_size=300, sample_texts=[], cache_dir=tmp_path)


@pytest.mark.parametrize("type_vocab, expected_types", [(2, [0, 0, 1, 1, 0]), (0, [0, 0, 0, 0, 0])])
def test_packing_into_model_inputs(type_vocab, expected_types):
    model = ModelInputs(
        names=("ids", "mask", "types"),
        dtypes=("LONG", "INT32", "LONG"),
        seq_len=5,
        vocab_size=100,
        type_vocab_size=type_vocab,
        pad_token_id=1,
    )
    ids, types, lengths = pad_tokens([[5, 6, 7, 8], [9]], [[0, 0, 1, 1], [0]], model)
    inputs = model_inputs(ids, types, lengths, model)
    assert inputs["ids"].tolist() == [[5, 6, 7, 8, 1], [9, 1, 1, 1, 1]]  # padded with the model's pad id
    assert inputs["mask"].tolist() == [[1, 1, 1, 1, 0], [1, 0, 0, 0, 0]] and inputs["mask"].dtype == np.int32
    assert inputs["types"][0].tolist() == expected_types and inputs["types"].dtype == np.int64
    assert lengths.tolist() == [4, 1]
    with pytest.raises(UserError, match="ids, mask"):
        model_inputs(
            ids,
            types,
            lengths,
            ModelInputs(names=("ids",), dtypes=("LONG",), seq_len=5, vocab_size=100, type_vocab_size=0),
        )


def test_tokenizer_from_local_hub_cache_offline(tmp_path):
    """A Hugging Face id found in the local cache loads with the network blocked (fresh process, so the
    hub's cache location comes from the environment)."""
    tok, _ = resolve_tokenizer(None, vocab_size=300, sample_texts=TEXTS, cache_dir=tmp_path)
    repo = tmp_path / "hub" / "models--perfbench-test--tiny"
    snapshot = repo / "snapshots" / ("0" * 40)
    tok.save_pretrained(snapshot)
    (snapshot / "config.json").write_text('{"model_type": "bert"}')
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    kind, ids, attempts = run_guarded(
        "tok, prov = resolve_tokenizer('perfbench-test/tiny', vocab_size=300, sample_texts=[],\n"
        f"    cache_dir=Path({str(tmp_path)!r}))\n"
        "print(json.dumps([prov['kind'], tok('copper meadow')['input_ids'], attempts]))\n",
        tmp_path,
        tmp_path / "hub",
    )
    assert attempts == []
    assert kind == "hf-cache" and ids == tok("copper meadow")["input_ids"]
