"""Spherical-harmonic lighting (bands 0-2), as the tracker's photometric stage stores it (numpy).

``sh`` (9, C) holds the real, orthonormal SH coefficients of the incident radiance per colour
channel, in the OpenCV camera frame of the fit (x right, y down, z forward). A Lambertian surface
of albedo a with unit normal n reflects ``a * sum_k A_l(k) sh[k] Y_k(n)`` (Ramamoorthi and
Hanrahan 2001: the clamped-cosine kernel divided by pi gives :data:`BAND_GAIN` ``A = 1, 2/3, 1/4``
for bands 0, 1, 2), so a white uniform environment of radiance L (``sh[0] = L / Y0``) shades a
white surface to exactly L.

Basis order: Y_00; Y_1-1 (y), Y_10 (z), Y_11 (x); Y_2-2 (xy), Y_2-1 (yz), Y_20 (3 z^2 - 1),
Y_21 (xz), Y_22 (x^2 - y^2).

metrical-tracker (and DECA, whose renderer it uses) stores ``sh`` (9, 3) for another basis: the
polynomials 1, x, y, z, xy, xz, yz, x^2 - y^2, 3 z^2 - 1 scaled by :data:`METRICAL_FACTOR`, with
normals in FLAME's world frame (its head never moves: the camera does); :func:`from_metrical`
turns them into the coefficients above, for normals in that same frame, and :func:`to_metrical`
back. :func:`rotate` moves coefficients from one frame to another (e.g. camera -> FLAME world).
"""

from __future__ import annotations

import numpy as np

Y0 = 0.5 * np.sqrt(1 / np.pi)
_C1 = np.sqrt(3 / (4 * np.pi))
_C2 = 0.5 * np.sqrt(15 / np.pi)
_C20 = 0.25 * np.sqrt(5 / np.pi)
_C22 = 0.25 * np.sqrt(15 / np.pi)
BAND_GAIN = (1.0, 2 / 3, 2 / 3, 2 / 3, 0.25, 0.25, 0.25, 0.25, 0.25)
# metrical-tracker's renderer.py ``constant_factor``, and where each of its terms is in our order
METRICAL_FACTOR = np.array([1 / np.sqrt(4 * np.pi)] + [2 * np.pi / 3 * np.sqrt(3 / (4 * np.pi))] * 3
                           + [np.pi / 4 * 3 * np.sqrt(5 / (12 * np.pi))] * 3
                           + [np.pi / 4 * 1.5 * np.sqrt(5 / (12 * np.pi)), np.pi / 4 * 0.5 * np.sqrt(5 / (4 * np.pi))])
_METRICAL_TO_OURS = (0, 3, 1, 2, 4, 7, 5, 8, 6)
# each basis function is this constant times 1, y, z, x, xy, yz, 3 z^2 - 1, xz, x^2 - y^2
BASIS_SCALE = np.array([Y0, _C1, _C1, _C1, _C2, _C2, _C20, _C2, _C22])


def basis_terms(n):
    """The 9 basis functions at unit vectors n (..., 3), as a list of (...) arrays; works on numpy
    arrays and torch tensors alike (stack them on the last axis)."""
    x, y, z = n[..., 0], n[..., 1], n[..., 2]
    return [Y0 + 0 * x, _C1 * y, _C1 * z, _C1 * x, _C2 * x * y, _C2 * y * z, _C20 * (3 * z * z - 1),
            _C2 * x * z, _C22 * (x * x - y * y)]


def basis(n: np.ndarray) -> np.ndarray:
    """(..., 3) unit vectors -> (..., 9)."""
    return np.stack(basis_terms(np.asarray(n, dtype=np.float64)), -1)


def shading(sh: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Lambertian shading (..., C) of unit normals n (..., 3) under ``sh`` (9, C)."""
    return (basis(n) * np.asarray(BAND_GAIN)) @ np.asarray(sh, dtype=np.float64).reshape(9, -1)


def from_metrical(sh: np.ndarray) -> np.ndarray:
    """metrical-tracker's ``sh`` (9, C) (module docstring) -> ours (9, C): the same shading."""
    m = np.asarray(sh, dtype=np.float64).reshape(9, -1)
    ours = np.empty_like(m)
    ours[list(_METRICAL_TO_OURS)] = m * METRICAL_FACTOR[:, None]
    return ours / (np.asarray(BAND_GAIN) * BASIS_SCALE)[:, None]


def to_metrical(sh: np.ndarray) -> np.ndarray:
    """Ours (..., 9, C) -> metrical-tracker's ``sh`` (..., 9, C): the inverse of :func:`from_metrical`."""
    ours = np.asarray(sh, dtype=np.float64) * (np.asarray(BAND_GAIN) * BASIS_SCALE)[:, None]
    return ours[..., list(_METRICAL_TO_OURS), :] / METRICAL_FACTOR[:, None]


# generic unit directions on which the 9 basis functions are independent (rotate's least squares)
_PROBES = np.random.default_rng(0).normal(size=(32, 3))
_PROBES /= np.linalg.norm(_PROBES, axis=1, keepdims=True)
_PROBES_PINV = np.linalg.pinv(basis(_PROBES))  # (9, K), the same for every rotation


def rotate(sh: np.ndarray, R: np.ndarray) -> np.ndarray:
    """SH (..., 9, C) given for normals ``R n`` -> the same lighting for normals n:
    ``shading(rotate(sh, R), n) == shading(sh, R @ n)``. R (..., 3, 3) rotations, broadcast against sh.

    A rotation maps each band into itself, so ``basis(R n) = basis(n) @ D(R)^T`` with D block-diagonal
    (bands 0, 1, 2); D comes exactly from fitting the basis at :data:`_PROBES`, and the band gains commute with it.
    """
    R = np.asarray(R, dtype=np.float64)
    rotated = basis(np.einsum("...ij,kj->...ki", R, _PROBES))  # (..., K, 9): basis(R n_k)
    D_T = _PROBES_PINV @ rotated  # (..., 9, 9): D^T
    return D_T @ np.asarray(sh, dtype=np.float64)


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
