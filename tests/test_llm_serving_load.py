"""Serving load for LLM tasks: open-loop arrivals, lengths, goodput under an SLO, the max-rate search,
energy, LoadGen's LLM scenarios and the command line, on a fake engine and clock (and the tiny model)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from core.common.errors import UserError
from core.config.registry import load_task
from core.measure.llm_load import arrival_offsets, sharegpt_lengths, uniform_lengths
from core.measure.llm_serving import Load, Prompts, serve
from core.measure.llm_slo import find_max_rate, goodput, judge
from core.measure.llm_stats import llm_row
from tests.llm_fakes import FakeClock

TINY = "tiny-llama-torch-fp32"
SLO = {"ttft_p99": 300.0, "tpot_p99": 40.0}


class FakeEngine:
    """Prefill 20 ms, a decode step 10 ms plus 2 ms a request in it: a server that saturates."""

    def __init__(self, clock, slots=8):
        self.clock, self.slots = clock, slots
        self.in_flight, self.most = 0, 0

    def prefill(self, slot, ids):
        self.clock.advance(20)
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        return 7

    def decode(self, slots, tokens):
        self.clock.advance(10 + 2 * len(slots))
        return [t + 1 for t in tokens]

    def release(self, slot):
        self.in_flight -= 1


def open_point(rate, slots=8, window=20.0, seed=0, output=8, prompts=None, lengths=None):
    clock = FakeClock()
    engine = FakeEngine(clock, slots)
    load = Load(slots, 16, output, window, rate=rate, seed=seed)
    prompts = prompts or Prompts(500, 16, seed=seed, lengths=lengths)
    return serve(engine, load, prompts, clock=clock, sleep=clock.sleep), engine


# ---- arrivals -----------------------------------------------------------------------------------------------


def test_gamma_arrivals_have_the_rate_and_the_burstiness_asked_for():
    poisson = np.diff(arrival_offsets(10.0, 1.0, 400.0, seed=1)) / 1e9
    bursty = np.diff(arrival_offsets(10.0, 0.25, 400.0, seed=1)) / 1e9
    assert 1 / poisson.mean() == pytest.approx(10.0, rel=0.05)
    assert 1 / bursty.mean() == pytest.approx(10.0, rel=0.1)
    # the squared coefficient of variation of gamma(shape k) gaps is 1 / k
    assert (poisson.std() / poisson.mean()) ** 2 == pytest.approx(1.0, rel=0.15)
    assert (bursty.std() / bursty.mean()) ** 2 == pytest.approx(4.0, rel=0.2)
    assert arrival_offsets(3.0, 1.0, 5.0, seed=2) == arrival_offsets(3.0, 1.0, 5.0, seed=2)
    assert len(arrival_offsets(0.1, 1.0, 1.0, seed=2, at_least=5)) == 5  # the window is outrun for the minimum


def test_open_loop_arrivals_keep_their_schedule_however_slow_the_engine_is():
    served, engine = open_point(rate=40.0, slots=2, window=3.0)
    expected = arrival_offsets(40.0, 1.0, 3.0, seed=0)
    assert sorted(r.arrival for r in served.requests) == expected  # due times, never when noticed
    assert engine.most == 2  # no more in flight than the slots
    row = llm_row(served)
    assert row.load_mode == "open loop (Poisson)" and row.request_rate == 40.0 and row.concurrency is None
    assert row.achieved_rate == pytest.approx((len(expected) - 1) / (expected[-1] / 1e9), rel=1e-4)
    # the server carries far less than 40/s: the requests queue, and the queue is in TTFT
    assert row.qps < 20 and row.queue.p50 > 1000 and row.ttft.p50 > row.queue.p50


def test_closed_loop_names_its_concurrency_as_the_batch_size():
    clock = FakeClock()
    served = serve(FakeEngine(clock), Load(3, 16, 4, 1.0, stagger_s=0.0), Prompts(500, 16, 0), clock=clock)
    row = llm_row(served)
    assert row.load_mode == "closed loop" and row.concurrency == row.batch_size == 3
    assert row.request_rate is None and row.key == "tp1-bs3-in16-out4"


# ---- a rate sweep and goodput -------------------------------------------------------------------------------


def test_a_rate_sweep_ttft_grows_with_the_rate_and_goodput_never_exceeds_throughput():
    rows = [llm_row(open_point(rate)[0], slo=SLO) for rate in (2.0, 16.0, 24.0, 32.0)]
    p99 = [row.ttft.p99 for row in rows]
    assert p99 == sorted(p99) and p99[-1] > 5 * p99[0]
    for row in rows:
        assert row.goodput <= row.qps
        assert row.good_requests <= row.request_number
        assert row.key.endswith(f"-rate{row.request_rate:g}")
    assert rows[0].slo_met and rows[0].goodput == pytest.approx(rows[0].qps)  # light load: every request good
    assert not rows[-1].slo_met and rows[-1].goodput < 0.5 * rows[-1].qps


def test_goodput_counts_requests_within_every_limit():
    served, _ = open_point(16.0)
    ttft = sorted(r.ttft_ns / 1e6 for r in served.requests)
    cut = ttft[len(ttft) // 2]
    count, rate = goodput(served, {"ttft_p99": cut})
    assert count == sum(t <= cut for t in ttft)
    assert rate == pytest.approx(count / served.seconds)
    assert goodput(served, {"ttft_p99": cut, "e2e_p50": 0.001})[0] == 0  # no request is that fast end to end


def test_judge_gives_point_estimates_and_upper_bounds_with_their_counts():
    row = llm_row(open_point(2.0, window=200.0)[0])  # about 400 requests: a P99 bound is backed
    evidence = judge(row, SLO)
    ttft = evidence["Objectives"]["TTFT P99"]
    assert ttft["Value ms"] == row.ttft.p99 and ttft["Upper 95% ms"] == row.ttft.p99_upper
    assert ttft["Count"] == row.ttft.count >= 299 and ttft["Upper Met"] is not None
    small = judge(llm_row(open_point(2.0, window=5.0)[0]), SLO)
    assert small["Met"] and small["Upper Met"] is None  # met, but too few requests to bound the P99
    assert not judge(row, {"ttft_p99": row.ttft.p99 / 2})["Met"]


def test_find_max_rate_lands_between_a_passing_and_a_failing_rate_with_evidence():
    ran = []

    def probe(rate):
        ran.append(rate)
        return llm_row(open_point(rate)[0], slo=SLO)

    result = find_max_rate(probe, SLO, start=1.0)
    best, failing = result["Max Rate"], result["Lowest Failing Rate"]
    assert best is not None and failing is not None
    assert failing / best <= 1.1 + 1e-9
    assert judge(probe(best), SLO)["Met"] and not judge(probe(failing), SLO)["Met"]
    assert result["Objectives"]["TTFT P99"]["Value ms"] <= SLO["ttft_p99"]
    assert result["Requests"] > 0 and result["Probes"] == len(ran) - 2 <= 8
    assert result["Rates Tried"] == sorted(set(ran[:-2]))


def test_find_max_rate_says_so_when_no_rate_meets_the_slo():
    result = find_max_rate(lambda r: llm_row(open_point(r, window=2.0)[0]), {"ttft_p99": 1.0}, 1.0, max_probes=3)
    assert result["Max Rate"] is None and "no rate tried" in result["Note"] and result["Probes"] == 3


# ---- lengths and prompts ------------------------------------------------------------------------------------


def test_uniform_lengths_are_seeded_and_in_range_and_the_server_honours_them():
    draws = uniform_lengths((4, 12), (2, 6), seed=5)
    again = uniform_lengths((4, 12), (2, 6), seed=5)
    pairs = [draws.draw() for _ in range(200)]
    assert pairs == [again.draw() for _ in range(200)]
    assert {a for a, _ in pairs} == set(range(4, 13)) and {b for _, b in pairs} == set(range(2, 7))
    served, _ = open_point(4.0, output=6, lengths=uniform_lengths((4, 12), (2, 6), seed=5))
    assert {len(r.tokens) for r in served.requests} == set(range(2, 7))
    assert all(len(r.tokens) == r.max_tokens for r in served.requests)
    assert {len(r.prompt) for r in served.requests} <= set(range(4, 13))


def test_sharegpt_lengths_come_from_the_turns_of_a_made_file(tmp_path):
    path = tmp_path / "sharegpt.json"
    words = lambda n: " ".join(["word"] * n)
    data = [
        {"id": "a", "conversations": [{"from": "human", "value": words(3)}, {"from": "gpt", "value": words(6)}]},
        {"id": "b", "conversations": [{"from": "human", "value": words(30)}, {"from": "gpt", "value": words(9)}]},
        {"id": "c", "conversations": [{"from": "human", "value": words(600)}, {"from": "gpt", "value": words(3)}]},
        {"id": "d", "conversations": [{"from": "human", "value": "only a question"}]},
    ]
    path.write_text(json.dumps(data))
    lengths = sharegpt_lengths(path, seed=0, max_input=64, max_output=32)
    assert {lengths.draw() for _ in range(10)} == {(4, 8), (40, 12)}  # words x 4/3; c too long, d no answer
    assert "2 of 3 conversations" in lengths.description
    counted = sharegpt_lengths(path, seed=0, max_input=64, max_output=32, count_tokens=len)
    assert (len(words(3)), len(words(6))) in {counted.draw() for _ in range(4)}
    (tmp_path / "bad.json").write_text(json.dumps({"conversations": []}))
    with pytest.raises(UserError, match="not a list of conversations"):
        sharegpt_lengths(tmp_path / "bad.json", 0, 64, 32)
    with pytest.raises(UserError, match="no conversation fits"):
        sharegpt_lengths(path, 0, 2, 2)


def test_prompts_share_a_prefix_only_when_asked():
    unique = Prompts(500, 12, seed=1)
    assert len({p[:2] for p in (unique.next() for _ in range(100))}) == 100
    assert unique.description.startswith("unique")
    shared = Prompts(500, 12, seed=1, shared_prefix=8)
    drawn = [shared.next() for _ in range(50)]
    assert len({p[:8] for p in drawn}) == 1 and len({p[8:10] for p in drawn}) == 50
    assert all(len(p) == 12 for p in drawn) and "same 8 tokens" in shared.description
    assert len(shared.next(4)) == 4  # a shorter prompt keeps a token of its own


# ---- energy -------------------------------------------------------------------------------------------------


def test_rapl_energy_sums_package_zones_across_a_wrap(tmp_path):
    from core.measure.energy import RaplMeter

    for zone, value in (("intel-rapl:0", 990), ("intel-rapl:1", 10), ("intel-rapl:0:0", 5)):
        folder = tmp_path / zone
        folder.mkdir()
        (folder / "energy_uj").write_text(str(value))
        (folder / "max_energy_range_uj").write_text("1000")
        (folder / "name").write_text(f"package-{zone[-1]}")
    meter, note = RaplMeter.find(tmp_path)
    assert meter is not None and len(meter.zones) == 2 and "RAPL" in note  # the subzone is not added again
    before = meter.read()
    (tmp_path / "intel-rapl:0" / "energy_uj").write_text("20")  # wrapped: 30 uJ
    (tmp_path / "intel-rapl:1" / "energy_uj").write_text("110")  # 100 uJ
    assert meter.joules(before, meter.read()) == pytest.approx(130e-6)
    missing, why = RaplMeter.find(tmp_path / "absent")
    assert missing is None and "no energy counter" in why


# ---- the workload and the command line ----------------------------------------------------------------------


def test_slo_presets_flags_and_errors_name_the_flag():
    from core.config.overrides import apply_llm_overrides
    from core.perf_engine import build_parser

    args = build_parser().parse_args(
        ["--task", TINY, "--request-rate", "1,0.5", "--slo", "ttft_p99=800,tpot_p99=90", "--find-max-rate"]
    )
    assert args.request_rate == [1.0, 0.5] and args.slo == {"ttft_p99": 800.0, "tpot_p99": 90.0}
    values = {"request_rate": args.request_rate, "slo": args.slo, "find_max_rate": True}
    workload = apply_llm_overrides(load_task(TINY), values).workload
    assert workload.request_rate == [0.5, 1.0] and workload.open_loop
    assert workload.slo_limits == {"ttft_p99": 800.0, "tpot_p99": 90.0}
    preset = apply_llm_overrides(load_task(TINY), {"slo": "llama3.1-8b-interactive"}).workload
    assert preset.slo_limits == {"ttft_p99": 500.0, "tpot_p99": 30.0}
    for bad, flag in (
        ({"slo": "llama9"}, "--slo"),
        ({"slo": {"ttft_p42": 1.0}}, "--slo"),
        ({"find_max_rate": True}, "--find-max-rate"),
        ({"request_rate": [0.0]}, "--request-rate"),
    ):
        with pytest.raises(UserError) as err:
            apply_llm_overrides(load_task(TINY), bad)
        assert err.value.field.startswith(flag), (bad, err.value.field)
    closed = apply_llm_overrides(load_task(TINY), {"concurrency": [4, 2]}).workload
    assert closed.batch_sizes == [2, 4] and not closed.open_loop  # one concept: the batch sizes are replaced


# ---- LoadGen ------------------------------------------------------------------------------------------------


class SleepingEngine:
    """A real-time engine: prefill 1 ms, a decode step 0.5 ms."""

    slots = 4

    def prefill(self, slot, ids):
        time.sleep(0.001)
        return 5

    def decode(self, slots, tokens):
        time.sleep(0.0005)
        return [t + 1 for t in tokens]

    def release(self, slot):
        pass


def _loadgen(engine, tmp_path, scenario, qps, queries, tokens=4, slots=4):
    from core.scenarios.llm_loadgen import LlmLoadGenSettings, run_llm_scenario

    settings = LlmLoadGenSettings(scenario, qps, ttft_ms=2000, tpot_ms=500, min_duration_s=1.0, min_query_count=queries)
    prompts = [Prompts(500, 8, seed=3).next() for _ in range(16)]
    load = Load(slots, 8, tokens, 0.0, stop_reason="LoadGen")
    return run_llm_scenario(engine, load, prompts, settings, tmp_path / scenario, tmp_path)


def test_loadgen_llm_server_measures_first_tokens_and_is_valid(tmp_path):
    entry, served = _loadgen(SleepingEngine(), tmp_path, "Server", qps=300.0, queries=500)
    assert entry.result == "VALID", entry.to_dict()
    assert entry.queries == len(served.requests) >= 500
    assert all(len(r.tokens) == 4 for r in served.requests)
    # LoadGen timed the first tokens (FirstTokenComplete) apart from the answers
    assert 0 < entry.extra["TTFT P99"] < entry.p99_latency
    assert 0 < entry.extra["TPOT P99"] < 500
    assert (tmp_path / entry.log_summary).read_text().count("Result is : VALID") == 1
    assert (tmp_path / entry.log_detail).exists()


def test_loadgen_llm_server_is_invalid_when_the_limits_are_missed(tmp_path):
    from core.scenarios.llm_loadgen import LlmLoadGenSettings, run_llm_scenario

    settings = LlmLoadGenSettings("Server", 300.0, ttft_ms=0.01, tpot_ms=0.01, min_duration_s=0.5, min_query_count=50)
    load = Load(4, 8, 3, 0.0, stop_reason="LoadGen")
    entry, _ = run_llm_scenario(SleepingEngine(), load, [tuple(range(3, 11))], settings, tmp_path / "s", tmp_path)
    assert entry.result == "INVALID" and "latency bound" in entry.unmet


def test_loadgen_llm_offline_reports_tokens_per_second(tmp_path):
    entry, served = _loadgen(SleepingEngine(), tmp_path, "Offline", qps=200.0, queries=100)
    assert entry.queries == 1 and entry.extra["Samples"] == len(served.requests) >= 100  # one query of all
    assert entry.extra["Tokens/s"] == pytest.approx(entry.qps * 4, rel=0.05)


@pytest.mark.slow
def test_loadgen_llm_server_on_the_tiny_model_at_a_low_rate_is_valid(tmp_path):
    import torch

    from backends.llm_transformers import SlotEngine
    from core.model.llm import build_model, resolve_llm_source

    task = load_task(TINY)
    source = resolve_llm_source(task.model, task.model_file, layers=None, seed=0, trust_remote_code=False)
    torch.manual_seed(0)
    engine = SlotEngine(build_model(source, 0, "FP32").eval(), slots=4, max_len=16)
    entry, served = _loadgen(engine, tmp_path, "Server", qps=40.0, queries=480)  # ~150/s is its max here
    assert entry.result == "VALID", entry.to_dict()
    assert len(served.requests) == entry.queries and entry.extra["TTFT P99"] < 2000


def test_a_tiny_open_loop_run_with_find_max_rate_and_loadgen_writes_its_evidence(tmp_path):
    from core.perf_engine import main

    workload = json.loads(Path(load_task(TINY).workload_file).read_text())
    workload["test_accuracy"] = False
    workload["perf_config"].update(perf_time=0.4, batch_sizes=[2], output_tokens=3)
    workload["max_rate_probes"] = 2
    workload["loadgen"] = {"min_duration_s": 0.5, "min_query_count": 4, "samples": 4}
    path = tmp_path / f"{TINY}.json"
    path.write_text(json.dumps(workload))
    out = tmp_path / "reports"
    argv = ["--task", str(path), "--output-dir", str(out), "--precision", "FP32", "--request-rate", "2,4"]
    code = main([*argv, "--slo", "ttft_p99=2000,tpot_p99=1000", "--find-max-rate", "--scenario", "Server"])
    assert code == 0
    data = json.loads((out / "CPU" / TINY / "result-fp32.json").read_text())
    serving = data["Serving"]
    assert serving["Batching"].startswith("continuous") and serving["Prompts"].startswith("unique")
    assert serving["SLO"] == {"ttft_p99": 2000.0, "tpot_p99": 1000.0}
    found = serving["Max Rate"]
    assert 1 <= found["Probes"] <= 2 and "TTFT P99" in found.get("Objectives", {"TTFT P99": 0})
    rows = data["Performance"]
    assert [r["Request Rate"] for r in rows] == sorted(r["Request Rate"] for r in rows)
    assert all(r["Goodput"] <= r["QPS"] for r in rows) and {2.0, 4.0} <= {r["Request Rate"] for r in rows}
    assert any(r.get("Search") == "find-max-rate probe" for r in rows)
    (loadgen,) = [e for e in data["LoadGen"] if e["Scenario"] == "Server"]
    assert loadgen["Result"] in ("VALID", "INVALID") and (out / "CPU" / TINY / loadgen["Log Summary"]).exists()
    assert "TTFT P99" in loadgen and "energy" in " ".join(data.get("Notes", [])) + serving["Energy"]


def test_the_html_page_draws_the_rate_sweep_against_the_slo():
    from core.reporting.html_report import render_run_html
    from core.reporting.report import RunReport

    def page(rates):
        report = RunReport(model=TINY, backend="CPU", dataset=None, precision="fp32")
        report.sections.update({"Kind": "llm", "Serving": {"SLO": dict(SLO)}})
        for rate in rates:
            report.llm_rows.append(llm_row(open_point(rate, window=3.0)[0], slo=SLO))
        if not rates:
            clock = FakeClock()
            served = serve(FakeEngine(clock), Load(2, 16, 4, 1.0, stagger_s=0.0), Prompts(500, 16, 0), clock=clock)
            report.llm_rows.append(llm_row(served))
        return render_run_html(report.to_dict())

    swept = page([2.0, 16.0])
    assert "TTFT P99 against throughput" in swept and "TPOT P99 against throughput" in swept
    assert "TTFT P99 against throughput" not in page([])  # a closed loop has no rate sweep to draw
