"""Restricted unpickling for FLAME model files and the pickles inside torch zips (metrical-tracker
``.frame`` files, whose container :mod:`.formats.torch_zip` reads).

Only what these files need is admitted: numpy's array reconstruction, a few builtins, stubs that
stand in for ``chumpy`` arrays and ``scipy.sparse`` matrices, and torch tensors rebuilt as numpy
arrays. Any other global raises :class:`UnsafePickleError` naming it, before anything runs, so a
hostile pickle that would call ``os.system`` is refused. Neither chumpy, scipy nor torch is needed.
"""

from __future__ import annotations

import codecs
import collections
import copyreg
import importlib
import io
import pickle
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from .errors import UnsafePickleError


def _numpy_core(name: str) -> Any:
    """``numpy._core.multiarray.<name>`` on numpy 2, ``numpy.core.multiarray.<name>`` on 1.x."""
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"numpy has no multiarray.{name}")


def _frombuffer(buf: bytes, dtype: Any, shape: tuple, order: str) -> np.ndarray:
    """numpy's protocol-5 array rebuild, without going through numpy's private module."""
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order=order).copy()


class ChumpyArray:
    """Stands for any ``chumpy`` object; its array is ``state['x']``."""

    def __setstate__(self, state: dict) -> None:
        self.state = state

    def to_array(self) -> np.ndarray:
        if "x" not in getattr(self, "state", {}):
            raise UnsafePickleError("a chumpy object without an array ('x') cannot be read")
        return np.asarray(_resolve(self.state["x"]))


class SparseMatrix:
    """Stands for a ``scipy.sparse`` csc/csr/coo matrix; :meth:`to_array` densifies it."""

    layout = "csc"

    def __setstate__(self, state: dict) -> None:
        self.state = state

    def to_array(self) -> np.ndarray:
        s = {k: _resolve(v) for k, v in self.state.items()}
        shape = tuple(int(n) for n in (s.get("_shape") or s.get("shape")))
        data = np.asarray(s["data"], dtype=np.float64)
        dense = np.zeros(shape, dtype=np.float64)
        if self.layout == "coo":
            rows, cols = (np.asarray(s["row"]), np.asarray(s["col"])) if "row" in s else s["coords"]
            np.add.at(dense, (np.asarray(rows), np.asarray(cols)), data)
            return dense
        indices, indptr = np.asarray(s["indices"]), np.asarray(s["indptr"])
        outer = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
        if self.layout == "csc":
            np.add.at(dense, (indices, outer), data)
        else:
            np.add.at(dense, (outer, indices), data)
        return dense


def _sparse_stub(layout: str) -> type:
    return type(f"{layout}_matrix", (SparseMatrix,), {"layout": layout})


# torch storage class name -> numpy dtype (little-endian, as torch writes them)
_TORCH_STORAGES = {
    "DoubleStorage": "<f8", "FloatStorage": "<f4", "HalfStorage": "<f2", "LongStorage": "<i8",
    "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1", "ByteStorage": "u1",
    "BoolStorage": "?",
}


class TorchStorage:
    """Placeholder for a torch storage class; the dtype is all that is needed."""

    dtype = "u1"


def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple, stride: tuple, *_: Any) -> np.ndarray:
    """``torch._utils._rebuild_tensor_v2`` as numpy: a strided view of the storage, copied."""
    if not size:
        return storage[offset].copy()
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=tuple(size), strides=tuple(s * storage.itemsize for s in stride))
    return np.array(view)


def _rebuild_parameter(data: np.ndarray, *_: Any) -> np.ndarray:
    return data


_ALLOWED: dict[tuple[str, str], Callable[[], Any]] = {
    **{(m, "_reconstruct"): lambda: _numpy_core("_reconstruct")
       for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "scalar"): lambda: _numpy_core("scalar")
       for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "_frombuffer"): lambda: _frombuffer for m in ("numpy.core.numeric", "numpy._core.numeric")},
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    **{(m, "_reconstructor"): lambda: copyreg._reconstructor for m in ("copy_reg", "copyreg")},
    **{(m, "object"): lambda: object for m in ("__builtin__", "builtins")},
    **{(m, "set"): lambda: set for m in ("__builtin__", "builtins")},
    ("_codecs", "encode"): lambda: codecs.encode,
    ("collections", "OrderedDict"): lambda: collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): lambda: _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): lambda: _rebuild_parameter,
}


class SafeUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves only allowlisted globals (``encoding='latin1'``).

    ``storages`` maps a torch zip's storage keys to raw bytes; it is used for persistent ids.
    """

    def __init__(self, file: io.BufferedIOBase, storages: Callable[[str], bytes] | None = None):
        super().__init__(file, encoding="latin1")
        self._storages = storages

    def find_class(self, module: str, name: str) -> Any:
        if module == "chumpy" or module.startswith("chumpy."):
            return ChumpyArray
        if module.startswith("scipy.sparse") and name in ("csc_matrix", "csr_matrix", "coo_matrix"):
            return _sparse_stub(name[:3])
        if module == "torch" and name in _TORCH_STORAGES:
            return type(name, (TorchStorage,), {"dtype": _TORCH_STORAGES[name]})
        factory = _ALLOWED.get((module, name))
        if factory is None:
            raise UnsafePickleError(
                f"refused to load '{module}.{name}': it is not something a FLAME or tracker file "
                "contains, and loading it could run code")
        return factory()

    def persistent_load(self, pid: Any) -> Any:
        if self._storages is None or not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise UnsafePickleError(f"refused persistent reference {pid!r}")
        storage_type, key = pid[1], str(pid[2])
        if not (isinstance(storage_type, type) and issubclass(storage_type, TorchStorage)):
            raise UnsafePickleError(f"unsupported torch storage {storage_type!r}")
        return np.frombuffer(self._storages(key), dtype=storage_type.dtype)


def _resolve(obj: Any) -> Any:
    """Replace stubs by numpy arrays, recursively through dicts, lists and tuples."""
    if isinstance(obj, (ChumpyArray, SparseMatrix)):
        return obj.to_array()
    if isinstance(obj, dict):
        return {k: _resolve(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(v) for v in obj)
    return obj


def repair_crlf(data: bytes) -> bytes:
    """Undo LF->CRLF damage in protocol-0 text pickles; binary pickles (0x80 first) are untouched."""
    if data[:1] != b"\x80" and b"\r\n" in data:
        return data.replace(b"\r\n", b"\n")
    return data


def loads(data: bytes, storages: Callable[[str], bytes] | None = None) -> Any:
    """Unpickle ``data`` through the allowlist and resolve chumpy/scipy stubs to arrays.

    Raises :class:`UnsafePickleError` for forbidden globals; ``pickle.UnpicklingError``,
    ``EOFError`` and friends propagate for damaged data (callers name the file).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy 2's "align should be passed as ... boolean"
        return _resolve(SafeUnpickler(io.BytesIO(repair_crlf(data)), storages).load())

