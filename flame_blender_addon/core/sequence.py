"""Tracked FLAME sequences: the :class:`FlameSequence` type, its validation, component fitting and resampling.

A sequence's pose is one canonical representation, local joint rotation matrices in FLAME order
(root, neck, jaw, eye L, eye R), whatever the source stored (pytorch3d 6D or axis-angle), and its
camera is an OpenCV world -> camera track in FLAME space (:class:`~.camera.CameraTrack`). Problems a
user can fix raise :class:`SequenceError` naming the file, key and frame; oddities that do not stop
an import (gaps, duplicates, padded components, ignored offsets) are collected in
``FlameSequence.warnings``.

The file formats (readers and writers) live in :mod:`.formats`; :func:`read_sequence` reads any of
them. The vertices and joints of a sequence are computed by :mod:`.evaluation`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .camera import CameraTrack, image_hw
from .errors import SequenceError
from .limits import FPS_RANGE, MAX_FRAME, MAX_FRAMES
from .model import N_JOINTS
from .rotations import matrix_to_quaternion, quaternion_to_matrix, slerp

DEFAULT_FPS = 25.0  # metrical-tracker extracts frames at 25 fps; VHAP and GaussianAvatars store no fps


@dataclass
class FlameSequence:
    """T frames of FLAME parameters and an optional camera.

    shape: (S,) float64 identity, shared
    expr: (T, E) float64
    rotations: (T, 5, 3, 3) float64 local joint rotations (root, neck, jaw, eye L, eye R)
    translation: (T, 3) float64 metres, added after skinning
    frame_ids: (T,) int64 true frame numbers, strictly increasing, gaps allowed
    fps: frames per second of ``frame_ids``; fps_from_file: False when it is a default
    eyelids: (T, 2) float64 weights of eyelid_dirs, added after skinning, or None
    camera: OpenCV world -> camera track in FLAME space (perspective, or orthographic for DECA / SMIRK), or None
    static_offset: (V, 3) float64 template offsets before joint regression (VHAP), or None
    eyelid_dirs: (2, V, 3) float64 metrical-tracker's (l_eyelid, r_eyelid) blendshapes, or None
    appearance: metrical-tracker's look, {'tex': (n,) texture-space coefficients, 'sh': (9, 3) the first
        frame's SH lighting in :mod:`.sh_lighting`'s convention with normals in FLAME space, 'sh_frames':
        (T, 9, 3) each frame's, only when they differ} (any may be absent), or None
    source: the input format; path: where it was read from; warnings: for the user
    """

    shape: np.ndarray
    expr: np.ndarray
    rotations: np.ndarray
    translation: np.ndarray
    frame_ids: np.ndarray
    fps: float = DEFAULT_FPS
    fps_from_file: bool = False
    eyelids: np.ndarray | None = None
    camera: CameraTrack | None = None
    static_offset: np.ndarray | None = None
    eyelid_dirs: np.ndarray | None = None
    appearance: dict[str, np.ndarray] | None = None
    source: str = "unknown"
    path: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def n_frames(self) -> int:
        return len(self.frame_ids)

    @property
    def n_shape(self) -> int:
        return len(self.shape)

    @property
    def n_expr(self) -> int:
        return self.expr.shape[1]

    def take(self, index: np.ndarray | slice) -> FlameSequence:
        """The frames selected by ``index`` (index array, boolean mask or slice); shared data is kept."""
        return dataclasses.replace(
            self, expr=self.expr[index], rotations=self.rotations[index],
            translation=self.translation[index], frame_ids=self.frame_ids[index],
            eyelids=None if self.eyelids is None else self.eyelids[index],
            camera=None if self.camera is None else self.camera.take(index),
            warnings=list(self.warnings))


# --------------------------------------------------------------------------------------------------
# validation


def require_finite(where: str, key: str, values: np.ndarray, labels: Sequence[str] | None = None) -> None:
    """Raise SequenceError if ``values`` (T, ...) has NaN/inf, naming the first bad frame by ``labels``."""
    bad = ~np.isfinite(np.asarray(values, dtype=np.float64))
    if not bad.any():
        return
    if labels is not None and bad.ndim and len(bad) == len(labels):
        per_frame = bad.reshape(len(bad), -1).any(axis=1)
        first, count = int(np.argmax(per_frame)), int(per_frame.sum())
        raise SequenceError(f"{where}: '{key}' has NaN or infinite values in {labels[first]}"
                            + (f" (and {count - 1} more frames)" if count > 1 else ""))
    raise SequenceError(f"{where}: '{key}' has NaN or infinite values")


def frame_labels(frame_ids: np.ndarray) -> list[str]:
    return [f"frame {i}" for i in frame_ids]


def _runs_text(starts: np.ndarray, ends: np.ndarray, limit: int = 8) -> str:
    """Inclusive runs -> '3-5, 9, 12-20' (at most ``limit`` runs, then '...')."""
    text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in zip(starts[:limit], ends[:limit], strict=True))
    return text + (", ..." if len(starts) > limit else "")


def _ranges(ids: np.ndarray) -> str:
    """Sorted unique ints -> '3-5, 9, 12-20'."""
    breaks = np.flatnonzero(np.diff(ids) != 1)
    return _runs_text(ids[np.r_[0, breaks + 1]], ids[np.r_[breaks, len(ids) - 1]])


def _clean_frame_ids(seq: FlameSequence, where: str) -> FlameSequence:
    """Sort frames by id, keep the first of duplicate ids, and warn about disorder, duplicates and gaps."""
    ids = seq.frame_ids
    warnings = list(seq.warnings)
    order = np.argsort(ids, kind="stable")
    if np.any(np.diff(ids) < 0):
        warnings.append(f"{where}: frames were not in order; sorted by frame number")
    sorted_ids = ids[order]
    first = np.concatenate([[True], sorted_ids[1:] != sorted_ids[:-1]])
    if not first.all():
        dup = np.unique(sorted_ids[~first])
        warnings.append(f"{where}: frame numbers {_ranges(dup)} appear more than once; "
                        f"kept the first of each ({int((~first).sum())} frames dropped)")
    if np.any(order != np.arange(len(ids))) or not first.all():
        seq = seq.take(order[first])
    kept = seq.frame_ids
    gaps = np.flatnonzero(np.diff(kept) > 1)
    if len(gaps):
        n_missing = int((kept[gaps + 1] - kept[gaps] - 1).sum())
        warnings.append(f"{where}: missing frames {_runs_text(kept[gaps] + 1, kept[gaps + 1] - 1)} "
                        f"({n_missing} in all); the others keep their frame numbers")
    seq.warnings = warnings
    return seq


def unmatched_shape(shape: tuple[int, ...], want: tuple[int | None, ...]) -> str | None:
    """None if ``shape`` fits ``want`` (None: any size), else ``want`` written for a message: '(3, n)'."""
    if len(shape) == len(want) and all(w is None or s == w for s, w in zip(shape, want, strict=True)):
        return None
    return f"({', '.join('n' if w is None else str(w) for w in want)})"


def _check_shapes(seq: FlameSequence, where: str) -> None:
    T = seq.n_frames
    expected = {"expr": (T, None), "rotations": (T, N_JOINTS, 3, 3), "translation": (T, 3),
                "eyelids": (T, 2), "shape": (None,), "static_offset": (None, 3),
                "eyelid_dirs": (2, None, 3)}
    for key, want in expected.items():
        value = getattr(seq, key)
        wanted = None if value is None else unmatched_shape(value.shape, want)
        if wanted:
            raise SequenceError(f"{where}: {key} has shape {value.shape}, expected {wanted}")
    cam = seq.camera
    if cam is not None and (cam.K.shape != (T, 3, 3) or cam.R.shape != (T, 3, 3) or cam.t.shape != (T, 3)):
        raise SequenceError(f"{where}: camera arrays K {cam.K.shape}, R {cam.R.shape}, t {cam.t.shape} "
                            f"do not match {T} frames")


def validate_sequence(seq: FlameSequence, where: str = "sequence") -> FlameSequence:
    """Check shapes, finiteness and rotations; sort frames, drop duplicate ids and note gaps.

    Returns a cleaned copy (``seq`` itself is not modified); raises SequenceError naming the
    field and frame. Readers call this; call it too on sequences built by hand.
    """
    seq = dataclasses.replace(seq, frame_ids=np.asarray(seq.frame_ids, dtype=np.int64).reshape(-1),
                              warnings=list(seq.warnings))
    if seq.n_frames == 0:
        raise SequenceError(f"{where}: the sequence has no frames")
    _check_shapes(seq, where)
    labels = frame_labels(seq.frame_ids)
    per_frame = {"expr": seq.expr, "rotations": seq.rotations, "translation": seq.translation,
                 "eyelids": seq.eyelids}
    if seq.camera is not None:
        per_frame.update({"camera K": seq.camera.K, "camera R": seq.camera.R, "camera t": seq.camera.t})
    for key, value in per_frame.items():
        if value is not None:
            require_finite(where, key, value, labels)
    for key in ("shape", "static_offset", "eyelid_dirs"):
        if getattr(seq, key) is not None:
            require_finite(where, key, getattr(seq, key))
    check_fps(seq.fps, f"{where}: fps")
    _require_rotations(where, "rotations", seq.rotations, labels)
    if seq.camera is not None:
        _require_rotations(where, "camera R", seq.camera.R, labels)
        image_hw(seq.camera.image_size, f"{where}: the camera's image size")
    return _clean_frame_ids(seq, where)


def check_fps(fps: float, what: str) -> float:
    """``fps`` if it lies in :data:`.limits.FPS_RANGE`, else SequenceError (``what`` names it)."""
    low, high = FPS_RANGE
    if not (np.isfinite(fps) and low <= fps <= high):
        raise SequenceError(f"{what} is {fps:g}, expected {low:g} to {high:g} frames per second")
    return float(fps)


def scene_frames(seq: FlameSequence, frame_start: int, target_fps: float | None = None) -> tuple[int, int, int]:
    """(first, last, count) of the scene frames an import of ``seq`` keys, resampled to ``target_fps``.

    Raises SequenceError, before anything is allocated, unless they fit in a Blender scene:
    frames 0 to :data:`.limits.MAX_FRAME`, at most :data:`.limits.MAX_FRAMES` of them, and both
    frame rates within :data:`.limits.FPS_RANGE`.
    """
    ids = seq.frame_ids
    check_fps(seq.fps, "the sequence's fps")
    if target_fps:
        first, last = _resampled_range(ids, check_fps(target_fps, "the fps to resample to") / seq.fps)
        count = last - first + 1
    else:
        first, last, count = int(ids[0]), int(ids[-1]), len(ids)
    if count > MAX_FRAMES:
        raise SequenceError(f"{count:,} frames{f' at {target_fps:g} fps' if target_fps else ''}: more than the "
                            f"{MAX_FRAMES:,} one import may key")
    lo, hi = frame_start + first, frame_start + last
    if lo < 0 or hi > MAX_FRAME:
        raise SequenceError(f"the sequence's frames {first}..{last} would land on scene frames {lo}..{hi}; a scene "
                            f"holds frames 0..{MAX_FRAME}: choose another start frame")
    return lo, hi, count


def _resampled_range(ids: np.ndarray, scale: float) -> tuple[int, int]:
    """First and last frame number of ``ids`` (sorted) resampled by ``scale``."""
    first = int(np.ceil(ids[0] * scale - 1e-9))
    return first, max(first, int(np.floor(ids[-1] * scale + 1e-9)))


def _require_rotations(where: str, key: str, R: np.ndarray, labels: Sequence[str]) -> None:
    """R: (T, ..., 3, 3) must be proper rotations."""
    err = np.abs(np.einsum("...ji,...jk->...ik", R, R) - np.eye(3)).max(axis=(-2, -1))
    bad = (err > 1e-4) | (np.linalg.det(R) < 0)
    if bad.any():
        frame = int(np.argmax(bad.reshape(len(R), -1).any(axis=1)))
        raise SequenceError(f"{where}: '{key}' in {labels[frame]} is not a rotation matrix")


# --------------------------------------------------------------------------------------------------
# reading (the formats live in .formats)


def read_sequence(path: str | Path, fps: float | None = None,
                  eyelid_blendshapes: str | Path | None = None) -> FlameSequence:
    """Read any supported tracker output (see :mod:`.formats`) into a validated sequence.

    fps: overrides the file's fps (or the 25 fps default); eyelid_blendshapes: a folder holding
    ``l_eyelid.npy`` and ``r_eyelid.npy`` (metrical-tracker's ``flame/blendshapes``), else they are
    looked for beside the input.
    """
    from .formats import dispatch  # imported here: the format readers import this module

    return dispatch.read_sequence(path, fps, eyelid_blendshapes)


# --------------------------------------------------------------------------------------------------
# components, resampling


def fit_width(values: np.ndarray, n: int, what: str, warnings: list[str]) -> np.ndarray:
    """``values`` (..., K) padded with zeros or truncated to (..., n), with a warning naming both counts."""
    have = values.shape[-1]
    if have > n:
        dropped = float(np.abs(values[..., n:]).max(initial=0.0))
        warnings.append(f"{what}: the input has {have} components, the model {n}; dropped the last "
                        f"{have - n} (largest |value| {dropped:.3g})")
        return values[..., :n].copy()
    if have < n:
        warnings.append(f"{what}: the input has {have} components, the model {n}; the other "
                        f"{n - have} are set to zero")
        pad = np.zeros(values.shape[:-1] + (n - have,))
        return np.concatenate([values, pad], axis=-1)
    return values


def fit_components(seq: FlameSequence, n_shape: int, n_expr: int) -> FlameSequence:
    """Pad with zeros or truncate identity/expression to the model's counts, warning about either."""
    warnings = list(seq.warnings)
    return dataclasses.replace(seq, shape=fit_width(seq.shape, n_shape, "identity", warnings),
                               expr=fit_width(seq.expr, n_expr, "expression", warnings), warnings=warnings)


def _interp_rotations(R: np.ndarray, i0: np.ndarray, i1: np.ndarray, w: np.ndarray) -> np.ndarray:
    """R: (T, ..., 3, 3); frames i0/i1: (N,), weights w: (N,) -> (N, ..., 3, 3) by slerp."""
    q = matrix_to_quaternion(R)  # slerp picks the short way, so signs need not be continuous
    w = w.reshape((-1,) + (1,) * (q.ndim - 2))
    return quaternion_to_matrix(slerp(q[i0], q[i1], np.broadcast_to(w, q[i0].shape[:-1])))


def _interp(values: np.ndarray, i0: np.ndarray, i1: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Linear interpolation of (T, ...) values between frames i0 and i1 with weights w: (N,)."""
    w = w.reshape((-1,) + (1,) * (values.ndim - 1))
    return (1.0 - w) * values[i0] + w * values[i1]


def resample(seq: FlameSequence, fps: float) -> FlameSequence:
    """The sequence sampled at ``fps``: frame g of the result is at time g / fps.

    Covers the same time span (source frame f is at f / seq.fps); vectors are interpolated
    linearly and rotations (joints and camera) by slerp, bridging gaps. Shape and offsets are shared.
    """
    ids = seq.frame_ids
    scale = check_fps(fps, "the fps to resample to") / seq.fps
    first, last = _resampled_range(ids, scale)
    if last - first + 1 > MAX_FRAMES:
        raise SequenceError(f"resampling to {fps:g} fps gives {last - first + 1:,} frames, more than the "
                            f"{MAX_FRAMES:,} allowed")
    new_ids = np.arange(first, last + 1, dtype=np.int64)
    src = np.clip(new_ids / scale, ids[0], ids[-1])  # source time, in source frame units
    i1 = np.clip(np.searchsorted(ids, src, side="right"), 1, max(1, len(ids) - 1))
    i0 = i1 - 1 if len(ids) > 1 else np.zeros_like(i1)
    i1 = np.minimum(i1, len(ids) - 1)
    span = np.where(ids[i1] > ids[i0], ids[i1] - ids[i0], 1)
    w = np.clip((src - ids[i0]) / span, 0.0, 1.0)
    camera = seq.camera
    if camera is not None:
        camera = dataclasses.replace(camera, K=_interp(camera.K, i0, i1, w), R=_interp_rotations(camera.R, i0, i1, w),
                                     t=_interp(camera.t, i0, i1, w))
    return dataclasses.replace(
        seq, expr=_interp(seq.expr, i0, i1, w), rotations=_interp_rotations(seq.rotations, i0, i1, w),
        translation=_interp(seq.translation, i0, i1, w), frame_ids=new_ids, fps=float(fps),
        eyelids=None if seq.eyelids is None else _interp(seq.eyelids, i0, i1, w), camera=camera,
        warnings=list(seq.warnings) + [f"resampled from {seq.fps:g} to {fps:g} fps"])


__all__ = ["DEFAULT_FPS", "FlameSequence", "check_fps", "fit_components", "read_sequence", "resample", "scene_frames",
           "validate_sequence"]
