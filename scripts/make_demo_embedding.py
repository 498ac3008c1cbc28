"""Make the table of ``flame_blender_addon/demo/embedding.py``: MediaPipe face-mesh points on the
procedural demo head (run once, offline; the add-on itself never needs MediaPipe for this).

    python scripts/make_demo_embedding.py CANONICAL_OBJ > table.txt

``CANONICAL_OBJ`` is MediaPipe's canonical face model with irises (478 vertices),
``mediapipe/modules/face_geometry/data/face_model_with_iris.obj`` in MediaPipe's source tree
(Apache-2.0; the 0.10.21 wheel does not ship it). The point sets come from the installed mediapipe's
``face_mesh_connections`` (eyes, eyebrows, lips, nose, face oval). Needs numpy and mediapipe.

Method (all lengths in metres; MediaPipe's model is in centimetres, +X the subject's left like FLAME):

1. Anchors: points with an unambiguous counterpart on the demo head's grid (eye and mouth corners,
   the lip line's middle, nose tip, nasion, subnasale, chin) sit on the grid edges named in ``ANCHORS``.
2. A similarity transform (Umeyama, ``core.retarget.similarity``) takes the canonical face onto the
   anchors, then a thin-plate spline through the anchors bends it onto them exactly.
3. Eyelid contours and the inner lip contour go onto the demo head's lid margins and lip margins,
   each point at its position between the two corners (as a fraction along the corner-to-corner axis).
4. Iris centres go to the eyeballs' front poles (the pupils), the iris contour points onto the
   eyeball at MediaPipe's iris radius (scaled like the face) from the pole.
5. Every other point (outer lips, eyebrows, nose, face oval) goes to the head's surface straight in
   front of or behind its bent position, along the view axis Z: the front-most surface point with the
   same x and y. MediaPipe's points are positions in the image; the closest surface point would move
   them sideways in a frontal view where the surface slopes away from the bent face (up to 5 mm on
   the eyebrows and the sides of the nose), and the fit would pay that offset on every frame.

stdout: the ``_TABLE`` literal to paste (``point face b0 b1 b2`` rows); stderr: how far each group moved.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flame_blender_addon.core.retarget import similarity  # noqa: E402
from flame_blender_addon.demo import head as dh  # noqa: E402

MID = (40, 41)  # the face's midline lies between these grid columns
R_OUTER, R_INNER = 26, 34  # the subject's right eye corners (columns); the left eye mirrors them
L_INNER, L_OUTER = dh.N_COLS - 1 - R_INNER, dh.N_COLS - 1 - R_OUTER  # 47, 55
MOUTH_R, MOUTH_L = int(dh.MOUTH_QUADS[0]), int(dh.MOUTH_QUADS[-1]) + 1  # 34, 47
LID, LIP = dh.LID_ROW, dh.LIP_ROW
# MediaPipe point -> the demo grid edge (rings, columns: two vertices) it lies on, at the edge's middle
ANCHORS = {
    33: ((LID, LID + 1), (R_OUTER,)), 133: ((LID, LID + 1), (R_INNER,)),
    362: ((LID, LID + 1), (L_INNER,)), 263: ((LID, LID + 1), (L_OUTER,)),
    61: ((LIP, LIP + 1), (MOUTH_R,)), 291: ((LIP, LIP + 1), (MOUTH_L,)),
    13: ((LIP,), MID), 14: ((LIP + 1,), MID),
    4: ((23,), MID),  # nose tip: the profile's most forward point
    168: ((15,), MID),  # nasion: the profile's deepest point between brow and nose
    2: ((26,), MID),  # subnasale: the profile's deepest point between nose and lip
    152: ((35,), MID),  # chin: where the profile turns under at 45 degrees
}
# Face-oval points kept: the forehead and the lower jaw (the temples and the cheeks by the ears are
# left out: the demo head's ears sit there)
OVAL_KEPT = (10, 109, 67, 103, 54, 338, 297, 332, 284, 152, 148, 176, 149, 150, 136, 377, 400, 378, 379, 365)
IRIS_RADIUS_CM = 0.6  # MediaPipe's iris contour points lie 0.6 cm from the iris centre


def read_obj_vertices(path: Path) -> np.ndarray:
    """``v`` lines of an OBJ file, centimetres -> (N, 3) float64 metres."""
    rows = [line.split()[1:4] for line in path.read_text().splitlines() if line.startswith("v ")]
    return np.asarray(rows, dtype=np.float64) / 100.0


def point_sets() -> dict[str, np.ndarray]:
    """MediaPipe's face-mesh contours: point indices (int64) per group, and the lips' edges (E, 2)."""
    from mediapipe.python.solutions import face_mesh_connections as fmc

    def points(*sets) -> np.ndarray:
        return np.unique(np.array([p for s in sets for edge in s for p in edge], dtype=np.int64))

    return {"eyes": points(fmc.FACEMESH_LEFT_EYE, fmc.FACEMESH_RIGHT_EYE),
            "brows": points(fmc.FACEMESH_LEFT_EYEBROW, fmc.FACEMESH_RIGHT_EYEBROW),
            "lips": points(fmc.FACEMESH_LIPS), "lip_edges": np.array(sorted(fmc.FACEMESH_LIPS)),
            "nose": points(fmc.FACEMESH_NOSE), "oval": np.array(OVAL_KEPT, dtype=np.int64)}


def component(edges: np.ndarray, start: int) -> np.ndarray:
    """Points connected to ``start`` by edges (E, 2) -> sorted (N,) int64."""
    members = np.array([start])
    while True:
        grown = np.unique(edges[np.isin(edges, members).any(axis=1)])
        if len(grown) == len(members):
            return grown
        members = grown


def thin_plate_spline(src: np.ndarray, dst: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """The 3D thin-plate spline (kernel |r|, affine part) taking src (N, 3) exactly to dst (N, 3):
    returns a function (M, 3) -> (M, 3)."""
    n = len(src)
    P = np.concatenate([np.ones((n, 1)), src], axis=1)
    A = np.zeros((n + 4, n + 4))
    A[:n, :n] = np.linalg.norm(src[:, None] - src[None], axis=-1)
    A[:n, n:], A[n:, :n] = P, P.T
    coef = np.linalg.solve(A, np.concatenate([dst, np.zeros((4, 3))]))

    def warp(x: np.ndarray) -> np.ndarray:
        K = np.linalg.norm(x[:, None] - src[None], axis=-1)
        return K @ coef[:n] + np.concatenate([np.ones((len(x), 1)), x], axis=1) @ coef[n:]

    return warp


def closest_on_triangles(points: np.ndarray, tri: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closest surface point of triangles tri (F, 3, 3) to each point (P, 3): inside a triangle (the
    projection onto its plane) or on one of its edges (the clamped projection onto the segment).
    -> face (P,) int64, barycentric weights (P, 3) float64, distance (P,) float64."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    n = np.cross(b - a, c - a)
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    q = points[:, None] - np.einsum("pf,fi->pfi", np.einsum("pfi,fi->pf", points[:, None] - a, n), n)
    inside = barycentric(q, a, b, c)
    distances = [np.where((inside >= 0).all(-1), np.linalg.norm(points[:, None] - q, axis=-1), np.inf)]
    weights = [inside]
    for i, j in ((0, 1), (1, 2), (2, 0)):
        e = tri[:, j] - tri[:, i]
        t = np.clip(np.einsum("pfi,fi->pf", points[:, None] - tri[:, i], e) / (e**2).sum(1), 0.0, 1.0)
        distances.append(np.linalg.norm(points[:, None] - (tri[:, i] + t[..., None] * e), axis=-1))
        w = np.zeros(t.shape + (3,))
        w[..., i], w[..., j] = 1.0 - t, t
        weights.append(w)
    dist = np.stack(distances)  # (4, P, F)
    case, face = np.divmod(dist.transpose(1, 0, 2).reshape(len(points), -1).argmin(axis=1), len(tri))
    p = np.arange(len(points))
    return face, np.stack(weights)[case, p, face], dist[case, p, face]


def front_along_z(points: np.ndarray, tri: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Front-most point of triangles tri (F, 3, 3) on the line through each point (P, 3) parallel to Z:
    -> face (P,) int64, barycentric weights (P, 3) float64, signed distance along Z (P,) float64.
    Raises ValueError when a line misses every triangle."""
    a, b, c = (tri[:, i, :2] for i in range(3))
    with np.errstate(divide="ignore", invalid="ignore"):  # triangles seen edge-on are never hit
        w = barycentric2(points[:, None, :2], a, b, c)
    hit = (w >= -1e-9).all(axis=-1)  # a point on an edge shared by two triangles hits one of them
    z = np.where(hit, np.einsum("pfc,fc->pf", np.nan_to_num(w), tri[:, :, 2]), -np.inf)
    face = z.argmax(axis=1)
    p = np.arange(len(points))
    if not hit[p, face].all():
        raise ValueError(f"{int((~hit[p, face]).sum())} points have no surface in front of or behind them")
    return face, np.clip(w[p, face], 0.0, None), z[p, face] - points[:, 2]


def barycentric2(q: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Barycentric weights of 2D points q (P, F, 2) in triangles with corners a, b, c (F, 2) -> (P, F, 3)."""
    cross = lambda u, v: u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]  # noqa: E731
    area = cross(b - a, c - a)
    v, w = cross(q - a, c - a) / area, cross(b - a, q - a) / area
    return np.stack([1.0 - v - w, v, w], axis=-1)


def barycentric(q: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Barycentric weights of points q (P, F, 3) in triangles (F, 3) corners -> (P, F, 3)."""
    v0, v1, v2 = b - a, c - a, q - a
    d00, d01, d11 = (v0 * v0).sum(-1), (v0 * v1).sum(-1), (v1 * v1).sum(-1)
    d20, d21 = (v2 * v0).sum(-1), (v2 * v1).sum(-1)
    den = d00 * d11 - d01**2
    v = (d11 * d20 - d01 * d21) / den
    w = (d00 * d21 - d01 * d20) / den
    return np.stack([1.0 - v - w, v, w], axis=-1)


def on_edges(faces: np.ndarray, first: np.ndarray, second: np.ndarray,
             s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points (1 - s) V[first] + s V[second] (N,) as a triangle holding both vertices and its
    barycentric weights -> face (N,) int64, weights (N, 3)."""
    has = (faces[None] == first[:, None, None]).any(-1) & (faces[None] == second[:, None, None]).any(-1)
    face = has.argmax(1)
    if not has.any(1).all():
        raise ValueError("no triangle holds an edge's two vertices")
    corners = faces[face]
    w = (corners == first[:, None]) * (1.0 - s)[:, None] + (corners == second[:, None]) * s[:, None]
    return face, w


def along(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Fraction of the way from a (3,) to b (3,) of points p (N, 3) along the axis a -> b: (N,)."""
    return (p - a) @ (b - a) / ((b - a) @ (b - a))


def onto_margin(t: np.ndarray, margin: np.ndarray, V: np.ndarray, a: np.ndarray,
                b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points at fractions t (N,) of the way between corners a, b (3,), placed on the polyline of
    grid vertices ``margin`` (K,) -> first vertex (N,), second vertex (N,), s (N,)."""
    tk = along(V[margin], a, b)
    order = np.argsort(tk)
    tk, margin = tk[order], margin[order]
    k = np.clip(np.searchsorted(tk, t) - 1, 0, len(tk) - 2)
    s = np.clip((t - tk[k]) / (tk[k + 1] - tk[k]), 0.0, 1.0)
    return margin[k], margin[k + 1], s


Placement = tuple[np.ndarray, np.ndarray, np.ndarray]  # points (N,), faces (N,), weights (N, 3)


def anchors() -> tuple[np.ndarray, np.ndarray]:
    """ANCHORS as points (N,) int64 and the demo head's vertices at the ends of their edges (N, 2) int64."""
    points = np.array(list(ANCHORS), dtype=np.int64)
    ends = np.array([dh.grid_index(np.asarray(rings)[:, None], np.asarray(cols)[None, :]).ravel()[[0, -1]]
                     for rings, cols in ANCHORS.values()])
    return points, ends


def contour(canon: np.ndarray, V: np.ndarray, faces: np.ndarray, loop: np.ndarray, corners: tuple[int, int],
            rings: tuple[int, int], cols: tuple[int, int]) -> Placement:
    """A closed contour's points (loop (N,), its corner points excluded) on the margins of a slit:
    points above the corner-to-corner line on the upper margin ring, the others on the lower one, each
    at its fraction of the way from corner to corner. corners: MediaPipe points at columns cols."""
    a, b = canon[corners[0]], canon[corners[1]]
    A, B = (V[dh.grid_index(rings, c)].mean(axis=0) for c in cols)
    frac = along(canon[loop], a, b)
    above = canon[loop, 1] - (a[1] + frac * (b[1] - a[1])) > 0.0
    first, second, share = np.zeros(len(loop), np.int64), np.zeros(len(loop), np.int64), np.zeros(len(loop))
    for ring, sel in zip(rings, (above, ~above), strict=True):
        margin = dh.grid_index(ring, np.arange(min(cols), max(cols) + 1))
        first[sel], second[sel], share[sel] = onto_margin(frac[sel], margin, V, A, B)
    return (loop, *on_edges(faces, first, second, share))


def iris(canon: np.ndarray, V: np.ndarray, faces: np.ndarray, centre_point: int, first_vertex: int,
         scale: float) -> Placement:
    """An iris centre (MediaPipe ``centre_point``) at the front pole of the eyeball whose vertices
    start at ``first_vertex``, its 4 contour points (the next 4 MediaPipe points) on the eyeball at
    MediaPipe's iris radius times ``scale`` from the pole, in their directions from the centre."""
    eye = np.arange(first_vertex, first_vertex + dh.N_EYE)
    pole, centre = V[first_vertex], V[eye].mean(axis=0)
    radius = np.linalg.norm(pole - centre)
    polar = np.arcsin(scale * IRIS_RADIUS_CM / 100.0 / radius)
    ring = np.arange(centre_point + 1, centre_point + 5)
    side = (canon[ring] - canon[centre_point]) * [1.0, 1.0, 0.0]
    side /= np.linalg.norm(side, axis=1, keepdims=True)
    goal = centre + np.cos(polar) * (pole - centre) + radius * np.sin(polar) * side
    eye_faces = np.flatnonzero(np.isin(faces, eye).all(axis=1))
    f, w, _ = closest_on_triangles(goal, V[faces[eye_faces]])
    pole_face, pole_w = on_edges(faces, np.array([first_vertex]), np.array([first_vertex]), np.ones(1))
    return (np.concatenate([[centre_point], ring]), np.concatenate([pole_face, eye_faces[f]]),
            np.concatenate([pole_w, w]))


def report(name: str, distance: np.ndarray) -> None:
    print(f"{name}: {len(distance)} points, {1000 * distance.mean():.1f} mm on average, "
          f"{1000 * distance.max():.1f} mm at most", file=sys.stderr)


def main(obj: Path) -> None:
    canon = read_obj_vertices(obj)
    if len(canon) != 478:
        sys.exit(f"{obj}: {len(canon)} vertices; the face model with irises has 478")
    arrays = dh.demo_model_arrays()
    V, faces = arrays["v_template"], arrays["f"].astype(np.int64)
    sets = point_sets()

    anchor_points, ends = anchors()
    target = V[ends].mean(axis=1)
    M = similarity.umeyama(canon[anchor_points], target)
    scale, aligned = similarity.decompose(M)[0], similarity.transform(M, canon)
    report("anchors from the similarity transform", np.linalg.norm(aligned[anchor_points] - target, axis=1))
    bent = thin_plate_spline(aligned[anchor_points], target)(aligned)
    placements = [(anchor_points, *on_edges(faces, ends[:, 0], ends[:, 1], np.full(len(ends), 0.5)))]

    eyes = sets["eyes"]
    slits = [(eyes[canon[eyes, 0] < 0], (33, 133), (LID, LID + 1), (R_OUTER, R_INNER)),  # subject's right eye
             (eyes[canon[eyes, 0] > 0], (362, 263), (LID, LID + 1), (L_INNER, L_OUTER)),
             (component(sets["lip_edges"], 13), (78, 308), (LIP, LIP + 1), (MOUTH_R, MOUTH_L))]  # inner lips
    for loop, corners, rings, cols in slits:
        placed = contour(canon, V, faces, np.setdiff1d(loop, anchor_points), corners, rings, cols)
        report(f"contour {corners} from the bent face", np.linalg.norm(
            bent[placed[0]] - np.einsum("nc,ncx->nx", placed[2], V[faces[placed[1]]]), axis=1))
        placements.append(placed)

    placements += [iris(canon, V, faces, 468, dh.N_HEAD + dh.N_EYE, scale),  # subject's right eye
                   iris(canon, V, faces, 473, dh.N_HEAD, scale)]

    done = np.concatenate([p[0] for p in placements])
    rest = np.setdiff1d(np.concatenate([sets[k] for k in ("lips", "brows", "nose", "oval")]), done)
    head_faces = np.flatnonzero((faces < dh.N_HEAD).all(axis=1))
    f, w, depth = front_along_z(bent[rest], V[faces[head_faces]])
    report("other points from the bent face to the surface along Z", np.abs(depth))
    placements.append((rest, head_faces[f], w))

    points, face_idx, weights = (np.concatenate(parts) for parts in zip(*placements, strict=True))
    assert len(np.unique(points)) == len(points)
    print(f"similarity scale {scale:.3f}; {len(points)} points", file=sys.stderr)
    print(table_literal(points, face_idx, weights))


def table_literal(points: np.ndarray, face_idx: np.ndarray, weights: np.ndarray, per_line: int = 3) -> str:
    """The ``_TABLE`` string of demo/embedding.py: ``point face b0 b1 b2`` rows (points (N,),
    face_idx (N,), weights (N, 3)) sorted by point, weights to 4 decimals summing to 1, ``per_line``
    rows a line."""
    order = np.argsort(points)
    w = np.round(weights[order] / weights[order].sum(axis=1, keepdims=True), 4)
    w[np.arange(len(w)), w.argmax(axis=1)] += 1.0 - w.sum(axis=1)
    cells = [f"{p:3d} {f:4d} " + " ".join(f"{x:.4f}" for x in row)
             for p, f, row in zip(points[order], face_idx[order], w, strict=True)]
    lines = ["   ".join(cells[i:i + per_line]) for i in range(0, len(cells), per_line)]
    return '_TABLE = """\\\n' + "\n".join(lines) + '\n"""'


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
