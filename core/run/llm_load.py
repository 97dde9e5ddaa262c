"""An LLM run's serving load: each point's arrivals, lengths and prompts, the energy counter, the SLO, the
search for the highest rate within it, LoadGen's LLM scenarios, and the report's `Serving` section that
says which load, lengths, prompts and batching ran."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.common import console
from core.common.errors import UserError
from core.run.context import RunContext

# What our server does (core.measure.llm_serving), by whether the engine decodes a batch: the report names it.
BATCHING = {
    True: "continuous: prefill-first, requests join and leave between steps, decode batched across those in flight",
    False: "continuous admission, prefill-first; decode request by request (the engine has no batched decode step)",
}
SEARCH_START = 1.0  # requests per second, when no rate is swept


def rates(workload) -> list[float | None]:
    """The open loop's rates (find-max-rate alone starts from one), or [None]: a closed loop."""
    if workload.request_rate:
        return list(workload.request_rate)
    return [SEARCH_START] if workload.open_loop else [None]


def shapes(workload) -> list[tuple[int, int]]:
    """(input, output) tokens of each load point's longest request: llm_perf's lengths, or the range's top."""
    perf, lengths = workload.perf_config, workload.lengths
    if lengths.kind == "uniform":
        return [(lengths.input_range[1], lengths.output_range[1])]
    if lengths.kind == "sharegpt":
        return [(max(perf.input_tokens), perf.output_tokens)]
    return [(length, perf.output_tokens) for length in perf.input_tokens]


class ServingPlan:
    """What every load point of the run shares: its window, the SLO, the lengths, the energy meter."""

    def __init__(self, run: RunContext, vocab: int, points: int, batched: bool = True):
        from core.measure.energy import RaplMeter

        workload = run.workload
        self.run, self.workload, self.vocab = run, workload, vocab
        probes = workload.max_rate_probes if workload.find_max_rate else 0
        self.window, self.reason = workload.perf_config.perf_time, "perf_time"
        if workload.time_budget_minutes not in (None, "off"):
            share = workload.time_budget_minutes * 60 / (points + probes)
            if share < self.window:
                self.window, self.reason = share, "time budget"
        self.slo = workload.slo_limits or None
        spec = run.spec
        self.meter, energy = spec.llm_energy(run.config) if spec.llm_energy else RaplMeter.find()
        self._lengths_text = ""
        section: dict[str, Any] = {
            "Load": self._load_text(),
            "Batching": BATCHING[batched],
            "Prompts": "",
            "Lengths": "",
            "Energy": energy,
        }
        if self.slo:
            section["SLO"] = {**self.slo, **({"Preset": workload.slo} if isinstance(workload.slo, str) else {})}
        run.report.sections["Serving"] = section
        if self.meter is None:
            run.report.notes.append(f"energy per token not measured: {energy}")

    def _load_text(self) -> str:
        w = self.workload
        if not w.open_loop:
            return f"closed loop: concurrency {', '.join(map(str, w.batch_sizes))} (llm_perf's batch sizes)"
        shape = "Poisson" if w.burstiness == 1 else f"gamma arrivals, burstiness {w.burstiness:g}"
        swept = ", ".join(f"{r:g}" for r in rates(w))
        return f"open loop: {swept} requests/s ({shape}), at most {w.batch_sizes[0]} in flight, the rest queued"

    def load(self, point, index: int):
        from core.measure.llm_serving import Load

        w = self.workload
        return Load(
            point.batch_size,
            point.input_tokens,
            point.output_tokens,
            self.window,
            w.min_requests,
            w.stagger_seconds,
            self.reason,
            rate=point.rate,
            burstiness=w.burstiness,
            seed=w.seed * 1000 + index,
        )

    def prompts(self, point, index: int):
        from core.measure.llm_serving import Prompts

        w = self.workload
        seed = w.seed * 1000 + index
        prompts = Prompts(
            self.vocab,
            point.input_tokens,
            seed,
            lengths=self._lengths(point, seed),
            shared_prefix=w.shared_prefix_tokens,
        )
        section = self.run.report.sections["Serving"]
        section["Prompts"], section["Lengths"] = prompts.description, self._lengths_text
        return prompts

    def _lengths(self, point, seed: int):
        from core.measure.llm_load import sharegpt_lengths, uniform_lengths

        lengths = self.workload.lengths
        if lengths.kind == "uniform":
            made = uniform_lengths(tuple(lengths.input_range), tuple(lengths.output_range), seed)
        elif lengths.kind == "sharegpt":
            made = sharegpt_lengths(self._sharegpt_path(), seed, point.input_tokens, point.output_tokens)
        else:
            inputs = ", ".join(map(str, self.workload.perf_config.input_tokens))
            self._lengths_text = f"fixed (llm_perf): {inputs} in, {point.output_tokens} out"
            return None
        self._lengths_text = made.description
        return made

    def _sharegpt_path(self) -> Path:
        path = Path(self.workload.lengths.path).expanduser()
        if not path.is_absolute() and not path.exists():
            path = self.run.task.workload_file.parent / path
        if not path.is_file():
            raise UserError(
                "no such file", file=path, field="lengths.path", fix="give the path of a ShareGPT-format JSON file"
            )
        return path

    def serve(self, engine, load, prompts):
        """serve(), with the energy counter read around it where there is one."""
        from core.measure.llm_serving import serve

        before = self.meter.read() if self.meter else None
        served = serve(engine, load, prompts)
        if self.meter:
            served.joules = self.meter.joules(before, self.meter.read())
        return served


def search_max_rate(plan: ServingPlan, measure: Callable[[Any, int], Any], points: list) -> None:
    """--find-max-rate: from the swept rates (the first length's), probe more until the highest rate whose
    P99s meet the SLO is found; the answer and its evidence go in the Serving section."""
    from core.measure.llm_slo import find_max_rate

    run = plan.run
    first = points[0]
    tried = {
        row.request_rate: row
        for row in run.report.llm_rows
        if row.request_rate and (row.input_tokens, row.output_tokens) == (first.input_tokens, first.output_tokens)
    }
    counter = [len(points)]

    def probe(rate: float):
        counter[0] += 1
        row = measure(replace(first, rate=rate), counter[0])
        row.search = "find-max-rate probe"
        return row

    start = min(tried) if tried else SEARCH_START
    result = find_max_rate(probe, plan.slo, start, tried, plan.workload.max_rate_probes)
    result["Input Tokens"], result["Output Tokens"] = first.input_tokens, first.output_tokens
    run.report.sections["Serving"]["Max Rate"] = result
    console.info(max_rate_line(result))


def max_rate_line(result: dict) -> str:
    if result.get("Max Rate") is None:
        return f"max rate: {result.get('Note')}"
    parts = [f"max rate within the SLO: {result['Max Rate']:g} requests/s"]
    if result.get("Lowest Failing Rate"):
        parts.append(f"{result['Lowest Failing Rate']:g} failed")
    for name, o in result["Objectives"].items():
        upper = "unbacked" if o["Upper Met"] is None else ("met" if o["Upper Met"] else "NOT met")
        parts.append(f"{name} {o['Value ms']:.1f} <= {o['Limit ms']:g} ms (upper bound {upper}, {o['Count']} req)")
    return ", ".join(parts)


def run_loadgen(plan: ServingPlan, module, point) -> None:
    """LoadGen's LLM scenarios on one engine, at the max rate found, else the first swept rate, else the
    workload's target: VALID/INVALID, LoadGen's TTFT/TPOT P99 and its logs in the report."""
    from backends.llm_transformers import serving_engine
    from core.scenarios.llm_loadgen import LlmLoadGenSettings, run_llm_scenario

    run, w = plan.run, plan.workload
    limits = plan.slo or {}
    if "ttft_p99" not in limits or "tpot_p99" not in limits:
        raise UserError(
            "LoadGen's LLM scenarios judge TTFT and TPOT P99",
            field="--slo",
            fix="give --slo ttft_p99=MS,tpot_p99=MS (or a preset)",
        )
    found = run.report.sections["Serving"].get("Max Rate", {}).get("Max Rate")
    target = w.loadgen.target_qps or found or (w.request_rate[0] if w.request_rate else None)
    if target is None:
        raise UserError("no request rate for LoadGen", field="loadgen.target_qps", fix="set it, or --request-rate")
    prompts = plan.prompts(point, 999)
    library = [prompts.next() for _ in range(w.loadgen.samples)]
    folder = run.folder()
    for scenario in w.loadgen_scenarios:
        settings = LlmLoadGenSettings(
            scenario,
            target,
            limits["ttft_p99"],
            limits["tpot_p99"],
            w.loadgen.min_duration_s,
            w.loadgen.min_query_count,
        )
        engine = serving_engine(module, point.batch_size, point.input_tokens + point.output_tokens)
        load = plan.load(point, 999)
        outdir = folder / "runs" / f"{run.report.run_id}-loadgen" / f"llm-{scenario}"
        console.info(f"LoadGen LLM {scenario} at {target:g} requests/s ...")
        entry, served = run_llm_scenario(
            engine, replace(load, stop_reason="LoadGen"), library, settings, outdir, folder
        )
        if served is not None:
            entry.extra["Our Requests"] = len(served.requests)
        run.report.loadgen.append(entry)
        console.info(
            f"LoadGen LLM {scenario}: {entry.result}, TTFT P99 {entry.extra['TTFT P99']} ms, "
            f"TPOT P99 {entry.extra['TPOT P99']} ms, {entry.queries} queries"
        )
