"""Tokenizers for dataset loaders, found offline only, and packing token ids into model inputs.

Order: a local folder or file -> a Hugging Face id already in the local cache -> a small WordPiece
tokenizer built from the dataset's own texts (deterministic, cached on disk). The last one lets every
pipeline run without downloads, but its ids are not the model's: accuracy is then not meaningful.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.common.atomic import atomic_write_text
from core.common.digest import json_digest
from core.common.errors import UserError
from datasets.base import INPUT_ROLES, ModelInputs

log = logging.getLogger(__name__)

FALLBACK_NOTE = "fallback tokenizer (not the model's): accuracy not meaningful"
_FALLBACK_VERSION = 1
_FALLBACK_MAX_VOCAB = 8192  # the dataset's commonest words; the rest split into characters
_FALLBACK_MIN_VOCAB = 64
_SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def resolve_tokenizer(
    spec: str | None, *, vocab_size: int, sample_texts: Iterable[str], cache_dir: Path
) -> tuple[Any, dict[str, Any]]:
    """Return (fast tokenizer, provenance). Never touches the network."""
    if spec:
        path = Path(spec).expanduser()
        if path.exists():
            tok = _load_local(path)
            return tok, _provenance("local", str(path), tok)
        if path.is_absolute() or spec.startswith((".", "~")):
            raise UserError(
                "tokenizer path does not exist",
                file=path,
                field="tokenizer",
                fix="point it at a tokenizer folder, tokenizer.json or vocab.txt",
            )
        tok = _load_cached_hub(spec)
        if tok is not None:
            return tok, _provenance("hf-cache", spec, tok)
        reason = f"{spec!r} is not in the local Hugging Face cache"
    else:
        reason = "no tokenizer configured"
    log.warning("%s; using a %s", reason, FALLBACK_NOTE)
    tok, digest = _fallback(list(sample_texts), vocab_size, Path(cache_dir))
    return tok, {
        "kind": "fallback",
        "name": None,
        "identity": f"fallback-{digest}",
        "reason": reason,
        "meaningful_accuracy": False,
        "note": FALLBACK_NOTE,
    }


def tokenizer_identity(tok: Any) -> str:
    """A hash of everything that decides token ids: the Rust tokenizer definition, less the
    truncation/padding state that each call sets."""
    definition = json.loads(tok.backend_tokenizer.to_str())
    definition.pop("truncation", None)
    definition.pop("padding", None)
    return json_digest(definition, 20)


def _provenance(kind: str, name: str, tok: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "name": name,
        "identity": f"{kind}-{tokenizer_identity(tok)}",
        "meaningful_accuracy": True,
        "note": f"model tokenizer ({kind}: {name})",
    }


def _require_fast(tok: Any, where: object) -> Any:
    if not getattr(tok, "is_fast", False):
        raise UserError(
            "tokenizer has no fast (Rust) version; answer offsets need one",
            file=where,
            field="tokenizer",
            fix="provide a tokenizer.json",
        )
    return tok


def _load_local(path: Path) -> Any:
    from tokenizers.models import WordPiece
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    try:
        if path.is_file() and path.suffix == ".txt":  # a BERT vocab.txt, as ByteMLPerf's BERT ships
            return _wrap(_bert_wordpiece(WordPiece.read_file(str(path))))
        if path.is_file():
            return _require_fast(PreTrainedTokenizerFast(tokenizer_file=str(path)), path)
        if not any(path.glob("tokenizer*.json")) and (path / "vocab.txt").is_file():
            return _wrap(_bert_wordpiece(WordPiece.read_file(str(path / "vocab.txt"))))
        return _require_fast(AutoTokenizer.from_pretrained(str(path), local_files_only=True), path)
    except (OSError, ValueError, KeyError) as err:
        raise UserError(
            f"cannot load tokenizer: {err}",
            file=path,
            field="tokenizer",
            fix="give a folder with tokenizer.json (or tokenizer_config.json and its files), "
            "a tokenizer.json or a BERT vocab.txt",
        ) from err


def _load_cached_hub(model_id: str) -> Any | None:
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(model_id, local_files_only=True)
    except (OSError, ValueError) as err:
        log.debug("tokenizer %s not in the local cache: %s", model_id, err)
        return None
    return _require_fast(tok, model_id)


def _wrap(backend) -> Any:
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def _bert_wordpiece(vocab: dict[str, int]):
    """An uncased BERT-style WordPiece tokenizer over `vocab`: [CLS] A [SEP] B [SEP], types 0/1."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return backend


def _fallback(texts: list[str], vocab_size: int, cache_dir: Path) -> tuple[Any, str]:
    from tokenizers import Tokenizer

    target = min(vocab_size, _FALLBACK_MAX_VOCAB)
    digest = hashlib.sha256(json.dumps({"v": _FALLBACK_VERSION, "vocab": target}).encode())
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\0")
    key = digest.hexdigest()[:20]
    path = cache_dir / "tokenizers" / f"fallback-{key}" / "tokenizer.json"
    if not path.is_file():
        backend = _bert_wordpiece(_frequency_vocab(texts, target))
        atomic_write_text(path, backend.to_str())
    return _wrap(Tokenizer.from_file(str(path))), key


def _frequency_vocab(texts: list[str], vocab_size: int) -> dict[str, int]:
    """Special tokens, the commonest characters (word-initial and "##" forms), then the commonest words.

    Ranked by count with ties broken by the text itself, so the same texts always give the same ids:
    the `tokenizers` trainers break ties in hash order, which changes from process to process.
    Words outside the vocabulary split into characters, as WordPiece does.
    """
    if vocab_size < _FALLBACK_MIN_VOCAB:
        raise UserError(
            f"vocab_size {vocab_size} is too small for a fallback tokenizer (needs {_FALLBACK_MIN_VOCAB})",
            field="vocab_size",
            fix="configure the model's tokenizer or a larger vocabulary",
        )
    splitter = _bert_wordpiece({token: i for i, token in enumerate(_SPECIAL)})
    words: Counter[str] = Counter()
    for text in texts:
        normalized = splitter.normalizer.normalize_str(text)
        words.update(word for word, _ in splitter.pre_tokenizer.pre_tokenize_str(normalized))
    chars: Counter[str] = Counter()
    for word, count in words.items():
        for ch in word:
            chars[ch] += count

    def ranked(counter: Counter[str]) -> list[str]:
        return [key for key, _ in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))]

    alphabet = ranked(chars)[: (vocab_size - len(_SPECIAL)) // 3]
    tokens = [*_SPECIAL, *alphabet, *(f"##{ch}" for ch in alphabet)]
    known = set(tokens)
    tokens += [word for word in ranked(words) if word not in known][: vocab_size - len(tokens)]
    return {token: i for i, token in enumerate(tokens)}


def input_roles(model: ModelInputs, where: object = None) -> tuple[str, ...]:
    """The roles (ids, mask[, token types]) of the model's inputs, in its order."""
    if not 2 <= len(model.names) <= len(INPUT_ROLES) or len(model.dtypes) != len(model.names):
        raise UserError(
            f"expected 2 or 3 inputs (ids, mask[, token types]) with one type each, got "
            f"{list(model.names)} / {list(model.dtypes)}",
            file=where,
            field="inputs",
            fix="list the inputs in the order ids, mask, token types",
        )
    return INPUT_ROLES[: len(model.names)]


def pad_tokens(
    ids: Sequence[Sequence[int]], type_ids: Sequence[Sequence[int]] | None, model: ModelInputs
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pad token lists to [N, seq_len]: (ids int32 padded with pad_token_id, token types int8, lengths).

    Compact on purpose: this is what feature caches store; model_inputs() widens it per model.
    """
    n, width = len(ids), model.seq_len
    lengths = np.fromiter((len(row) for row in ids), dtype=np.int64, count=n)
    if n and int(lengths.max()) > width:
        raise ValueError(f"a feature has {int(lengths.max())} tokens, more than seq_len {width}")
    valid = np.arange(width)[None, :] < lengths[:, None]
    total = int(lengths.sum())
    token_ids = np.full((n, width), model.pad_token_id, dtype=np.int32)
    token_ids[valid] = np.fromiter((t for row in ids for t in row), dtype=np.int32, count=total)
    types = np.zeros((n, width), dtype=np.int8)
    if type_ids is not None and model.type_vocab_size >= 2:
        types[valid] = np.fromiter((t for row in type_ids for t in row), dtype=np.int8, count=total)
    return token_ids, types, lengths


def model_inputs(
    token_ids: np.ndarray, type_ids: np.ndarray, lengths: np.ndarray, model: ModelInputs
) -> dict[str, np.ndarray]:
    """The model's inputs by name, in its dtypes: ids, mask (1 below each length)[, token types]."""
    mask = np.arange(token_ids.shape[1])[None, :] < lengths[:, None]
    by_role = {"input_ids": token_ids, "attention_mask": mask, "token_type_ids": type_ids}
    return {
        name: by_role[role].astype(model.numpy_dtype(i))
        for i, (name, role) in enumerate(zip(model.names, input_roles(model)))
    }
