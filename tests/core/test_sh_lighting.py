"""SH lighting helpers: the basis, and metrical-tracker's convention converted."""

import numpy as np
from tracker_files import metrical_sh_shading

from flame_blender_addon.core import sh_lighting
from flame_blender_addon.core.rotations import axis_angle_to_matrix


def test_basis_is_orthonormal_on_the_sphere():
    n = 20000
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    phi = np.pi * (1 + 5 ** 0.5) * i
    w = np.stack([np.sqrt(1 - z * z) * np.cos(phi), np.sqrt(1 - z * z) * np.sin(phi), z], 1)
    Y = sh_lighting.basis(w)
    assert np.allclose(4 * np.pi / n * Y.T @ Y, np.eye(9), atol=1e-3)


def unit_normals(rng, n=50):
    n = rng.normal(size=(n, 3))
    return n / np.linalg.norm(n, axis=1, keepdims=True)


def test_metrical_sh_converts_to_the_same_shading_and_back():
    rng = np.random.default_rng(0)
    n, sh = unit_normals(rng), rng.normal(size=(9, 3))
    assert np.allclose(sh_lighting.shading(sh_lighting.from_metrical(sh), n), metrical_sh_shading(sh, n), atol=1e-12)
    ours = rng.normal(size=(9, 3))
    assert np.allclose(metrical_sh_shading(sh_lighting.to_metrical(ours), n), sh_lighting.shading(ours, n), atol=1e-12)


def test_rotated_sh_shades_normals_as_the_original_shades_them_rotated():
    """Bands 1 and 2 turn with the frame; a (T, 3, 3) stack of rotations broadcasts against one SH."""
    rng = np.random.default_rng(1)
    R = axis_angle_to_matrix(rng.normal(size=(4, 3)))
    n, sh = unit_normals(rng), rng.normal(size=(9, 3))
    turned = sh_lighting.rotate(sh, R)
    assert turned.shape == (4, 9, 3)
    for t in range(4):
        assert np.allclose(sh_lighting.shading(turned[t], n), sh_lighting.shading(sh, n @ R[t].T), atol=1e-12)
    assert not np.allclose(turned[0, 4:], sh[4:], atol=1e-3)  # band 2 really changed
    assert np.allclose(sh_lighting.rotate(turned, np.swapaxes(R, 1, 2)), sh, atol=1e-12)
