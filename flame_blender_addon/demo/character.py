"""A procedurally made stylised character for the retargeting demo (numpy only, nothing downloaded).

It is what a user brings: another topology, other units and proportions FLAME cannot quite reach.
The demo head (:mod:`.head`) is given a caricatured identity (big nose, cheekbones and ears,
narrow jaw) and an inflated cranium, then its latitude-longitude grid is resampled at another
resolution: quads, an n-gon cap on the crown, eye and mouth slits kept open, the neck flaring out
into shoulders closed by an n-gon, and two loose UV-sphere eyeballs. Vertices are in Blender's
axes (+Z up, facing -Y) and in centimetres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.rig import FLAME_TO_BLENDER
from . import head as dh

STYLE = {"head_size": 1.5, "head_width": 1.0, "jaw_width": -2.0, "chin": 1.5, "nose_length": 2.5,
         "nose_width": 1.0, "cheekbones": 2.0, "ears": 2.0, "brow_ridge": 1.5}
"""Identity steps of the caricature (named components of the demo head)."""
UNITS = 100.0  # centimetres


@dataclass(frozen=True)
class Character:
    """vertices: (N, 3) float64 (Blender axes, centimetres); loop_vertices: (L,) int32 polygon
    corners, polygon after polygon; loop_totals: (P,) int32 corners per polygon."""

    vertices: np.ndarray
    loop_vertices: np.ndarray
    loop_totals: np.ndarray


def _rows(density: float) -> np.ndarray:
    """Fractional grid rows: denser bands that keep the lid and lip margins as exact rows."""
    bands = ((0, dh.LID_ROW), (dh.LID_ROW + 1, dh.LIP_ROW), (dh.LIP_ROW + 1, dh.N_ROWS - 1))
    return np.concatenate([np.linspace(a, b, max(2, round((b - a) * density) + 1)) for a, b in bands])


def _cut(rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """(len(rows) - 1, len(columns)) bool: new quads inside the demo head's eye and mouth slits."""
    cut = np.zeros((len(rows) - 1, len(columns)), dtype=bool)
    middle = (columns + np.roll(columns, -1) + np.where(np.arange(len(columns)) == len(columns) - 1,
                                                        dh.N_COLS, 0)) / 2
    for ring, quads in ((dh.LIP_ROW, dh.MOUTH_QUADS), (dh.LID_ROW, dh.LEFT_EYE_QUADS),
                        (dh.LID_ROW, dh.N_COLS - 2 - dh.LEFT_EYE_QUADS)):
        row = np.flatnonzero((rows[:-1] == ring) & (rows[1:] == ring + 1))
        inside = (middle >= quads.min()) & (middle <= quads.max() + 1)
        cut[np.ix_(row, np.flatnonzero(inside))] = True
    return cut


def _sample(grid: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Bilinear samples of a (R, C, 3) grid, columns wrapping: -> (len(rows), len(columns), 3)."""
    r0 = np.minimum(np.floor(rows).astype(int), grid.shape[0] - 2)
    c0 = np.floor(columns).astype(int)
    fr, fc = (rows - r0)[:, None, None], (columns - c0)[None, :, None]
    c1 = (c0 + 1) % grid.shape[1]
    top = grid[r0][:, c0] * (1 - fc) + grid[r0][:, c1] * fc
    bottom = grid[r0 + 1][:, c0] * (1 - fc) + grid[r0 + 1][:, c1] * fc
    return top * (1 - fr) + bottom * fr


def _quads(first: int, n_rows: int, n_cols: int, keep: np.ndarray) -> np.ndarray:
    """Quads (Q, 4) between consecutive rows of an (n_rows, n_cols) block of vertices numbered from
    ``first``, wound outwards (like the demo head's grid), where ``keep`` (n_rows - 1, n_cols)."""
    r, c = np.nonzero(keep)
    index = first + np.arange(n_rows * n_cols).reshape(n_rows, n_cols)
    return np.stack([index[r, c], index[r + 1, c], index[r + 1, (c + 1) % n_cols], index[r, (c + 1) % n_cols]], 1)


def _sphere(centre: np.ndarray, radius: float, first: int, segments: int = 16, rings: int = 10):
    """A UV sphere with its poles on FLAME's +Z (front) axis: vertices (n, 3), quads, two pole fans."""
    theta = np.linspace(0, np.pi, rings + 2)[1:-1]
    phi = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    ring = np.stack([np.sin(theta)[:, None] * np.cos(phi), np.sin(theta)[:, None] * np.sin(phi),
                     np.cos(theta)[:, None] * np.ones_like(phi)], -1).reshape(-1, 3)
    vertices = centre + radius * np.concatenate([[[0, 0, 1]], ring, [[0, 0, -1]]])
    quads = _quads(first + 1, rings, segments, np.ones((rings - 1, segments), dtype=bool))
    j = np.arange(segments)
    front = np.stack([np.full(segments, first), first + 1 + j, first + 1 + (j + 1) % segments], 1)
    last = first + 1 + rings * segments
    back = np.stack([np.full(segments, last), last - segments + (j + 1) % segments, last - segments + j], 1)
    return vertices, [quads, front, back]


def demo_character(density: float = 1.25, columns: int = 100, shoulder_rings: int = 8) -> Character:
    """The stylised character. density: rings per demo-head ring; columns: around the head.

    About 7k vertices with the defaults; density 2.2 and 176 columns make about 20k."""
    model = dh.demo_model()
    beta = np.zeros(model.n_shape)
    for name, step in STYLE.items():
        beta[dh.IDENTITY_NAMES[name]] = step
    v = model.v_template + model.shapedirs @ beta
    centre = np.array([0.0, 0.04, -0.01])
    swell = 1 + 0.15 * np.clip((v[:, 1] - 0.05) / 0.08, 0, 1) ** 2  # cartoon cranium
    v = centre + (v - centre) * np.stack([swell, np.ones_like(swell), swell], 1)

    grid = v[1:dh.N_HEAD].reshape(dh.N_ROWS, dh.N_COLS, 3)
    rows = _rows(density)
    cols = (np.arange(columns) + 0.5) * dh.N_COLS / columns - 0.5  # mirror-symmetric, first one < 0
    head = _sample(grid, rows, cols)  # (R, C, 3)
    neck = head[-1]
    mid = neck.mean(axis=0)
    flare = np.linspace(0, 1, shoulder_rings + 1)[1:, None, None]
    shoulders = (mid + (neck - mid) * (1 + np.array([2.6, 0, 1.0]) * flare ** 1.5)
                 - np.array([0, 0.07, 0]) * flare)
    body = np.concatenate([head, shoulders])  # (R + S, C, 3)
    n_rows = len(body)
    keep = np.ones((n_rows - 1, columns), dtype=bool)
    keep[: len(rows) - 1] &= ~_cut(rows, cols)
    polygons = [_quads(0, n_rows, columns, keep)]
    caps = [np.arange(columns), (n_rows - 1) * columns + np.arange(columns)[::-1]]  # crown, chest (n-gons)
    vertices = [body.reshape(-1, 3)]
    first = n_rows * columns
    for eye in range(2):
        ball = v[dh.N_HEAD + eye * dh.N_EYE: dh.N_HEAD + (eye + 1) * dh.N_EYE]
        centre_e = ball.mean(axis=0)
        verts, faces = _sphere(centre_e, float(np.linalg.norm(ball - centre_e, axis=1).mean()), first)
        vertices.append(verts)
        polygons += faces
        first += len(verts)
    flat = [p.ravel() for p in polygons] + caps
    sizes = [np.full(len(p), p.shape[1]) for p in polygons] + [np.array([len(c)]) for c in caps]
    points = np.concatenate(vertices) @ (UNITS * FLAME_TO_BLENDER[:3, :3]).T
    return Character(points, np.concatenate(flat).astype(np.int32), np.concatenate(sizes).astype(np.int32))
