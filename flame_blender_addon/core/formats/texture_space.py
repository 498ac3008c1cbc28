"""Linear albedo models on FLAME's UVs ("texture spaces"), read without torch.

Two layouts are read, both square images of side R, BGR, image row 0 at v = 1 (the top):

- ``FLAME_texture.npz`` (FLAME's texture space; DECA, VHAP): ``mean`` (R, R, 3) and ``tex_dir``
  (R, R, 3, K) in 0-255, K = 200; optionally ``vt`` (N, 2) UVs and ``ft`` (F, 3) UV indices per
  triangle corner (TF_FLAME's sample_texture.py).
- ``FLAME_albedo_from_BFM.npz`` (TimoBolkart/BFM_to_FLAME ``col_to_tex.py``, used by
  metrical-tracker): ``MU`` (R*R*3,) and ``PC`` (R*R*3, K) in 0-1, K = 199, flattened from
  (R, R, 3); ``specMU`` / ``specPC`` (specular, in some versions) are not used.

:class:`TextureSpace` holds the first ``n`` components as float32 RGB in 0-1, components first:
``albedo(c) = mean + sum_k c[k] basis[k]`` is one matrix-vector product over contiguous memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import safe_files
from ..errors import FileFormatError, guarded
from ..limits import LARGE, Budget

LAYOUTS = {"FLAME": ("mean", "tex_dir", 255.0), "BFM": ("MU", "PC", 1.0)}
# The distributed names, the one found first when both are there: BFM's, the space metrical-tracker
# (and SHOW, DECA's tex_type 'BFM') fits its texture coefficients in, so a take's ``tex`` gets the
# albedo it was fitted with; it is also the one anyone can make (BFM_to_FLAME), without FLAME's licence.
TEXTURE_FILES = ("FLAME_albedo_from_BFM.npz", "FLAME_texture.npz")
_ROWS_PER_BLOCK = 32  # rows converted at a time: bounds the temporary copy to 1/16 of a 512² space


@dataclass(frozen=True)
class TextureSpace:
    """mean: (R, R, 3) float32 RGB 0-1, row 0 at v = 1; basis: (n, R, R, 3) float32, same layout;
    n_total: components in the file; vt: (N, 2) float64 UVs and ft: (F, 3) int64, or None."""

    mean: np.ndarray
    basis: np.ndarray
    layout: str
    n_total: int
    path: str = ""
    vt: np.ndarray | None = None
    ft: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def n_components(self) -> int:
        return len(self.basis)

    def albedo(self, coeffs: np.ndarray) -> np.ndarray:
        """(R, R, 3) float32 RGB, row 0 at v = 1 (top-down), for m <= n coefficients (the first m
        components); not clipped (the trackers do not clip either)."""
        c = np.asarray(coeffs, dtype=np.float32).reshape(-1)
        if len(c) > self.n_components:
            raise FileFormatError(f"{Path(self.path).name or 'texture space'}: {len(c)} texture coefficients, "
                                  f"but only {self.n_components} components are loaded (of {self.n_total})")
        flat = self.basis[:len(c)].reshape(len(c), self.mean.size)
        return (self.mean.reshape(-1) + c @ flat).reshape(self.mean.shape)

    def changed(self, albedo: np.ndarray, old: np.ndarray, new: np.ndarray) -> np.ndarray:
        """``albedo(new)`` from ``albedo`` = ``albedo(old)`` (same length n): only the components whose
        coefficient changed are read, so keying a few of 200 costs a few two-hundredths of a recompute."""
        old, new = np.asarray(old, dtype=np.float32), np.asarray(new, dtype=np.float32)
        k = np.flatnonzero(old != new)
        if len(k) * 2 > len(new):
            return self.albedo(new)
        flat = self.basis[k].reshape(len(k), self.mean.size)
        return (albedo.reshape(-1) + (new[k] - old[k]) @ flat).reshape(self.mean.shape)


@guarded
def read_texture_space(path: str | Path, n_components: int | None = None) -> TextureSpace:
    """A FLAME or BFM texture space (module docstring) with its first ``n_components`` (None or more
    than the file has: all).

    Raises FileFormatError naming the file and key for a missing key, a wrong shape or non-finite
    values; LimitError past :data:`..limits.LARGE`.
    """
    path = Path(path)
    with safe_files.NpzArchive.open(path, LARGE, Budget(LARGE)) as npz:
        layout = next((name for name, (mu, pc, _) in LAYOUTS.items() if mu in npz and pc in npz), None)
        if layout is None:
            found = ", ".join(sorted(npz)) or "no arrays"
            raise FileFormatError(f"{path.name}: not a texture space: needs 'mean' and 'tex_dir' (FLAME_texture.npz) "
                                  f"or 'MU' and 'PC' (FLAME_albedo_from_BFM.npz); found {found}")
        mu_key, pc_key, scale = LAYOUTS[layout]
        mean, basis = _images(path.name, npz[mu_key], npz[pc_key], mu_key, pc_key)
        n_total = basis.shape[3]
        n = n_total if n_components is None else min(int(n_components), n_total)
        if n < 1:
            raise FileFormatError(f"{path.name}: {n} components asked for; at least 1 is needed")
        warnings: list[str] = []
        vt, ft = _uvs(path.name, npz, warnings)
        space = TextureSpace(mean=_rgb(mean[..., None], scale)[0], basis=_rgb(basis[..., :n], scale),
                             layout=layout, n_total=n_total, path=str(path), vt=vt, ft=ft, warnings=warnings)
    for key, values in ((mu_key, space.mean), (pc_key, space.basis)):
        if not np.isfinite(values).all():
            raise FileFormatError(f"{path.name}: '{key}' holds NaN or infinite values")
    return space


def _images(name: str, mean: np.ndarray, basis: np.ndarray, mu_key: str, pc_key: str
            ) -> tuple[np.ndarray, np.ndarray]:
    """``mean`` as (R, R, 3) and ``basis`` as (R, R, 3, K) views: images, or flattened R*R*3 rows."""
    for key, a in ((mu_key, mean), (pc_key, basis)):
        if a.dtype.kind not in "fiu":
            raise FileFormatError(f"{name}: '{key}' holds {a.dtype} values, not numbers")
    if basis.ndim == 2 and mean.size == basis.shape[0]:
        side = math.isqrt(mean.size // 3)
        if side * side * 3 == mean.size and side > 0:
            mean, basis = mean.reshape(side, side, 3), basis.reshape(side, side, 3, basis.shape[1])
    mean = mean.reshape(mean.shape[-3:]) if mean.ndim > 3 and math.prod(mean.shape[:-3]) == 1 else mean
    if mean.ndim != 3 or mean.shape[0] != mean.shape[1] or mean.shape[2] != 3 or mean.shape[0] == 0 \
            or basis.ndim != 4 or basis.shape[:3] != mean.shape or basis.shape[3] == 0:
        raise FileFormatError(f"{name}: '{mu_key}' {mean.shape} and '{pc_key}' {basis.shape} are not a square "
                              f"(R, R, 3) image and (R, R, 3, K) components (or R*R*3 rows of them)")
    return mean, basis


def _rgb(images: np.ndarray, scale: float) -> np.ndarray:
    """(R, R, 3, n) BGR in 0-``scale`` -> (n, R, R, 3) float32 RGB in 0-1, converted in row blocks."""
    R, n = images.shape[0], images.shape[3]
    out = np.empty((n, R, R, 3), dtype=np.float32)
    for r in range(0, R, _ROWS_PER_BLOCK):
        block = images[r:r + _ROWS_PER_BLOCK, :, ::-1, :]  # BGR -> RGB
        out[:, r:r + _ROWS_PER_BLOCK] = np.moveaxis(block, -1, 0) / np.float32(scale)
    return out


def _uvs(name: str, npz: safe_files.NpzArchive, warnings: list[str]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``vt`` (N, 2) (a third, homogeneous column is dropped) and 0-based ``ft`` (F, 3), both or neither."""
    if "vt" not in npz and "ft" not in npz:
        return None, None
    if "vt" not in npz or "ft" not in npz:
        warnings.append(f"{name}: has only one of 'vt' / 'ft'; its UVs are not used")
        return None, None
    vt, ft = npz["vt"], npz["ft"]
    if vt.ndim != 2 or vt.shape[1] not in (2, 3) or vt.dtype.kind not in "fiu" or not np.isfinite(vt).all():
        raise FileFormatError(f"{name}: 'vt' is {vt.shape} {vt.dtype}, expected (N, 2) finite UVs")
    if ft.ndim != 2 or ft.shape[1] != 3 or ft.dtype.kind not in "iu" or not ft.size:
        raise FileFormatError(f"{name}: 'ft' is {ft.shape} {ft.dtype}, expected (F, 3) integer UV indices")
    ft = ft.astype(np.int64)
    if ft.min() >= 1 and ft.max() == len(vt):  # OBJ numbering
        warnings.append(f"{name}: 'ft' counts from 1 (as in OBJ files); read as 1-based")
        ft = ft - 1
    if ft.min() < 0 or ft.max() >= len(vt):
        raise FileFormatError(f"{name}: 'ft' holds {ft.min()}..{ft.max()}, not indices of the {len(vt)} UVs of 'vt'")
    return vt[:, :2].astype(np.float64), ft
