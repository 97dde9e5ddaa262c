"""onnxruntime-genai as an LLM engine: --profile gives each phase its own node times from onnxruntime's session
profiling (a second load of the model, the slots' tokens replayed into it), and serving is untouched by it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime_genai")

from backends.CPU.llm_genai import convert, load  # noqa: E402
from tests.llm_fakes import tiny_llama  # noqa: E402

INT4 = "INT4 weights, INT8 activations"


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    module = tiny_llama(vocab_size=512)
    cached = convert(module, "tiny-genai-seed-0", tmp_path_factory.mktemp("genai") / "onnxruntime-genai", INT4)
    return module, load(cached.path, module.config)


def _generate(engine, slot: int, prompt: list[int], steps: int) -> list[int]:
    out = [engine.prefill(slot, prompt)]
    while len(out) < steps:
        out.append(engine.decode([slot], [out[-1]])[0])
    return out


def test_each_phase_is_profiled_by_onnxruntime_and_keeps_only_its_own_calls(converted, tmp_path):
    from core.run.llm import Point
    from core.run.llm_profile import profile_phases

    module, loaded = converted
    phases = profile_phases(loaded, Point(1, 2, 12, 4), None, None, tmp_path / "profile", name="onnxruntime-genai")
    matmuls = {}
    for phase, calls in (("Prefill", 3), ("Decode", 2)):  # decode: within the point's 3 steps, after a warm-up
        section = phases[phase]
        assert section["Engine"] == "onnxruntime-genai" and section["Calls"] == calls, section
        assert section["Profiler"].startswith("onnxruntime session profiling")
        types = {row["Type"]: row for row in section["Types"]}
        assert "MatMulNBits" in types["MatMul/linear"]["Engine Ops"] and types["MatMul/linear"]["Share"] > 0
        assert "GroupQueryAttention" in types["attention"]["Engine Ops"]
        # One run a prefill call, one a slot a decode step (2 slots): the replays and the warm-up are left out.
        runs_per_call = 1 if phase == "Prefill" else 2
        matmul = next(row for row in section["Top Nodes"] if "qkv_proj" in row["Node"])
        trace = json.loads(Path(section["Trace"]).read_text(encoding="utf-8"))
        events = trace if isinstance(trace, list) else trace["traceEvents"]
        node_runs = [e for e in events if e.get("name", "").startswith(matmul["Node"]) and e.get("cat") == "Node"]
        assert len(node_runs) > calls * runs_per_call  # the trace holds every run, the profile only its calls
        matmuls[phase] = types["MatMul/linear"]["Ops per Call"] / runs_per_call
    assert matmuls["Decode"] == matmuls["Prefill"] > 0  # the same graph's MatMuls, once a run kept
    # A served engine answers as before, and as the profiling engine does outside a profile.
    prompt = list(range(3, 15))
    served = loaded.engine(1, 32)
    assert _generate(served, 0, prompt, 4) == _generate(loaded.profiling_engine(1, 32), 0, prompt, 4)
    assert served.tokens is None


def test_a_profile_releases_the_slots_it_replayed(converted, tmp_path):
    _, loaded = converted
    engine = loaded.profiling_engine(2, 32)
    first = [engine.prefill(slot, list(range(5 + slot, 15 + slot))) for slot in range(2)]
    assert [len(tokens) for tokens in engine.tokens] == [10, 10]
    raw = engine.profile("decode", lambda: engine.decode([0, 1], first), 1, tmp_path)
    assert raw.calls == 1 and raw.events and raw.trace.is_file()
    assert engine.generators == [None, None] and engine.tokens == [[], []]
    assert engine.model is loaded.model  # the profiled model is gone; the served one is back
