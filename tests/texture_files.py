"""Texture-space files in the distributed layouts (FLAME_texture.npz, FLAME_albedo_from_BFM.npz), random
but with known colours: the top-left texel of the mean is pure blue, the top-right pure red."""

from __future__ import annotations

from pathlib import Path

import numpy as np

BLUE_TOP_LEFT_BGR = (1.0, 0.0, 0.0)  # stored BGR, i.e. RGB (0, 0, 1)
RED_TOP_RIGHT_BGR = (0.0, 0.0, 1.0)


def texture_arrays(rng: np.random.Generator, side: int, k: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """mean (side, side, 3) and components (side, side, 3, k) in 0-``scale``, BGR, row 0 at the top."""
    mean = rng.uniform(0.2, 0.8, (side, side, 3)) * scale
    mean[0, 0], mean[0, -1] = np.multiply(BLUE_TOP_LEFT_BGR, scale), np.multiply(RED_TOP_RIGHT_BGR, scale)
    basis = rng.normal(0.0, 0.02, (side, side, 3, k)) * scale
    basis[0, 0] = basis[0, -1] = 0.0  # the known texels stay known
    return mean, basis


def write_flame_texture(path: Path, rng: np.random.Generator, side: int = 16, k: int = 6,
                        uvs: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """FLAME_texture.npz: mean / tex_dir in 0-255 (plus vt, ft when given); returns (mean, tex_dir)."""
    mean, basis = texture_arrays(rng, side, k, 255.0)
    extra = {} if uvs is None else {"vt": uvs[0], "ft": uvs[1]}
    np.savez(path, mean=mean, tex_dir=basis, **extra)
    return mean, basis


def write_bfm_albedo(path: Path, rng: np.random.Generator, side: int = 16, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """FLAME_albedo_from_BFM.npz as col_to_tex.py writes it: MU (side*side*3,), PC (side*side*3, k), 0-1."""
    mean, basis = texture_arrays(rng, side, k, 1.0)
    np.savez(path, MU=mean.reshape(-1), PC=basis.reshape(-1, k))
    return mean, basis
