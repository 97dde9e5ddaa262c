"""Behaviours tested at their bounds, so that a changed comparison, a loosened bound or a widened allow-list
fails a test: the accuracy gate's rules each deciding alone, compare's threshold just inside and just
outside in both directions, the unpickler's (module, name) pairs, the SQuAD denominator, a fault on the
second write of a report, and a cache entry whose second file is damaged."""

from __future__ import annotations

import errno
import pickle

import numpy as np
import pytest

from core.common.artifact_cache import cached_folder
from core.common.errors import UserError
from core.quality.gate import AGREEMENT_BOUND, DRIFT_BOUND, INCONCLUSIVE_DRIFT_BOUND, Gate
from core.reporting.comparison import build_comparison
from core.reporting.report import RunReport
from core.reporting.schema import PerfRow
from datasets.base import Features
from datasets.open_squad.metric import squad_scores
from datasets.safe_pickle import RestrictedUnpickler, restricted_load

# ---------------------------------------------------------------- the accuracy gate
ROWS = 100


def reference_logits() -> np.ndarray:
    """[100, 3] logits whose top two classes are 1 apart: beyond the near-tie tolerance (0.17 of the ~3.4
    spread), so every row is decisive, and swapping them moves the argmax and hardly the drift (0.002 a row)."""
    rng = np.random.default_rng(0)
    base = rng.normal(0, 3, ROWS)
    return np.stack([base, base + 1.0, base - 5], axis=1)


def gate_for(reference: np.ndarray) -> Gate:
    features = Features(inputs={"x": np.zeros((ROWS, 4), dtype=np.int64)}, lengths=np.full(ROWS, 4))
    return Gate(features, {"logits": reference}, "cpu fp32")


def shifted(reference: np.ndarray, drift: float) -> np.ndarray:
    """Every logit moved by the same amount: drift exactly `drift` of the reference's spread, argmax unchanged."""
    return reference + drift * reference.std()


def swapped(reference: np.ndarray, rows: int) -> np.ndarray:
    """The first `rows` rows with their top two classes swapped: top-1 agreement 1 - rows/100, drift ~0.002 a row."""
    candidate = reference.copy()
    candidate[:rows, [0, 1]] = candidate[:rows, [1, 0]]
    return candidate


@pytest.mark.parametrize("margin, passed", [(-0.001, True), (0.001, False)])
def test_the_drift_rule_alone_decides_at_its_bound(margin, passed):
    reference = reference_logits()
    verdict = gate_for(reference).judge({"logits": shifted(reference, DRIFT_BOUND + margin)})
    assert verdict.top1_agreement == 1.0
    assert verdict.passed is passed
    assert passed or verdict.why == f"drift {DRIFT_BOUND + margin:.3g} > {DRIFT_BOUND}"


@pytest.mark.parametrize("flipped, passed", [(20, True), (21, False)])
def test_the_agreement_rule_alone_decides_at_its_bound(flipped, passed):
    reference = reference_logits()
    verdict = gate_for(reference).judge({"logits": swapped(reference, flipped)})
    assert verdict.normalized_drift < 0.05 and verdict.top1_agreement == pytest.approx(1 - flipped / ROWS)
    assert AGREEMENT_BOUND == 0.80 and verdict.passed is passed
    assert verdict.near_ties == 0 and verdict.decisive_rows == ROWS  # the reference's gaps, whatever the swaps
    # On decisive rows every disagreement is also a pick far from the reference's best: both rules say so.
    assert passed or verdict.why == (
        "top-1 agreement 79% < 80% over 100 decisive rows (0 near-ties left out); "
        "21 of 100 picks far from the reference's best (> 20%)"
    )


def test_a_nonfinite_output_fails_even_with_no_drift():
    reference = reference_logits()
    candidate = reference.copy()
    candidate[5, 2] = np.nan  # not a top class: agreement and drift over the finite values stay perfect
    verdict = gate_for(reference).judge({"logits": candidate})
    assert not verdict.passed and verdict.why == "1 NaN/Inf outputs"


# ---------------------------------------------------------------- compare's threshold
def report(metric: str, value: float) -> RunReport:
    row = PerfRow(bs=1, qps=100.0, avg_latency=10.0)
    setattr(row, {"QPS": "qps", "AVG Latency": "avg_latency"}[metric], value)
    return RunReport(model="m", backend="CPU", precision="FP32", dataset=None, performance=[row])


@pytest.mark.parametrize(
    "metric, base, value, flagged",
    [
        ("QPS", 100.0, 95.1, False),  # 4.9% slower: inside a 5% threshold
        ("QPS", 100.0, 94.9, True),  # 5.1% slower: outside
        ("QPS", 100.0, 120.0, False),  # faster is never a regression
        ("AVG Latency", 10.0, 10.49, False),
        ("AVG Latency", 10.0, 10.51, True),
        ("AVG Latency", 10.0, 8.0, False),  # lower latency is an improvement
    ],
)
def test_compare_flags_beyond_the_threshold_and_only_the_wrong_way(metric, base, value, flagged):
    cmp = build_comparison([report(metric, base), report(metric, value)], ["a", "b"], threshold=0.05)
    assert [r.metric for r in cmp.regressions] == ([metric] if flagged else [])
    if flagged:
        assert cmp.regressions[0].change == pytest.approx(value / base - 1)


# ---------------------------------------------------------------- the unpickler's allow-list is of names
@pytest.mark.parametrize(
    "module, name",
    [
        ("numpy", "save"),  # numpy is an allowed module for ndarray and dtype, not for everything in it
        ("numpy", "load"),
        ("numpy", "fromfile"),
        ("_codecs", "decode"),  # _codecs.encode spells bytes; nothing else of _codecs is needed
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "fromfile"),
        ("numpy.core.numeric", "loads"),
    ],
)
def test_names_outside_the_allow_list_are_refused_inside_allowed_modules(tmp_path, module, name):
    victim = tmp_path / "written-by-the-pickle.npy"
    payload = f"c{module}\n{name}\n(V{victim}\nI1\ntR.".encode()
    path = tmp_path / "evil.pkl"
    path.write_bytes(payload)
    with pytest.raises(UserError, match=f"refused to load {module}.{name}"):
        restricted_load(path)
    assert not victim.exists()


def test_the_names_a_numpy_array_pickle_needs_still_load():
    array = np.arange(6, dtype=np.int16).reshape(2, 3)
    for protocol in (2, 5):
        import io

        loaded = RestrictedUnpickler(io.BytesIO(pickle.dumps(array, protocol=protocol)), encoding="latin1").load()
        assert np.array_equal(loaded, array) and loaded.dtype == array.dtype


# ---------------------------------------------------------------- the SQuAD denominator
def test_an_unanswered_question_counts_in_the_denominator():
    gold = {"q1": ["Denver Broncos"], "q2": ["Santa Clara"], "q3": ["gold"]}
    predictions = {"q1": "Denver Broncos", "q2": "Santa Clara"}  # q3 unanswered: 2 of 3 right
    scores = squad_scores(gold, predictions)
    assert scores["exact_match"] == pytest.approx(200 / 3) and scores["f1"] == pytest.approx(200 / 3)
    first_unanswered = squad_scores({"q3": ["gold"], **gold}, predictions)  # the questions after it still count
    assert first_unanswered["exact_match"] == pytest.approx(200 / 3)
    half = squad_scores({"q1": ["the big red dog"]}, {"q1": "red cat"})  # F1 on normalized tokens [big red dog]
    assert half["exact_match"] == 0 and half["f1"] == pytest.approx(100 * 2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3))


# ---------------------------------------------------------------- atomic replacement under failure
def test_a_fault_on_the_second_write_leaves_the_previous_report_byte_identical(tmp_path, monkeypatch):
    import core.common.atomic
    from core.reporting.writer import write_report

    def one(qps: float, run_id: str) -> RunReport:
        return RunReport(
            model="m",
            backend="CPU",
            precision="FP32",
            dataset=None,
            run_id=run_id,
            performance=[PerfRow(bs=1, qps=qps)],
        )

    latest = write_report(one(10.0, "20261201T000000-aaaaaa"), tmp_path)
    before = latest.read_bytes()
    real_fsync, calls = core.common.atomic.os.fsync, []

    def second_fails(fd):
        calls.append(fd)
        if len(calls) == 2:  # the kept run is written; the latest result is next
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(core.common.atomic.os, "fsync", second_fails)
    with pytest.raises(UserError, match="no space left"):
        write_report(one(20.0, "20261201T000001-bbbbbb"), tmp_path)
    assert latest.read_bytes() == before
    assert (tmp_path / "CPU/m/runs/20261201T000001-bbbbbb.json").is_file()  # the first write went through
    assert not [p for p in tmp_path.rglob("*.tmp")]


# ---------------------------------------------------------------- a two-file cache entry
def test_a_truncated_sidecar_of_a_two_file_entry_is_rebuilt(tmp_path):
    builds = []

    def build(work):
        builds.append(1)
        (work / "model.onnx").write_bytes(b"graph")
        (work / "model.onnx.data").write_bytes(b"weights" * 100)
        return {}

    entry = cached_folder(tmp_path, {"k": 1}, build)
    (entry.path / "model.onnx.data").write_bytes(b"weights")  # the graph is whole, its weights are not
    again = cached_folder(tmp_path, {"k": 1}, build)
    assert not again.hit and len(builds) == 2
    assert (again.path / "model.onnx.data").read_bytes() == b"weights" * 100


# ---------------------------------------------------------------- the gate by task metric (real weights)
def metric_gate(reference: np.ndarray, scores: dict[str, dict[str, float]]) -> Gate:
    """A gate whose evaluate() returns the scores registered for an output array (keyed by its first value)."""
    from core.quality.gate import make_gate

    features = Features(inputs={"x": np.zeros((ROWS, 4), dtype=np.int64)}, lengths=np.full(ROWS, 4))
    return make_gate(
        features,
        {"logits": reference},
        "cpu fp32",
        evaluate=lambda outputs: scores[float(outputs["logits"][0, 0])],
        synthetic=False,
    )


@pytest.mark.parametrize("em, passed", [(79.21, True), (79.19, False)])  # 99% of 80.0 is 79.2
def test_the_metric_rule_decides_at_99_percent_of_the_reference(em, passed):
    reference = reference_logits()
    candidate = shifted(reference, 3.0)  # drift far beyond its bound: by metric, drift does not decide
    scores = {
        float(reference[0, 0]): {"Exact Match": 80.0, "F1 Score": 88.0, "Questions": 40},
        float(candidate[0, 0]): {"Exact Match": em, "F1 Score": 88.0, "Questions": 40},
    }
    gate = metric_gate(reference, scores)
    assert gate.by_metric and gate.reference_metrics == {"Exact Match": 80.0, "F1 Score": 88.0}
    verdict = gate.judge({"logits": candidate})
    assert verdict.metrics == {"Exact Match": em, "F1 Score": 88.0}
    assert verdict.passed is passed
    assert passed or verdict.why == f"Exact Match {em:.4g} < 99% of 80"
    assert gate.rule() == {
        "Reference": "cpu fp32",
        "Features": ROWS,
        "Rule": "every task metric >= 99% of the reference's (MLPerf's 99% rule)",
        "Reference Metrics": {"Exact Match": 80.0, "F1 Score": 88.0},
    }


def test_a_missing_metric_fails_and_synthetic_weights_judge_by_drift():
    reference = reference_logits()
    candidate = reference + 1.0
    scores = {float(reference[0, 0]): {"Exact Match": 80.0}, float(candidate[0, 0]): {}}
    verdict = metric_gate(reference, scores).judge({"logits": candidate})
    assert not verdict.passed and verdict.why == "Exact Match nan < 99% of 80"
    from core.quality.gate import make_gate

    features = Features(inputs={"x": np.zeros((ROWS, 4), dtype=np.int64)}, lengths=np.full(ROWS, 4))
    synthetic = make_gate(features, {"logits": reference}, "ref", evaluate=lambda o: scores[0], synthetic=True)
    assert not synthetic.by_metric and synthetic.evaluate is None
    assert synthetic.rule()["Rule"].startswith("each output: normalized drift <= 0.15")


def test_the_gate_trims_per_token_outputs_to_each_features_length():
    # Per-token logits [N, L]: positions past a feature's length are padding and must not count.
    rng = np.random.default_rng(1)
    reference = rng.normal(0, 1, (ROWS, 8))
    candidate = reference.copy()
    candidate[:, 6:] += 100.0  # garbage in the padding only
    features = Features(inputs={"x": np.zeros((ROWS, 8), dtype=np.int64)}, lengths=np.full(ROWS, 6))
    verdict = Gate(features, {"start_logits": reference}, "ref").judge({"start_logits": candidate})
    assert verdict.passed and verdict.normalized_drift == 0.0 and verdict.top1_agreement == 1.0


def test_a_drift_at_its_bound_passes():
    # Columns of +1 and -1: mean 0, standard deviation exactly 1, every row decisive (a gap of 2); a shift of
    # DRIFT_BOUND is a drift of DRIFT_BOUND (to the last bit), and a shift moves no argmax.
    reference = np.tile([1.0, -1.0], (ROWS, 1))
    verdict = gate_for(reference).judge({"logits": reference + DRIFT_BOUND})
    assert verdict.normalized_drift == DRIFT_BOUND and verdict.passed and verdict.why is None
    assert verdict.gate == "pass" and verdict.rule == "agreement"
    # Two columns tied exactly: every row a near-tie, so the inconclusive bound holds instead.
    tied = np.tile([1.0, -1.0, 1.0, -1.0], (ROWS, 1))
    verdict = gate_for(tied).judge({"logits": tied + 0.999 * INCONCLUSIVE_DRIFT_BOUND})
    assert verdict.passed and verdict.rule == "inconclusive" and verdict.decisive_rows == 0


def test_every_problem_is_named_in_one_line():
    reference = reference_logits()
    verdict = gate_for(reference).judge({"logits": np.full_like(reference, np.nan)})  # nothing finite to compare
    assert verdict.gate == "fail" and verdict.normalized_drift is None and verdict.top1_agreement is None
    assert verdict.why == "300 NaN/Inf outputs; nothing to compare"
    # Drift from the bottom class of 40 rows lowered (one of a row's 3 values: the row drifts 0.75), 30 swaps.
    candidate = swapped(reference, 30)
    candidate[-40:, 2] -= 0.3 * reference.size * reference.std() / 40
    drifted = gate_for(reference).judge({"logits": candidate})
    assert drifted.why == (
        f"drift {drifted.normalized_drift:.3g} > 0.15; a row drifts {0.3 * reference.size / 40 / 3:.3g} > 0.25; "
        "top-1 agreement 70% < 80% over 100 decisive rows (0 near-ties left out); "
        "30 of 100 picks far from the reference's best (> 20%)"
    )


def test_the_gate_rounds_what_it_reports_to_four_places():
    reference = reference_logits()
    verdict = gate_for(reference).judge({"logits": shifted(reference, 0.123456789)})
    assert verdict.normalized_drift == 0.1235 and verdict.top1_agreement == 1.0
    scores = {
        float(reference[0, 0]): {"Exact Match": 80.123456, "F1 Score": 88.0},
        float(reference[0, 0] + 1.0): {"Exact Match": 80.987654, "F1 Score": 88.0},
    }
    gate = metric_gate(reference, scores)
    assert gate.rule()["Reference Metrics"] == {"Exact Match": 80.1235, "F1 Score": 88.0}
    assert gate.judge({"logits": reference + 1.0}).metrics == {"Exact Match": 80.9877, "F1 Score": 88.0}


def test_a_metric_exactly_at_99_percent_passes_and_a_nan_output_still_fails_by_metric():
    reference = reference_logits()
    at_bound, with_nan = reference + 1.0, reference + 2.0
    with_nan[5, 2] = np.nan
    scores = {
        float(reference[0, 0]): {"Exact Match": 80.0},
        float(at_bound[0, 0]): {"Exact Match": 0.99 * 80.0},
        float(with_nan[0, 0]): {"Exact Match": 70.0},
    }
    gate = metric_gate(reference, scores)
    assert gate.judge({"logits": at_bound}).passed
    assert gate.judge({"logits": with_nan}).why == "1 NaN/Inf outputs; Exact Match 70 < 99% of 80"


def test_the_synthetic_rule_in_full():
    rule = gate_for(reference_logits()).rule()
    assert rule == {
        "Reference": "cpu fp32",
        "Features": ROWS,
        "Rule": "each output: normalized drift <= 0.15 (each row <= 0.25), top-1 agreement >= 80% over the "
        "decisive rows and at most 20% of picks far from the reference's best (near-tie tolerance 0.174 of the "
        "reference's std); below 10 decisive rows inconclusive: drift <= 0.05; no NaN/Inf "
        "(synthetic weights or unlabelled data: the task metric means nothing)",
    }
