"""Offline face landmarks with MediaPipe 0.10.21's legacy solutions (bundled models, no download).

The 478-point face mesh with irises (``refine_landmarks=True``) follows the face from frame to
frame in MediaPipe's tracking mode: each frame's region comes from the previous frame's landmarks,
and the mesh's own short-range face detector runs only where it has lost the face (2-3x faster
than detecting every frame). Where the mesh finds nothing (say, a face too small for that
detector), the full-range face detector gives a box and a confidence, and a square crop around
the box (1.8 x its size, zero padded) goes to the face mesh on its own. Points are in frame
pixels (origin at the image's top-left corner). Frames the mesh found on its own have confidence
1 (MediaPipe keeps its score to itself), frames found through the detector its confidence, frames
where nothing is found are NaN with confidence 0.
mediapipe is imported only here, and only when detection is needed; the matplotlib its
``solutions`` package imports for drawing helpers (about half of MediaPipe's start) is deferred
until something uses it (:func:`_drawing_deferred`).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
import types
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from ..core.errors import TrackerError
from .landmarks import MEDIAPIPE_POINTS, Track

CROP_SCALE = 1.8
MIN_DETECTION = 0.5
TRACKED = 1.0  # confidence of a frame whose face the mesh found in its tracking mode


# what mediapipe.solutions imports only for drawing_utils' plotting, which the tracker never calls
DRAWING_MODULES = ("matplotlib", "matplotlib.pyplot")


class _Deferred(types.ModuleType):
    """Stands in for a module: the first attribute used imports the real one and is read from it."""

    def __getattr__(self, attr: str):
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attr)


@contextlib.contextmanager
def _drawing_deferred() -> Iterator[None]:
    """While mediapipe is imported, stand-ins take the place of :data:`DRAWING_MODULES` (when they
    are installed and not imported yet); afterwards sys.modules holds none of them."""
    if any(name in sys.modules for name in DRAWING_MODULES) or importlib.util.find_spec(DRAWING_MODULES[0]) is None:
        yield
        return
    stand_ins = {name: _Deferred(name) for name in DRAWING_MODULES}
    stand_ins["matplotlib"].pyplot = stand_ins["matplotlib.pyplot"]
    sys.modules.update(stand_ins)
    try:
        yield
    finally:
        for name, module in stand_ins.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]


def _solutions():
    try:
        with _drawing_deferred():
            import mediapipe as mp
        return mp.solutions
    except ImportError:
        raise TrackerError("landmark detection needs mediapipe==0.10.21 in this Python (pip install "
                           "mediapipe==0.10.21), or pass precomputed --landmarks with --embedding") from None
    except AttributeError:
        raise TrackerError("this mediapipe has no legacy 'solutions' (removed in 0.10.30); install "
                           "mediapipe==0.10.21") from None


def crop_box(box: tuple[float, float, float, float], scale: float = CROP_SCALE) -> tuple[int, int, int]:
    """Square crop (x0, y0, side) in pixels around a box (x, y, w, h) in pixels."""
    x, y, w, h = box
    side = max(16, int(round(scale * max(w, h))))
    cx, cy = x + w / 2, y + h / 2
    return int(round(cx - side / 2)), int(round(cy - side / 2)), side


def crop(rgb: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """The square (side, side, C) window of ``rgb`` (H, W, C) at (x0, y0), zero outside the image."""
    H, W = rgb.shape[:2]
    out = np.zeros((side, side) + rgb.shape[2:], dtype=rgb.dtype)
    xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + side, W), min(y0 + side, H)
    if xb > xa and yb > ya:
        out[ya - y0:yb - y0, xa - x0:xb - x0] = rgb[ya:yb, xa:xb]
    return out


def _points(faces, width: int, height: int) -> np.ndarray:
    """(478, 2) of the first face of a face-mesh result, scaled from [0, 1] to width x height."""
    pts = np.array([(p.x, p.y) for p in faces[0].landmark], dtype=np.float64)
    if pts.shape != (MEDIAPIPE_POINTS, 2):
        raise TrackerError(f"mediapipe returned {len(pts)} face-mesh points, expected {MEDIAPIPE_POINTS} "
                           f"(refine_landmarks needs mediapipe==0.10.21)")
    return pts * (width, height)


class Detector:
    """478 landmarks per RGB frame of one clip, in order (the mesh follows the face from the
    previous frame). Use as a context manager."""

    def __init__(self) -> None:
        solutions = _solutions()
        self._faces = solutions.face_detection.FaceDetection(model_selection=1,
                                                             min_detection_confidence=MIN_DETECTION)
        mesh = lambda static: solutions.face_mesh.FaceMesh(  # noqa: E731
            static_image_mode=static, max_num_faces=1, refine_landmarks=True,
            min_detection_confidence=MIN_DETECTION, min_tracking_confidence=MIN_DETECTION)
        self._mesh, self._follow = mesh(True), mesh(False)

    def __enter__(self) -> Detector:
        return self

    def __exit__(self, *exc) -> None:
        self._faces.close()
        self._mesh.close()
        self._follow.close()

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, float]:
        """rgb: (H, W, 3) uint8, the clip's next frame -> points (478, 2) pixels (NaN if no face)
        and confidence."""
        H, W = rgb.shape[:2]
        followed = self._follow.process(rgb).multi_face_landmarks
        if followed:
            return _points(followed, W, H), TRACKED
        return self.detect(rgb)

    def detect(self, rgb: np.ndarray) -> tuple[np.ndarray, float]:
        """The same for a frame on its own: the face detector's box, then the mesh on a crop."""
        H, W = rgb.shape[:2]
        none = np.full((MEDIAPIPE_POINTS, 2), np.nan)
        found = self._faces.process(rgb).detections
        if not found:
            return none, 0.0
        best = max(found, key=lambda d: d.score[0])
        rel = best.location_data.relative_bounding_box
        x0, y0, side = crop_box((rel.xmin * W, rel.ymin * H, rel.width * W, rel.height * H))
        mesh = self._mesh.process(crop(rgb, x0, y0, side)).multi_face_landmarks
        if not mesh:
            return none, 0.0
        return _points(mesh, side, side) + (x0, y0), float(best.score[0])


def detect(frames: Iterable[np.ndarray], fps: float | None, n_frames: int = 0,
           on_progress: Callable[[int], None] | None = None) -> Track:
    """Landmarks of every frame. ``on_progress(i)`` is called after frame i."""
    points, conf, size = [], [], None
    with Detector() as detector:
        for i, rgb in enumerate(frames):
            if size is None:
                size = rgb.shape[:2]
            elif rgb.shape[:2] != size:
                raise TrackerError(f"frame {i} is {rgb.shape[1]}x{rgb.shape[0]}, the first was {size[1]}x{size[0]}; "
                                   f"all frames must have one size")
            p, c = detector(rgb)
            points.append(p)
            conf.append(c)
            if on_progress:
                on_progress(i)
    if not points:
        raise TrackerError("no frames to track: the input has none, or --start/--end/--step keep none")
    pts = np.stack(points)
    return Track(pts, np.repeat(np.asarray(conf)[:, None], MEDIAPIPE_POINTS, axis=1), (int(size[0]), int(size[1])), fps)
