"""Restricted, memory-safe unpickling for FLAME model files, the pickles inside torch zips
(metrical-tracker ``.frame`` files, whose container :mod:`.formats.torch_zip` reads) and inside 0-d
object ``.npy`` files (landmark embeddings: a dict, with torch tensors over storages in torch.save's
legacy stream, ``torch.storage._load_from_bytes``, decoded here within the same budget).

Only what these files need is admitted, and every admitted name maps to something this module
owns: numpy's array and dtype reconstruction, torch tensors and storages, ``chumpy`` arrays and
``scipy.sparse`` matrices all become stub objects that validate their arguments and build plain
numpy arrays themselves. Nothing from numpy, torch, chumpy or scipy ever runs on file data:

- a global outside the allowlist raises :class:`UnsafePickleError` naming it, before anything runs;
- BUILD (``__setstate__``) reaches only these stubs, never a function, class or numpy object;
- dtypes come from an allowlist of plain numeric types (:func:`.limits.plain_dtype`), never from
  the pickled dtype state, and every array's shape, strides and offset are checked against its
  data before any view is made; sizes are charged to a :class:`.limits.Budget` before allocating;
- a pre-scan bounds the opcode count and memo indices, and the resolver that turns stubs into
  arrays shares results (linear in the pickle's size) and bounds the nesting depth.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import pickletools
import re
import struct
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import safe_files
from .errors import FileFormatError, FlameError, LimitError, UnsafePickleError, clipped
from .limits import SMALL, Budget, Limits, checked_shape, plain_dtype


class _Stub:
    """A loader-owned object that a pickle may BUILD at most once (subclasses say how)."""

    def __setstate__(self, state: Any) -> None:
        raise UnsafePickleError(f"refused to set the state of {type(self).__name__.strip('_')}")


class _Built(_Stub):
    """A finished value (array, numpy scalar, storage): BUILD on it is refused."""

    def __init__(self, value: Any):
        self.value = value


class _Global(_Stub):
    """An allowlisted global as the pickle sees it: callable through ``func``, never BUILD-able."""

    def __init__(self, name: str, func: Callable[..., Any] | None):
        self.name, self.func = name, func

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.func is None or kwargs:
            raise UnsafePickleError(f"refused to call '{self.name}'")
        return self.func(*args)


class _Dtype(_Stub):
    """numpy.dtype(descr, align, copy) + BUILD(state): only the byte order is taken from the state."""

    def __init__(self, descr: str):
        self.descr, self.order, self.built = descr, "=", False
        self.is_object = descr in _OBJECT_DESCRS

    def __setstate__(self, state: Any) -> None:
        if (self.built or not isinstance(state, tuple) or len(state) not in (8, 9)
                or _text(state[1]) not in _ORDERS or any(s is not None for s in state[2:5])):
            raise FileFormatError(f"dtype '{self.descr}': unsupported state (structured, sub-array or "
                                  "repeated); only plain numeric arrays are read")
        self.order, self.built = _text(state[1]), True

    def dtype(self) -> np.dtype:
        if self.is_object:
            raise FileFormatError("an array of Python objects where numbers were expected")
        order = "" if self.descr[:1] in _ORDERS else self.order
        return plain_dtype(order + self.descr, f"dtype '{self.descr}'")


_ORDERS = ("<", ">", "|", "=")
_OBJECT_DESCRS = ("O", "O4", "O8")  # numpy object arrays: only the 0-d wrapper ``np.save`` puts around a dict


def _raw_bytes(raw: Any, what: str) -> bytes | bytearray:
    """Array data as bytes (Python-2 strings arrive as bytes; a text pickle may hand over latin1 text)."""
    if isinstance(raw, str):
        try:
            return raw.encode("latin1")
        except UnicodeEncodeError:
            raise FileFormatError(f"{what}: data is text, not bytes") from None
    if isinstance(raw, (bytes, bytearray)):
        return raw
    if isinstance(raw, pickle.PickleBuffer):
        return bytes(raw)
    raise FileFormatError(f"{what}: data is a {type(raw).__name__}, not bytes (object arrays are refused)")


class _Array(_Stub):
    """numpy's ``_reconstruct(ndarray, (0,), b'b')`` + BUILD((version, shape, dtype, fortran, data)).

    A 0-d object array (how ``np.save`` stores a dict: landmark embeddings) keeps its one item in
    ``wrapped``, which the resolver resolves like any other value; object arrays of other shapes are refused."""

    def __init__(self, budget: Budget):
        self.budget, self.array, self.wrapped = budget, None, None

    def __setstate__(self, state: Any) -> None:
        if (self.array is not None or self.wrapped is not None or not isinstance(state, tuple)
                or len(state) not in (4, 5)):
            raise FileFormatError("array: unsupported or repeated state")
        shape, dtype, fortran, raw = state[-4:]
        if not isinstance(dtype, _Dtype):
            raise FileFormatError("array: the dtype is not a numpy dtype")
        if dtype.is_object:
            if shape != () or not isinstance(raw, list) or len(raw) != 1:
                raise FileFormatError("array: an array of Python objects is refused; only a single wrapped value "
                                      "(a 0-d object array, as np.save writes a dict) is read")
            self.wrapped = raw
            return
        self.array = _from_bytes(raw, dtype.dtype(), shape, bool(fortran), self.budget, "array")


def _from_bytes(raw: Any, dtype: np.dtype, shape: Any, fortran: bool, budget: Budget, what: str) -> np.ndarray:
    """An array of ``shape`` from exactly ``prod(shape) * itemsize`` bytes, copied, charged to ``budget``."""
    data = _raw_bytes(raw, what)
    dims = budget.take(shape, dtype, what)
    count = math.prod(dims)
    if len(data) != count * dtype.itemsize:
        raise FileFormatError(f"{what}: {len(data)} bytes of data for shape {dims} of {dtype.name}, "
                              f"which needs {count * dtype.itemsize}")
    return np.frombuffer(data, dtype=dtype, count=count).reshape(dims, order="F" if fortran else "C").copy(order="A")


def _scalar(dtype: Any, raw: Any = None) -> _Built:
    """numpy's ``scalar(dtype, bytes)``: one value of an allowlisted dtype."""
    if not isinstance(dtype, _Dtype) or raw is None:
        raise FileFormatError("numpy scalar: unsupported arguments")
    data = _raw_bytes(raw, "numpy scalar")
    dt = dtype.dtype()
    if len(data) != dt.itemsize:
        raise FileFormatError(f"numpy scalar: {len(data)} bytes for a {dt.name}")
    return _Built(np.frombuffer(data, dtype=dt)[0])


class _Storage(_Built):
    """A torch storage: its elements as a flat read-only array over the zip member's bytes."""


class _StorageType(_Global):
    """A torch storage class (``torch.FloatStorage``): only its element dtype matters."""

    def __init__(self, name: str, dtype: np.dtype):
        super().__init__(name, None)
        self.dtype = dtype


class _Unpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose every global is a loader-owned stub or checked function.

    Python-2 strings are read as bytes (``encoding='bytes'``), so array data is not decoded to text
    and encoded back (two copies of a 400 MB model); the resolver turns the remaining ones into
    latin1 text, as ``encoding='latin1'`` would have."""

    def __init__(self, data: bytes, budget: Budget, storages: Callable[[str, int], bytes] | None, start: int = 0):
        stream = io.BytesIO(data)
        stream.seek(start)
        super().__init__(stream, encoding="bytes")
        self.budget, self.storages = budget, storages
        self.storage_cache: dict[str, bytes] = {}
        self.bound = {method: _Global(method, getattr(self, method)) for method in set(_BOUND.values())}

    def find_class(self, module: str, name: str) -> Any:
        if module == "chumpy" or module.startswith("chumpy."):
            return ChumpyArray
        if module.startswith("scipy.sparse") and name in _SPARSE:
            return _SPARSE[name]
        if module == "torch" and name in _TORCH_STORAGES:
            return _StorageType(f"torch.{name}", plain_dtype(_TORCH_STORAGES[name], name))
        found = _SHARED.get((module, name)) or self.bound.get(_BOUND.get((module, name), ""))
        if found is None:
            raise UnsafePickleError(
                f"refused to load '{module}.{name}': it is not something a FLAME or tracker file "
                "contains, and loading it could run code")
        return found

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, tuple):
            pid = tuple(_text(v) for v in pid)
        if not (self.storages is not None and isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], str)
                and re.fullmatch(r"\w{1,64}", pid[2])):
            raise UnsafePickleError(f"refused persistent reference {_short(pid)}")
        dtype, key = pid[1].dtype, pid[2]
        if key not in self.storage_cache:
            data = self.storages(key, self.budget.left)
            self.budget.charge(len(data), f"torch storage {key}")
            if len(data) % dtype.itemsize:
                raise FileFormatError(f"torch storage {key}: {len(data)} bytes is not a whole number of "
                                      f"{dtype.name} values")
            self.storage_cache[key] = data
        return _Storage(np.frombuffer(self.storage_cache[key], dtype=dtype))

    def _reconstruct(self, cls: Any, shape: Any = None, typecode: Any = None) -> _Array:
        if cls is not _NDARRAY:
            raise UnsafePickleError("refused to reconstruct anything but a plain numpy array")
        return _Array(self.budget)

    def _frombuffer(self, buf: Any, dtype: Any, shape: Any, order: Any) -> _Built:
        if not isinstance(dtype, _Dtype) or order not in ("C", "F"):
            raise FileFormatError("array (protocol 5): unsupported arguments")
        return _Built(_from_bytes(buf, dtype.dtype(), shape, order == "F", self.budget, "array"))

    def _tensor(self, storage: Any, offset: Any, size: Any, stride: Any, *_: Any) -> _Built:
        """``torch._utils._rebuild_tensor_v2``: a copy of the strided view, checked to lie inside the storage."""
        if not isinstance(storage, _Storage):
            raise FileFormatError("tensor: its storage is not a torch storage")
        flat = storage.value
        dims = self.budget.take(size, flat.dtype, "tensor")
        steps = _counts(stride, "tensor stride")
        start = _counts((offset,), "tensor offset")[0]
        if len(steps) != len(dims):
            raise FileFormatError(f"tensor: {len(dims)} sizes but {len(steps)} strides")
        if math.prod(dims) == 0:
            return _Built(np.zeros(dims, dtype=flat.dtype))
        last = start + sum((n - 1) * s for n, s in zip(dims, steps, strict=True))
        if last >= len(flat):
            raise FileFormatError(f"tensor: size {dims}, stride {steps} and offset {start} reach element "
                                  f"{last}, but its storage holds {len(flat)}")
        view = np.lib.stride_tricks.as_strided(flat[start:], shape=dims,
                                               strides=[s * flat.itemsize for s in steps], writeable=False)
        return _Built(np.array(view))

    def _legacy_storage(self, blob: Any) -> _Storage:
        """``torch.storage._load_from_bytes``: one storage in torch.save's legacy stream (how a tensor
        pickles outside torch.save, e.g. inside an ``np.save``'d dict): the pickles magic number,
        protocol 1001, system info, the storage as a persistent id ``('storage', <type>, key, location,
        numel, None)`` and ``[key]``, then the element count (int64) and the raw little-endian data."""
        data = bytes(_raw_bytes(blob, "legacy torch storage"))
        refs: dict[str, _StorageType] = {}
        pos = 0

        def pickled() -> Any:
            nonlocal pos
            end = _prescan(data, self.budget.limits, pos)
            value, pos = _LegacyUnpickler(data, self.budget, pos, refs).load(), end
            return value

        magic, version, info = pickled(), pickled(), pickled()
        if magic != _LEGACY_MAGIC or version != _LEGACY_PROTOCOL or not isinstance(info, dict):
            raise FileFormatError("a torch storage that is not in torch.save's legacy format")
        if info.get("little_endian", True) is not True:
            raise FileFormatError("a big-endian torch storage; only little-endian files are read")
        root, keys = pickled(), pickled()
        if not isinstance(root, str) or root not in refs or keys != [root]:
            raise FileFormatError("a legacy torch stream holding something other than one storage")
        count = int.from_bytes(data[pos:pos + 8], "little", signed=True)
        dtype = refs[root].dtype
        if not 0 <= count <= (len(data) - pos - 8) // dtype.itemsize:
            raise FileFormatError(f"legacy torch storage: {count:,} elements declared, "
                                  f"{max(len(data) - pos - 8, 0):,} bytes present")
        self.budget.charge(count * dtype.itemsize, "legacy torch storage")
        return _Storage(np.frombuffer(data, dtype=dtype, count=count, offset=pos + 8))


class _LegacyUnpickler(_Unpickler):
    """One pickle of torch's legacy stream: a storage's persistent id becomes its key (recorded in ``refs``);
    tensors and further legacy streams are refused (a storage holds neither)."""

    def __init__(self, data: bytes, budget: Budget, start: int, refs: dict[str, _StorageType]):
        super().__init__(data, budget, None, start)
        self.refs = refs

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("torch") and name in ("_load_from_bytes", "_rebuild_tensor_v2"):
            raise UnsafePickleError(f"refused '{module}.{name}' inside a torch storage")
        return super().find_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, tuple):
            pid = tuple(_text(v) for v in pid)
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage" and isinstance(pid[1], _StorageType)
                and isinstance(pid[2], str) and re.fullmatch(r"\w{1,64}", pid[2]) and pid[5] is None):
            raise UnsafePickleError(f"refused persistent reference {_short(pid)}")
        self.refs[pid[2]] = pid[1]
        return pid[2]


_LEGACY_MAGIC, _LEGACY_PROTOCOL = 0x1950A86A20F9469CFC6C, 1001
_NDARRAY = _Global("numpy.ndarray", None)
_OBJECT = _Global("builtins.object", None)
_TORCH_STORAGES = {  # torch storage class -> little-endian numpy dtype, as torch writes them
    "DoubleStorage": "<f8", "FloatStorage": "<f4", "HalfStorage": "<f2", "LongStorage": "<i8",
    "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "b1",
}


def _counts(values: Any, what: str) -> tuple[int, ...]:
    if not isinstance(values, (tuple, list)) or len(values) > 32 or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << 62 for v in values):
        raise FileFormatError(f"{what} {_short(values)} is not a list of non-negative counts")
    return tuple(values)


def _text(value: Any) -> Any:
    """A Python-2 string (bytes here) as latin1 text; anything else as it is."""
    return value.decode("latin1") if isinstance(value, bytes) else value


def _dtype(descr: Any, align: Any = False, copy: Any = True) -> _Dtype:
    descr = _text(descr)
    if not isinstance(descr, str):
        raise FileFormatError(f"dtype {_short(descr)}: only plain numeric types are read")
    if descr in _OBJECT_DESCRS:
        return _Dtype(descr)
    plain_dtype(descr, f"dtype '{descr[:20]}'")  # refuse early, before its state arrives
    return _Dtype(descr)


def _reconstructor(cls: Any, base: Any, state: Any = None) -> Any:
    """``copyreg._reconstructor`` for Python-2 pickles: only this module's stubs, built from ``object``."""
    if not (isinstance(cls, type) and issubclass(cls, _Stateful)) or getattr(base, "name", "") != "builtins.object" \
            or state is not None:
        raise UnsafePickleError("refused copyreg._reconstructor for anything but chumpy/scipy stand-ins")
    return cls()


def _set(items: Any = ()) -> set:
    if not isinstance(items, (list, tuple)):
        raise FileFormatError("set: its items are not a list")
    return set(items)


def _empty_bytes() -> bytes:
    """``bytes()``: how protocol 2 writes the data of an empty array (``bytes(n)`` would allocate n)."""
    return b""


def _latin1_encode(text: Any, encoding: Any = "latin1") -> bytes:
    if not isinstance(text, str) or _text(encoding) not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"refused _codecs.encode with {_short(encoding)}")
    return _raw_bytes(text, "encoded bytes")


def _parameter(data: Any, *_: Any) -> Any:
    return data


# Globals a pickle may name. Those that need the load's budget or storages are bound per load (_BOUND);
# the rest are shared: BUILD on any of them is refused, so nothing about them can change.
_BOUND = {  # (module, name) -> the method of the load's unpickler that stands for it
    **{(m, "_reconstruct"): "_reconstruct" for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "_frombuffer"): "_frombuffer" for m in ("numpy.core.numeric", "numpy._core.numeric")},
    ("torch._utils", "_rebuild_tensor_v2"): "_tensor",
    ("torch.storage", "_load_from_bytes"): "_legacy_storage",
}
_SHARED: dict[tuple[str, str], _Global] = {
    **{(m, "scalar"): _Global("numpy.core.multiarray.scalar", _scalar)
       for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _Global("numpy.dtype", _dtype),
    **{(m, "_reconstructor"): _Global("copyreg._reconstructor", _reconstructor) for m in ("copy_reg", "copyreg")},
    **{(m, "object"): _OBJECT for m in ("__builtin__", "builtins")},
    **{(m, "set"): _Global("builtins.set", _set) for m in ("__builtin__", "builtins")},
    **{(m, "bytes"): _Global("builtins.bytes", _empty_bytes) for m in ("__builtin__", "builtins")},
    ("_codecs", "encode"): _Global("_codecs.encode", _latin1_encode),
    ("collections", "OrderedDict"): _Global("collections.OrderedDict", dict),
    ("torch._utils", "_rebuild_parameter"): _Global("torch._utils._rebuild_parameter", _parameter),
}


def _short(value: Any) -> str:
    return clipped(repr(value), 60)


class _Stateful(_Stub):
    """A stand-in built by NEWOBJ or copyreg and given its state once by BUILD."""

    state: dict | None = None

    def __setstate__(self, state: Any) -> None:
        if self.state is not None or not isinstance(state, dict):
            raise FileFormatError(f"{type(self).__name__}: unsupported or repeated state")
        self.state = {_text(k): v for k, v in state.items()}


class ChumpyArray(_Stateful):
    """Stands for any ``chumpy`` object; its array is ``state['x']``."""


class SparseMatrix(_Stateful):
    """Stands for a ``scipy.sparse`` csc/csr/coo matrix; densified by the resolver."""

    layout = "csc"


_SPARSE = {f"{layout}_matrix": type(f"{layout}_matrix", (SparseMatrix,), {"layout": layout})
           for layout in ("csc", "csr", "coo")}


class _Resolver:
    """Turns stubs into numpy arrays through dicts, lists, tuples and sets.

    Results are shared by identity, so a memo DAG costs time linear in its size. Refused: nesting
    deeper than ``limits.depth``, containers that contain themselves, and containers that would
    expand (by numpy or any copy) to more than ``limits.array_elements`` values, which sharing one
    list or array many times over would otherwise make possible.
    """

    def __init__(self, budget: Budget):
        self.budget, self.limits = budget, budget.limits
        self.max_values = min(budget.limits.array_elements, budget.limits.decoded_bytes // 8)
        self.done: dict[int, tuple[Any, Any, int]] = {}  # id -> (object kept alive, result, values)
        self.active: set[int] = set()

    def __call__(self, obj: Any, level: int = 0) -> Any:
        return self.resolve(obj, level)[0]

    def resolve(self, obj: Any, level: int) -> tuple[Any, int]:
        """(result, number of values it expands to)."""
        if isinstance(obj, (str, bytes)):
            return _text(obj), max(1, len(obj))
        if isinstance(obj, (int, float, bool, complex, type(None), np.generic)):
            return obj, 1
        key = id(obj)
        if key in self.done:
            return self.done[key][1:]
        if key in self.active:
            raise FileFormatError("a container contains itself; FLAME files hold no cycles")
        if level > self.limits.depth:
            raise LimitError(f"nested deeper than {self.limits.depth} levels")
        self.active.add(key)
        out, size = self._resolve(obj, level + 1)
        self.active.discard(key)
        if size > self.max_values:
            raise LimitError(f"nested data that expands to {size:,} values, more than the "
                             f"{self.max_values:,} allowed")
        self.done[key] = (obj, out, size)
        return out, size

    def _resolve(self, obj: Any, level: int) -> tuple[Any, int]:
        if isinstance(obj, _Array):
            if obj.wrapped is not None:
                return self.resolve(obj.wrapped[0], level)
            if obj.array is None:
                raise FileFormatError("array: its data never arrived")
            return obj.array, obj.array.size
        if isinstance(obj, _Storage):
            raise FileFormatError("a bare torch storage, not a tensor")
        if isinstance(obj, _Built):
            return obj.value, np.size(obj.value)
        if isinstance(obj, ChumpyArray):
            if obj.state is None or "x" not in obj.state:
                raise FileFormatError("a chumpy object without an array ('x')")
            arr = self._numeric(self(obj.state["x"], level), "chumpy array")
            return arr, arr.size
        if isinstance(obj, SparseMatrix):
            arr = self._dense(obj, level)
            return arr, arr.size
        if isinstance(obj, dict):
            items = [(self._key(k), self.resolve(v, level)) for k, v in obj.items()]
            return {k: v for k, (v, _) in items}, 1 + sum(n for _, (_, n) in items)
        if isinstance(obj, (list, tuple)):
            items = [self.resolve(v, level) for v in obj]
            return type(obj)(v for v, _ in items), 1 + sum(n for _, n in items)
        if isinstance(obj, (set, frozenset)):
            return type(obj)(self._key(v) for v in obj), 1 + len(obj)
        raise FileFormatError(f"unexpected {type(obj).__name__.strip('_')} object in the data")

    @staticmethod
    def _key(key: Any) -> Any:
        if not isinstance(key, (str, bytes, int, float, bool, type(None))):
            raise FileFormatError(f"a dict key or set item of type {type(key).__name__.strip('_')}")
        return _text(key)

    @staticmethod
    def _numeric(value: Any, what: str) -> np.ndarray:
        """A resolved value (bounded by the expansion check) as a numeric array."""
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # ragged lists
            try:
                arr = np.asarray(value)
            except (ValueError, TypeError, Warning):
                raise FileFormatError(f"{what}: not a numeric array") from None
        if arr.dtype.kind not in "biuf":
            raise FileFormatError(f"{what}: values of type {arr.dtype}, expected numbers")
        return arr

    def _dense(self, obj: SparseMatrix, level: int) -> np.ndarray:
        """csc/csr (data, indices, indptr) or coo (data, row, col) -> dense float64, checked first."""
        what = f"scipy {obj.layout}_matrix"
        s = {k: self(v, level) for k, v in (obj.state or {}).items() if k in _SPARSE_KEYS}
        shape = s.get("_shape", s.get("shape"))
        if not isinstance(shape, tuple) or len(shape) != 2 or "data" not in s:
            raise FileFormatError(f"{what}: needs 'data' and a 2-d shape")
        if math.prod(checked_shape(shape, what)) > MAX_SPARSE_DENSE:
            raise LimitError(f"{what}: shape {shape} is larger than the {MAX_SPARSE_DENSE:,} values a dense "
                             "FLAME matrix may have (J_regressor has 25,115)")
        dims = self.budget.take(shape, np.dtype(np.float64), what)
        data = self._numeric(s["data"], what).astype(np.float64).reshape(-1)
        if obj.layout == "coo":
            coords = s.get("coords") or (s.get("row"), s.get("col"))
            if not isinstance(coords, (tuple, list)) or len(coords) != 2:
                raise FileFormatError(f"{what}: needs 'row' and 'col'")
            rows, cols = (self._indices(v, len(data), n, what) for v, n in zip(coords, dims, strict=True))
        else:
            outer_n, inner_n = dims[::-1] if obj.layout == "csc" else dims
            indptr = self._numeric(s.get("indptr", []), what).reshape(-1)
            if (indptr.dtype.kind not in "iu" or len(indptr) != outer_n + 1 or (len(indptr) and indptr[0] != 0)
                    or np.any(np.diff(indptr) < 0) or (len(indptr) and indptr[-1] != len(data))):
                raise FileFormatError(f"{what}: 'indptr' does not describe {outer_n} columns/rows of "
                                      f"{len(data)} values")
            inner = self._indices(s.get("indices"), len(data), inner_n, what)
            outer = np.repeat(np.arange(outer_n), np.diff(indptr))
            rows, cols = (inner, outer) if obj.layout == "csc" else (outer, inner)
        dense = np.zeros(dims, dtype=np.float64)
        np.add.at(dense, (rows, cols), data)
        return dense

    def _indices(self, value: Any, n: int, bound: int, what: str) -> np.ndarray:
        idx = self._numeric(value if value is not None else [], what).reshape(-1)
        if idx.dtype.kind not in "iu" or len(idx) != n or (n and (idx.min() < 0 or idx.max() >= bound)):
            raise FileFormatError(f"{what}: indices do not match its {n} values and shape")
        return idx.astype(np.int64)


MAX_SPARSE_DENSE = 1 << 25  # values of a densified sparse matrix: 256 MiB, 1300 times FLAME's J_regressor
_SPARSE_KEYS = ("_shape", "shape", "data", "indices", "indptr", "row", "col", "coords")


def _opcode_tables() -> tuple[list[int], list[int], list[tuple[str, int, int, bool] | None]]:
    """Per opcode byte: the size of its fixed argument and the width of its unsigned length prefix
    (-1: neither, or an opcode needing a closer look), and (name, kind, width, signed) with kind
    0 = fixed ``width`` bytes, 1 = ``width`` lines, 2 = a ``width``-byte length then that many bytes
    (None for bytes that are no opcode)."""
    fixed, counted_fast, table = [-1] * 256, [-1] * 256, [None] * 256
    counted = {pickletools.TAKEN_FROM_ARGUMENT1: (1, False), pickletools.TAKEN_FROM_ARGUMENT4: (4, True),
               pickletools.TAKEN_FROM_ARGUMENT4U: (4, False), pickletools.TAKEN_FROM_ARGUMENT8U: (8, False)}
    for op in pickletools.opcodes:
        desc = op.arg
        if desc is None or desc.n >= 0:
            entry = (op.name, 0, 0 if desc is None else desc.n, False)
        elif desc.n == pickletools.UP_TO_NEWLINE:
            entry = (op.name, 1, 2 if desc is pickletools.stringnl_noescape_pair else 1, False)
        else:
            entry = (op.name, 2, *counted[desc.n])
        table[ord(op.code)] = entry
        if op.name not in _MEMO_OPS and op.name != "STOP":
            if entry[1] == 0:
                fixed[ord(op.code)] = entry[2]
            elif entry[1] == 2 and not entry[3]:
                counted_fast[ord(op.code)] = entry[2]
    return fixed, counted_fast, table


_MEMO_OPS = {"PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"}
_FIXED, _COUNTED, _OPCODES = _opcode_tables()


def _prescan(data: bytes, limits: Limits, pos: int = 0) -> int:
    """Walk the opcodes of the pickle at ``pos`` without running or decoding them: bound their count and
    memo indices and check that every declared length fits in the data (so nothing is allocated for a
    lying length). Returns where the pickle ends (after STOP)."""
    end, fixed, counted, table, find = len(data), _FIXED, _COUNTED, _OPCODES, data.find
    from_bytes = int.from_bytes
    for _ in range(limits.pickle_ops):
        if pos >= end:
            raise FileFormatError(f"not a readable pickle (truncated or damaged: ends at byte {pos:,})")
        code = data[pos]
        width = fixed[code]
        if width >= 0:  # the common cases: a fixed-size argument, or a length and that many bytes
            pos += 1 + width
            continue
        width = counted[code]
        if width >= 0:
            pos += 1 + width + from_bytes(data[pos + 1:pos + 1 + width], "little")
            continue
        entry = table[data[pos]]
        if entry is None:
            raise FileFormatError(f"not a readable pickle (truncated or damaged: unknown opcode at byte {pos:,})")
        name, kind, width, signed = entry
        start = pos = pos + 1
        if kind == 0:
            pos += width
        elif kind == 1:
            for _line in range(width):
                pos = find(b"\n", pos) + 1
                if pos == 0:
                    pos = end + 1
                    break
        else:
            size = int.from_bytes(data[pos:pos + width], "little", signed=signed)
            if size < 0:
                raise FileFormatError(f"not a readable pickle (truncated or damaged: negative length at byte {pos:,})")
            pos += width + size
        if pos > end:
            raise FileFormatError(f"not a readable pickle (truncated or damaged: {name} at byte {start - 1:,} "
                                  f"needs {pos - start:,} bytes, {end - start:,} remain)")
        if name in _MEMO_OPS:
            arg = data[start:pos]
            if kind == 1 and not arg[:-1].isdigit():
                raise FileFormatError(f"not a readable pickle (truncated or damaged: {name} at byte {pos:,})")
            index = int(arg) if kind == 1 else int.from_bytes(arg, "little")
            if index > limits.pickle_ops:
                raise LimitError(f"memo index {index:,} is beyond the {limits.pickle_ops:,} opcodes allowed")
        elif name == "STOP":
            return pos
    raise LimitError(f"more than {limits.pickle_ops:,} pickle opcodes")


def repair_crlf(data: bytes) -> bytes:
    """Undo LF->CRLF damage in protocol-0 text pickles; binary pickles (0x80 first) are untouched."""
    if data[:1] != b"\x80" and b"\r\n" in data:
        return data.replace(b"\r\n", b"\n")
    return data


def loads(data: bytes, budget: Budget | None = None,
          storages: Callable[[str, int], bytes] | None = None) -> Any:
    """Unpickle ``data`` through the allowlist and resolve stubs to numpy arrays.

    budget: charged for every decoded array (default: :data:`.limits.SMALL`); storages(key,
    max_bytes): a torch zip's raw storage bytes. Raises only FlameError: UnsafePickleError for
    forbidden globals and operations, LimitError, FileFormatError for damaged data (messages do
    not name the file; callers prefix it).
    """
    budget = budget or Budget(SMALL)
    data = repair_crlf(data)
    _prescan(data, budget.limits)
    try:
        return _Resolver(budget)(_Unpickler(data, budget, storages).load())
    except FlameError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            UnicodeError, OverflowError, struct.error, RecursionError) as err:
        raise FileFormatError(f"not a readable pickle (truncated or damaged: {type(err).__name__}: "
                              f"{_short(str(err))})") from None



def load_file(path: str | Path, limits: Limits = SMALL, inside: str | Path | None = None) -> tuple[Any, list[str]]:
    """A pickle file (``FLAME_masks.pkl``, ``flame_static_embedding.pkl``) or the pickle inside a 0-d object
    ``.npy`` (``landmark_embedding.npy``), read within ``limits`` -> (value, warnings: a CRLF repair).
    Errors name the file."""
    name = Path(path).name
    if os.fspath(path).lower().endswith(".npy"):
        data = safe_files.read_pickled_npy(path, limits, inside)
    else:
        data = safe_files.read_bytes(path, limits, inside)
    fixed = repair_crlf(data)  # once here, to report it; loads() finds nothing more to repair
    try:
        value = loads(fixed, Budget(limits))
    except FlameError as err:
        raise type(err)(f"{name}: {err}") from None
    repaired = fixed is not data
    return value, [f"{name}: repaired Windows line endings (CRLF) that a text checkout or copy had put into this "
                   "text pickle"] if repaired else []
