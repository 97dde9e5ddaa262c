"""SQuAD features with a fast tokenizer (the Hugging Face question-answering recipe) and span decoding.

Long contexts become several overlapping features (`return_overflowing_tokens` + `stride`); offsets map
each context token back to characters, so answers are cut from the original context text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from datasets.base import ModelInputs
from datasets.open_squad.data import Question
from datasets.tokenization import pad_tokens

DOC_STRIDE = 128
MAX_QUERY_LENGTH = 64
N_BEST = 20
MAX_ANSWER_LENGTH = 30


@dataclass(frozen=True)
class Settings:
    """The recipe, scaled down only when seq_len is too short for it (tiny test models)."""

    seq_len: int
    doc_stride: int
    max_query_length: int

    @classmethod
    def for_seq_len(cls, seq_len: int) -> Settings:
        query = min(MAX_QUERY_LENGTH, seq_len // 4)
        # The overlap must leave room for new context tokens after the question and 3 special tokens.
        stride = min(DOC_STRIDE, (seq_len - query - 4) // 2)
        return cls(seq_len, stride, query)


@dataclass
class EncodedFeatures:
    token_ids: np.ndarray  # [N, seq_len] int32, padded
    type_ids: np.ndarray  # [N, seq_len] int8
    lengths: np.ndarray  # [N] int64
    offsets: np.ndarray  # [N, seq_len, 2] int32: character span in the context; -1 outside it
    example_index: np.ndarray  # [N] int32: which question each feature belongs to


def encode(tokenizer, questions: Sequence[Question], model: ModelInputs, settings: Settings) -> EncodedFeatures:
    """Question first, context second, context truncated with overlapping windows."""
    texts = _truncate_questions(tokenizer, [q.question.lstrip() for q in questions], settings.max_query_length)
    enc = tokenizer(
        texts,
        [q.context for q in questions],
        truncation="only_second",
        max_length=settings.seq_len,
        stride=settings.doc_stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        return_token_type_ids=True,
        padding=False,
    )
    n = len(enc["input_ids"])
    token_ids, type_ids, lengths = pad_tokens(enc["input_ids"], enc["token_type_ids"], model)
    offsets = np.full((n, settings.seq_len, 2), -1, dtype=np.int32)
    for i in range(n):
        seq_ids = np.array([s if s is not None else -1 for s in enc.sequence_ids(i)])
        context = np.flatnonzero(seq_ids == 1)
        offsets[i, context] = np.asarray(enc["offset_mapping"][i], dtype=np.int32)[context]
    example_index = np.asarray(enc["overflow_to_sample_mapping"], dtype=np.int32)
    return EncodedFeatures(token_ids, type_ids, lengths, offsets, example_index)


def _truncate_questions(tokenizer, questions: list[str], max_tokens: int) -> list[str]:
    """Cut each question text after its max_tokens-th token (the recipe's max_query_length)."""
    offsets = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return [q if len(offs) <= max_tokens else q[: offs[max_tokens - 1][1]] for q, offs in zip(questions, offsets)]


def decode_answers(
    start_logits: np.ndarray, end_logits: np.ndarray, features: EncodedFeatures, contexts: Sequence[str]
) -> tuple[list[str], int]:
    """Best answer text per question over all its features, and the count of non-finite features.

    Per feature: the N_BEST top start and end positions (within its true length); a span is valid
    when both ends are context tokens, start <= end and it is at most MAX_ANSWER_LENGTH tokens long;
    score = start logit + end logit. A feature with any NaN/Inf logit proposes nothing, so a question
    with no valid span answers "".
    """
    best_score = np.full(len(contexts), -np.inf)
    best_span: list[tuple[int, int, int] | None] = [None] * len(contexts)
    nonfinite = 0
    for i, length in enumerate(features.lengths):
        start, end = start_logits[i, :length], end_logits[i, :length]
        if not (np.isfinite(start).all() and np.isfinite(end).all()):
            nonfinite += 1
            continue
        # Same candidate order as the Hugging Face recipe, so ties resolve the same way.
        starts = np.argsort(start)[-1 : -N_BEST - 1 : -1]
        ends = np.argsort(end)[-1 : -N_BEST - 1 : -1]
        s, e = np.meshgrid(starts, ends, indexing="ij")
        in_context = features.offsets[i, :length, 0] >= 0
        valid = in_context[s] & in_context[e] & (e >= s) & (e - s + 1 <= MAX_ANSWER_LENGTH)
        if not valid.any():
            continue
        scores = np.where(valid, start[s] + end[e], -np.inf)
        k = int(np.argmax(scores))
        q = int(features.example_index[i])
        if scores.flat[k] > best_score[q]:
            best_score[q] = scores.flat[k]
            best_span[q] = (i, int(s.flat[k]), int(e.flat[k]))
    answers = []
    for q, span in enumerate(best_span):
        if span is None:
            answers.append("")
            continue
        i, s, e = span
        answers.append(contexts[q][features.offsets[i, s, 0] : features.offsets[i, e, 1]])
    return answers, nonfinite
