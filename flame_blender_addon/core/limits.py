"""Safety limits for everything read from disk, and the budget that enforces them before allocating.

A :class:`Budget` is made per read (one model file, one sequence with all its frame files): every
array decoded from the input is charged to it *before* memory is allocated, so a small hostile
file cannot make a loader allocate more than the budget (a zip bomb, a pickle or npy header
declaring a petabyte shape, a strided tensor that repeats one element). The limits are far above
real data; docs/reliability.md lists them with the real sizes they were checked against.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import FileFormatError, LimitError, clipped

MiB = 1 << 20
GiB = 1 << 30


@dataclass(frozen=True)
class Limits:
    """file_bytes: largest file read; decoded_bytes: all arrays decoded in one read together;
    array_elements: one array; depth: nesting of containers in a pickle; pickle_ops: opcodes in
    one pickle; zip_members: members of one zip (npz, torch zip)."""

    file_bytes: int
    decoded_bytes: int
    array_elements: int = 1 << 28
    depth: int = 64
    pickle_ops: int = 1_000_000
    zip_members: int = 10_000


# FLAME 2023 pickle: ~0.1-0.4 GB, largest array shapedirs (5023, 3, 400) float64 = 48 MB.
# Sequence npz / landmark tracks: 10 000 frames of VHAP parameters with dynamic offsets = 0.6 GB.
LARGE = Limits(file_bytes=2 * GiB, decoded_bytes=2 * GiB)
# One metrical .frame (~4 KB of arrays), eyelid .npy (120 KB), per-frame npz, landmark embedding.
SMALL = Limits(file_bytes=64 * MiB, decoded_bytes=64 * MiB)
# Per-frame files of one folder (metrical .frame, GaussianAvatars flame_param/<n>.npz), with one
# budget for the whole folder: 10 000 .frame files hold ~40 MB of arrays.
FOLDER = Limits(file_bytes=64 * MiB, decoded_bytes=2 * GiB)


# What a Blender scene can hold, within sane bounds: checked before an import or the tracker
# changes anything (Blender would clamp silently).
MAX_FRAME = 1_048_574  # Blender's MAXFRAME; a scene's frame range starts at 0 or later
MAX_FRAMES = 100_000  # frames in one import: over an hour at 25 fps; ~11 KB of keys per frame in Blender
FPS_RANGE = (0.01, 1000.0)  # Blender's fps (1..32767) / fps_base hold these exactly
IMAGE_SIDE = (16, 16384)  # pixels per side: Blender takes 4..65536, trackers' images are far inside


class Budget:
    """Bytes left for decoded arrays in one read; :meth:`take` charges an array before it is made."""

    def __init__(self, limits: Limits, total: int | None = None):
        self.limits = limits
        self.left = limits.decoded_bytes if total is None else total

    def take(self, shape: Sequence[Any], dtype: np.dtype, where: str) -> tuple[int, ...]:
        """Validate ``shape`` (non-negative ints, at most 32 axes) and charge its bytes; returns it as ints."""
        dims = checked_shape(shape, where)
        elements = math.prod(dims)
        if elements > self.limits.array_elements:
            raise LimitError(f"{where}: {_shape_text(dims)} has {elements:,} elements, more than the "
                             f"{self.limits.array_elements:,} allowed for one array")
        self.charge(elements * dtype.itemsize, where)
        return dims

    def charge(self, nbytes: int, where: str) -> None:
        """Charge ``nbytes`` of decoded data, or raise LimitError."""
        if nbytes > self.left:
            raise LimitError(f"{where}: {nbytes / MiB:,.1f} MiB would exceed the "
                             f"{self.limits.decoded_bytes / MiB:,.0f} MiB allowed for one read")
        self.left -= nbytes


def checked_shape(shape: Sequence[Any], where: str) -> tuple[int, ...]:
    """``shape`` as a tuple of non-negative Python ints, else FileFormatError (LimitError past 32 axes)."""
    if not isinstance(shape, (tuple, list)):
        raise FileFormatError(f"{where}: shape {_shape_text(shape)} is not a tuple of sizes")
    if len(shape) > 32:
        raise LimitError(f"{where}: {len(shape)} axes, more than the 32 numpy allows")
    dims = []
    for n in shape:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise FileFormatError(f"{where}: shape {_shape_text(shape)} has a size that is not a count")
        dims.append(int(n))
    return tuple(dims)


# Plain numbers (bool, int and uint of 1-8 bytes, float of 2-8 bytes) and fixed-width text; never
# objects, records, sub-arrays or void: those are what make numpy run code or misread memory.
_PLAIN_DTYPE = re.compile(r"([<>|=]?)(b1|i[1248]|u[1248]|f[248]|[US][1-9][0-9]{0,3})")


def plain_dtype(descr: Any, where: str) -> np.dtype:
    """The numpy dtype for an allowlisted type string such as ``'<f8'``, ``'u1'`` or ``'<U12'``."""
    dtype = _allowed_dtype(descr) if isinstance(descr, str) else None
    if dtype is None:
        raise FileFormatError(f"{where}: values of type {_shape_text_value(descr)} are refused; only plain "
                              "numbers and text are read")
    return dtype


@functools.lru_cache(maxsize=64)
def _allowed_dtype(descr: str) -> np.dtype | None:
    match = _PLAIN_DTYPE.fullmatch(descr)
    return None if match is None else np.dtype(match.group(1).replace("|", "") + match.group(2))


def _shape_text_value(value: Any) -> str:
    return clipped(repr(value), 40)


def _shape_text(shape: Any) -> str:
    return clipped(repr(tuple(shape)) if isinstance(shape, (tuple, list)) else type(shape).__name__, 80)
