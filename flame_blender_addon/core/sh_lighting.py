"""Spherical-harmonic lighting (bands 0-2), as the tracker's photometric stage stores it (numpy).

``sh`` (9, C) holds the real, orthonormal SH coefficients of the incident radiance per colour
channel, in the OpenCV camera frame of the fit (x right, y down, z forward). A Lambertian surface
of albedo a with unit normal n reflects ``a * sum_k A_l(k) sh[k] Y_k(n)`` (Ramamoorthi and
Hanrahan 2001: the clamped-cosine kernel divided by pi gives :data:`BAND_GAIN` ``A = 1, 2/3, 1/4``
for bands 0, 1, 2), so a white uniform environment of radiance L (``sh[0] = L / Y0``) shades a
white surface to exactly L.

Basis order: Y_00; Y_1-1 (y), Y_10 (z), Y_11 (x); Y_2-2 (xy), Y_2-1 (yz), Y_20 (3 z^2 - 1),
Y_21 (xz), Y_22 (x^2 - y^2).
"""

from __future__ import annotations

import numpy as np

Y0 = 0.5 * np.sqrt(1 / np.pi)
_C1 = np.sqrt(3 / (4 * np.pi))
_C2 = 0.5 * np.sqrt(15 / np.pi)
_C20 = 0.25 * np.sqrt(5 / np.pi)
_C22 = 0.25 * np.sqrt(15 / np.pi)
BAND_GAIN = (1.0, 2 / 3, 2 / 3, 2 / 3, 0.25, 0.25, 0.25, 0.25, 0.25)


def basis_terms(n):
    """The 9 basis functions at unit vectors n (..., 3), as a list of (...) arrays; works on numpy
    arrays and torch tensors alike (stack them on the last axis)."""
    x, y, z = n[..., 0], n[..., 1], n[..., 2]
    return [Y0 + 0 * x, _C1 * y, _C1 * z, _C1 * x, _C2 * x * y, _C2 * y * z, _C20 * (3 * z * z - 1),
            _C2 * x * z, _C22 * (x * x - y * y)]


def basis(n: np.ndarray) -> np.ndarray:
    """(..., 3) unit vectors -> (..., 9)."""
    return np.stack(basis_terms(np.asarray(n, dtype=np.float64)), -1)


def from_light(direction: np.ndarray, colour: np.ndarray, ambient: np.ndarray) -> np.ndarray:
    """SH radiance (9, C) of a uniform ``ambient`` (C,) plus a light of ``colour`` (C,) spread as
    the lobe ``max(0, d.w) / pi`` round the unit ``direction`` d (3,) it comes from, band-limited.
    By Funk-Hecke the lobe's coefficients are ``A_l Y_lm(d) / pi``."""
    d = np.asarray(direction, dtype=np.float64) / np.linalg.norm(direction)
    return np.outer(np.asarray(BAND_GAIN) * basis(d), colour) + np.outer([1 / Y0] + [0.0] * 8, ambient)


def dominant_direction(sh: np.ndarray) -> np.ndarray:
    """Unit direction (3,) the light mainly comes from: the band-1 coefficients (y, z, x order) of
    the channel-mean radiance, as (x, y, z)."""
    c = np.asarray(sh, dtype=np.float64).reshape(9, -1).mean(axis=1)
    d = np.array([c[3], c[1], c[2]])
    return d / max(float(np.linalg.norm(d)), 1e-12)


def to_light(sh: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ambient + one lobe that :func:`from_light` would turn into the same bands 0 and 1:
    (direction (3,), colour (C,), ambient (C,)); band 2 is dropped. Colours are clipped at 0."""
    sh = np.asarray(sh, dtype=np.float64).reshape(9, -1)
    d = dominant_direction(sh)
    band1 = np.stack([sh[3], sh[1], sh[2]], 0)  # (3, C) as x, y, z
    colour = np.clip(d @ band1 / (BAND_GAIN[1] * _C1), 0, None)
    ambient = np.clip((sh[0] - colour * BAND_GAIN[0] * Y0) * Y0, 0, None)
    return d, colour, ambient
