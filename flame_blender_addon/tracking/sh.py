"""Lambertian shading under 9-coefficient (bands 0-2) spherical-harmonic lighting, in torch.

``sh`` (9, C) holds the real, orthonormal SH coefficients of the incident radiance per colour
channel, in the camera frame of the normals. A Lambertian surface of albedo a with unit normal n
reflects ``a * sum_k A_l(k) sh[k] Y_k(n)`` (Ramamoorthi and Hanrahan 2001: the clamped-cosine
kernel divided by pi gives ``A = 1, 2/3, 1/4`` for bands 0, 1, 2), so a white uniform environment
of radiance L (``sh[0] = L / Y_0``) shades a white surface to exactly L.

Basis order: Y_00; Y_1-1 (y), Y_10 (z), Y_11 (x); Y_2-2 (xy), Y_2-1 (yz), Y_20 (3 z^2 - 1),
Y_21 (xz), Y_22 (x^2 - y^2).
"""

from __future__ import annotations

import numpy as np
import torch

Y0 = 0.5 * np.sqrt(1 / np.pi)
_C1 = np.sqrt(3 / (4 * np.pi))
_C2 = 0.5 * np.sqrt(15 / np.pi)
_C20 = 0.25 * np.sqrt(5 / np.pi)
_C22 = 0.25 * np.sqrt(15 / np.pi)
BAND_GAIN = (1.0, 2 / 3, 2 / 3, 2 / 3, 0.25, 0.25, 0.25, 0.25, 0.25)


def basis(n: torch.Tensor) -> torch.Tensor:
    """The 9 SH basis functions at unit vectors n (..., 3) -> (..., 9)."""
    x, y, z = n.unbind(-1)
    return torch.stack([torch.full_like(x, Y0), _C1 * y, _C1 * z, _C1 * x, _C2 * x * y, _C2 * y * z,
                        _C20 * (3 * z * z - 1), _C2 * x * z, _C22 * (x * x - y * y)], -1)


def shading(n: torch.Tensor, sh: torch.Tensor) -> torch.Tensor:
    """Reflected radiance of a white Lambertian surface. n: (..., 3) unit; sh: (9, C) or (..., 9, C)
    -> (..., C)."""
    gain = n.new_tensor(BAND_GAIN)
    return torch.einsum("...k,...kc->...c", basis(n) * gain, sh.expand(n.shape[:-1] + sh.shape[-2:]))


def from_light(direction: np.ndarray, colour: np.ndarray, ambient: np.ndarray) -> np.ndarray:
    """SH radiance (9, C) of a uniform ``ambient`` (C,) plus a light of ``colour`` (C,) spread as
    the lobe ``max(0, d.w) / pi`` round the unit ``direction`` d (3,) it comes from, band-limited
    (numpy; for synthetic scenes and tests). By Funk-Hecke the lobe's coefficients are
    ``A_l Y_lm(d) / pi``."""
    d = np.asarray(direction, dtype=np.float64) / np.linalg.norm(direction)
    Y = basis(torch.as_tensor(d)).numpy()
    return np.outer(np.asarray(BAND_GAIN) * Y, colour) + np.outer([1 / Y0] + [0.0] * 8, ambient)


def dominant_direction(sh: np.ndarray) -> np.ndarray:
    """Unit direction (3,) the light mainly comes from: the band-1 coefficients (y, z, x order) of
    the channel-mean radiance, as (x, y, z)."""
    c = np.asarray(sh, dtype=np.float64).reshape(9, -1).mean(axis=1)
    d = np.array([c[3], c[1], c[2]])
    return d / max(float(np.linalg.norm(d)), 1e-12)
