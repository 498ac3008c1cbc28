"""Safe file access: only regular files, bounded reads, and lazy, bounded npz/npy/zip member reading.

- :func:`open_regular` opens a path only if it is a regular file (never a FIFO, device, socket or
  folder, so nothing blocks or streams forever), and, when the file was found inside a folder the
  user chose, only if its real path stays inside that folder (links may not leave it).
- :class:`SafeZip` refuses encrypted members and compression other than stored/deflate, checks
  the central directory's size before ``zipfile`` reads it, and reads a member only up to the size
  its caller allows, so a zip bomb stops at the limit.
- :class:`NpzArchive` is a lazy mapping: a member is decoded only when its key is used. The npy
  header is parsed by a strict grammar (never ``eval``), its dtype must be a plain number or text
  type, and its shape is charged to the read's :class:`.limits.Budget` before the data is read.

Every failure is a FlameError naming the file (and member); nothing here raises anything else.
"""

from __future__ import annotations

import functools
import math
import os
import re
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np

from .errors import FileAccessError, FileFormatError, LimitError, clipped
from .limits import Budget, Limits, plain_dtype

_CHUNK = 1 << 24
T = TypeVar("T")
_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str:
    return next((text for test, text in _KINDS if test(mode)), "not a regular file")


def _failed(name: str, what: str, err: OSError) -> FileAccessError:
    """``<name>: cannot be <what> (<the system's reason>)``."""
    return FileAccessError(f"{name}: cannot be {what} ({err.strerror or err})")


def open_regular(path: str | Path, limits: Limits, inside: str | Path | None = None) -> IO[bytes]:
    """Open ``path`` for reading if it is a regular file of at most ``limits.file_bytes``.

    inside: the folder the user chose; the file's real path (links resolved) must lie within it.
    """
    path = Path(path)
    name = path.name or str(path)
    try:
        real = os.path.realpath(path, strict=True)
    except OSError as err:
        if os.path.islink(path):
            raise FileAccessError(f"{name}: a link that leads nowhere or loops ({err.strerror})") from None
        if isinstance(err, FileNotFoundError):
            raise FileAccessError(f"{path}: file not found") from None
        raise _failed(name, "opened", err) from None
    if inside is not None:
        root = os.path.realpath(inside)
        try:
            outside = os.path.commonpath([real, root]) != root
        except ValueError:  # another drive (Windows)
            outside = True
        if outside:
            raise FileAccessError(f"{name}: a link to {real}, outside the chosen folder {root}; refused")
    try:
        mode = os.stat(real).st_mode
        if not stat.S_ISREG(mode):  # checked before opening: opening a FIFO blocks, a device may act
            raise FileAccessError(f"{name}: {_kind(mode)}, not a regular file; refused")
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
        fd = os.open(real, flags)
    except OSError as err:
        raise _failed(name, "opened", err) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):  # replaced between the check and the open
        os.close(fd)
        raise FileAccessError(f"{name}: {_kind(info.st_mode)}, not a regular file; refused")
    if info.st_size > limits.file_bytes:
        os.close(fd)
        raise LimitError(f"{name}: {info.st_size / 2**20:,.0f} MiB, more than the "
                         f"{limits.file_bytes / 2**20:,.0f} MiB allowed for this kind of file")
    return os.fdopen(fd, "rb")


def require_file_or_folder(path: str | Path) -> None:
    """Refuse an existing path that is neither a folder nor a regular file (FIFO, device, socket)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # missing or a broken link: the caller reports it in its own words
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        raise FileAccessError(f"{Path(path).name}: {_kind(mode)}, not a regular file or folder; refused")


def read_bytes(path: str | Path, limits: Limits, inside: str | Path | None = None) -> bytes:
    """The whole content of a regular file of at most ``limits.file_bytes``."""
    with open_regular(path, limits, inside) as f:
        return read_rest(f, Path(path).name, limits)


def read_rest(f: IO[bytes], name: str, limits: Limits) -> bytes:
    """The rest of a file :func:`open_regular` opened, at most ``limits.file_bytes``."""
    try:  # read(n) allocates n bytes first: ask for the size the file has (checked) plus one
        data = f.read(os.fstat(f.fileno()).st_size + 1)
    except OSError as err:
        raise _failed(name, "read", err) from None
    if len(data) > limits.file_bytes:
        raise LimitError(f"{name}: grew past {limits.file_bytes:,} bytes while being read")
    return data


def _read_exact(stream: IO[bytes], n: int, where: str) -> bytearray:
    """Exactly ``n`` bytes (a writable buffer), reading in chunks; FileFormatError when the stream ends early."""
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        chunk = stream.read(min(n - got, _CHUNK))
        if not chunk:
            raise FileFormatError(f"{where}: ends after {got:,} of {n:,} bytes (truncated)")
        view[got:got + len(chunk)] = chunk
        got += len(chunk)
    return buf


# --------------------------------------------------------------------------------------------------
# zip

_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError,
               NotImplementedError, RuntimeError, struct.error, KeyError, UnicodeError, OverflowError)
_EOCD, _EOCD64_LOCATOR, _EOCD64 = b"PK\x05\x06", b"PK\x06\x07", b"PK\x06\x06"
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
# A deflated member larger than BOMB_FLOOR may inflate at most BOMB_RATIO-fold. Real float arrays
# compress about 1.1-fold; zip bombs (zeros) about 1000-fold, which deflate cannot exceed.
BOMB_FLOOR, BOMB_RATIO = 64 << 20, 100


def _central_directory(f: IO[bytes]) -> tuple[int, int] | None:
    """(entries, bytes) of the central directory from the end records, or None if there are none."""
    size = f.seek(0, os.SEEK_END)
    tail_len = min(size, 22 + 0xFFFF)
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < 22:
        return None
    entries, cd_size = struct.unpack("<10xHI6x", tail[at:at + 22])
    if (entries == 0xFFFF or cd_size == 0xFFFFFFFF) and at >= 20 and tail[at - 20:at - 16] == _EOCD64_LOCATOR:
        (offset,) = struct.unpack("<8xQ4x", tail[at - 20:at])
        if offset + 56 <= size:
            f.seek(offset)
            record = f.read(56)
            if record[:4] == _EOCD64:
                entries, cd_size = struct.unpack("<32xQQ8x", record)
    return entries, cd_size


class SafeZip:
    """A zip archive read within limits. ``name`` prefixes messages (the file's name)."""

    def __init__(self, file: IO[bytes], name: str, limits: Limits):
        self.name, self.limits = name, limits
        try:
            directory = _central_directory(file)
            file.seek(0)
            if directory is not None and (directory[0] > limits.zip_members
                                          or directory[1] > 256 * limits.zip_members):
                raise LimitError(f"{name}: a zip directory of {directory[0]:,} members / {directory[1]:,} bytes, "
                                 f"more than the {limits.zip_members:,} members allowed")
            self.zip = zipfile.ZipFile(file)
        except _ZIP_ERRORS as err:
            raise FileFormatError(f"{name}: not a readable zip archive ({_text(err)})") from None
        members = self.zip.infolist()
        if len(members) > limits.zip_members:
            raise LimitError(f"{name}: {len(members):,} zip members, more than the {limits.zip_members:,} allowed")
        self.infos = {info.filename: info for info in members}

    def names(self) -> list[str]:
        return list(self.infos)

    def open(self, member: str, max_bytes: int) -> IO[bytes]:
        """A stream of ``member``, refused unless it is stored or deflated, unencrypted and at most ``max_bytes``."""
        info = self.infos.get(member)
        where = f"{self.name}: '{member}'"
        if info is None:
            raise FileFormatError(f"{where} is missing from the archive")
        if info.flag_bits & 0x1:
            raise FileFormatError(f"{where} is encrypted; only plain zip members are read")
        if info.compress_type not in _METHODS:
            raise FileFormatError(f"{where} uses zip compression method {info.compress_type}; only stored and "
                                  "deflate members are read")
        if info.file_size > max_bytes:
            raise LimitError(f"{where} unpacks to {info.file_size:,} bytes, more than the {max_bytes:,} allowed")
        if info.file_size > max(BOMB_FLOOR, BOMB_RATIO * info.compress_size):
            raise LimitError(f"{where} inflates {info.compress_size:,} bytes to {info.file_size:,}: refused as a "
                             f"zip bomb (members over {BOMB_FLOOR >> 20} MiB may inflate at most {BOMB_RATIO}-fold)")
        try:
            return self.zip.open(info)
        except _ZIP_ERRORS as err:
            raise FileFormatError(f"{where}: damaged ({_text(err)})") from None

    def read(self, member: str, max_bytes: int, read: Callable[[IO[bytes], int, str], T] = _read_exact,
             where: str | None = None) -> T:
        """``read(stream, size, where)`` of ``member`` (by default all its bytes, at most ``max_bytes``); then the
        stream must be at its end, which also checks the member's CRC. ``where`` names it in messages."""
        with self.open(member, max_bytes) as stream:
            where = where or f"{self.name}: '{member}'"
            size = self.infos[member].file_size
            try:
                value = read(stream, size, where)
                if stream.read(1):
                    raise FileFormatError(f"{where} holds more than the {size:,} bytes its zip header declares")
            except _ZIP_ERRORS as err:
                raise FileFormatError(f"{where}: damaged ({_text(err)})") from None
        return value

    def close(self) -> None:
        self.zip.close()


def _text(err: BaseException) -> str:
    return clipped(str(err) or type(err).__name__, 100)


# --------------------------------------------------------------------------------------------------
# npy / npz

_NPY_MAGIC = b"\x93NUMPY"
_MAX_HEADER = 10_000  # numpy's own limit (``max_header_size``)
_HEADER_ITEM = re.compile(r"""\s*(['"])(descr|fortran_order|shape)\1\s*:\s*"""
                          r"""(?:(['"])([<>|=]?\w{1,12})\3|(True|False)|\(((?:\s*\d{1,19}\s*,)*(?:\s*\d{1,19}\s*)?)\))"""
                          r"""\s*(,|(?=\}))""")


def _parse_header(text: str, where: str) -> tuple[str, bool, tuple[int, ...]]:
    """(descr, fortran_order, shape) from numpy's header dict, read by a strict grammar (no eval)."""
    body = text.strip()
    if not (body.startswith("{") and body.endswith("}")):
        raise FileFormatError(f"{where}: damaged .npy header")
    pos, end, found = 1, len(body) - 1, {}
    while pos < end and body[pos:end].strip():
        match = _HEADER_ITEM.match(body, pos)
        if match is None or match.group(2) in found:
            raise FileFormatError(f"{where}: unsupported .npy header (structured dtypes and other "
                                  "non-numeric arrays are not read)")
        key = match.group(2)
        found[key] = (match.group(4) if key == "descr" else match.group(5) == "True" if key == "fortran_order"
                      else tuple(int(n) for n in re.findall(r"\d+", match.group(6) or "")))
        if (key == "descr") != (match.group(4) is not None) or (key == "fortran_order") != (match.group(5) is not None):
            raise FileFormatError(f"{where}: damaged .npy header ('{key}' has the wrong kind of value)")
        pos = match.end()
    if set(found) != {"descr", "fortran_order", "shape"}:
        raise FileFormatError(f"{where}: damaged .npy header (needs descr, fortran_order and shape)")
    return found["descr"], found["fortran_order"], found["shape"]


def _npy_header(stream: IO[bytes], where: str) -> tuple[str, bool, tuple[int, ...], int]:
    """(descr, fortran_order, shape, bytes before the data) of an .npy stream."""
    head = _read_exact(stream, 10, where)
    if bytes(head[:6]) != _NPY_MAGIC or head[6] not in (1, 2, 3):
        raise FileFormatError(f"{where}: not an .npy array (no NUMPY header of version 1-3)")
    if head[6] == 1:
        header_len, prefix = struct.unpack("<H", head[8:10])[0], 10
    else:
        header_len, prefix = struct.unpack("<I", bytes(head[8:10]) + bytes(_read_exact(stream, 2, where)))[0], 12
    if header_len > _MAX_HEADER:
        raise FileFormatError(f"{where}: an .npy header of {header_len:,} bytes (numpy writes under {_MAX_HEADER:,})")
    try:
        text = bytes(_read_exact(stream, header_len, where)).decode("utf8" if head[6] == 3 else "latin1")
    except UnicodeDecodeError:
        raise FileFormatError(f"{where}: damaged .npy header (not text)") from None
    return (*_parse_header(text, where), prefix + header_len)


def read_npy(stream: IO[bytes], size: int | None, where: str, budget: Budget) -> np.ndarray:
    """An array from an .npy stream of ``size`` bytes (None: unknown), charged to ``budget`` before reading."""
    descr, fortran, shape, header_bytes = _npy_header(stream, where)
    dtype = plain_dtype(descr, where)
    dims = budget.take(shape, dtype, where)
    nbytes = math.prod(dims) * dtype.itemsize
    if size is not None and size != header_bytes + nbytes:
        raise FileFormatError(f"{where}: holds {size - header_bytes:,} bytes of data, but its header "
                              f"declares {dims} of {dtype.name} ({nbytes:,} bytes)")
    data = _read_exact(stream, nbytes, where)
    code_points = np.dtype("u4").newbyteorder(dtype.byteorder)
    if dtype.kind == "U" and nbytes and int(np.frombuffer(data, code_points).max()) > 0x10FFFF:
        raise FileFormatError(f"{where}: text that is not valid unicode")
    return np.frombuffer(data, dtype=dtype, count=math.prod(dims)).reshape(dims, order="F" if fortran else "C")


def load_npy(path: str | Path, limits: Limits, budget: Budget, inside: str | Path | None = None) -> np.ndarray:
    """A plain numeric (or text) ``.npy`` file; never unpickles objects."""
    with open_regular(path, limits, inside) as f:
        size = os.fstat(f.fileno()).st_size
        try:
            return read_npy(f, size, Path(path).name, budget)
        except OSError as err:
            raise _failed(Path(path).name, "read", err) from None


def read_pickled_npy(path: str | Path, limits: Limits, inside: str | Path | None = None) -> bytes:
    """The pickle inside a 0-d object ``.npy`` (``np.save`` of a dict, e.g. DECA's landmark_embedding.npy),
    as bytes for :func:`.safe_pickle.loads`; any other .npy is refused. Nothing is unpickled here."""
    name = Path(path).name
    with open_regular(path, limits, inside) as f:
        try:
            descr, _, shape, header_bytes = _npy_header(f, name)
            if descr not in ("|O", "O") or shape != ():
                raise FileFormatError(f"{name}: an array of {descr} {shape}, expected a single pickled object "
                                      "(a dict saved with np.save)")
            return f.read(os.fstat(f.fileno()).st_size - header_bytes + 1)
        except OSError as err:
            raise _failed(name, "read", err) from None


class NpzArchive(Mapping):
    """An ``.npz`` as a lazy mapping key -> array: a member is read (and charged) only when its key is used.

    Members that are not ``<key>.npy`` arrays are not keys. Use as a context manager.
    """

    def __init__(self, file: IO[bytes], name: str, limits: Limits, budget: Budget):
        self.file, self.name, self.budget = file, name, budget
        try:
            if file.read(6) == _NPY_MAGIC:
                raise FileFormatError(f"{name}: a single array (.npy), not an .npz archive")
            self.zip = SafeZip(file, name, limits)
        except BaseException:
            file.close()
            raise
        self.members = {m[:-4]: m for m in self.zip.names() if m.endswith(".npy")}
        self.cache: dict[str, np.ndarray] = {}

    @classmethod
    def open(cls, path: str | Path, limits: Limits, budget: Budget, inside: str | Path | None = None) -> NpzArchive:
        return cls(open_regular(path, limits, inside), Path(path).name, limits, budget)

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self.cache:
            self.cache[key] = self.zip.read(self.members[key], self.budget.left + _MAX_HEADER + 12,
                                            functools.partial(read_npy, budget=self.budget), f"{self.name}: '{key}'")
        return self.cache[key]

    def __contains__(self, key: object) -> bool:  # without reading the member, unlike Mapping's
        return key in self.members

    def __iter__(self) -> Iterator[str]:
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)

    def close(self) -> None:
        self.zip.close()
        self.file.close()

    def __enter__(self) -> NpzArchive:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
