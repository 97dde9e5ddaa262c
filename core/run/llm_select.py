"""Stage: the LLM candidates, each briefly timed and gated, and the fastest that passes runs.

A candidate is an engine at a precision: the transformers slot engine at BF16 (where native) and FP32, and on
the CPU every engine module of backends/CPU that converts the weights (onnxruntime-genai, OpenVINO, llama.cpp;
their recipes: FP32 and weight-only INT8/INT4 or GGUF's Q8_0/Q4_0). Converted candidates go first, likely
fastest first: one of each engine, then each engine's other recipes, fewest bytes per weight first. A recipe
is skipped when a leaner recipe of the same engine passed (decode reads the weights: it cannot be faster), and
once the tuning budget is spent, every engine has had its first try; a timed candidate 1.25x slower in decode
than one that passed is dropped without its gate (it cannot win). The transformers candidates share one
module, to hold no second copy of the weights: the FP32 reference answers first (and is the transformers FP32
candidate: the same module, timed as it stands); the converted engines are made from it while it is FP32;
each lower precision then casts the module, is timed and answers the reference's sequences.

The gate's scale for a candidate is the reference with the candidate's weight rounding (core.model.
llm_rounding: its weights quantized and dequantized as the engine stores them, run in FP32), so an INT4
engine fails only for error beyond INT4's. The chosen candidate's model is returned ready to serve; a
transformers FP32 choice after a cast is built again from the source, since the rounding cannot be undone.
"""

from __future__ import annotations

import importlib
import importlib.util
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.common import console
from core.common.errors import Interrupted, UserError
from core.config import llm_precision
from core.model.llm_rounding import BF16, FP32, WeightRounding
from core.quality.selection import DROP_RATIO  # a candidate this much slower than one that passed is not gated
from core.reporting.sections import CandidateRow, EngineSelection

ENGINE = "transformers"
TORCH_ROUNDING = {"FP32": FP32, "BF16": BF16, "FP16": WeightRounding("FP16", 16, embeddings=True)}
# backends.CPU modules that are LLM candidate engines (the protocol: backends/CPU/llm_genai.py's names).
CPU_ENGINES = ("llm_genai", "llm_openvino", "llm_llamacpp")
DECODE_STEPS = 8  # timed at batch size 1, after one warm-up prefill and two steps
CONVERSION_HEADROOM = 1.5  # x the FP32 weights free before converting: a builder loads its own copy
# Converted candidates beyond each engine's first are tried while the selection has spent less than this.
# Conversions are cached, so a later run on this host gets further within it.
TUNING_SECONDS = 150.0


@dataclass(frozen=True)
class Candidate:
    engine: str
    precision: str  # "FP32", "BF16", "INT4 weights, INT8 activations", ...
    rounding: WeightRounding = FP32
    backend: Any = field(default=None, compare=False)  # the engine module; None: the transformers module

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
    rounding: WeightRounding
    accuracy: dict[str, Any]
    selection: EngineSelection
    artifact_mb: float | None = None
    optimizations: str | None = None  # what the engine does, in a line (None: the transformers engine's)


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


def cpu_engines() -> list:
    """The CPU backend's LLM engine modules present in this checkout."""
    present = [name for name in CPU_ENGINES if importlib.util.find_spec(f"backends.CPU.{name}") is not None]
    return [importlib.import_module(f"backends.CPU.{name}") for name in present]


def candidates(run, auto: str) -> list[Candidate]:
    """Every candidate a run may try, in the order tried: converted engines first (one of each, then the rest,
    fewest bytes per weight first), then transformers at `auto` (BF16 where native) and FP32. A pinned engine
    or precision keeps only its own; a precision naming only the weights ("INT4 weights") keeps every
    candidate storing them."""
    engine = run.workload.engine or "auto"
    found = []
    if run.spec.name == "CPU":
        for backend in cpu_engines():
            if engine in ("auto", backend.NAME):
                found += [Candidate(backend.NAME, label, r, backend) for label, r in backend.RECIPES.items()]
    found = _try_order(found)
    if engine in ("auto", ENGINE):
        found += [Candidate(ENGINE, p, TORCH_ROUNDING[p]) for p in dict.fromkeys([auto, "FP32"]) if p in TORCH_ROUNDING]
    if run.precision != "auto":
        pin = llm_precision.parse(run.precision)
        found = [c for c in found if pin.matches(llm_precision.parse(c.precision))]
    if not found:
        offered = sorted({f"{b.NAME}: {', '.join(b.RECIPES)}" for b in cpu_engines()} | {f"{ENGINE}: FP32, BF16"})
        raise UserError(
            f"no {engine} candidate runs {run.precision} on the {run.spec.name} backend",
            field="--precision",
            fix=f"pick an engine and precision that exist ({'; '.join(offered)}), or auto",
        )
    return found


def _try_order(converted: list[Candidate]) -> list[Candidate]:
    """One of each engine first (its leanest recipe), then the others, fewest bytes per weight first: decode at
    batch size 1 reads every weight once a token, and three engines are tried whatever the budget."""
    lean = sorted(converted, key=lambda c: c.rounding.bits)
    firsts = sorted({c.engine: c for c in reversed(lean)}.values(), key=lean.index)  # each engine's leanest
    return firsts + [c for c in lean if c not in firsts]


def select(module, tried: list[Candidate], point, run, source, rebuild: Callable[[], Any]) -> Choice:
    """Time and gate the candidates; the chosen one's model ready to serve, its accuracy figures and the
    candidates table. `module` is the FP32 reference (a transformers module)."""
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
    trial = _Trial(module, seqs, reference, prompt, steps, run, source)
    # Converted candidates first, in their order: they are made from the FP32 weights, before any cast.
    for candidate in [c for c in tried if c.backend is not None]:
        if candidate.engine in trial.missing:
            continue  # its first recipe's row says why
        why_not = trial.skip(candidate, time.perf_counter() - started)
        if why_not:
            trial.rows[candidate] = CandidateRow(
                engine=candidate.engine, precision=candidate.precision, gate="skipped", why=why_not
            )
            continue
        trial.run(candidate, lambda c=candidate: trial.converted(c))
    for candidate in sorted([c for c in tried if c.backend is None], key=lambda c: c.precision != "FP32"):
        trial.run(candidate, lambda c=candidate: trial.torch(c))
    shown = [c for c in tried if c in trial.rows]
    passed = [c for c in shown if trial.rows[c].passed]
    fp32 = Candidate(ENGINE, "FP32")
    chosen = max(passed, key=lambda c: trial.rows[c].extra["Decode Tokens/s"]) if passed else fp32
    if chosen.backend is not None:
        module.to("meta")  # the torch weights are not served: free them
        served = chosen.backend.load(trial.folders[chosen], source.config)
    elif chosen.precision == "FP32":
        served = module
        if trial.cast:
            module.to("meta")  # frees the rounded weights before the FP32 ones are built again
            served = rebuild()
    else:
        served = module.to(torch_dtype(chosen.precision))
    trial.outputs.setdefault(chosen, reference)  # no candidate passed: the reference runs
    for candidate in shown:
        trial.rows[candidate].chosen = candidate == chosen
        console.info(_line(trial.rows[candidate]))
    accuracy = figures(reference, trial.outputs[chosen], chosen.precision, seqs, source)
    accuracy["Gate"] = trial.rows[chosen].gate if chosen in trial.rows else "fail"
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
            **llm_gate.rule("the reference with the candidate's weight rounding (as its engine stores them), in FP32"),
            "Prompts": len(seqs.prompts),
        },
        candidates=[trial.rows[c] for c in shown],
        decision="tuned in this run",
    )
    artifact = trial.rows[chosen].extra.get("Artifact MB") if chosen in trial.rows else None
    note = chosen.backend and chosen.backend.__doc__.strip().split("\n\n")[0].replace("\n", " ")
    return Choice(served, chosen.engine, chosen.precision, chosen.rounding, accuracy, selection, artifact, note)


class _Trial:
    """The candidates' rows, outputs and converted folders as the selection goes."""

    def __init__(self, module, seqs, reference, prompt, steps, run, source):
        self.module, self.seqs, self.reference = module, seqs, reference
        self.prompt, self.steps, self.run_context, self.source = prompt, steps, run, source
        self.rows: dict[Candidate, CandidateRow] = {}
        self.outputs: dict[Candidate, Any] = {}
        self.folders: dict[Candidate, Any] = {}
        self.missing: dict[str, str] = {}  # engine -> why it cannot run here
        self.cast = False  # the module's weights were cast (rounded) for a lower-precision candidate
        self.scales: dict[WeightRounding, Any] = {}  # rounding -> the rounded reference's logits (engines share)

    def skip(self, candidate: Candidate, spent: float) -> str | None:
        """Why `candidate` is not tried, or None."""
        same = [c for c in self.rows if c.engine == candidate.engine]
        leaner = [c for c in same if self.rows[c].passed and c.rounding.bits <= candidate.rounding.bits]
        if leaner:
            return f"{leaner[0].label} passed and decodes from fewer bytes per weight: this recipe cannot be faster"
        if same and spent > TUNING_SECONDS:
            return f"tuning budget spent ({spent:.0f} s of {TUNING_SECONDS:g} s; every engine had its first try)"
        why = candidate.backend.missing()
        if why:
            self.missing[candidate.engine] = why
        return why

    def run(self, candidate: Candidate, attempt: Callable[[], CandidateRow]) -> None:
        try:
            self.rows[candidate] = attempt()
        except (KeyboardInterrupt, Interrupted):
            raise
        except Exception as err:  # a candidate that cannot run is a row saying why, never the run's end
            why = f"{type(err).__name__}: {err}"[:300]
            self.rows[candidate] = CandidateRow(
                engine=candidate.engine, precision=candidate.precision, gate="error", why=why
            )

    def judged(self, candidate: Candidate, model, facts: dict[str, Any]) -> CandidateRow:
        """Time `model`, have it answer the reference's sequences and judge it on the scale of the reference
        with the candidate's weight rounding."""
        from core.model.llm_rounding import rounded
        from core.quality import llm_gate
        from core.run.llm_accuracy import answer

        with console.status(f"timing {candidate.label}"):
            timing = time_candidate(model, self.prompt, self.steps)
        reference = model is self.module and candidate.precision == "FP32"
        leader = max((r.extra["Decode Tokens/s"] for r in self.rows.values() if r.passed), default=0.0)
        if not reference and leader >= DROP_RATIO * timing.decode_tokens_per_s:
            ratio = leader / timing.decode_tokens_per_s
            return CandidateRow(
                engine=candidate.engine,
                precision=candidate.precision,
                gate="dropped",
                why=f"decodes {ratio:.2f}x slower than the fastest that passed: it cannot win, so it is not gated",
                extra={"TTFT ms": round(timing.ttft_ms, 2), "Decode Tokens/s": round(timing.decode_tokens_per_s, 3)},
            )
        if reference:
            self.outputs[candidate] = self.reference
            verdict = llm_gate.judge(self.reference.logits, self.reference.logits, self.reference.logits)
            return _row(candidate, timing, verdict, "the reference itself (the same module)", facts)
        with console.status(f"{candidate.label} answers the reference's sequences"):
            self.outputs[candidate] = answer(model, self.seqs, self.reference.tokens)
        scale_logits, scale = self.reference.logits, "the reference itself (FP32 weights, no rounding)"
        rounding = candidate.rounding
        if not rounding.lossless and rounding in self.scales:  # another engine stores the same values
            scale_logits = self.scales[rounding]
        elif not rounding.lossless:
            with console.status(f"the reference with {rounding.name}-rounded weights answers"):
                if model is self.module:  # cast back to FP32: the BF16 values are what the candidate holds
                    self.module.to(torch_dtype("FP32"))
                    scale_logits = answer(self.module, self.seqs, self.reference.tokens, generate=False).logits
                else:
                    with rounded(self.module, rounding):
                        scale_logits = answer(self.module, self.seqs, self.reference.tokens, generate=False).logits
            self.scales[rounding] = scale_logits
        if not rounding.lossless:
            scale = f"FP32 with weights rounded to {rounding.name} as {candidate.engine} stores them"
        verdict = llm_gate.judge(self.reference.logits, self.outputs[candidate].logits, scale_logits)
        return _row(candidate, timing, verdict, scale, facts)

    def torch(self, candidate: Candidate) -> CandidateRow:
        if candidate.precision != "FP32":
            self.module.to(torch_dtype(candidate.precision))
            self.cast = True
        return self.judged(candidate, self.module, {})

    def converted(self, candidate: Candidate) -> CandidateRow:
        """The engine's copy of the FP32 weights at the candidate's recipe (cached), loaded, judged, freed."""
        import psutil

        from core.common.artifact_cache import folder_mb
        from core.common.paths import state_dir

        weights = sum(p.numel() for p in self.module.parameters()) * 4
        free = psutil.virtual_memory().available
        if free < CONVERSION_HEADROOM * weights:
            raise RuntimeError(
                f"skipped: converting needs ~{CONVERSION_HEADROOM * weights / 2**30:.1f} GiB free, "
                f"{free / 2**30:.1f} GiB is"
            )
        started = time.perf_counter()
        parent = state_dir() / "compiled" / "llm" / candidate.engine
        with console.status(f"{candidate.label}: converting the weights (cached)"):
            cached = candidate.backend.convert(self.module, self.source.digest, parent, candidate.precision)
        self.folders[candidate] = cached.path
        facts = {
            "Compile Seconds": round(time.perf_counter() - started, 2),
            "Cache": "hit" if cached.hit else "built",
            "Artifact MB": folder_mb(cached.path),
            **{k: v for k, v in (cached.meta or {}).items() if k in ("Vocabulary", "Format")},
        }
        model = candidate.backend.load(cached.path, self.source.config)
        try:
            return self.judged(candidate, model, facts)
        finally:
            del model  # loaded again only if chosen


def torch_dtype(precision: str):
    import torch

    return {"FP32": torch.float32, "BF16": torch.bfloat16, "FP16": torch.float16}[precision]


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
            "Beyond Scale": round(max(p.beyond for p in verdict.prompts), 6),
            "Unrelated Drift": _least([p.unrelated for p in verdict.prompts]),
            "Bits per Weight": candidate.rounding.bits,
            **{k: facts[k] for k in ("Artifact MB", "Vocabulary", "Format") if k in facts},
        },
    )


def _least(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(min(known), 6) if known else None


def _line(row: CandidateRow) -> str:
    if row.gate in ("error", "skipped"):
        return f"candidate {row.label}: {'not judged' if row.gate == 'error' else 'not tried'}: {row.why}"
    if row.gate == "dropped":
        return (
            f"candidate {row.label}: TTFT {row.extra['TTFT ms']:.1f} ms, decode {row.extra['Decode Tokens/s']:.2f} "
            f"tokens/s: dropped ({row.why})"
        )
    agreement = "-" if row.decisive_agreement is None else f"{row.decisive_agreement:.3f}"
    return (
        f"candidate {row.label}: TTFT {row.extra['TTFT ms']:.1f} ms, decode {row.extra['Decode Tokens/s']:.2f} "
        f"tokens/s, drift {row.normalized_drift:.4g} (bound {row.extra['Drift Bound']:.4g}), agreement "
        f"{agreement}: {row.gate}{' (chosen)' if row.chosen else ''}"
    )
