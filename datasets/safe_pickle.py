"""The one place a pickle is read: CIFAR's python files and CAIL2019's object `.npy` files are pickles,
and pickles are code.

RestrictedUnpickler admits only the globals that rebuild numpy arrays and plain containers
(dicts, lists, bytes, numbers and strings need no globals at all); any other global — os.system,
builtins.eval, subprocess.Popen, ... — is refused with a one-line UserError before it is looked up.
Nothing else in the project may import pickle (tests/test_reliability_untrusted.py enforces it).
"""

from __future__ import annotations

import importlib
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from core.common.errors import UserError

# (module, name) pairs a numpy array pickle needs, under numpy 1 and numpy 2 spellings, with where they live now.
_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): ("multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): ("multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"): ("numeric", "_frombuffer"),  # protocol 5
    ("numpy._core.numeric", "_frombuffer"): ("numeric", "_frombuffer"),
}
_PLAIN = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}  # protocol 2 from Python 3 spells bytes as _codecs.encode(str, "latin1")


def _numpy_core(submodule: str):
    try:
        return importlib.import_module(f"numpy._core.{submodule}")
    except ImportError:  # numpy 1.x
        return importlib.import_module(f"numpy.core.{submodule}")


class RestrictedUnpickler(pickle.Unpickler):
    """pickle.Unpickler that resolves only numpy-array globals; `source` names the file in errors."""

    def __init__(self, file, *, source: object = None, fix: str = "", **kwargs):
        super().__init__(file, **kwargs)
        self.source = source
        self.fix = fix or "use the dataset's original files"

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY_GLOBALS:
            submodule, attr = _NUMPY_GLOBALS[(module, name)]
            return getattr(_numpy_core(submodule), attr)
        if (module, name) in _PLAIN:
            return getattr(importlib.import_module(module), name)
        raise UserError(
            f"refused to load {module}.{name}: the pickle asks to run code, not to rebuild arrays",
            file=self.source,
            fix=self.fix,
        )


_CIFAR_FIX = "use the original CIFAR-100 python files (cifar-100-python/test)"
_BROKEN = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    KeyError,
    UnicodeDecodeError,
    MemoryError,
)


def restricted_load(path: Path, *, encoding: str = "bytes", fix: str = _CIFAR_FIX) -> Any:
    """Read a pickle file through RestrictedUnpickler; malformed files are a one-line UserError."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise UserError("file not found", file=path, fix="point data_path at the dataset's folder") from None
    try:
        return RestrictedUnpickler(io.BytesIO(data), source=path, encoding=encoding, fix=fix).load()
    except UserError:
        raise
    except _BROKEN as err:
        raise UserError(f"not a readable pickle: {type(err).__name__}: {str(err)[:120]}", file=path, fix=fix) from None


def load_npy(path: Path, *, fix: str) -> np.ndarray:
    """A `.npy` file; an object array (ragged lists, as `np.save` writes them) through RestrictedUnpickler."""
    try:
        with open(path, "rb") as fh:
            major, _ = np.lib.format.read_magic(fh)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            _, _, dtype = read_header(fh)
            if not dtype.hasobject:
                fh.seek(0)
                return np.load(fh, allow_pickle=False)
            array = RestrictedUnpickler(fh, source=path, fix=fix, encoding="latin1").load()
    except FileNotFoundError:
        raise UserError("file not found", file=path, fix=fix) from None
    except UserError:
        raise
    except (*_BROKEN, OSError) as err:
        raise UserError(
            f"not a readable .npy file: {type(err).__name__}: {str(err)[:120]}", file=path, fix=fix
        ) from None
    if not isinstance(array, np.ndarray):
        raise UserError(f"holds a {type(array).__name__}, not an array", file=path, fix=fix)
    return array
