"""Landmark detection (decoding, MediaPipe, the JPEG frames) in a process of its own (numpy only).

``track`` starts it first (:func:`start`, from ``__main__`` before torch is imported), so decoding
and MediaPipe run on a second core while torch is imported and the model is built; the fit then
waits for the landmarks (:meth:`Detection.track`). The process is ``python -m <this package>
detect`` (:func:`detect_source` does its work): it writes its progress as protocol lines on its
stdout, which the tracker relays, and the landmarks to ``DETECTED_FILE`` in the staging folder.
The tracker kills it when it leaves early; a tracker killed outright takes it along at its next
progress line (its stdout has no reader left: a broken pipe ends it).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..core import tracker_protocol as protocol
from ..core.errors import TrackerError
from . import media, outputs

if TYPE_CHECKING:  # imported when the landmarks are read, after the process started
    from .landmarks import Track

DETECTED_FILE = "detected.npz"  # lmk (T, 478, 2), conf (T, 478), image_size [H, W], source_frames (T,), fps
PACKAGE_PARENT = Path(__file__).resolve().parents[2]  # on the child's sys.path: it runs `-m` this package

Emit = Callable[[dict], None]


def detect_source(input: Path, trim: media.Trim, frames_dir: Path | None, output: Path, emit: Emit) -> None:
    """The child's work: MediaPipe landmarks of the frames of ``input`` that ``trim`` keeps, to the
    .npz ``output`` (``DETECTED_FILE``'s keys); the frames as JPEG (``protocol.FRAME_FILE``) into
    ``frames_dir`` when given; ``emit`` gets ``detect`` progress messages (fraction of the frames)."""
    from . import detect

    source = media.open_source(input)
    n = trim.count(source.n_frames) if source.n_frames else 0
    kept: list[int] = []
    encode = media.JpegEncoder()

    def images():
        for index, rgb in media.frames(source, trim):
            if frames_dir is not None:
                (frames_dir / protocol.FRAME_FILE.format(len(kept))).write_bytes(encode(rgb))
            kept.append(index)
            yield rgb

    def progress(i: int) -> None:
        if i % 10 == 0 or i + 1 == n:
            emit(protocol.progress("detect", (i + 1) / n if n else 0.5,
                                   f"landmarks, frame {i + 1}" + (f"/{n}" if n else "")))

    track = detect.detect(images(), source.fps, n, progress)
    fps = {} if track.fps is None else {"fps": np.array(track.fps)}
    outputs.write_npz(output, {"lmk": track.points, "conf": track.conf, "image_size": np.array(track.image_size),
                               "source_frames": np.array(kept, dtype=np.int64), **fps})


def _stderr() -> int | None:
    """The file descriptor of ``sys.stderr`` (the real stderr once ``__main__`` silenced fd 2), or
    None to inherit fd 2 where ``sys.stderr`` has none (a test's capture)."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return None


class Detection:
    """The running detection process of one tracking job."""

    def __init__(self, input: Path, trim: media.Trim, stage: Path, frames_dir: Path | None, verbose: bool) -> None:
        self.result = stage / DETECTED_FILE
        argv = [sys.executable, "-m", __package__, "detect", "--input", str(input), "--output", str(self.result),
                "--start", str(trim.start), "--step", str(trim.step)]
        argv += ["--end", str(trim.end)] if trim.end is not None else []
        argv += ["--frames", str(frames_dir)] if frames_dir is not None else []
        argv += ["--verbose"] if verbose else []
        path = os.pathsep.join(filter(None, (str(PACKAGE_PARENT), os.environ.get("PYTHONPATH"))))
        try:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                            stderr=_stderr(), text=True, env=dict(os.environ, PYTHONPATH=path))
        except OSError as err:
            raise TrackerError(f"cannot start the landmark detection process ({err})") from None

    def track(self, report: Callable[[str, float, str], None]) -> tuple[Track, np.ndarray]:
        """Wait for the landmarks, relaying the process's progress to ``report(stage, fraction,
        message)``. Returns the :class:`.landmarks.Track` and the source frame number of each of its
        frames (T,) int64; raises TrackerError with the process's error line if it failed."""
        from ..core.limits import LARGE
        from .landmarks import Track, read_npz

        error = ""
        for line in self.process.stdout:
            message = protocol.parse_line(line)
            if message is not None and message.type == protocol.PROGRESS:
                report(message.stage, message.fraction, message.message)
            elif message is not None and message.type == protocol.ERROR:
                error = message.message
        code = self.process.wait()
        if code or error:
            raise TrackerError(error or f"the landmark detection process stopped with exit code {code}")
        raw = read_npz(self.result, "detected landmarks", ("lmk", "conf", "image_size", "source_frames", "fps"), LARGE)
        fps = float(raw["fps"]) if "fps" in raw else None
        H, W = raw["image_size"].tolist()
        return Track(raw["lmk"], raw["conf"], (H, W), fps), raw["source_frames"]

    def close(self) -> None:
        """Kill the process if it still runs, and reap it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.process.stdout.close()


@dataclass
class Started:
    """A tracking job's staging folder and, when it detects landmarks, its frames folder (None with
    ``--no-frames``) and detection process. Leaving it kills the process, then removes the staging."""

    stage: outputs.Staging
    frames_dir: Path | None = None
    detection: Detection | None = None

    def __enter__(self) -> Started:
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self.detection is not None:
                self.detection.close()
        finally:
            self.stage.__exit__(*exc)


def start(output: Path, input: Path | None, landmarks: Path | None, trim: media.Trim, write_frames: bool,
          verbose: bool = False) -> Started:
    """Create the staging folder in ``output`` and, without precomputed ``landmarks``, start
    detecting those of ``input`` (frames written to the staging's ``frames`` folder if
    ``write_frames``)."""
    if input is None and landmarks is None:
        raise TrackerError("give --input (a video, a folder of frames or an image) or --landmarks")
    started = Started(outputs.Staging(output))
    if landmarks is not None:
        return started
    try:
        if write_frames:
            started.frames_dir = started.stage.path / protocol.FRAMES_DIR
            started.frames_dir.mkdir()
        started.detection = Detection(input, trim, started.stage.path, started.frames_dir, verbose)
    except BaseException:
        started.stage.__exit__()
        raise
    return started
