"""Reading reports (both formats, run ids) and the compare CLI: tables, warnings, thresholds, exit codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from core.common.errors import UserError
from core.reporting.compare import main, parse_threshold
from core.reporting.report import RunReport
from core.reporting.report_io import load_report, resolve_report_path

FIXTURES = Path(__file__).parent / "fixtures" / "reports"
LATEST = FIXTURES / "CPU/albert-torch-fp32/result-fp32.json"  # ours, full
OLDER = FIXTURES / "CPU/albert-torch-fp32/runs/20261121T120000-d4e5f6.json"
PARTIAL = FIXTURES / "CPU/roberta-torch-fp32/result-fp32.json"  # ours, incomplete, a failed BS
MNLI = FIXTURES / "CPU/deberta-v3-mnli-torch-fp32/result-fp32.json"
BYTEMLPERF = FIXTURES / "IXRT/albert-torch-fp32/result-fp16.json"  # ByteMLPerf's own format


def run_json(capsys, *args: str) -> tuple[int, dict]:
    code = main([*map(str, args), "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def perf_row(data: dict, bs: int, metric: str) -> dict:
    return next(r for r in data["perf"] if r["bs"] == bs and r["metric"] == metric)


# ---------------------------------------------------------------- reading
def test_both_formats_read_into_the_typed_report():
    ours = RunReport.from_dict(load_report(LATEST))
    theirs = RunReport.from_dict(load_report(BYTEMLPERF))
    assert ours.format == "perfbench" and theirs.format == "bytemlperf"
    assert list(ours.perf_by_bs) == [1, 4, 8] and list(theirs.perf_by_bs) == [1, 4, 16]
    assert ours.perf_by_bs[4].number("P90 Latency") == 1690.0
    # ByteMLPerf rows have no percentiles but P99 and no status: missing numbers are None, a row with QPS ran.
    assert theirs.perf_by_bs[1].number("P50 Latency") is None and theirs.perf_by_bs[1].status == "ok"
    assert theirs.host_cpu.startswith("Intel") and theirs.weights_kind is None
    assert ours.quality == {"Exact Match": 80.24, "F1 Score": 87.61}
    assert theirs.numeric["Max Diff"] == pytest.approx(0.2617)


def test_normalize_tolerates_odd_values():
    norm = RunReport.from_dict(
        {
            "Model": "m",
            "Performance": [
                {"BS": 2, "QPS": "12.5", "AVG Latency": True, "P99 Latency": float("nan")},
                {"BS": 4.0, "Status": "failed", "Error": "boom"},
            ],
        }
    )
    rows = norm.perf_by_bs
    assert rows[2].number("QPS") == 12.5
    assert rows[2].number("AVG Latency") is None and rows[2].number("P99 Latency") is None
    assert rows[4].status == "failed" and rows[4].error == "boom"


@pytest.mark.parametrize(
    "rows, field",
    [
        ([{"QPS": 1}], "Performance[0].BS"),
        ([{"BS": 0}], "Performance[0].BS"),
        ([{"BS": 1}, {"BS": 1}], "Performance[1].BS"),
        ({"BS": 1}, "Performance"),
    ],
)
def test_bad_rows_name_the_field(rows, field):
    with pytest.raises(UserError) as err:
        RunReport.from_dict({"Model": "m", "Performance": rows}, source=Path("r.json"))
    assert err.value.field == field and err.value.file == "r.json"


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"model": "x"}', '{"Model": "x"}'])
def test_not_a_report_names_the_file(tmp_path, text):
    path = tmp_path / "bogus.json"
    path.write_text(text)
    with pytest.raises(UserError, match="bogus.json"):
        load_report(path)


def test_partial_report_loads():
    norm = RunReport.from_dict(load_report(PARTIAL))
    assert norm.status == "incomplete" and norm.quality == {} and norm.host_cpu is None
    assert norm.perf_by_bs[8].status == "failed" and norm.perf_by_bs[8].number("QPS") is None


# ---------------------------------------------------------------- history ids
def test_resolve_run_id_and_unique_prefix():
    assert resolve_report_path("20261121T120000-d4e5f6", FIXTURES) == OLDER
    assert resolve_report_path("20261121T12", FIXTURES) == OLDER


def test_missing_run_id_lists_close_matches():
    with pytest.raises(UserError) as err:
        resolve_report_path("20261121T120000-d4e5f7", FIXTURES)
    assert "20261121T120000-d4e5f6" in str(err.value)


def test_ambiguous_run_id_lists_candidates():
    with pytest.raises(UserError, match="ambiguous") as err:
        resolve_report_path("2026112", FIXTURES)
    assert "20261122T031500-a1b2c3" in str(err.value) and "20261121T120000-d4e5f6" in str(err.value)


def test_compare_by_run_ids(capsys):
    code, data = run_json(capsys, "--reports-dir", FIXTURES, "20261121T120000-d4e5f6", "20261122T031500-a1b2c3")
    assert code == 0
    assert [r["label"] for r in data["reports"]] == ["20261121T120000-d4e5f6", "20261122T031500-a1b2c3"]


def test_missing_id_exits_2_with_one_line(capsys):
    assert main(["--reports-dir", str(FIXTURES), "20261121T120000-d4e5f6", "nope-123"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope-123" in err and "Traceback" not in err


# ---------------------------------------------------------------- comparisons
def test_threshold_marks_regression_and_exits_1(capsys):
    code, data = run_json(capsys, OLDER, LATEST, "--threshold", "5%")
    assert code == 1
    flagged = {(r["bs"], r["metric"]) for r in data["regressions"]}
    # BS 4 got 10% slower; BS 1 and 8 moved about 1%. Its P99 rose too, but from a few dozen samples each:
    # unbacked (a 95% bound needs 299), so it is shown as such and not called a regression.
    assert (4, "QPS") in flagged and (4, "P99 Latency") not in flagged
    assert all(bs == 4 for bs, _ in flagged)
    assert perf_row(data, 4, "P99 Latency")["unbacked"] == [True, True]
    row = perf_row(data, 4, "QPS")
    assert row["ratios"][1] == pytest.approx(2.41 / 2.68) and row["regressions"] == [False, True]


def test_threshold_not_exceeded_exits_0(capsys):
    code, data = run_json(capsys, OLDER, LATEST, "--threshold", "15")
    assert code == 0 and data["regressions"] == [] and data["threshold"] == pytest.approx(0.15)


def test_no_threshold_never_fails(capsys):
    code, data = run_json(capsys, OLDER, LATEST)
    assert code == 0 and data["regressions"] == []


def test_bytemlperf_against_ours_warns_on_what_differs(capsys):
    code, data = run_json(capsys, LATEST, BYTEMLPERF)
    assert code == 0
    warnings = "\n".join(data["warnings"])
    for expected in ("precision differs", "weights differs", "host differs", "batch size 16 is missing"):
        assert expected in warnings
    # ByteMLPerf upper-cases model and dataset names: not a mismatch.
    assert "model differs" not in warnings and "dataset differs" not in warnings
    assert perf_row(data, 1, "QPS")["ratios"][1] == pytest.approx(50.99 / 2.25)
    assert perf_row(data, 1, "P50 Latency")["values"] == [441.0, None]


def test_model_and_dataset_mismatch_warnings(capsys):
    _, data = run_json(capsys, LATEST, MNLI)
    warnings = "\n".join(data["warnings"])
    assert "model differs" in warnings and "dataset differs" in warnings
    assert "synthetic weights" in warnings


def test_failed_batch_size_is_a_regression(capsys):
    code, data = run_json(capsys, LATEST, PARTIAL, "--threshold", "50%")
    assert code == 1
    assert [(r["bs"], r["metric"]) for r in data["regressions"]] == [(8, "Status")]
    assert "out of memory" in data["regressions"][0]["message"]
    assert any("incomplete" in w for w in data["warnings"])


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_partial_report_renders_as_text(capsys, fmt):
    assert main([str(PARTIAL), str(LATEST), "--format", fmt]) == 0
    out = capsys.readouterr().out
    assert "failed" in out and "20261122T050000-0f9e8d" in out
    assert "Exact Match" in out and "model differs" in out


def test_disjoint_batch_sizes_are_shown_side_by_side_with_a_note(tmp_path, capsys):
    # Most vendor reports hold one tuned batch size: the union is shown, the gaps as gaps, no exit 2.
    report = json.loads(LATEST.read_text())
    report["Performance"] = [dict(report["Performance"][0], BS=32)]
    other = tmp_path / "bs32.json"
    other.write_text(json.dumps(report))
    code, data = run_json(capsys, LATEST, other, "--threshold", "5%")
    assert code == 0 and data["batch_sizes"] == [1, 4, 8, 32]
    row = perf_row(data, 32, "QPS")
    assert row["values"][0] is None and row["values"][1] is not None and row["ratios"] == [None, None]
    assert any("shares no batch size" in w and "[32] vs [1, 4, 8]" in w for w in data["warnings"])
    assert main([str(LATEST), str(other)]) == 0
    out = capsys.readouterr().out
    assert "shares no batch size" in out and "32" in out


def test_stc_underscore_keys_are_read_and_unknown_keys_are_named(tmp_path, capsys):
    stc = {
        "Model": "ALBERT-TORCH-FP32",
        "Backend": "STC",
        "Performance": [{"BS": 1, "QPS": 100.0, "AVG_Latency": 10.0, "P99_Latency": 12.5, "Power_W": 70}],
    }
    path = tmp_path / "stc.json"
    path.write_text(json.dumps(stc))
    norm = RunReport.from_dict(load_report(path), source=path)
    assert norm.perf_by_bs[1].number("AVG Latency") == 10.0 and norm.perf_by_bs[1].number("P99 Latency") == 12.5
    assert norm.read_notes == ["Performance rows hold keys not read here: Power_W"]
    code, data = run_json(capsys, BYTEMLPERF, path)
    assert perf_row(data, 1, "P99 Latency")["values"] == [21.87, 12.5]
    assert any("Power_W" in w for w in data["warnings"])


def test_debug_shows_the_exception(tmp_path):
    with pytest.raises(UserError):
        main([str(LATEST), str(tmp_path / "missing.json"), "--debug"])


@pytest.mark.parametrize("args", [["--threshold", "lots"], ["--threshold", "-5"], []])
def test_bad_arguments_exit_2(capsys, args):
    reports = [str(LATEST)] if not args else [str(LATEST), str(OLDER)]
    assert main([*reports, *args]) == 2
    assert "error:" in capsys.readouterr().err


def test_parse_threshold():
    assert parse_threshold("5%") == pytest.approx(0.05) and parse_threshold("0.5") == pytest.approx(0.005)


def test_output_file_and_html(tmp_path):
    out = tmp_path / "cmp.html"
    shutil.copy(LATEST, tmp_path / "a.json")
    assert main([str(tmp_path / "a.json"), str(BYTEMLPERF), "--format", "html", "--output", str(out)]) == 0
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("data:image/png;base64,") >= 2
    assert "IXRT/albert-torch-fp32/result-fp16.json" in page
