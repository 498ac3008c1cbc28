"""A rough MediaPipe embedding for the procedural demo head (test fixture, made here by hand).

23 MediaPipe face-mesh points placed on the demo head's latitude-longitude grid by looking at its
geometry (nose tip at ring 23, lips between rings 29 and 30, eyes at ring 15.5, ...); good to a few
millimetres, enough to test the tracker end to end. The irises map to the eyeballs' front poles.
"""

from __future__ import annotations

import numpy as np

from flame_blender_addon.core import demo_head as dh
from flame_blender_addon.core.model import FlameModel
from flame_blender_addon.tracking.landmarks import Embedding

CENTRE = (40, 41)  # the face's midline lies between these grid columns
# MediaPipe point -> grid (ring, columns) whose vertices are averaged (all on one triangle edge)
GRID_POINTS = {
    1: (23, CENTRE), 2: (25, CENTRE), 168: (15, CENTRE), 10: (5, CENTRE), 152: (35, CENTRE),
    0: (27, CENTRE), 17: (32, CENTRE), 13: (29, CENTRE), 14: (30, CENTRE),
    61: ((29, 30), (34,)), 291: ((29, 30), (47,)),
    33: ((15, 16), (26,)), 133: ((15, 16), (34,)), 362: ((15, 16), (47,)), 263: ((15, 16), (55,)),
    159: (15, (30,)), 145: (16, (30,)), 386: (15, (51,)), 374: (16, (51,)),
    105: (13, (30,)), 334: (13, (51,)),
}
IRIS_CENTRES = {468: 4, 473: 3}  # MediaPipe iris centre -> eye joint (image-left iris = subject's right eye)


def _vertices(rings, cols) -> np.ndarray:
    rings = np.atleast_1d(rings)
    cols = np.atleast_1d(cols)
    return (1 + rings[:, None] * dh.N_COLS + cols[None, :]).reshape(-1)


def _on_face(faces: np.ndarray, verts: np.ndarray) -> tuple[int, np.ndarray]:
    """A triangle holding all of ``verts`` (1 or 2 vertices) and barycentric weights averaging them."""
    has = np.isin(faces, verts).sum(axis=1) == len(verts)
    face = int(np.flatnonzero(has)[0])
    return face, np.isin(faces[face], verts) / len(verts)


def demo_embedding(model: FlameModel) -> Embedding:
    faces = model.faces
    rows, points = [], []
    for point, (rings, cols) in GRID_POINTS.items():
        rows.append(_on_face(faces, _vertices(rings, cols)))
        points.append(point)
    for point, joint in IRIS_CENTRES.items():
        eye = np.flatnonzero(model.weights[:, joint] > 0.99)
        pole = eye[np.argmax(model.v_template[eye, 2])]
        rows.append(_on_face(faces, np.array([pole])))
        points.append(point)
    return Embedding(np.array([r[0] for r in rows]), np.stack([r[1] for r in rows]).astype(np.float64),
                     np.array(points), "demo head test embedding")
