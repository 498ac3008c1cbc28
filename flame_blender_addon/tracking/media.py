"""Reading a video, a folder of frames or one image (PyAV), and writing preview PNGs (zlib).

Frames are RGB ``uint8`` arrays (H, W, 3). PyAV is imported only when frames are read.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import TrackerError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class Source:
    """kind: 'video', 'frames' or 'image'; files: the images in order (frames, image);
    fps: the video's frame rate (None for images); n_frames: count, or 0 when a video does not say."""

    path: Path
    kind: str
    files: tuple[Path, ...]
    fps: float | None
    n_frames: int


def _av():
    try:
        import av
    except ImportError:
        raise TrackerError("reading video or images needs PyAV in this Python: pip install av") from None
    return av


def open_source(path: str | Path) -> Source:
    """Check that ``path`` is a readable video, a folder with images, or an image."""
    path = Path(path)
    if path.is_dir():
        files = tuple(sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        if not files:
            raise TrackerError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        return Source(path, "frames", files, None, len(files))
    if not path.is_file():
        raise TrackerError(f"{path}: input not found")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return Source(path, "image", (path,), None, 1)
    av = _av()
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise TrackerError(f"{path.name}: no video stream in this file")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            return Source(path, "video", (), float(rate) if rate else None, int(stream.frames or 0))
    except (av.FFmpegError, OSError, ValueError) as err:
        raise TrackerError(f"{path.name}: not a readable video ({err})") from None


def frames(source: Source) -> Iterator[np.ndarray]:
    """Yield the source's frames, RGB uint8 (H, W, 3)."""
    av = _av()
    paths = [source.path] if source.kind == "video" else list(source.files)
    for path in paths:
        try:
            with av.open(str(path)) as container:
                for frame in container.decode(video=0):
                    yield frame.to_ndarray(format="rgb24")
                    if source.kind != "video":
                        break
        except (av.FFmpegError, OSError, ValueError) as err:
            raise TrackerError(f"{path.name}: cannot decode ({err})") from None


def png_bytes(rgb: np.ndarray) -> bytes:
    """Encode an RGB uint8 image (H, W, 3) as PNG."""
    H, W, _ = rgb.shape
    rows = np.concatenate([np.zeros((H, 1), np.uint8), np.ascontiguousarray(rgb, np.uint8).reshape(H, -1)], 1)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
            + chunk(b"IEND", b""))


def draw_points(rgb: np.ndarray, uv: np.ndarray, color: tuple[int, int, int], radius: int = 1) -> np.ndarray:
    """A copy of ``rgb`` (H, W, 3) with filled squares at the finite pixel positions ``uv`` (N, 2)."""
    out = rgb.copy()
    H, W = rgb.shape[:2]
    pts = uv[np.isfinite(uv).all(axis=1)]
    offsets = np.arange(-radius, radius + 1)
    xs = np.floor(pts[:, 0])[:, None, None] + offsets[None, None, :]
    ys = np.floor(pts[:, 1])[:, None, None] + offsets[None, :, None]
    xs, ys = np.broadcast_arrays(xs, ys)
    inside = (xs >= 0) & (xs < W) & (ys >= 0) & (ys < H)
    out[ys[inside].astype(np.int64), xs[inside].astype(np.int64)] = color
    return out
