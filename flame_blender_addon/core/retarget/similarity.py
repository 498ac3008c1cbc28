"""Similarity transforms x -> s R x + t as 4x4 matrices, and their weighted least-squares fit."""

from __future__ import annotations

import numpy as np


def umeyama(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None,
            with_scale: bool = True) -> np.ndarray:
    """The similarity minimising sum_i w_i |s R src_i + t - dst_i|^2 (Umeyama 1991).

    src, dst: (N, 3), weights: (N,) non-negative, at least three non-collinear points with weight.
    Returns the (4, 4) matrix [[s R, t], [0, 1]] with det R = +1.
    """
    w = np.ones(len(src)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    xs, xd = src - mu_s, dst - mu_d
    cov = (xd * w[:, None]).T @ xs  # (3, 3)
    U, sigma, Vt = np.linalg.svd(cov)
    d = np.ones(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        d[2] = -1.0
    R = U @ np.diag(d) @ Vt
    var = w @ np.einsum("nc,nc->n", xs, xs)
    s = (sigma * d).sum() / var if with_scale else 1.0
    return compose(s, R, mu_d - s * R @ mu_s)


def compose(s: float, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(4, 4) matrix of x -> s R x + t."""
    M = np.eye(4)
    M[:3, :3], M[:3, 3] = s * np.asarray(R), t
    return M


def decompose(M: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Scale, rotation (3, 3) and translation (3,) of a similarity matrix (4, 4)."""
    s = float(np.cbrt(np.linalg.det(M[:3, :3])))
    return s, M[:3, :3] / s, M[:3, 3].copy()


def transform(M: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a (4, 4) affine matrix to points (..., 3)."""
    return points @ M[:3, :3].T + M[:3, 3]

