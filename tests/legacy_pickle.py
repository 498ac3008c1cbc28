"""Write FLAME models as the distributed files are written: Python-2-era protocol-2 pickles.

Byte strings use the py2 ``STRING`` opcodes, arrays ``numpy.core.multiarray._reconstruct``,
``J_regressor`` is a ``scipy.sparse.csc.csc_matrix`` and chosen keys are ``chumpy.ch.Ch`` objects
(array in state ``'x'``). Neither chumpy nor scipy is needed to write (or, through
``flame_blender_addon.core.safe_pickle``, to read) such a file. Writes the test fixtures.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_CHUMPY_KEYS = ("v_template", "shapedirs", "weights", "J")


class _Ch:
    """Marks an array to be written as a ``chumpy.ch.Ch`` object."""

    def __init__(self, array: np.ndarray):
        self.array = array


class _Csc:
    """Marks a dense (rows, cols) array to be written as a ``scipy.sparse.csc.csc_matrix``."""

    def __init__(self, dense: np.ndarray):
        self.dense = dense


class _Py2Writer:
    """A minimal protocol-2 pickle emitter producing what Python 2 + numpy 1.x wrote."""

    def __init__(self) -> None:
        self.out = bytearray(b"\x80\x02")

    def bytestring(self, b: bytes) -> None:  # py2 'str'
        self.out += (b"U" + bytes([len(b)]) if len(b) < 256 else b"T" + struct.pack("<I", len(b))) + b

    def glob(self, module: str, name: str) -> None:
        self.out += b"c" + module.encode() + b"\n" + name.encode() + b"\n"

    def tuple_(self, items: Iterable[Any]) -> None:
        self.out += b"("
        for item in items:
            self.value(item)
        self.out += b"t"

    def newobj(self, module: str, name: str, state: Mapping[str, Any]) -> None:
        self.glob(module, name)
        self.out += b")\x81"
        self.value(dict(state))
        self.out += b"b"

    def ndarray(self, a: np.ndarray) -> None:
        a = np.ascontiguousarray(a)
        self.glob("numpy.core.multiarray", "_reconstruct")
        self.tuple_([_Global("numpy", "ndarray"), (0,), b"b"])
        self.out += b"R"
        self.out += b"("
        self.value(1)
        self.value(tuple(a.shape))
        self.glob("numpy", "dtype")
        self.tuple_([a.dtype.str[1:].encode(), 0, 1])
        self.out += b"R"
        order = a.dtype.str[0] if a.dtype.str[0] in "<>" else "|"
        self.tuple_([3, order.encode(), None, None, None, -1, -1, 0])
        self.out += b"b"
        self.value(False)
        self.bytestring(a.tobytes())
        self.out += b"tb"

    def value(self, v: Any) -> None:
        if v is None:
            self.out += b"N"
        elif isinstance(v, bool):
            self.out += b"\x88" if v else b"\x89"
        elif isinstance(v, (int, np.integer)):
            self.out += b"J" + struct.pack("<i", int(v))
        elif isinstance(v, bytes):
            self.bytestring(v)
        elif isinstance(v, str):
            self.bytestring(v.encode("latin1"))
        elif isinstance(v, tuple):
            self.tuple_(v)
        elif isinstance(v, list):
            self.out += b"]("
            for item in v:
                self.value(item)
            self.out += b"e"
        elif isinstance(v, set):
            self.glob("__builtin__", "set")
            self.tuple_([sorted(v)])
            self.out += b"R"
        elif isinstance(v, dict):
            self.out += b"}("
            for key, item in v.items():
                self.value(key)
                self.value(item)
            self.out += b"u"
        elif isinstance(v, _Global):
            self.glob(v.module, v.name)
        elif isinstance(v, _Ch):
            self.newobj("chumpy.ch", "Ch", {
                "_depends_on_deps": {}, "_dirty_vars": set(), "_itr": None,
                "_make_dense": None, "_make_sparse": None, "x": np.asarray(v.array, np.float64)})
        elif isinstance(v, _Csc):
            rows, cols = np.nonzero(v.dense.T)  # column-major traversal: rows here are columns
            indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=v.dense.shape[1]))])
            self.newobj("scipy.sparse.csc", "csc_matrix", {
                "_shape": tuple(v.dense.shape), "data": v.dense.T[rows, cols].astype(np.float64),
                "indices": cols.astype(np.int32), "indptr": indptr.astype(np.int32),
                "maxprint": 50, "format": "csc", "_has_sorted_indices": True})
        elif isinstance(v, np.ndarray):
            self.ndarray(v)
        else:
            raise TypeError(f"cannot write {type(v).__name__}")


class _Global:
    def __init__(self, module: str, name: str):
        self.module, self.name = module, name


def dumps_flame(arrays: Mapping[str, Any], chumpy_keys: Iterable[str] = DEFAULT_CHUMPY_KEYS) -> bytes:
    """Serialise FLAME arrays (keys of §1.2 of the format notes) as a distributed-style pickle.

    ``J_regressor`` may be dense; it is written sparse. Keys in ``chumpy_keys`` become Ch objects.
    """
    chumpy_keys = set(chumpy_keys)
    content: dict[str, Any] = {}
    for key, value in arrays.items():
        if key == "J_regressor":
            content[key] = _Csc(np.asarray(value, np.float64))
        elif key in chumpy_keys:
            content[key] = _Ch(np.asarray(value))
        else:
            content[key] = value
    w = _Py2Writer()
    w.value(content)
    w.out += b"."
    return bytes(w.out)


def write_flame_pickle(path: str | Path, arrays: Mapping[str, Any],
                       chumpy_keys: Iterable[str] = DEFAULT_CHUMPY_KEYS) -> Path:
    """Write :func:`dumps_flame` output to ``path``; returns the path."""
    path = Path(path)
    path.write_bytes(dumps_flame(arrays, chumpy_keys))
    return path
