"""The restricted unpickler's every way out, each with its exact one-line error: what a user reads is
part of the contract (file, problem, fix), so a changed message is a failing test."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest

from core.common.errors import UserError
from datasets.safe_pickle import RestrictedUnpickler, load_npy, restricted_load

CIFAR_FIX = "use the original CIFAR-100 python files (cifar-100-python/test)"


def error_of(call) -> str:
    with pytest.raises(UserError) as caught:
        call()
    return str(caught.value)


def test_a_missing_pickle_names_the_file_and_where_to_point(tmp_path):
    path = tmp_path / "test"
    assert (
        error_of(lambda: restricted_load(path)) == f"{path}: file not found (point data_path at the dataset's folder)"
    )


def test_a_truncated_pickle_is_one_line_naming_the_file_and_the_default_fix(tmp_path):
    path = tmp_path / "test"
    path.write_bytes(pickle.dumps({"a": 1})[:-3])
    assert error_of(lambda: restricted_load(path)) == (
        f"{path}: not a readable pickle: UnpicklingError: pickle data was truncated ({CIFAR_FIX})"
    )


def test_a_refused_global_names_it_with_the_given_fix(tmp_path):
    path = tmp_path / "evil"
    path.write_bytes(b"cposix\nsystem\n(Vtrue\ntR.")
    assert error_of(lambda: restricted_load(path, fix="get the real file")) == (
        f"{path}: refused to load posix.system: the pickle asks to run code, not to rebuild arrays (get the real file)"
    )
    unpickler = RestrictedUnpickler(io.BytesIO(b"cos\nsystem\n."))
    assert error_of(unpickler.load) == (
        "refused to load os.system: the pickle asks to run code, not to rebuild arrays "
        "(use the dataset's original files)"
    )


def test_python2_strings_load_as_bytes_by_default_and_as_text_when_asked(tmp_path):
    path = tmp_path / "py2"
    path.write_bytes(b"(dp0\nS'data'\np1\nS'abc'\np2\ns.")  # a protocol-0 dict of Python 2 str, as CIFAR's
    assert restricted_load(path) == {b"data": b"abc"}
    assert restricted_load(path, encoding="latin1") == {"data": "abc"}


def test_an_object_npy_loads_through_the_unpickler_and_a_plain_one_without(tmp_path):
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = np.arange(3), np.arange(5)
    np.save(tmp_path / "ragged.npy", ragged, allow_pickle=True)
    loaded = load_npy(tmp_path / "ragged.npy", fix="f")
    assert loaded.dtype == object and [list(a) for a in loaded] == [[0, 1, 2], [0, 1, 2, 3, 4]]
    np.save(tmp_path / "plain.npy", np.arange(4, dtype=np.int32))
    plain = load_npy(tmp_path / "plain.npy", fix="f")
    assert plain.dtype == np.int32 and plain.tolist() == [0, 1, 2, 3]
    # Format 2.0 headers (np.save writes them for long headers) are read too.
    with open(tmp_path / "v2.npy", "wb") as fh:
        np.lib.format.write_array(fh, ragged, version=(2, 0), allow_pickle=True)
    assert len(load_npy(tmp_path / "v2.npy", fix="f")) == 2


def test_npy_errors_are_one_line_with_the_callers_fix(tmp_path):
    missing = tmp_path / "missing.npy"
    assert error_of(lambda: load_npy(missing, fix="run prepare")) == f"{missing}: file not found (run prepare)"
    broken = tmp_path / "broken.npy"
    broken.write_bytes(b"not numpy at all")
    text = error_of(lambda: load_npy(broken, fix="run prepare"))
    assert text.startswith(f"{broken}: not a readable .npy file: ValueError: ") and text.endswith("(run prepare)")
    holder = tmp_path / "dict.npy"
    with open(holder, "wb") as fh:  # an object header whose pickle is a dict, not an array
        np.lib.format.write_array_header_1_0(fh, {"descr": "|O", "fortran_order": False, "shape": (1,)})
        fh.write(pickle.dumps({"a": 1}, protocol=2))
    assert (
        error_of(lambda: load_npy(holder, fix="run prepare")) == f"{holder}: holds a dict, not an array (run prepare)"
    )
    evil = tmp_path / "evil.npy"
    with open(evil, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "|O", "fortran_order": False, "shape": (1,)})
        fh.write(b"cnumpy\nsave\n(Vx\ntR.")
    assert error_of(lambda: load_npy(evil, fix="run prepare")) == (
        f"{evil}: refused to load numpy.save: the pickle asks to run code, not to rebuild arrays (run prepare)"
    )
