"""SH lighting helpers: the basis, and metrical-tracker's convention converted."""

import numpy as np

from flame_blender_addon.core import sh_lighting


def test_basis_is_orthonormal_on_the_sphere():
    n = 20000
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    phi = np.pi * (1 + 5 ** 0.5) * i
    w = np.stack([np.sqrt(1 - z * z) * np.cos(phi), np.sqrt(1 - z * z) * np.sin(phi), z], 1)
    Y = sh_lighting.basis(w)
    assert np.allclose(4 * np.pi / n * Y.T @ Y, np.eye(9), atol=1e-3)


def test_metrical_sh_converts_to_the_same_shading():
    """metrical-tracker's renderer: sum_j sh[j] * factor[j] * [1, x, y, z, xy, xz, yz, x^2-y^2, 3z^2-1]_j."""
    rng = np.random.default_rng(0)
    n = rng.normal(size=(50, 3))
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    x, y, z = n.T
    polys = np.stack([np.ones_like(x), x, y, z, x * y, x * z, y * z, x * x - y * y, 3 * z * z - 1], 1)
    factor = np.array([1 / np.sqrt(4 * np.pi)] + [2 * np.pi / 3 * np.sqrt(3 / (4 * np.pi))] * 3
                      + [np.pi / 4 * 3 * np.sqrt(5 / (12 * np.pi))] * 3
                      + [np.pi / 4 * 1.5 * np.sqrt(5 / (12 * np.pi)), np.pi / 4 * 0.5 * np.sqrt(5 / (4 * np.pi))])
    sh = rng.normal(size=(9, 3))
    theirs = (polys * factor) @ sh
    assert np.allclose(sh_lighting.shading(sh_lighting.from_metrical(sh), n), theirs, atol=1e-12)
