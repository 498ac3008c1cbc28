"""Write FLAME files as the distributed ones are written: Python-2-era protocol-2 pickles (models,
object ``.npy`` files) and protocol-0 text pickles (``FLAME_masks.pkl``, ``flame_static_embedding.pkl``).

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


class ObjectArray:
    """Marks a value to be written as numpy's 0-d object array around it (what ``np.save`` pickles for a dict)."""

    def __init__(self, item: Any):
        self.item = item


class _Py2Writer:
    """A minimal protocol-2 pickle emitter producing what Python 2 + numpy 1.x wrote."""

    def __init__(self) -> None:
        self.out = bytearray(b"\x80\x02")

    def text(self, s: str) -> None:  # a py2 'str' (Python 3 writers override: BINUNICODE)
        self.bytestring(s.encode("latin1"))

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
        fortran = a.ndim > 1 and a.flags.f_contiguous and not a.flags.c_contiguous
        order = a.dtype.str[0] if a.dtype.str[0] in "<>" else "|"
        self._array(a.shape, a.dtype.str[1:], order, 0, fortran)
        self.bytestring(a.tobytes(order="F" if fortran else "C"))
        self.out += b"tb"

    def _array(self, shape: tuple, descr: str, order: str, flags: int, fortran: bool) -> None:
        """``_reconstruct(ndarray, (0,), 'b')`` and the start of its state, up to the data."""
        self.glob("numpy.core.multiarray", "_reconstruct")
        self.out += b"("
        self.value(_Global("numpy", "ndarray"))
        self.value((0,))
        self.text("b")
        self.out += b"tR("
        self.value(1)
        self.value(tuple(shape))
        self.glob("numpy", "dtype")
        self.out += b"("
        self.text(descr)
        self.value(0)
        self.value(1)
        self.out += b"tR("
        for item in (3, order, None, None, None, -1, -1, flags):
            self.text(item) if isinstance(item, str) else self.value(item)
        self.out += b"tb"
        self.value(fortran)

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
        elif isinstance(v, ObjectArray):
            self._array((), "O8", "|", 63, False)
            self.value([v.item])
            self.out += b"tb"
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


class _TextWriter(_Py2Writer):
    """Protocol 0, as Python 2's ``pickle.dump(obj, f)`` wrote by default: text opcodes, a memo PUT after
    each string and container (``p<n>``), byte strings as escaped ``S'...'`` lines."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.memo = 0

    def put(self) -> None:
        self.out += b"p%d\n" % self.memo
        self.memo += 1

    def bytestring(self, b: bytes) -> None:
        escaped = b"".join(bytes([c]) if 0x20 <= c < 0x7F and c not in b"\\'" else b"\\x%02x" % c for c in b)
        self.out += b"S'" + escaped + b"'\n"
        self.put()

    def glob(self, module: str, name: str) -> None:
        super().glob(module, name)
        self.put()

    def value(self, v: Any) -> None:
        if isinstance(v, bool):
            self.out += b"I01\n" if v else b"I00\n"
        elif isinstance(v, (int, np.integer)):
            self.out += b"I%d\n" % int(v)
        elif isinstance(v, float):
            self.out += b"F" + repr(v).encode() + b"\n"
        elif isinstance(v, list):
            self.out += b"(l"
            self.put()
            for item in v:
                self.value(item)
                self.out += b"a"
        elif isinstance(v, dict):
            self.out += b"(d"
            self.put()
            for key, item in v.items():
                self.value(key)
                self.value(item)
                self.out += b"s"
        else:
            super().value(v)


def dumps_text(obj: Any, crlf: bool = False) -> bytes:
    """``obj`` (dicts, lists, str, numbers, numpy arrays) as a Python-2 protocol-0 text pickle; crlf: with
    every LF turned into CRLF, as a text checkout or copy damages it (the file holds no other CR)."""
    w = _TextWriter()
    w.value(obj)
    w.out += b"."
    data = bytes(w.out)
    return data.replace(b"\n", b"\r\n") if crlf else data


def dumps_py2(obj: Any) -> bytes:
    """``obj`` as a Python-2 protocol-2 pickle (the payload of an ``np.save``'d object array)."""
    w = _Py2Writer()
    w.value(obj)
    w.out += b"."
    return bytes(w.out)
