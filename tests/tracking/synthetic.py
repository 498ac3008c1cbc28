"""Synthetic clips with known FLAME parameters, for the tracker's tests and benchmark (numpy only).

A smooth, made-up motion (head turns, jaw, eyes, expressions) of a model is projected through a
known camera; landmarks get Gaussian noise and some frames lose their face.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flame_blender_addon.core import lbs, rotations
from flame_blender_addon.core.model import FlameModel
from flame_blender_addon.tracking.landmarks import Embedding, Track


@dataclass(frozen=True)
class Clip:
    """Ground truth. shape: (S,); expr: (T, E); pose: (T, 5, 3) axis-angle per joint (neck zero);
    translation: (T, 3) FLAME translation in the camera frame of :func:`project` (camera at the
    origin looking along -Z); focal: pixels; image_size: (H, W)."""

    shape: np.ndarray
    expr: np.ndarray
    pose: np.ndarray
    translation: np.ndarray
    focal: float
    image_size: tuple[int, int]


def random_embedding(model: FlameModel, n_points: int, seed: int = 0) -> Embedding:
    """n_points random surface points with detector indices 0..n_points-1."""
    rng = np.random.default_rng(seed)
    face_idx = rng.choice(len(model.faces), size=n_points, replace=False)
    return Embedding(face_idx.astype(np.int64), rng.dirichlet([2.0, 2.0, 2.0], n_points),
                     np.arange(n_points), "synthetic embedding")


def smooth_clip(n_frames: int, n_shape: int, n_expr: int, seed: int = 0, focal: float = 900.0,
                image_size: tuple[int, int] = (512, 512), distance: float = 0.55) -> Clip:
    """Smooth motion: sums of slow sinusoids with random phases (periods of 1-4 s at 25 fps)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames)[:, None]

    def wave(n: int, amplitude) -> np.ndarray:
        period = rng.uniform(25, 100, size=(2, n))
        phase = rng.uniform(0, 2 * np.pi, size=(2, n))
        return np.asarray(amplitude) * 0.5 * (np.sin(2 * np.pi * t / period[0] + phase[0])
                                               + np.sin(2 * np.pi * t / period[1] + phase[1]))

    pose = np.zeros((n_frames, 5, 3))
    pose[:, 0] = wave(3, [0.25, 0.5, 0.1])
    pose[:, 2] = np.abs(wave(3, [0.4, 0.02, 0.02])) * [1, 0, 0]
    eyes = wave(2, [0.25, 0.3])
    pose[:, 3, :2] = pose[:, 4, :2] = eyes
    translation = wave(3, [0.03, 0.02, 0.05]) + [0.0, 0.0, -distance]
    return Clip(shape=rng.normal(scale=0.8, size=n_shape), expr=wave(n_expr, 1.5), pose=pose,
                translation=translation, focal=focal, image_size=image_size)


def vertices(model: FlameModel, clip: Clip, shape: np.ndarray | None = None, expr: np.ndarray | None = None,
             pose: np.ndarray | None = None, translation: np.ndarray | None = None) -> np.ndarray:
    """Posed vertices (T, V, 3) of the clip (or of the given replacement parameters)."""
    shape = clip.shape if shape is None else shape
    expr = clip.expr if expr is None else expr
    pose = clip.pose if pose is None else pose
    trans = clip.translation if translation is None else translation
    S, E = len(shape), expr.shape[1]
    return lbs.forward(model.truncated(S, E), shape, expr, rotations.axis_angle_to_matrix(pose), trans).vertices


def project(points: np.ndarray, focal: float, image_size: tuple[int, int]) -> np.ndarray:
    """Camera at the origin looking along -Z, image y down. points: (..., 3) -> pixels (..., 2)."""
    H, W = image_size
    d = -points[..., 2]
    return np.stack([W / 2 + focal * points[..., 0] / d, H / 2 - focal * points[..., 1] / d], -1)


def landmarks(model: FlameModel, embedding: Embedding, verts: np.ndarray) -> np.ndarray:
    """Embedded surface points of posed vertices (T, V, 3) -> (T, L, 3)."""
    corners = model.faces[embedding.face_idx]  # (L, 3)
    return np.einsum("lc,tlcx->tlx", embedding.bary, verts[:, corners])


def observed_track(model: FlameModel, embedding: Embedding, clip: Clip, noise_px: float = 1.0,
                   no_face: tuple[tuple[int, int], ...] = (), seed: int = 0) -> Track:
    """Projected landmarks with Gaussian pixel noise; frames in the inclusive ranges ``no_face``
    are NaN. Points are in the embedding's detector order."""
    rng = np.random.default_rng(seed)
    uv = project(landmarks(model, embedding, vertices(model, clip)), clip.focal, clip.image_size)
    uv = uv + rng.normal(scale=noise_px, size=uv.shape)
    for first, last in no_face:
        uv[first:last + 1] = np.nan
    conf = np.where(np.isfinite(uv).all(axis=2), 1.0, 0.0)
    return Track(uv, conf, clip.image_size, 25.0)
