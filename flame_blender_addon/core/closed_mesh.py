"""Closing a triangle mesh's holes for 3-D printing: boundary loops, each capped with a fan.

FLAME's head is open at the neck, the mouth and around the eyes. :func:`close_holes` finds every
boundary loop (edges used by one face only) and caps it: a triangle for a 3-vertex hole, otherwise
a fan around a new vertex at the loop's centroid, wound opposite to the loop so that each cap edge
meets its neighbour face in reverse (consistent orientation). The result is watertight: every edge
is shared by exactly two faces (:func:`is_watertight`).
"""

from __future__ import annotations

import numpy as np

from .errors import FlameError


def _half_edges(faces: np.ndarray) -> np.ndarray:
    """Directed edges (3F, 2) of triangles (F, 3), in the faces' winding order."""
    return np.stack([faces, np.roll(faces, -1, axis=1)], axis=-1).reshape(-1, 2)


def edge_face_counts(faces: np.ndarray) -> np.ndarray:
    """How many faces use each undirected edge: (E,) int, over the mesh's distinct edges."""
    edges = np.sort(_half_edges(np.asarray(faces)), axis=1)
    return np.unique(edges, axis=0, return_counts=True)[1]


def open_edges(faces: np.ndarray) -> np.ndarray:
    """(F, 3) bool: whether edge k of each face (corner k to k + 1) is used by that face only (a border)."""
    half = _half_edges(np.asarray(faces, dtype=np.int64))
    _, inverse, counts = np.unique(np.sort(half, axis=1), axis=0, return_inverse=True, return_counts=True)
    return (counts[inverse.ravel()] == 1).reshape(-1, 3)


def is_watertight(faces: np.ndarray) -> bool:
    """Every edge shared by exactly two faces, traversed once in each direction (oriented, closed)."""
    half = _half_edges(np.asarray(faces))
    undirected = edge_face_counts(faces)
    directed = np.unique(half, axis=0, return_counts=True)[1]
    return bool(np.all(undirected == 2) and np.all(directed == 1))


def boundary_loops(faces: np.ndarray) -> list[np.ndarray]:
    """The mesh's holes: closed loops of boundary edges, each (n,) vertex indices in the order the
    faces traverse them. Raises FlameError on a vertex where two holes touch (non-manifold)."""
    boundary = _half_edges(np.asarray(faces, dtype=np.int64))[open_edges(faces).ravel()]
    if len(np.unique(boundary[:, 0])) != len(boundary):
        raise FlameError("the mesh has a vertex where two holes meet; it cannot be closed automatically")
    following = dict(zip(boundary[:, 0].tolist(), boundary[:, 1].tolist(), strict=True))
    loops = []
    while following:  # each boundary edge once: a few hundred edges for FLAME
        start = next(iter(following))
        loop = [start]
        vertex = following.pop(start)
        while vertex != start:
            if vertex not in following:
                raise FlameError("the mesh's boundary is not made of closed loops")
            loop.append(vertex)
            vertex = following.pop(vertex)
        loops.append(np.array(loop, dtype=np.int64))
    return loops


def close_holes(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cap every hole. vertices (V, 3), faces (F, 3) -> (V + k, 3), (F + c, 3): one centroid vertex
    per hole of more than 3 vertices, one cap triangle per boundary edge (one for 3-vertex holes)."""
    vertices, faces = np.asarray(vertices, dtype=np.float64), np.asarray(faces, dtype=np.int64)
    new_vertices, new_faces = [vertices], [faces]
    next_index = len(vertices)
    for loop in boundary_loops(faces):
        if len(loop) == 3:
            new_faces.append(loop[::-1][None])
            continue
        new_vertices.append(vertices[loop].mean(axis=0)[None])
        centre = np.full(len(loop), next_index)
        new_faces.append(np.stack([centre, np.roll(loop, -1), loop], axis=1))  # reverse of a_i -> a_i+1
        next_index += 1
    return np.concatenate(new_vertices), np.concatenate(new_faces)
