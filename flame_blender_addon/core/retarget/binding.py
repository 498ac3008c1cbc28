"""Bind points to a triangle mesh (triangle corners, barycentric weights, normal offset) and carry
per-vertex fields (skin weights, shape-key deltas) across the binding by barycentric interpolation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import barycentric_points, boundary_faces, closest_on_triangles, face_normals


@dataclass(frozen=True)
class Binding:
    """N points bound to a mesh. corners: (N, 3) int vertex indices of each point's triangle;
    bary: (N, 3) weights of those corners; offset: (N,) signed distance along the triangle's normal;
    distance: (N,) unsigned distance to the surface; over_surface: (N,) bool, False where the point
    lies beyond an open border of the mesh (e.g. shoulders below FLAME's neck cut)."""

    corners: np.ndarray
    bary: np.ndarray
    offset: np.ndarray
    distance: np.ndarray
    over_surface: np.ndarray

    def interpolate(self, field: np.ndarray) -> np.ndarray:
        """field: (..., V, C) per mesh vertex -> (..., N, C) at the bound points."""
        return barycentric_points(field, self.corners, self.bary)


def bind(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray, face: np.ndarray) -> Binding:
    """Bind points (N, 3) to the mesh (vertices (V, 3), faces (F, 3)) given each point's closest
    triangle ``face`` (N,) (from a BVH query); the weights are recomputed exactly here."""
    corners = faces[face]
    a, b, c = (vertices[corners[:, k]] for k in range(3))
    bary = closest_on_triangles(points, a, b, c)
    foot = barycentric_points(vertices, corners, bary)
    delta = points - foot
    offset = np.einsum("nc,nc->n", delta, face_normals(vertices, faces)[face])
    distance = np.linalg.norm(delta, axis=1)
    over = ~boundary_faces(faces)[face] | (np.abs(offset) >= 0.9 * distance) | (distance < 1e-9)
    return Binding(corners.astype(np.int64), bary, offset, distance, over)


def fit_report(binding: Binding, within: float = np.inf) -> tuple[float, float, float]:
    """RMS and 99th percentile of the distances of the points that lie over the surface and within
    ``within`` of it (extra geometry such as shoulders or hair is left out), and the fraction counted."""
    counted = binding.over_surface & (binding.distance <= within)
    d = binding.distance[counted]
    if not len(d):
        return float("inf"), float("inf"), 0.0
    return float(np.sqrt(np.mean(d ** 2))), float(np.quantile(d, 0.99)), float(counted.mean())
