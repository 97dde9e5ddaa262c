"""Stage: the LLM candidates, each briefly timed and gated, and the fastest that passes runs.

A candidate is an engine at a precision: the transformers slot engine at BF16 (where native) and FP32, and on
the CPU onnxruntime-genai at FP32 (its builder converts the same weights; cached). The transformers candidates
share one module, to hold no second copy of the weights: the FP32 reference answers first (and is the
transformers FP32 candidate: the same module, timed as it stands); onnxruntime-genai is converted from it while
it is still FP32; each lower precision then casts the module, is timed and answers the reference's sequences;
casting back to FP32 gives the reference with the candidate's weight rounding (BF16 values held in FP32), whose
drift scales the gate's bound (core.quality.llm_gate). The chosen candidate's model is returned ready to serve;
a transformers FP32 choice after a cast is built again from the source, since the rounding cannot be undone.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.common import console
from core.common.errors import Interrupted, UserError
from core.reporting.sections import CandidateRow, EngineSelection

ENGINE = "transformers"
GENAI = "onnxruntime-genai"
DECODE_STEPS = 8  # timed at batch size 1, after one warm-up prefill and two steps
CONVERSION_HEADROOM = 1.5  # x the FP32 weights free before converting: the builder loads its own copy


@dataclass(frozen=True)
class Candidate:
    engine: str
    precision: str

    @property
    def label(self) -> str:
        return f"{self.engine} {self.precision}"


@dataclass
class Timing:
    ttft_ms: float
    decode_tokens_per_s: float


@dataclass
class Choice:
    model: Any  # what the server runs: a transformers module at its precision, or a converted model
    engine: str
    precision: str
    accuracy: dict[str, Any]
    selection: EngineSelection
    artifact_mb: float | None = None
    notes: list[str] = field(default_factory=list)


def time_candidate(model, prompt: Sequence[int], steps: int) -> Timing:
    """One prefill of `prompt` and `steps` decode steps at batch size 1 (the median step), after a warm-up."""
    from backends.llm_transformers import serving_engine

    engine = serving_engine(model, 1, len(prompt) + steps + 1)
    token = engine.prefill(0, prompt)
    for _ in range(2):
        token = engine.decode([0], [token])[0]
    engine.release(0)
    started = time.perf_counter_ns()
    token = engine.prefill(0, prompt)
    ttft = time.perf_counter_ns() - started
    gaps = []
    for _ in range(steps):
        started = time.perf_counter_ns()
        token = engine.decode([0], [token])[0]
        gaps.append(time.perf_counter_ns() - started)
    engine.release(0)
    return Timing(ttft / 1e6, 1e9 / statistics.median(gaps))


def candidates(run, auto: str) -> list[Candidate]:
    """Candidates to try, likely-fastest first: `auto`'s precision (BF16 where native), onnxruntime-genai FP32 on
    the CPU, transformers FP32; a pinned engine or precision keeps only its own."""
    engine = run.workload.engine or "auto"
    precisions = [auto] if run.precision != "auto" or auto == "FP32" else [auto, "FP32"]
    found = [Candidate(ENGINE, p) for p in precisions if engine in ("auto", ENGINE)]
    if engine in ("auto", GENAI) and run.spec.name == "CPU" and "FP32" in precisions:
        found.insert(len(found) - 1 if found else 0, Candidate(GENAI, "FP32"))
    if not found:
        raise UserError(
            f"{engine} runs FP32 on the CPU backend only",
            field="--engine",
            fix="pass --precision FP32 or auto on --hardware_type CPU, or another engine",
        )
    return found


def select(module, tried: list[Candidate], point, run, source, rebuild: Callable[[], Any]) -> Choice:
    """Time and gate every candidate; the chosen one's model ready to serve, its accuracy figures and the
    candidates table. `module` is the FP32 reference (a transformers module)."""
    import torch

    from core.quality import llm_gate
    from core.run.llm_accuracy import answer, figures, model_perplexity, ppl_tokens, sequences

    started = time.perf_counter()
    seqs = sequences(point, run, source)
    prompt = seqs.prompts[0]
    steps = max(1, min(DECODE_STEPS, point.output_tokens))
    texts = ppl_tokens(run)
    with console.status("the CPU FP32 reference answers"):
        reference = answer(module, seqs)
    ppl_reference = model_perplexity(module, texts) if texts else None
    rows: dict[Candidate, CandidateRow] = {}
    outputs: dict[Candidate, Any] = {}
    loaders: dict[Candidate, Callable[[], Any]] = {}
    artifact: dict[Candidate, float] = {}
    # FP32 candidates first: they need the weights before any cast rounds them.
    for candidate in sorted(tried, key=lambda c: c.precision != "FP32"):
        try:
            if candidate.engine == GENAI:
                model, row_facts, loaders[candidate] = _genai(module, run, source)
                artifact[candidate] = row_facts["Artifact MB"]
            elif candidate.precision == "FP32":
                model, row_facts = module, {}
            else:
                module.to({"BF16": torch.bfloat16, "FP16": torch.float16}[candidate.precision])
                model, row_facts = module, {}
            with console.status(f"timing {candidate.label}"):
                timing = time_candidate(model, prompt, steps)
            if model is module and candidate.precision == "FP32":
                outputs[candidate] = reference
                verdict = llm_gate.judge(reference.logits, reference.logits, reference.logits)
                scale = "the reference itself (the same module)"
            else:
                with console.status(f"{candidate.label} answers the reference's sequences"):
                    outputs[candidate] = answer(model, seqs, reference.tokens)
                scale_logits, scale = reference.logits, "the reference itself (FP32 weights, no rounding)"
                if candidate.precision != "FP32":
                    module.to(torch.float32)  # the reference with this precision's weight rounding: the scale
                    with console.status(f"the reference with {candidate.precision}-rounded weights answers"):
                        scale_logits = answer(module, seqs, reference.tokens, generate=False).logits
                    scale = f"FP32 with weights rounded to {candidate.precision}"
                verdict = llm_gate.judge(reference.logits, outputs[candidate].logits, scale_logits)
            rows[candidate] = _row(candidate, timing, verdict, scale, row_facts)
        except (KeyboardInterrupt, Interrupted):
            raise
        except Exception as err:  # a candidate that cannot run is a row saying why, never the run's end
            why = f"{type(err).__name__}: {err}"[:300]
            rows[candidate] = CandidateRow(
                engine=candidate.engine, precision=candidate.precision, gate="error", why=why
            )
        finally:
            model = None  # a converted model is loaded again only if chosen
    passed = [c for c in tried if rows[c].passed]
    fp32 = Candidate(ENGINE, "FP32")
    chosen = max(passed, key=lambda c: rows[c].extra["Decode Tokens/s"]) if passed else fp32
    cast = any(c.precision != "FP32" for c in rows)
    if chosen.engine == GENAI:
        module.to("meta")  # the torch weights are not served: free them
        served = loaders[chosen]()
    elif chosen.precision == "FP32":
        served = module
        if cast:
            module.to("meta")  # frees the rounded weights before the FP32 ones are built again
            served = rebuild()
    else:
        served = module.to({"BF16": torch.bfloat16, "FP16": torch.float16}[chosen.precision])
    outputs.setdefault(chosen, reference)  # no candidate passed: the reference runs
    for candidate in tried:
        rows[candidate].chosen = candidate == chosen
        console.info(_line(rows[candidate]))
    accuracy = figures(reference, outputs[chosen], chosen.precision, seqs, source)
    accuracy["Gate"] = rows[chosen].gate if chosen in rows else "fail"
    if texts:
        accuracy["PPL"] = round(model_perplexity(served, texts), 6)
        accuracy["PPL Reference"] = round(ppl_reference, 6)
    reason = (
        f"the fastest decode at batch size 1 of those the gate passed ({', '.join(c.label for c in passed)})"
        if passed
        else "no candidate passed the gate: the FP32 reference runs"
    )
    selection = EngineSelection(
        chosen=chosen.label,
        reason=reason if len(tried) > 1 else f"pinned; gate {accuracy['Gate']}",
        batch_size=1,
        tuning_seconds=round(time.perf_counter() - started, 2),
        timing=f"one prefill of {len(prompt)} tokens (TTFT) and the median of {steps} decode steps at batch size "
        "1, after a warm-up prefill and two steps",
        gate={
            **llm_gate.rule("the reference with the candidate's weight rounding, run in FP32"),
            "Prompts": len(seqs.prompts),
        },
        candidates=[rows[c] for c in tried],
        decision="tuned in this run",
    )
    return Choice(served, chosen.engine, chosen.precision, accuracy, selection, artifact.get(chosen))


def _genai(module, run, source):
    """onnxruntime-genai's model of the module's FP32 weights: loaded, its row's facts, and how to load it again."""
    import psutil

    from backends.CPU import llm_genai
    from core.common.paths import state_dir

    missing = llm_genai.missing()
    if missing:
        raise RuntimeError(missing)
    weights = sum(p.numel() for p in module.parameters()) * 4
    free = psutil.virtual_memory().available
    if free < CONVERSION_HEADROOM * weights:
        raise RuntimeError(
            f"skipped: converting needs ~{CONVERSION_HEADROOM * weights / 2**30:.1f} GiB free, "
            f"{free / 2**30:.1f} GiB is"
        )
    started = time.perf_counter()
    with console.status(f"{GENAI}: converting the weights (cached)"):
        cached = llm_genai.convert(module, source.digest, state_dir() / "compiled" / "llm" / GENAI)
    facts = {
        "Compile Seconds": round(time.perf_counter() - started, 2),
        "Cache": "hit" if cached.hit else "built",
        "Artifact MB": llm_genai.folder_mb(cached.path),
    }

    def load():
        return llm_genai.GenaiModel(cached.path, source.config)

    return load(), facts, load


def _row(candidate: Candidate, timing: Timing, verdict, scale: str, facts: dict[str, Any]) -> CandidateRow:
    return CandidateRow(
        engine=candidate.engine,
        precision=candidate.precision,
        compile_seconds=facts.get("Compile Seconds"),
        cache=facts.get("Cache"),
        normalized_drift=round(verdict.drift, 6),
        decisive_rows=verdict.decisive,
        decisive_agreement=None if verdict.agreement is None else round(verdict.agreement, 4),
        gate=verdict.gate,
        why=verdict.why,
        extra={
            "TTFT ms": round(timing.ttft_ms, 2),
            "Decode Tokens/s": round(timing.decode_tokens_per_s, 3),
            "Scale": scale,
            "Scale Drift": round(max(p.scale_drift for p in verdict.prompts), 6),
            "Drift Bound": round(min(p.bound for p in verdict.prompts), 6),
            **({"Artifact MB": facts["Artifact MB"]} if "Artifact MB" in facts else {}),
        },
    )


def _line(row: CandidateRow) -> str:
    if row.gate == "error":
        return f"candidate {row.label}: not judged: {row.why}"
    agreement = "-" if row.decisive_agreement is None else f"{row.decisive_agreement:.3f}"
    return (
        f"candidate {row.label}: TTFT {row.extra['TTFT ms']:.1f} ms, decode {row.extra['Decode Tokens/s']:.2f} "
        f"tokens/s, drift {row.normalized_drift:.4g} (bound {row.extra['Drift Bound']:.4g}), agreement "
        f"{agreement}: {row.gate}{' (chosen)' if row.chosen else ''}"
    )
