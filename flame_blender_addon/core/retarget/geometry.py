"""Triangle-mesh geometry in numpy: closest points, barycentric coordinates, normals, boundaries."""

from __future__ import annotations

import numpy as np

from ..closed_mesh import open_edges


def closest_on_triangles(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Barycentric coordinates of the closest point to ``p`` on triangle (a, b, c), row by row.

    p, a, b, c: (N, 3) -> (N, 3) weights of a, b, c (non-negative, summing to one). Handles the
    seven Voronoi regions (Ericson, *Real-Time Collision Detection*, 5.1.5); degenerate
    triangles fall back to their closest corner or edge.
    """
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = _dot(ab, ap), _dot(ac, ap)
    bp, cp = p - b, p - c
    d3, d4 = _dot(ab, bp), _dot(ac, bp)
    d5, d6 = _dot(ab, cp), _dot(ac, cp)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    out = np.empty((len(p), 3))
    done = np.zeros(len(p), dtype=bool)

    def put(mask: np.ndarray, w: np.ndarray) -> None:
        mask = mask & ~done
        out[mask] = w[mask]
        done[mask] = True

    ones, zeros = np.ones(len(p)), np.zeros(len(p))
    put((d1 <= 0) & (d2 <= 0), np.stack([ones, zeros, zeros], 1))
    put((d3 >= 0) & (d4 <= d3), np.stack([zeros, ones, zeros], 1))
    put((d6 >= 0) & (d5 <= d6), np.stack([zeros, zeros, ones], 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        v = d1 / (d1 - d3)
        put((vc <= 0) & (d1 >= 0) & (d3 <= 0), np.stack([1 - v, v, zeros], 1))
        w = d2 / (d2 - d6)
        put((vb <= 0) & (d2 >= 0) & (d6 <= 0), np.stack([1 - w, zeros, w], 1))
        u = (d4 - d3) / ((d4 - d3) + (d5 - d6))
        put((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0), np.stack([zeros, 1 - u, u], 1))
        denom = va + vb + vc
        put(np.ones(len(p), dtype=bool), np.stack([va, vb, vc], 1) / denom[:, None])
    bad = ~np.all(np.isfinite(out), axis=1)
    if bad.any():  # degenerate triangles: the best of the three corners
        corners = np.stack([a[bad], b[bad], c[bad]], 1)
        best = np.argmin(np.linalg.norm(corners - p[bad, None], axis=2), axis=1)
        out[bad] = np.eye(3)[best]
    return out


def _dot(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.einsum("nc,nc->n", x, y)


def barycentric_points(field: np.ndarray, corners: np.ndarray, bary: np.ndarray) -> np.ndarray:
    """Per-vertex values at points given by (triangle corners, weights): field (..., V, C),
    corners (N, 3) vertex indices, bary (N, 3) -> (..., N, C)."""
    return np.einsum("...nkc,nk->...nc", field[..., corners, :], bary)


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit normals (F, 3) of triangles (counter-clockwise = outward). vertices: (V, 3)."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    n = np.cross(b - a, c - a)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-20)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (V, 3). vertices: (V, 3), faces: (F, 3)."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    n = np.cross(b - a, c - a)
    out = np.zeros_like(vertices, dtype=np.float64)
    for k in range(3):
        np.add.at(out, faces[:, k], n)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-20)


def boundary_faces(faces: np.ndarray) -> np.ndarray:
    """(F,) bool: triangles with an edge that no other triangle shares (open borders, cuts)."""
    return open_edges(faces).any(axis=1)
