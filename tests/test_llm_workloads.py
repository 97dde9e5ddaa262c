"""LLM tasks: llm_perf's files, the server's timing, the slot engine, sizes, accuracy and a whole run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.common.errors import UserError
from core.config.registry import BYTEMLPERF_LLM_TASKS, load_task
from core.measure.llm_serving import Load, Prompts, serve
from core.measure.llm_stats import llm_row
from core.reporting.report import RunReport
from tests.llm_fakes import FakeClock

TINY = "tiny-llama-torch-fp32"


def tiny_config(model_type: str = "llama", **extra):
    from transformers import AutoConfig

    base = dict(hidden_size=64, num_attention_heads=4, vocab_size=256, max_position_embeddings=128)
    if model_type == "falcon":
        base.update(num_hidden_layers=2, num_kv_heads=2, new_decoder_architecture=True, bias=False, alibi=False)
    else:
        base.update(intermediate_size=96, num_hidden_layers=2, num_key_value_heads=2)
    if model_type == "mixtral":
        base.update(num_local_experts=4, num_experts_per_tok=2)
    return AutoConfig.for_model(model_type, **{**base, **extra})


# ---- llm_perf's files -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BYTEMLPERF_LLM_TASKS)
def test_bytemlperf_llm_files_load_unchanged(name):
    shared = Path(__file__).resolve().parents[2] / "shared" / "bytemlperf-llm"
    if shared.is_dir():  # the bundled copies are llm_perf's files, byte for byte
        for kind in ("workloads", "model_zoo"):
            bundled = Path(__file__).resolve().parents[1] / kind / f"{name}.json"
            assert bundled.read_bytes() == (shared / kind / f"{name}.json").read_bytes()
    task = load_task(name)
    assert task.is_llm
    assert task.model_file.stem == name  # found by the task's name, as llm_perf finds it
    assert task.workload.perf_config.output_tokens == 200


def test_architectures_decide_over_model_interface_and_chatglm_is_refused():
    from core.model.llm import resolve_llm_source

    llama = load_task("llama3-torch-bf16-70b")
    source = resolve_llm_source(llama.model, llama.model_file, layers=2, seed=0, trust_remote_code=False)
    assert source.architecture == "LlamaForCausalLM"
    assert any("architectures decides" in note for note in source.notes)
    assert source.scaled == "2 of 80 layers"
    falcon = load_task("falcon-torch-bf16-180b")
    source = resolve_llm_source(falcon.model, falcon.model_file, layers=1, seed=0, trust_remote_code=False)
    assert any("max_position_embeddings" in note for note in source.notes)
    chatglm = load_task("chatglm2-torch-fp16-6b")
    with pytest.raises(UserError, match="does not ship ChatGLMModel.*--trust-remote-code"):
        resolve_llm_source(chatglm.model, chatglm.model_file, layers=None, seed=0, trust_remote_code=False)
    with pytest.raises(UserError, match="more than the model's 80"):
        resolve_llm_source(llama.model, llama.model_file, layers=81, seed=0, trust_remote_code=False)


def test_command_line_overrides_land_in_perf_config_and_bad_values_name_the_flag():
    from core.config.overrides import apply_llm_overrides

    task = apply_llm_overrides(load_task(TINY), {"batch_sizes": [3], "input_tokens": [8, 4], "output_tokens": 5})
    perf = task.workload.perf_config
    assert (perf.batch_sizes, perf.input_tokens, perf.output_tokens) == ([3], [4, 8], 5)
    with pytest.raises(UserError) as err:
        apply_llm_overrides(load_task(TINY), {"output_tokens": 0})
    assert err.value.field == "--output-tokens"
    with pytest.raises(UserError, match="does not apply"):
        apply_llm_overrides(load_task(TINY), {"scenario": ["Offline"]})


def test_a_model_larger_than_the_host_is_refused_with_its_figures():
    from core.model.llm import check_fits, footprint, resolve_llm_source

    task = load_task("llama3-torch-bf16-70b")
    source = resolve_llm_source(task.model, task.model_file, layers=None, seed=0, trust_remote_code=False)
    fp = footprint(source, "BF16", reference=False, slots=1, max_len=1224)
    assert 70e9 < fp.parameters < 71e9
    with pytest.raises(UserError, match=r"70\.55 B parameters.*GiB available.*--layers N \(of 80\)"):
        check_fits(fp, 24 << 30, task.model_file, source.scaled, source.full_layers)
    scaled = resolve_llm_source(task.model, task.model_file, layers=2, seed=0, trust_remote_code=False)
    small = footprint(scaled, "BF16", reference=True, slots=1, max_len=1224)
    assert small.weights == small.parameters * 4  # the FP32 reference is what is held at the peak
    check_fits(small, 24 << 30, task.model_file, scaled.scaled, scaled.full_layers)


# ---- the server ------------------------------------------------------------------------------------------


class FakeEngine:
    """Prefill 50 ms a prompt, decode 20 ms a step, on a fake clock; records how each call was batched."""

    def __init__(self, clock, slots=4, prefill_ms=50, decode_ms=20):
        self.clock, self.slots = clock, slots
        self.prefill_ms, self.decode_ms = prefill_ms, decode_ms
        self.calls: list[tuple[str, int]] = []

    def prefill(self, slot, ids):
        self.clock.advance(self.prefill_ms)
        self.calls.append(("prefill", 1))
        return 7

    def decode(self, slots, tokens):
        self.clock.advance(self.decode_ms)
        self.calls.append(("decode", len(slots)))
        return [t + 1 for t in tokens]

    def release(self, slot):
        pass


def test_the_server_prefills_one_at_a_time_and_decodes_in_flight_requests_together():
    clock = FakeClock()
    engine = FakeEngine(clock)
    load = Load(concurrency=3, input_tokens=8, output_tokens=5, window_s=1.0, stagger_s=0.1)
    served = serve(engine, load, Prompts(100, 8, seed=1), clock=clock, sleep=clock.sleep)
    assert all(n == 1 for kind, n in engine.calls if kind == "prefill")
    assert max(n for kind, n in engine.calls if kind == "decode") == 3
    for request in served.requests:
        assert len(request.tokens) == 5 == len(request.token_times)
        assert len(request.prompt) == 8
        # TTFT + TPOT x (n - 1) is E2E, exactly, for every request
        assert request.ttft_ns + request.tpot_ns * 4 == pytest.approx(request.e2e_ns)
    first = {c: min(r.arrival for r in served.requests if r.client == c) for c in range(3)}
    assert first == {0: 0, 1: int(0.1e9), 2: int(0.2e9)}  # staggered
    row = llm_row(served)
    tokens = sum(len(r.tokens) for r in served.requests)
    assert row.token_throughput == pytest.approx(tokens / served.seconds, rel=1e-4)
    assert row.request_number == len(served.requests)
    assert row.ttft.avg + row.tpot.avg * 4 == pytest.approx(row.e2e.avg, rel=1e-6)
    assert served.requests[-1].arrival < int(1e9)  # nothing sent after the window closed


def test_closed_loop_clients_send_again_at_once_and_the_queue_is_part_of_ttft():
    clock = FakeClock()
    engine = FakeEngine(clock, slots=2, prefill_ms=100, decode_ms=10)
    load = Load(concurrency=2, input_tokens=4, output_tokens=3, window_s=0.5, stagger_s=0.0)
    served = serve(engine, load, Prompts(100, 4, seed=2), clock=clock, sleep=clock.sleep)
    by_client = {}
    for request in served.requests:
        by_client.setdefault(request.client, []).append(request)
    for requests in by_client.values():
        for earlier, later in zip(requests, requests[1:]):
            assert later.arrival == earlier.done
    second = min((r for r in served.requests if r.arrival == 0 and r.prefill_start > 0), key=lambda r: r.prefill_start)
    assert second.prefill_start - second.arrival == int(100e6)  # it queued behind the first prefill
    assert second.ttft_ns == int(200e6)


def test_prompts_have_the_exact_length_and_never_share_a_prefix():
    prompts = Prompts(vocab_size=50, length=6, seed=3)
    drawn = [prompts.next() for _ in range(200)]
    assert all(len(p) == 6 for p in drawn)
    assert len({p[:2] for p in drawn}) == 200
    assert all(min(p) >= 3 for p in drawn)  # the first ids are left to special tokens


# ---- the engine -------------------------------------------------------------------------------------------


def _greedy(model, prompt, steps):
    import torch

    sequence = list(prompt)
    for _ in range(steps):
        with torch.no_grad():
            sequence.append(int(model(torch.tensor([sequence])).logits[0, -1].argmax()))
    return sequence[len(prompt) :]


@pytest.mark.parametrize("model_type", ["llama", "mixtral", "falcon", "qwen2"])
def test_slot_engine_matches_plain_greedy_decoding_with_requests_joining_at_different_times(model_type):
    import torch
    from transformers import AutoModelForCausalLM

    from backends.llm_transformers import SlotEngine

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_config(model_type)).eval()
    prompts = [list(torch.randint(3, 256, (n,)).tolist()) for n in (9, 5, 12)]
    expected = [_greedy(model, p, 6) for p in prompts]
    engine = SlotEngine(model, slots=3, max_len=24)
    got = {0: [engine.prefill(2, prompts[0])]}  # out of order slots: rows gathered, not a view
    got[0].append(engine.decode([2], [got[0][-1]])[0])
    got[1] = [engine.prefill(0, prompts[1])]
    slots = {0: 2, 1: 0, 2: 1}
    for step in range(8):
        if step == 2:
            got[2] = [engine.prefill(1, prompts[2])]
        live = [r for r in got if len(got[r]) < 6]
        if not live:
            break
        tokens = engine.decode([slots[r] for r in live], [got[r][-1] for r in live])
        for r, token in zip(live, tokens):
            got[r].append(token)
    assert [got[r] for r in range(3)] == expected
    logits = engine.logits(prompts[0])
    with torch.no_grad():
        plain = model(torch.tensor([prompts[0]])).logits[0]
    assert torch.allclose(logits, plain, atol=1e-5)


def test_synthetic_weights_are_seeded_and_shaped_like_transformers_initialisation():
    import torch

    from core.model.llm import LlmSource, build_model

    source = LlmSource("synthetic", tiny_config(tie_word_embeddings=True), "LlamaForCausalLM", 2, 2, "d")
    a, b = build_model(source, seed=1), build_model(source, seed=1)
    c = build_model(source, seed=2)
    for (name, pa), (_, pb), (_, pc) in zip(a.named_parameters(), b.named_parameters(), c.named_parameters()):
        assert torch.equal(pa, pb), name
        if "norm" in name:
            assert torch.all(pa == 1)
        else:
            assert not torch.equal(pa, pc), name
            assert 0.015 < float(pa.detach().std()) < 0.025
    assert a.lm_head.weight is a.model.embed_tokens.weight  # tied as the config says


# ---- accuracy ---------------------------------------------------------------------------------------------


def test_logits_comparison_figures_and_a_wrong_candidate():
    import torch

    from core.quality.llm_logits import Comparison

    torch.manual_seed(0)
    reference = torch.randn(6, 50)
    same = Comparison()
    same.add(reference, reference.clone(), [1, 2, 3], [1, 2, 3])
    result = same.result()
    assert result["Logits Diff"]["Max Difference"] == 0 and result["Greedy Agreement"] == 1
    assert result["Logits Diff"]["Cosine Similarity"] == pytest.approx(1.0)
    wrong = Comparison()
    wrong.add(reference, torch.randn(6, 50), [1, 2, 3], [1, 9, 3])
    bad = wrong.result()
    assert bad["Greedy Agreement"] < 0.5 and bad["Drift"] > 0.5
    assert bad["Free-Running Agreement"] == pytest.approx(1 / 3)  # nothing counts after the first difference
    assert len(bad["Token Diff"]) == 6


def test_perplexity_over_a_multiple_choice_csv(tmp_path):
    import math

    import torch

    from core.quality.llm_logits import multiple_choice_texts, perplexity

    path = tmp_path / "merged_52_test.csv"
    path.write_text("id,question,A,B,C,D,answer\n0,1+1=?,1,2,3,4,B\n1,Sky?,blue,red,green,black,A\n")
    texts = multiple_choice_texts(path)
    assert texts[0].endswith("Answer: B") and "B. 2" in texts[0]
    uniform = lambda ids: torch.zeros(len(ids), 10)
    assert perplexity(uniform, [[1, 2, 3], [4, 5]]) == pytest.approx(10.0)  # uniform over 10 tokens
    sure = lambda ids: torch.nn.functional.one_hot(torch.tensor(ids) + 1, 10).float() * 100
    assert perplexity(sure, [[1, 2, 3]]) == pytest.approx(1.0)
    assert math.isnan(perplexity(uniform, [[1]]))
    (tmp_path / "bad.csv").write_text("id,question,A\n0,q,a\n")
    with pytest.raises(UserError, match="missing columns B, C, D"):
        multiple_choice_texts(tmp_path / "bad.csv")


# ---- a whole run ------------------------------------------------------------------------------------------


def test_a_tiny_llm_run_writes_a_consistent_report(tmp_path):
    from core.perf_engine import main

    out = tmp_path / "reports"
    csv_file = tmp_path / "mc.csv"
    csv_file.write_text("id,question,A,B,C,D\n0,q,a,b,c,d\n")
    workload = json.loads(Path(load_task(TINY).workload_file).read_text())
    workload["accuracy_config"] = {"dataset": str(csv_file)}
    workload["perf_config"].update(perf_time=0.5, batch_sizes=[1, 2])
    path = tmp_path / f"{TINY}.json"
    path.write_text(json.dumps(workload))
    code = main(["--task", str(path), "--output-dir", str(out), "--precision", "BF16", "--output-tokens", "4"])
    assert code == 0
    written = out / "CPU" / TINY / "result-bf16.json"
    data = json.loads(written.read_text())
    assert data["Kind"] == "llm" and data["Weights"]["kind"] == "synthetic"
    assert data["Accuracy"]["PPL"] > 0 and "Logits Diff" in data["Accuracy"]
    report = RunReport.from_dict(data, written)
    assert [row.batch_size for row in report.llm_rows] == [1, 2]
    for row in report.llm_rows:
        assert row.output_tokens == 4
        assert row.ttft.avg + row.tpot.avg * 3 == pytest.approx(row.e2e.avg, rel=1e-3)
        assert row.client.ttft_avg == row.ttft.avg and row.request_number >= row.batch_size
        assert row.token_throughput == pytest.approx(row.request_number * 4 / row.measured_seconds, rel=1e-3)
    assert RunReport.from_dict(report.to_dict()).llm_rows[0].to_dict() == report.llm_rows[0].to_dict()
