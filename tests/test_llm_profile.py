"""--profile on LLM runs (a prefill and decode steps, held against the row's timing) and the LLM roofline on the
run page: a tiny run end to end, the phases against made rows, a converted engine's note, the page's tables and
bars from a made report."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from core.config.registry import load_task
from core.reporting.html_report import render_run_html
from core.reporting.llm_profile import agreement_table, types_table
from core.reporting.llm_rows import Distribution, LlmRoofline, LlmRow, ServerSide
from core.reporting.report import RunReport
from core.run.llm import Point
from core.run.llm_profile import profile_llm, profile_phases
from tests.llm_fakes import tiny_llama
from tests.test_llm_reports import llm_report, served

TINY = "tiny-llama-torch-fp32"


def tiny_module():
    return tiny_llama(intermediate_size=96, max_position_embeddings=128)


def made_row(prefill_ms: float, step_ms: float, point: Point) -> LlmRow:
    steps = point.output_tokens - 1
    return LlmRow(
        tp_size=1,
        batch_size=point.batch_size,
        input_tokens=point.input_tokens,
        output_tokens=point.output_tokens,
        ttft=Distribution(avg=prefill_ms + 1.0),
        tpot=Distribution(avg=step_ms + 0.5),
        prefill=Distribution(avg=prefill_ms),
        server=ServerSide(decode_model_avg=step_ms * steps),
    )


def test_a_tiny_run_with_profile_reports_both_phases_against_its_rows(tmp_path, capsys):
    from core.perf_engine import main

    out = tmp_path / "reports"
    workload = json.loads(Path(load_task(TINY).workload_file).read_text())
    workload["test_accuracy"] = False
    workload["perf_config"].update(perf_time=0.3, batch_sizes=[2])
    path = tmp_path / f"{TINY}.json"
    path.write_text(json.dumps(workload))
    args = ["--task", str(path), "--output-dir", str(out), "--engine", "transformers", "--output-tokens", "4"]
    assert main([*args, "--precision", "FP32", "--profile"]) == 0
    written = out / "CPU" / TINY / "result-fp32.json"
    data = json.loads(written.read_text())
    row = RunReport.from_dict(data, written).llm_rows[0]
    profile = data["Profile"]
    assert profile["Engine"] == "transformers" and profile["Load Point"] == row.label == "bs 2, 16 in, 4 out"
    prefill, decode = profile["Prefill"], profile["Decode"]
    # Each phase is held against its own row's figures, TTFT and TPOT beside them.
    assert prefill["Timed ms per Call"] == row.prefill.avg and prefill["Row TTFT AVG"] == row.ttft.avg
    assert decode["Timed ms per Call"] == pytest.approx(row.server.decode_model_avg / 3, rel=1e-3)
    assert decode["Row TPOT AVG"] == row.tpot.avg and decode["Batch Size"] == 2 and prefill["Batch Size"] == 1
    for phase in (prefill, decode):
        assert phase["Calls"] >= 3 and isinstance(phase["Representative"], bool)
        assert phase["Profiler Overhead"] == pytest.approx(
            phase["Profiled ms per Call"] / phase["Timed ms per Call"] - 1, abs=1e-3
        )
        assert sum(t["Share"] for t in phase["Types"]) == pytest.approx(1.0, abs=0.01)
        assert {"MatMul/linear", "attention"} <= {t["Type"] for t in phase["Types"]}
        assert (out / "CPU" / TINY / phase["Trace"]).is_file()
    shown = capsys.readouterr().out
    assert "Where the time went" in shown and "Profiled against timed (bs 2, 16 in, 4 out; ms)" in shown
    page = render_run_html(data)
    assert "Profiled against timed" in page and "Decode profile: Top Nodes" in page


def test_a_phase_slower_than_its_timed_figure_is_marked_and_a_faster_one_agrees(tmp_path):
    module, point = tiny_module(), Point(1, 2, 8, 4)
    fast = profile_phases(module, point, made_row(1e-4, 1e-4, point), None, tmp_path)
    assert fast["Prefill"]["Representative"] is False and "unrepresentative" in fast["Prefill"]["Warning"]
    assert fast["Decode"]["Representative"] is False and fast["Decode"]["Timed ms per Call"] == pytest.approx(1e-4)
    slow = profile_phases(module, point, made_row(1e4, 1e4, point), None, tmp_path)
    assert slow["Prefill"]["Representative"] is True and slow["Decode"]["Representative"] is True
    table = agreement_table({"Load Point": "bs 2", **fast})
    assert [row[0].text for row in table.rows] == ["prefill", "decode step"]
    assert all(row[1].bad and row[1].text == "no" for row in table.rows)
    # Without a row there is nothing to hold it against: said, not guessed.
    alone = profile_phases(module, Point(1, 1, 8, 1), None, None, tmp_path)
    assert alone["Prefill"]["Timed ms per Call"] is None and "Representative" not in alone["Prefill"]
    assert "no decode step" in alone["Decode"]["Note"]


def test_a_converted_engine_without_a_profiler_gets_a_note_not_a_profile():
    report = RunReport(model="m", backend="CPU", precision="FP32", dataset=None)
    run = SimpleNamespace(report=report)
    profile_llm(run, SimpleNamespace(engine=lambda slots, max_len: None), "a-vendor-engine", [Point(1, 1, 16, 4)])
    section = report.sections["Profile"]
    assert section["Engine"] == "a-vendor-engine" and "no operator profiler" in section["Note"]
    assert "Prefill" not in section


def roofline(prefill_share, mbu, note=None) -> LlmRoofline:
    return LlmRoofline(
        prefill_gflops=40.0 * prefill_share,
        compute_peak_gflops=40.0,
        prefill_peak_share=prefill_share,
        decode_gbs=20.0 * mbu,
        bandwidth_gbs=20.0,
        decode_mbu=mbu,
        decode_ceiling_tokens_per_s=123.0,
        note=note,
    )


def test_the_run_page_draws_each_rows_phases_against_their_roofs():
    report = llm_report("20261201T100000-aaaaaa", served(1), served(2, bs=4))
    llc = "the weights (0.5 MiB at FP32) fit in the last-level cache (32 MiB): the DRAM bound does not apply"
    report.llm_rows[0].roofline = roofline(0.25, 0.5, llc)
    report.llm_rows[1].roofline = roofline(0.3, 1.2)
    page = render_run_html(report.to_dict())
    alts = re.findall(r'<img class="plot" alt="([^"]+)"', page)
    assert alts[-1] == "LLM roofline per load point (the weights fit in the last-level cache: see the warning above)"
    assert page.count("last-level cache (32 MiB)") == 1 and 'class="banner warn"' in page
    table = page[page.index("<h3>Roofline per phase</h3>") :]
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", table.split("</table>")[0])
    assert cells[:8] == ["bs 2, 16 in, 8 out", "10.00", "40.00", "25.0%", "10.00", "20.00", "50.0%", "123.0"]
    assert '<td class="num bad">120.0% ⚠</td>' in table  # above its roof: marked
    # A report is untrusted: a figure that is not a number shows as a dash, the page still renders.
    data = report.to_dict()
    data["Performance"][1]["Roofline"]["Decode MBU"] = "fast"
    assert '<td class="num">—</td>' in render_run_html(data).split("<h3>Roofline per phase</h3>")[1]
    # Without a roofline (no peaks measured, or llm_perf's rows) the page has no such section.
    assert "Roofline per phase" not in render_run_html(llm_report("20261201T100000-bbbbbb", served(1)).to_dict())


def test_the_types_table_puts_both_phases_side_by_side_and_time_outside_operators_last():
    def phase(types):  # as operators.normalize writes them: the time outside operators has no ops per call
        return {
            "Types": [
                {"Type": kind, "ms per Call": ms, "Share": share, "Ops per Call": None if "outside" in kind else 3.0}
                for kind, ms, share in types
            ]
        }

    profile = {
        "Prefill": phase([("MatMul/linear", 8.0, 0.8), ("outside operators", 1.5, 0.15), ("attention", 0.5, 0.05)]),
        "Decode": phase([("MatMul/linear", 1.0, 0.5), ("elementwise", 0.6, 0.3), ("outside operators", 0.4, 0.2)]),
    }
    table = types_table(profile)
    assert table.headers == ["operator type", "prefill ms", "share", "decode ms", "share"]
    assert [row[0].text for row in table.rows] == ["MatMul/linear", "elementwise", "attention", "outside operators"]
    assert [c.text for c in table.rows[1]] == ["elementwise", "—", "—", "0.60", "30.0%"]
