"""SH lighting helpers: a light round-trips through its SH bands 0 and 1."""

import numpy as np

from flame_blender_addon.core import sh_lighting


def test_light_round_trips_through_sh():
    d = np.array([0.4, -0.6, -0.7]) / np.linalg.norm([0.4, -0.6, -0.7])
    sh = sh_lighting.from_light(d, np.array([1.2, 1.0, 0.8]), np.array([0.3, 0.35, 0.4]))
    direction, colour, ambient = sh_lighting.to_light(sh)
    assert np.allclose(direction, d) and np.allclose(colour, [1.2, 1.0, 0.8]) and np.allclose(ambient, [0.3, 0.35, 0.4])


def test_basis_is_orthonormal_on_the_sphere():
    n = 20000
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    phi = np.pi * (1 + 5 ** 0.5) * i
    w = np.stack([np.sqrt(1 - z * z) * np.cos(phi), np.sqrt(1 - z * z) * np.sin(phi), z], 1)
    Y = sh_lighting.basis(w)
    assert np.allclose(4 * np.pi / n * Y.T @ Y, np.eye(9), atol=1e-3)
