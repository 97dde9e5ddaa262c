"""open_cail2019: ByteMLPerf's ragged object .npy files, read without unpickling code, scored pairwise."""

from __future__ import annotations

import os

import numpy as np
import pytest

from core.common.errors import UserError
from datasets.base import DatasetRequest, ModelInputs
from datasets.open_cail2019.loader import Cail2019Loader

MODEL = ModelInputs(
    names=("input_segment:0", "input_token:0"),
    dtypes=("FLOAT32", "FLOAT32"),
    seq_len=8,
    vocab_size=100,
    type_vocab_size=2,
    outputs=("Identity:0",),
    shapes=((1, 8), (1, 8)),
)


def write_bytemlperf_files(folder, tokens, segments, labels):
    """As ByteMLPerf's pre_process_data.py writes them: np.save of lists of lists (object arrays)."""
    for name, rows in (("batch_token_ids", tokens), ("batch_segment_ids", segments)):
        array = np.empty(len(rows), dtype=object)
        array[:] = [list(r) for r in rows]
        np.save(folder / f"{name}.npy", array, allow_pickle=True)
    np.save(folder / "label.npy", np.array([[x] for x in labels]), allow_pickle=True)


def loader(folder, percent=100.0):
    return Cail2019Loader(DatasetRequest(model=MODEL, data_path=folder, data_percent=percent))


def test_rows_are_padded_by_role_and_pairs_scored_by_label(tmp_path):
    tokens = [[2, 5, 3, 7, 3], [2, 5, 3, 9, 9, 3], [2, 6, 3, 8, 3], [2, 6, 3, 1, 2, 3, 4, 5, 6, 7]]  # last: truncated
    segments = [[0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1], [0, 0, 0] + [1] * 7]
    write_bytemlperf_files(tmp_path, tokens, segments, [1, 0, 0, 1])
    data = loader(tmp_path)
    features = data.load()
    ids, types = features.inputs["input_token:0"], features.inputs["input_segment:0"]
    assert ids.dtype == np.float32 and ids.shape == (4, 8)
    assert ids[0].tolist() == [2, 5, 3, 7, 3, 0, 0, 0] and types[1].tolist() == [0, 0, 0, 1, 1, 1, 0, 0]
    assert features.lengths.tolist() == [5, 6, 5, 8] and data.provenance()["truncated_rows"] == 1
    # Triplet 1: the closer case (label 1) is row 0 and scores higher; triplet 2: it is row 3 and scores lower.
    scores = np.array([[0.9], [0.1], [0.8], [0.2]], np.float32)
    result = data.evaluate({"Identity:0": scores})
    assert result["Top-1"] == 50.0 and result["Triplets"] == 2


def test_data_percent_keeps_whole_pairs(tmp_path):
    write_bytemlperf_files(tmp_path, [[2, 3]] * 6, [[0, 0]] * 6, [1, 0] * 3)
    assert len(loader(tmp_path, percent=50).load()) == 4  # ceil(1.5) triplets


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo owned > owned.txt",))

    write_bytemlperf_files(tmp_path, [[2, 3]] * 2, [[0, 0]] * 2, [1, 0])
    evil = np.empty(1, dtype=object)
    evil[0] = Exploit()
    np.save(tmp_path / "batch_token_ids.npy", evil, allow_pickle=True)
    with pytest.raises(UserError, match="refused to load posix.system"):
        loader(tmp_path).load()
    assert not (tmp_path / "owned.txt").exists()


def test_unpaired_labels_are_a_one_line_error(tmp_path):
    write_bytemlperf_files(tmp_path, [[2, 3]] * 2, [[0, 0]] * 2, [1, 1])
    with pytest.raises(UserError, match="pairs"):
        loader(tmp_path).load()


def test_without_the_files_a_generated_sample_is_labelled(monkeypatch):
    monkeypatch.delenv("PERFBENCH_OPEN_CAIL2019_PATH", raising=False)
    data = Cail2019Loader(DatasetRequest(model=MODEL))
    features = data.load()
    assert len(features) == 64 and data.provenance()["source"] == "generated sample"
    assert "not CAIL2019" in data.provenance()["note"]
    assert features.inputs["input_token:0"].max() < 100
