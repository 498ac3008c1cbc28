"""Constructed truth for the retargeting tests (imported by name by both tiers; numpy only).

A *character* here is a FLAME surface of an identity the fit has never seen, re-meshed to another
topology whose vertices lie exactly on that surface: the vertices are the midpoints of FLAME's edges,
the faces are the triangle between each triangle's edge midpoints and, around every interior FLAME
vertex, the n-gon of its edges' midpoints. Loose parts (the eyeballs) stay loose; the order is shuffled.
"""

from __future__ import annotations

import numpy as np

from flame_blender_addon.core import rig
from flame_blender_addon.core.rotations import axis_angle_to_matrix


def midpoint_remesh(vertices: np.ndarray, faces: np.ndarray, seed: int = 0):
    """vertices: (V, 3), faces: (F, 3) -> (points (E, 3), polygons: list of vertex-index lists,
    edges (E, 2) of the source mesh whose midpoints the points are), vertex order shuffled."""
    corners = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges, edge_of = np.unique(np.sort(corners, axis=1), axis=0, return_inverse=True)
    edge_of = edge_of.ravel().reshape(3, -1).T  # (F, 3): edge ids of (ab, bc, ca)
    polygons = [list(row) for row in edge_of]
    following = {}  # around vertex a of face (a, b, c): midpoint of ab -> midpoint of ca, counter-clockwise
    for k in range(3):
        for f in range(len(faces)):
            following[(int(faces[f, k]), int(edge_of[f, k]))] = int(edge_of[f, (k + 2) % 3])
    by_vertex: dict[int, dict[int, int]] = {}
    for (v, a), b in following.items():
        by_vertex.setdefault(v, {})[a] = b
    for chain in by_vertex.values():
        start = next(iter(chain))
        ring, e = [start], chain[start]
        while e != start and e in chain and len(ring) <= len(chain):
            ring.append(e)
            e = chain[e]
        if e == start and len(ring) == len(chain) and len(ring) >= 3:
            polygons.append(ring)
    points = vertices[edges].mean(axis=1)
    order = np.random.default_rng(seed).permutation(len(points))
    new_id = np.empty_like(order)
    new_id[order] = np.arange(len(order))
    return points[order], [[int(new_id[i]) for i in p] for p in polygons], edges[order]


def placement(scale: float = 100.0, angle_deg: float = 20.0, offset=(0.3, -0.5, 1.2), seed: int = 0) -> np.ndarray:
    """(4, 4): FLAME space -> the character's frame: Y-up -> Z-up, ``scale`` (100 = centimetres),
    turned ``angle_deg`` about a random axis, moved by ``offset`` metres (times scale)."""
    axis = np.random.default_rng(seed).normal(size=3)
    R = axis_angle_to_matrix(np.radians(angle_deg) * axis / np.linalg.norm(axis))
    M = np.eye(4)
    M[:3, :3] = scale * R @ rig.FLAME_TO_BLENDER[:3, :3]
    M[:3, 3] = scale * np.asarray(offset)
    return M


def unseen_identity(n: int = 100, seed: int = 7) -> np.ndarray:
    """Identity coefficients (n,) ~ N(0, 1), a head the fit has not seen."""
    return np.random.default_rng(seed).normal(size=n)
