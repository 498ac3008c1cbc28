"""Where a tracked sequence's footage is: the frames it was tracked on, for the camera background
and the preview render's overlay.

Looked for beside a tracker's output (the folder holding ``flame_sequence.npz`` or ``checkpoint/``),
in this order:

1. ``source.json``, a reference::

      {"video": "clip.mp4", "frame_offset": 0}      or      {"images": "frames/", "frame_offset": 1}

   The path is absolute or relative to the folder holding ``source.json``. Sequence frame id f shows
   video frame ``f + frame_offset`` (0-based, in decoding order), or the image numbered
   ``f + frame_offset``. ``frame_offset`` is optional (default 0); other keys are ignored.
2. Images numbered by frame id: metrical-tracker's ``input/`` (``00000.png`` ...), or this project's
   tracker's ``frames/`` (``000000.jpg`` ...).
3. ``flame_sequence.npz``'s ``source_path`` (a video) with ``source_frames`` (T,), the video frame
   of each sequence frame, when they are a constant offset from the frame ids.

A broken or dangling reference is a warning, not an error: the animation imports without its footage.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import safe_files
from ..errors import FlameError, SequenceError
from ..limits import LARGE, SMALL, Budget
from ..tracker_protocol import CHECKPOINT_DIR, SEQUENCE_FILE
from .per_frame import numbered_images

REFERENCE_FILE = "source.json"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")  # stills, not videos
IMAGE_FOLDERS = ("input", "frames")  # metrical-tracker's, this project's tracker's
KINDS = ("video", "images")


@dataclass(frozen=True)
class Footage:
    """kind: 'video' or 'images'; path: the video file or the folder of numbered images; sequence frame
    id f is video frame ``f + frame_offset`` (0-based) or the image numbered ``f + frame_offset``."""

    kind: str
    path: Path
    frame_offset: int = 0


def read_reference(path: Path) -> Footage:
    """Read a ``source.json`` footage reference; raises SequenceError naming what is wrong."""
    try:
        data = json.loads(safe_files.read_bytes(path, SMALL).decode("utf-8"))
    except (FlameError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise SequenceError(f"{path}: not a readable footage reference ({err})") from None
    kinds = [k for k in KINDS if isinstance(data, dict) and k in data]
    if len(kinds) != 1 or not isinstance(data[kinds[0]], str):
        raise SequenceError(f"{path}: needs one of 'video' or 'images' with a path")
    offset = data.get("frame_offset", 0)
    if isinstance(offset, bool) or not isinstance(offset, int):
        raise SequenceError(f"{path}: 'frame_offset' must be a whole number, not {offset!r}")
    return Footage(kinds[0], path.parent / data[kinds[0]], offset)


def write_reference(folder: Path, kind: str, target: Path, frame_offset: int = 0) -> Path:
    """Write ``folder/source.json`` pointing at ``target`` (a video, or a folder of numbered images)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    path = folder / REFERENCE_FILE
    path.write_text(json.dumps({kind: str(Path(target).resolve()), "frame_offset": int(frame_offset)}, indent=1)
                    + "\n", encoding="utf-8")
    return path


def _video_in_sequence(path: Path) -> tuple[Footage | None, list[str]]:
    """The video named by a ``flame_sequence.npz``'s ``source_path`` / ``source_frames``, if any."""
    try:
        with safe_files.NpzArchive.open(path, LARGE, Budget(LARGE)) as data:
            if "source_path" not in data or "source_frames" not in data:
                return None, []
            video = Path(str(data["source_path"]))
            frames = data["source_frames"]
            offsets = np.unique(frames - data.get("frame_ids", np.arange(len(frames))))
    except (FlameError, ValueError, TypeError) as err:
        return None, [f"{path}: its footage reference is not readable ({err}); no footage"]
    if not str(video) or video.is_dir() or video.suffix.lower() in IMAGE_SUFFIXES:
        return None, []
    if not video.is_file():
        return None, [f"{path}: the footage {video} is not there; no footage"]
    if len(offsets) != 1:
        return None, [f"{path}: the tracked frames are not consecutive frames of {video.name}; no footage"]
    return Footage("video", video, int(offsets[0])), []


def find_footage(path: Path) -> tuple[Footage | None, list[str]]:
    """The footage of a tracker output: ``path`` is its folder, its ``checkpoint/`` folder or a file in
    either. Returns (footage or None, warnings for the user)."""
    base = path if path.is_dir() else path.parent
    folders = (base, base.parent) if base.name == CHECKPOINT_DIR else (base,)
    warnings = []
    for reference in (folder / REFERENCE_FILE for folder in folders):
        if reference.is_file():
            try:
                footage = read_reference(reference)
            except SequenceError as err:
                warnings.append(f"{err}; no footage")
                break
            if footage.path.exists():
                return footage, warnings
            warnings.append(f"{reference}: the footage {footage.path} is not there; no footage")
            break
    for images in (folder / name for folder in folders for name in IMAGE_FOLDERS):
        if images.is_dir() and numbered_images(images):
            return Footage("images", images), warnings
    sequence = path if path.suffix == ".npz" and path.is_file() else base / SEQUENCE_FILE
    if sequence.is_file():
        footage, more = _video_in_sequence(sequence)
        return footage, warnings + more
    return None, warnings
