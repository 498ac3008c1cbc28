"""Texture coordinates and the face region of the procedural demo head (numpy only).

FLAME's UVs come with its template OBJ or texture space; the demo head (:mod:`.demo_head`) has no
such file, so its layout is derived here from its topology, deterministically:

- the head's latitude-longitude grid maps to the chart ``u in [M, 1 - M]``, ``v in [0.27, 1 - M]``
  (``M`` = :data:`MARGIN`): column c at ``u = c / N_COLS`` (the face, whose columns are 3.8 times
  denser, takes about half of the width), ring r at equal steps of v from the top pole (v = 1 side)
  to the neck base. A duplicate column at u = 1 closes the seam at the back of the head, and the
  pole gets one UV per cap triangle, so the texture has no wrap-around or pole singularity;
- each eyeball's (ring, segment) grid maps the same way to a chart in ``v in [M, 0.245]``, the
  left eye (+X) in ``u < 0.5``, the right eye in ``u > 0.5``, front pole (pupil) at the top;
- the zig-zag strip closing the neck base is degenerate in UV (it is never seen).

Charts are separated by gutters of at least ``2 M`` so bilinear lookups at 256^2 and above never
mix them. UVs follow the OBJ convention (v up; image row 0 is v = 1).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .head import EYE_RINGS, EYE_SEGMENTS, N_COLS, N_EYE, N_HEAD, N_ROWS, column_angles, faces

MARGIN = 0.005
_HEAD_V = (0.27, 1.0 - MARGIN)
_EYE_V = (MARGIN, 0.245)


def _chart(n_rings: int, n_cols: int, u0: float, u1: float, v0: float, v1: float,
           bottom_pole: bool) -> np.ndarray:
    """UVs of a pole-capped grid: top-pole UVs (n_cols, one per cap triangle), then the grid
    (n_rings, n_cols + 1) with a duplicate seam column, then bottom-pole UVs (n_cols) if any.
    -> (n_cols + n_rings (n_cols + 1) [+ n_cols], 2) float64."""
    steps = n_rings + (2 if bottom_pole else 1)
    v = v1 - (v1 - v0) * np.arange(1, n_rings + 1) / (steps - 1)
    u = u0 + (u1 - u0) * np.arange(n_cols + 1) / n_cols
    grid = np.stack(np.broadcast_arrays(u[None, :], v[:, None]), axis=-1).reshape(-1, 2)
    pole_u = u0 + (u1 - u0) * (np.arange(n_cols) + 0.5) / n_cols
    parts = [np.stack([pole_u, np.full(n_cols, v1)], 1), grid]
    if bottom_pole:
        parts.append(np.stack([pole_u, np.full(n_cols, v0)], 1))
    return np.concatenate(parts)


def _chart_corners(tri: np.ndarray, n_rings: int, n_cols: int, bottom_pole: bool) -> np.ndarray:
    """UV indices (within :func:`_chart`'s array) of triangles given in chart-local vertex numbers
    (0 = top pole, 1 + ring n_cols + col = grid, 1 + n_rings n_cols = bottom pole). tri: (N, 3)."""
    bottom = 1 + n_rings * n_cols
    is_top, is_bottom = tri == 0, (tri == bottom) if bottom_pole else np.zeros_like(tri, dtype=bool)
    g = np.clip(tri - 1, 0, n_rings * n_cols - 1)
    ring, col = g // n_cols, g % n_cols
    grid_corner = ~(is_top | is_bottom)
    # a triangle straddling the seam has columns 0 and n_cols - 1: column 0 becomes the duplicate
    lo = np.where(grid_corner, col, n_cols).min(axis=1, keepdims=True)
    hi = np.where(grid_corner, col, -1).max(axis=1, keepdims=True)
    same_ring = (np.where(grid_corner, ring, -1).max(1) == np.where(grid_corner, ring, n_rings).min(1))[:, None]
    seam = (hi - lo > 1) & ~(same_ring & ~(is_top | is_bottom).any(1, keepdims=True))
    col = np.where(seam & (col == 0), n_cols, col)
    pole_col = np.where(seam, n_cols - 1, lo)  # the cap triangle's left column
    out = n_cols + ring * (n_cols + 1) + col
    out = np.where(is_top, pole_col, out)
    if bottom_pole:
        out = np.where(is_bottom, n_cols + n_rings * (n_cols + 1) + pole_col, out)
    return out


@lru_cache(maxsize=1)
def uv_layout() -> tuple[np.ndarray, np.ndarray]:
    """The demo head's texture coordinates: ``vt`` (N_vt, 2) float64 in [0, 1] and ``ft`` (9976, 3)
    int64, the UV index of each corner of :func:`.demo_head.faces` (OBJ's ``f v/vt``). Read-only."""
    f = faces()
    head = _chart(N_ROWS, N_COLS, MARGIN, 1.0 - MARGIN, *_HEAD_V, bottom_pole=False)
    eyes = [_chart(EYE_RINGS, EYE_SEGMENTS, u0, u0 + 0.49, *_EYE_V, bottom_pole=True)
            for u0 in (MARGIN, 0.505)]
    ft = np.empty_like(f)
    is_head = (f < N_HEAD).all(axis=1)
    ft[is_head] = _chart_corners(f[is_head], N_ROWS, N_COLS, bottom_pole=False)
    offset = len(head)
    for side, chart in enumerate(eyes):
        start = N_HEAD + side * N_EYE
        mine = (f >= start).all(axis=1) & (f < start + N_EYE).all(axis=1)
        ft[mine] = offset + _chart_corners(f[mine] - start, EYE_RINGS, EYE_SEGMENTS, bottom_pole=True)
        offset += len(chart)
    vt = np.concatenate([head, *eyes])
    for a in (vt, ft):
        a.setflags(write=False)
    return vt, ft


@lru_cache(maxsize=1)
def face_region() -> np.ndarray:
    """The demo head's face: (V,) float64 vertex weights, 1 on the face (forehead to chin, between
    the ears, lids and lips included) and 0 on scalp, ears, neck and eyeballs, like FLAME's
    ``face`` mask. Read-only."""
    rings = np.arange(N_ROWS)[:, None]
    front = np.abs(column_angles())[None, :] < 1.05  # about 60 degrees either side of the nose
    grid = front & (rings >= 4) & (rings <= 36)  # brow line above the forehead down to the chin
    weights = np.zeros(N_HEAD + 2 * N_EYE)
    weights[1:N_HEAD] = grid.ravel()
    weights.setflags(write=False)
    return weights
