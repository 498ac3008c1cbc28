"""Helpers shared by the per-frame file formats: files numbered by frame, values stacked over frames."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SequenceError


def int_stem(path: Path) -> int | None:
    """The frame number of a file named ``<digits>.<ext>``, else None."""
    return int(path.stem) if re.fullmatch(r"\d+", path.stem) else None


def frame_numbers(names: Sequence[str]) -> list[int] | None:
    """The frame number in each name, or None if they do not give distinct numbers.

    The last number in the names is used (``frame_0042``, ``00042``), else an earlier one where the last
    repeats (``00042_00``: EMOCA's face index after the image's number)."""
    numbers = [re.findall(r"\d+", name) for name in names]
    for back in range(1, min(map(len, numbers), default=0) + 1):
        ids = [int(found[-back][-18:]) for found in numbers]
        if len(set(ids)) == len(ids):
            return ids
    return None


def numbered_images(folder: Path) -> dict[int, Path]:
    """Image files in ``folder`` whose name ends in a number: {number: path} (e.g. ``00042.png``)."""
    out = {}
    for path in folder.iterdir():
        match = re.search(r"(\d+)$", path.stem)
        if match and path.suffix.lower() in (".png", ".jpg", ".jpeg"):
            out[int(match.group(1))] = path
    return out


def stack(frames: Sequence[Mapping[str, Any]], key: str, names: Sequence[str],
          width: int | tuple[int, ...] | None, required: bool = True) -> np.ndarray | None:
    """Stack one key over frames (named ``names``) as (T, *width) float64; width None keeps each shape."""
    present = [key in f for f in frames]
    if not any(present) and not required:
        return None
    if not all(present):
        missing = names[present.index(False)]
        raise SequenceError(f"{missing}: missing '{key}' (found: {', '.join(sorted(frames[present.index(False)]))})")
    try:
        values = [np.asarray(f[key], dtype=np.float64) for f in frames]
        return np.stack([v.reshape(width) if width else v for v in values])
    except (ValueError, TypeError):
        shapes = sorted({np.shape(f[key]) for f in frames})
        raise SequenceError(f"{names[0]} to {names[-1]}: '{key}' has shapes {shapes}, expected "
                            f"{'matching shapes' if width is None else width} per frame") from None
