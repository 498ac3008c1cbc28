"""Rotation conversions used by FLAME and its trackers, batched over leading dimensions.

Quaternions are ``(w, x, y, z)`` like Blender's. 6D rotations follow pytorch3d: the vector holds
the first two *rows* of the matrix, and Gram-Schmidt rebuilds the rows.
"""

from __future__ import annotations

import numpy as np


def axis_angle_to_matrix(aa: np.ndarray) -> np.ndarray:
    """Rodrigues' formula. aa: (..., 3) axis * angle in radians -> (..., 3, 3)."""
    aa = np.asarray(aa, dtype=np.float64)
    theta = np.linalg.norm(aa, axis=-1, keepdims=True)
    k = np.divide(aa, theta, out=np.zeros_like(aa), where=theta > 0)
    kx, ky, kz = k[..., 0], k[..., 1], k[..., 2]
    zero = np.zeros_like(kx)
    K = np.stack([zero, -kz, ky, kz, zero, -kx, -ky, kx, zero], axis=-1).reshape(aa.shape[:-1] + (3, 3))
    s, c = np.sin(theta)[..., None], np.cos(theta)[..., None]
    return np.eye(3) + s * K + (1.0 - c) * (K @ K)


def axis_angle_to_quaternion(aa: np.ndarray) -> np.ndarray:
    """aa: (..., 3) -> unit quaternions (..., 4) as (w, x, y, z)."""
    aa = np.asarray(aa, dtype=np.float64)
    theta = np.linalg.norm(aa, axis=-1, keepdims=True)
    # sin(theta/2)/theta, with its limit 1/2 at theta = 0
    half = np.where(theta > 1e-12, np.sin(theta / 2) / np.where(theta > 1e-12, theta, 1.0), 0.5)
    return np.concatenate([np.cos(theta / 2), aa * half], axis=-1)


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """q: (..., 4) (w, x, y, z), normalised here -> (..., 3, 3)."""
    q = np.asarray(q, dtype=np.float64)
    w, x, y, z = np.moveaxis(q / np.linalg.norm(q, axis=-1, keepdims=True), -1, 0)
    m = [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
         2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
         2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]
    return np.stack(m, axis=-1).reshape(q.shape[:-1] + (3, 3))


def matrix_to_quaternion(R: np.ndarray) -> np.ndarray:
    """R: (..., 3, 3) rotation matrices -> unit quaternions (..., 4) with w >= 0.

    Uses the numerically best of the four Shepperd candidates per matrix.
    """
    R = np.asarray(R, dtype=np.float64)
    m00, m11, m22 = R[..., 0, 0], R[..., 1, 1], R[..., 2, 2]
    cand = np.stack([
        np.stack([1 + m00 + m11 + m22, R[..., 2, 1] - R[..., 1, 2],
                  R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1),
        np.stack([R[..., 2, 1] - R[..., 1, 2], 1 + m00 - m11 - m22,
                  R[..., 1, 0] + R[..., 0, 1], R[..., 0, 2] + R[..., 2, 0]], -1),
        np.stack([R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] + R[..., 0, 1],
                  1 - m00 + m11 - m22, R[..., 2, 1] + R[..., 1, 2]], -1),
        np.stack([R[..., 1, 0] - R[..., 0, 1], R[..., 0, 2] + R[..., 2, 0],
                  R[..., 2, 1] + R[..., 1, 2], 1 - m00 - m11 + m22], -1),
    ], axis=-2)  # (..., 4, 4): candidate i has 4*q_i^2 at position i
    best = np.argmax(np.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22,
                               1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1), axis=-1)
    q = np.take_along_axis(cand, best[..., None, None], axis=-2)[..., 0, :]
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., :1] < 0, -q, q)


def rotation_6d_to_matrix(d6: np.ndarray) -> np.ndarray:
    """pytorch3d's ``rotation_6d_to_matrix``. d6: (..., 6) -> (..., 3, 3); b1, b2, b3 are rows."""
    d6 = np.asarray(d6, dtype=np.float64)
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = a1 / np.linalg.norm(a1, axis=-1, keepdims=True)
    b2 = a2 - np.sum(b1 * a2, axis=-1, keepdims=True) * b1
    b2 = b2 / np.linalg.norm(b2, axis=-1, keepdims=True)
    return np.stack([b1, b2, np.cross(b1, b2)], axis=-2)


def matrix_to_rotation_6d(R: np.ndarray) -> np.ndarray:
    """pytorch3d's ``matrix_to_rotation_6d``: the first two rows. R: (..., 3, 3) -> (..., 6)."""
    R = np.asarray(R, dtype=np.float64)
    return R[..., :2, :].reshape(R.shape[:-2] + (6,))


def matrix_to_axis_angle(R: np.ndarray) -> np.ndarray:
    """R: (..., 3, 3) -> axis-angle (..., 3), angle in [0, pi]."""
    q = matrix_to_quaternion(R)
    v = q[..., 1:]
    s = np.linalg.norm(v, axis=-1, keepdims=True)
    angle = 2 * np.arctan2(s, q[..., :1])
    return np.where(s > 1e-12, v * angle / np.where(s > 1e-12, s, 1.0), 2 * v)


def continuous_quaternions(q: np.ndarray) -> np.ndarray:
    """Flip signs so consecutive quaternions along axis 0 share a hemisphere. q: (T, ..., 4)."""
    q = np.asarray(q, dtype=np.float64)
    step = np.where(np.sum(q[1:] * q[:-1], axis=-1, keepdims=True) < 0, -1.0, 1.0)
    sign = np.concatenate([np.ones_like(q[:1, ..., :1]), np.cumprod(step, axis=0)], axis=0)
    return q * sign


def slerp(q0: np.ndarray, q1: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Spherical interpolation of unit quaternions q0, q1: (..., 4) with weights w: (...) in [0, 1]."""
    q1 = np.where(np.sum(q0 * q1, axis=-1, keepdims=True) < 0, -q1, q1)
    cos = np.clip(np.sum(q0 * q1, axis=-1, keepdims=True), -1.0, 1.0)
    theta = np.arccos(cos)
    w = np.asarray(w, dtype=np.float64)[..., None]
    small = theta < 1e-6
    sin = np.where(small, 1.0, np.sin(theta))
    a = np.where(small, 1.0 - w, np.sin((1.0 - w) * theta) / sin)
    b = np.where(small, w, np.sin(w * theta) / sin)
    q = a * q0 + b * q1
    return q / np.linalg.norm(q, axis=-1, keepdims=True)
