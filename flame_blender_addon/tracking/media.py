"""Reading a video, a folder of frames or one image (PyAV), and writing frames as JPEG (PyAV)
and preview PNGs (zlib).

Frames are RGB ``uint8`` arrays (H, W, 3). PyAV is imported only when frames are read or written.
"""

from __future__ import annotations

import fractions
import struct
import zlib
from collections.abc import Collection, Iterator
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


@dataclass(frozen=True)
class Trim:
    """Frames ``start, start + step, ...`` before ``end`` (None: to the last) of a source,
    numbered from 0 like Python's ``range``."""

    start: int = 0
    end: int | None = None
    step: int = 1

    def indices(self, n_frames: int) -> np.ndarray:
        """The kept frame numbers (N,) int64 of a source with ``n_frames`` frames."""
        return np.arange(n_frames, dtype=np.int64)[self.start:self.end:self.step]

    def count(self, n_frames: int) -> int:
        return len(range(n_frames)[self.start:self.end:self.step])


def frames(source: Source, trim: Trim = Trim(), only: Collection[int] | None = None
           ) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame number, RGB uint8 (H, W, 3))`` of the source's frames that ``trim`` keeps
    (and that are in ``only``, when given). A video is decoded up to the last frame wanted only."""
    av = _av()
    if source.kind == "video":
        wanted = range(trim.start, trim.end if trim.end is not None else 2**62, trim.step)
        stop = min(wanted.stop, max(only, default=-1) + 1) if only is not None else wanted.stop
        try:
            with av.open(str(source.path)) as container:
                for i, frame in enumerate(container.decode(video=0)):
                    if i >= stop:
                        break
                    if i in wanted and (only is None or i in only):
                        yield i, frame.to_ndarray(format="rgb24")
        except (av.FFmpegError, OSError, ValueError) as err:
            raise TrackerError(f"{source.path.name}: cannot decode ({err})") from None
        return
    for i in trim.indices(len(source.files)).tolist():
        if only is not None and i not in only:
            continue
        path = source.files[i]
        try:
            with av.open(str(path)) as container:
                yield i, next(container.decode(video=0)).to_ndarray(format="rgb24")
        except (av.FFmpegError, OSError, ValueError, StopIteration) as err:
            raise TrackerError(f"{path.name}: cannot decode ({err or 'no image'})") from None


class JpegEncoder:
    """Encodes RGB frames (H, W, 3) uint8 as baseline JPEG files (PyAV's MJPEG encoder, high quality)."""

    QUALITY = 2  # MJPEG quantiser, 2 (best) .. 31

    def __init__(self) -> None:
        self._context = None
        self._size: tuple[int, int] | None = None

    def __call__(self, rgb: np.ndarray) -> bytes:
        av = _av()
        H, W = rgb.shape[:2]
        if self._size != (H, W):
            context = av.CodecContext.create("mjpeg", "w")
            context.width, context.height, context.pix_fmt = W, H, "yuvj420p"
            context.time_base = fractions.Fraction(1, 25)
            context.qmin = context.qmax = self.QUALITY
            self._context, self._size = context, (H, W)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb, np.uint8), format="rgb24")
        return b"".join(bytes(p) for p in self._context.encode(frame.reformat(format="yuvj420p")))


def png_bytes(rgb: np.ndarray) -> bytes:
    """Encode an RGB uint8 image (H, W, 3) as PNG."""
    H, W, _ = rgb.shape
    rows = np.concatenate([np.zeros((H, 1), np.uint8), np.ascontiguousarray(rgb, np.uint8).reshape(H, -1)], 1)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes(), 1))
            + chunk(b"IEND", b""))
