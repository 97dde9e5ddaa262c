"""The LLM run's accuracy figures: what a module answers on a few seeded prompts (greedy tokens, and
teacher-forced logits over the reference's sequence), and llm_perf's figures of a candidate's answers against
the CPU FP32 reference's. The candidates, the gate and the choice among them are core.run.llm_select's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.common import console
from core.model.source import resolve_repo_path
from core.quality.llm_logits import Comparison, multiple_choice_texts, perplexity

ACCURACY_PROMPTS = 4  # prompts the reference and every candidate answer


@dataclass
class Answers:
    """Per prompt: the greedy tokens, and teacher-forced logits [steps, vocab] in FP32."""

    tokens: list[list[int]]
    logits: list[Any]


@dataclass(frozen=True)
class Sequences:
    prompts: list[list[int]]
    steps: int

    @property
    def max_len(self) -> int:
        return max(len(p) for p in self.prompts) + self.steps


def sequences(point, run, source) -> Sequences:
    from core.measure.llm_serving import Prompts

    workload = run.workload
    steps = min(point.output_tokens, workload.accuracy_config.max_new_tokens)
    prompts = Prompts(int(source.config.vocab_size), point.input_tokens, seed=workload.seed + 7919)
    return Sequences([list(prompts.next()) for _ in range(ACCURACY_PROMPTS)], steps)


def answer(model, seqs: Sequences, forced: list[list[int]] | None = None, generate: bool = True) -> Answers:
    """Greedy generation through the serving engine of `model` (a transformers module or a converted model;
    unless `generate` is false: only logits), then teacher-forced logits over `forced` (the reference's tokens)
    or the model's own tokens: one early different token does not cascade."""
    from backends.llm_transformers import serving_engine

    engine = serving_engine(model, 1, seqs.max_len)
    tokens, logits = [], []
    for index, prompt in enumerate(seqs.prompts):
        out = []
        if generate or not forced:
            out.append(engine.prefill(0, prompt))
            while len(out) < seqs.steps:
                out.append(engine.decode([0], [out[-1]])[0])
            engine.release(0)
        follow = forced[index] if forced else out
        logits.append(engine.logits(prompt + follow[:-1])[len(prompt) - 1 :])
        tokens.append(out)
    return Answers(tokens, logits)


def figures(reference: Answers, candidate: Answers, precision: str, seqs: Sequences, source) -> dict[str, Any]:
    """llm_perf's Logits Diff and ours, the candidate against the reference."""
    comparison = Comparison()
    for ref_tokens, ref_logits, cand_tokens, cand_logits in zip(
        reference.tokens, reference.logits, candidate.tokens, candidate.logits
    ):
        comparison.add(ref_logits, cand_logits, ref_tokens, cand_tokens)
    result = comparison.result()
    result["Reference"] = "CPU FP32, the same weights" + (
        "; the run is the reference (FP32)" if precision == "FP32" else ""
    )
    result["Prompts"] = len(seqs.prompts)
    result["Prompt Tokens"] = len(seqs.prompts[0])
    if source.synthetic:
        result["Note"] = "synthetic weights: these figures measure numeric agreement, not model quality"
    console.info(
        f"accuracy vs CPU FP32: first-token max diff {result['Logits Diff']['Max Difference']:.4g}, "
        f"cosine {result['Logits Diff']['Cosine Similarity']:.6f}, greedy agreement "
        f"{result['Greedy Agreement']:.3f}, drift {result['Drift']:.4f}"
    )
    return result


def model_perplexity(model, texts: list[list[int]]) -> float:
    from backends.llm_transformers import serving_engine

    engine = serving_engine(model, 1, 2)  # logits() runs without the cache
    return perplexity(engine.logits, texts)


def ppl_tokens(run) -> list[list[int]]:
    """Token ids of the workload's multiple-choice CSV, or none; tokenized by the model's own tokenizer where
    one is on disk, else as UTF-8 bytes (said in the report)."""
    dataset = run.workload.accuracy_config.dataset
    if not dataset:
        return []
    path = resolve_repo_path(dataset)
    if not path.is_file():
        note = f"accuracy_config.dataset {dataset} not found: no PPL"
        run.report.notes.append(note)
        console.info(note)
        return []
    texts = multiple_choice_texts(path)
    tokenizer_path = run.model.tokenizer.path
    folder = resolve_repo_path(tokenizer_path) if tokenizer_path else None
    if folder is not None and any((folder / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        return [tokenizer(text)["input_ids"] for text in texts]
    vocab = int(getattr(run.model, "network", {}).get("vocab_size", 256))
    run.report.notes.append("PPL: no tokenizer on disk; texts read as UTF-8 bytes (PPL compares engines only)")
    return [[b % vocab for b in text.encode("utf-8")] for text in texts]
