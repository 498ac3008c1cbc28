"""A procedurally generated demo head in FLAME's exact layout, so the add-on works without FLAME.

``demo_model_arrays()`` returns the keys, shapes and dtypes of a FLAME pickle (see
:func:`.synthetic.random_model_arrays`) for a stylised head and neck in FLAME's axes (+X subject's
left, +Y up, +Z forward, metres): 5023 vertices and 9976 triangles, eyeball vertices last, so
FLAME-indexed assets (eyelid blendshapes, landmark embeddings) fit it. Nothing here derives from
FLAME's data; the arrays are built at runtime in a fraction of a second.

Topology (fixed, independent of the seed):

- head: a latitude-longitude grid with a top pole (vertex 0) and ``N_ROWS`` rings of ``N_COLS``
  vertices, ring ``r`` column ``c`` at ``1 + r * N_COLS + c``: 4019 vertices. Columns run from the
  back of the head (c = 0) through the subject's right to the front (between c = 40 and 41) and the
  left; column c mirrors column ``N_COLS - 1 - c``. Faces: a pole cap, two triangles per grid quad,
  and a zig-zag strip closing the neck (8034 triangles), less 29 quads cut out of one row gap each:
  the mouth (13 quads below ring ``LIP_ROW``) and the two eyes (8 quads below ring ``LID_ROW``),
  leaving 7976 triangles. Ring ``LIP_ROW`` is the upper lip margin, the next ring the lower one;
  likewise ``LID_ROW`` and the next ring are the upper and lower eyelid margins.
- eyeballs: left (+X, joint 3) then right (joint 4), each a UV sphere of ``EYE_SEGMENTS`` x
  ``EYE_RINGS`` vertices plus a front pole (the pupil) and a back pole: 502 vertices, 1000 triangles.

Components: 300 identity directions (the first ``IDENTITY_NAMES`` semantic, the rest smooth random
fields of decreasing size, like PCA), 100 expression directions (the first ``EXPRESSION_NAMES``
semantic, at coefficient 1 a full expression; the rest smooth local fields in the face) and 36 pose
correctives (neck bulges, jaw, eyelids following the gaze).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .model import N_JOINTS, N_POSE_FEATURES, N_SHAPE_MAX, FlameModel, model_from_arrays
from .synthetic import FLAME_COMPONENTS, kintree_table

N_ROWS, N_COLS = 49, 82
N_HEAD = 1 + N_ROWS * N_COLS  # 4019
EYE_SEGMENTS, EYE_RINGS = 25, 20
N_EYE = EYE_SEGMENTS * EYE_RINGS + 2  # 502
N_VERTS = N_HEAD + 2 * N_EYE  # 5023, as FLAME
LID_ROW = 15  # upper eyelid margin ring; LID_ROW + 1 is the lower margin
LIP_ROW = 29  # upper lip margin ring; LIP_ROW + 1 is the lower margin
MOUTH_QUADS = np.arange(34, 47)  # grid quads (columns c, c + 1) cut below ring LIP_ROW
LEFT_EYE_QUADS = np.arange(47, 55)  # cut below ring LID_ROW; the right eye mirrors them
EYE_RADIUS = 0.0125
N_EXPR = FLAME_COMPONENTS - N_SHAPE_MAX

IDENTITY_NAMES = {
    "head_size": 0, "head_width": 1, "head_length": 2, "face_length": 3, "nose_length": 4,
    "nose_width": 5, "chin": 6, "cheekbones": 7, "jaw_width": 8, "brow_ridge": 9, "ears": 10,
}
"""Semantic identity components (indices into the 300 identity columns); +1 = bigger/longer."""

EXPRESSION_NAMES = {
    "smile": 0, "frown": 1, "mouth_wide": 2, "lip_pucker": 3, "lips_part": 4, "brow_raise": 5,
    "brow_furrow": 6, "blink_L": 7, "blink_R": 8, "squint_L": 9, "squint_R": 10, "cheek_puff": 11,
    "sneer_L": 12, "sneer_R": 13,
}
"""Semantic expression components (indices into the 100 expression columns); 1 = full expression.
``_L``/``_R`` are the subject's left (+X) and right. Later columns are smooth local face fields."""

# Meridian profiles of the featureless head, top pole to neck base, as control points
# (distance from the grid's vertical axis, y) in metres; the front, side and back meridians.
_PROFILES = (
    np.array([[0.0, 0.132], [0.045, 0.125], [0.075, 0.1], [0.09, 0.065], [0.093, 0.04], [0.088, 0.022],
              [0.089, 0.0], [0.092, -0.025], [0.093, -0.045], [0.092, -0.056], [0.087, -0.067],
              [0.088, -0.08], [0.075, -0.095], [0.053, -0.103], [0.048, -0.115], [0.051, -0.15],
              [0.059, -0.19]]),
    np.array([[0.0, 0.132], [0.035, 0.127], [0.06, 0.11], [0.074, 0.08], [0.078, 0.045], [0.076, 0.015],
              [0.073, -0.015], [0.068, -0.045], [0.062, -0.065], [0.057, -0.085], [0.055, -0.11],
              [0.056, -0.15], [0.062, -0.19]]),
    np.array([[0.0, 0.132], [0.04, 0.127], [0.08, 0.108], [0.107, 0.078], [0.118, 0.04], [0.12, 0.01],
              [0.112, -0.02], [0.095, -0.045], [0.075, -0.065], [0.06, -0.085], [0.056, -0.11],
              [0.057, -0.15], [0.063, -0.19]]),
)
# Rings pinned to heights on each profile (ring -1 is the pole): brow, eyes (between the eyelid
# margins), lips (between the lip margins), chin or jaw angle, neck base.
_ANCHOR_RINGS = np.array([-1.0, 8.0, LID_ROW + 0.5, LIP_ROW + 0.5, 36.0, N_ROWS - 1.0])
_ANCHOR_HEIGHTS = np.array([[0.132, 0.075, 0.019, -0.0512, -0.095, -0.19],
                            [0.132, 0.08, 0.02, -0.054, -0.085, -0.19],
                            [0.132, 0.09, 0.03, -0.055, -0.085, -0.19]])
_AXIS_Z = -0.035  # z of the grid's vertical axis; column angles are measured about it
_TOP = np.array([0.0, 0.132, -0.036])


@dataclass(frozen=True)
class _Shape:
    """Parameters of the generated geometry; semantic components are differences of two shapes.

    Identity: scale_* are relative scalings; the feature amplitudes are multipliers of the neutral
    nose, chin, cheekbones, brow ridge and ears. Expression: lid_* are eyelid openings (1 open,
    0 closed) per eye (left, right); gaze_* rotate the lid design (radians) for the correctives.
    """

    scale: float = 1.0
    scale_x: float = 1.0
    scale_z: float = 1.0
    face_length: float = 1.0
    nose: float = 1.0
    nose_width: float = 1.0
    chin: float = 1.0
    cheekbones: float = 1.0
    jaw_width: float = 1.0
    brow_ridge: float = 1.0
    ears: float = 1.0
    lid_upper: tuple[float, float] = (1.0, 1.0)
    lid_lower: tuple[float, float] = (1.0, 1.0)
    gaze_up: tuple[float, float] = (0.0, 0.0)
    gaze_side: tuple[float, float] = (0.0, 0.0)


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    """0 at e0, 1 at e1 (either order), C1 in between. x: any shape -> same shape float64."""
    t = np.clip((np.asarray(x, dtype=np.float64) - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _bump(t: np.ndarray) -> np.ndarray:
    """Compact C1 bump (1 - t^2)^2 on |t| < 1, 0 outside. t: any shape -> same shape."""
    return np.clip(1.0 - np.asarray(t) ** 2, 0.0, None) ** 2


def _spline(knots: np.ndarray, values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Catmull-Rom spline through (knots (K,), values (K, D)) at x (N,) -> (N, D)."""
    return _hermite(knots, values, np.gradient(values, knots, axis=0), x)


def _monotone(knots: np.ndarray, values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Monotone cubic (Fritsch-Carlson) through increasing (knots, values) (K,) at x (N,) -> (N,)."""
    secant = np.diff(values) / np.diff(knots)
    inner = 2.0 * secant[:-1] * secant[1:] / (secant[:-1] + secant[1:])  # harmonic mean, > 0
    return _hermite(knots, values, np.concatenate([[secant[0]], inner, [secant[-1]]]), x)


def _hermite(knots: np.ndarray, values: np.ndarray, slopes: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Cubic Hermite interpolation. knots, values, slopes: (K,) or (K, D); x: (N,) -> (N,) or (N, D)."""
    i = np.clip(np.searchsorted(knots, x, side="right") - 1, 0, len(knots) - 2)
    h = knots[i + 1] - knots[i]
    t = (x - knots[i]) / h
    if values.ndim == 2:
        t, h = t[:, None], h[:, None]
    h00, h10 = 2 * t**3 - 3 * t**2 + 1, t**3 - 2 * t**2 + t
    h01, h11 = -2 * t**3 + 3 * t**2, t**3 - t**2
    return h00 * values[i] + h10 * h * slopes[i] + h01 * values[i + 1] + h11 * h * slopes[i + 1]


def _profile_rings(points: np.ndarray, heights: np.ndarray) -> np.ndarray:
    """Samples one meridian at the grid rings. points: (P, 2) control points, heights: anchor
    heights (6,) -> (N_ROWS, 2) float64 (distance from the axis, y).

    The curve is a chord-length Catmull-Rom spline; rings are spaced along its arc length by a
    monotone cubic through the anchor rings, so the spacing varies smoothly.
    """
    chord = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    dense = _spline(chord, points, np.linspace(0.0, chord[-1], 1200))
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))])
    anchor_arc = np.interp(-heights, -dense[:, 1], arc)
    ring_arc = _monotone(_ANCHOR_RINGS, anchor_arc, np.arange(N_ROWS, dtype=np.float64))
    return np.stack([np.interp(ring_arc, arc, dense[:, 0]), np.interp(ring_arc, arc, dense[:, 1])], axis=1)


def column_angles() -> np.ndarray:
    """Angle of each grid column about the vertical axis, 0 = front, +pi/2 = left: (N_COLS,) float64.

    Uniform steps warped by ``phi - 0.58 sin(phi)`` so columns are 2.6 times denser at the face
    than at the back of the head.
    """
    phi = 2.0 * np.pi * (np.arange(N_COLS) + 0.5) / N_COLS - np.pi
    return phi - 0.58 * np.sin(phi)


def _base_grid() -> np.ndarray:
    """The featureless head and neck: (N_ROWS, N_COLS, 3) float64.

    Front, side and back meridian profiles blend around the head as 1, cos and cos^2 harmonics.
    """
    (front_r, front_y), (side_r, side_y), (back_r, back_y) = (
        _profile_rings(points, heights).T for points, heights in zip(_PROFILES, _ANCHOR_HEIGHTS))
    theta = column_angles()
    c1, c2 = np.cos(theta)[None, :], np.cos(theta)[None, :] ** 2

    def blend(front: np.ndarray, side: np.ndarray, back: np.ndarray) -> np.ndarray:
        f, s, b = front[:, None], side[:, None], back[:, None]
        return s + 0.5 * (f - b) * c1 + (0.5 * (f + b) - s) * c2

    radius, y = blend(front_r, side_r, back_r), blend(front_y, side_y, back_y)
    return np.stack([radius * np.sin(theta), y, _AXIS_Z + radius * np.cos(theta)], axis=-1)


def eye_centres(shape: _Shape = _Shape()) -> np.ndarray:
    """Eyeball centres, left (+X) then right: (2, 3) float64."""
    left = np.array([0.0315, 0.0195, 0.031])
    return _global_scale(np.stack([left, left * [-1, 1, 1]]), shape)


def _global_scale(p: np.ndarray, shape: _Shape) -> np.ndarray:
    """Head size, width and length scalings about a point in the head. p: (..., 3) -> (..., 3)."""
    centre = np.array([0.0, 0.0, -0.04])
    factors = shape.scale * np.array([shape.scale_x, 1.0, shape.scale_z])
    return centre + (p - centre) * factors


def _features(base: np.ndarray, shape: _Shape) -> np.ndarray:
    """Displacements of nose, brow ridge, cheekbones, chin, jaw and ears. base: (R, C, 3) -> (R, C, 3)."""
    x, y, z = base[..., 0], base[..., 1], base[..., 2]
    ax = np.abs(x)
    out = np.zeros_like(base)
    # nose: a ridge from the nasion to the tip, rounded below the tip, widening at the wings
    ridge = np.interp(y, [-0.032, -0.027, -0.022, -0.016, 0.0, 0.024, 0.032],
                      [0.0, 0.010, 0.0185, 0.0195, 0.0115, 0.0025, 0.0])
    half_width = np.interp(y, [-0.03, -0.02, 0.0, 0.025], [0.014, 0.012, 0.008, 0.007]) * shape.nose_width
    nose = shape.nose * ridge * _bump(x / half_width)
    wings = 0.0045 * shape.nose * _bump(np.hypot((ax - 0.0125 * shape.nose_width) / 0.007,
                                                 (y + 0.0245) / 0.008))
    out[..., 2] += nose + wings
    brow = 0.003 * shape.brow_ridge * _bump((y - 0.036) / 0.014) * _bump(x / 0.06)
    sockets = 0.008 * _bump(np.hypot((ax - 0.03) / 0.022, (y - 0.018) / 0.02) ** 2)
    out[..., 2] += brow - sockets
    radial = np.stack([np.sin(np.arctan2(x, z - _AXIS_Z)), np.zeros_like(x),
                       np.cos(np.arctan2(x, z - _AXIS_Z))], axis=-1)
    front = z > _AXIS_Z
    cheek = 0.003 * shape.cheekbones * _bump(np.hypot((ax - 0.045) / 0.03, (y + 0.002) / 0.026)) * front
    chin = 0.004 * shape.chin * _bump(np.hypot(x / 0.024, (y + 0.08) / 0.02)) * front
    out += (cheek + chin)[..., None] * radial
    out[..., 2] += 0.008 * (shape.chin - 1.0) * _bump(np.hypot(x / 0.03, (y + 0.08) / 0.03)) * front
    lower = _smoothstep(-0.035, -0.06, y) * _smoothstep(-0.125, -0.1, y) * front
    out[..., 0] += (shape.jaw_width - 1.0) * 0.12 * x * lower
    out[..., 1] += (shape.face_length - 1.0) * 0.2 * np.clip(y - 0.02, -0.12, 0.0) * _smoothstep(
        -0.12, -0.03, z)
    # ears: a slab leaning back from the side of the head, cupped towards its rim
    ear_r = np.hypot((y - 0.002) / (0.029 * shape.ears), (z + 0.045) / (0.016 * shape.ears))
    ear = 0.020 * shape.ears * _bump(ear_r ** 2) * (0.55 + 0.45 * _smoothstep(0.2, 0.9, ear_r))
    out[..., 0] += np.sign(x) * ear
    out[..., 2] -= 0.45 * ear
    return out


def _lips(grid: np.ndarray) -> np.ndarray:
    """Closes the lips onto one line and shapes them. grid: (R, C, 3) -> (R, C, 3) new array."""
    g = grid.copy()
    s = np.arange(N_ROWS)[:, None] - (LIP_ROW + 0.5)  # +-0.5 at the lip margins
    u = (np.arange(N_COLS)[None, :] - 40.5) / (0.5 * len(MOUTH_QUADS))  # +-1 at the mouth corners
    inside = 1.0 - _smoothstep(0.9, 1.6, np.abs(u))
    line = -0.0512 + 0.001 * np.clip(u, -1.0, 1.0) ** 2  # the lip line curves up a touch
    squeeze = np.interp(np.abs(s), [0.5, 1.5, 2.5], [0.85, 0.3, 0.0]) * inside
    g[..., 1] = line + (g[..., 1] - line) * (1.0 - squeeze)
    g[..., 0] *= 1.0 + 0.12 * _bump(s / 4.0) * _bump(u / 1.8)
    width = np.sqrt(np.clip(1.0 - u**2, 0.0, None))
    forward = np.interp(s, [-3.5, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, 4.5],
                        [0.0, 0.0025, 0.0042, 0.0018, 0.0014, 0.0045, 0.0025, -0.0012, 0.0])
    corner = -0.003 * _bump((np.abs(u) - 1.0) / 0.7) * _bump(s / 3.5)
    g[..., 2] += forward * width + corner
    return g


def _eyelids(grid: np.ndarray, shape: _Shape) -> np.ndarray:
    """Wraps the skin around each eye hole onto its eyeball. grid: (R, C, 3) -> (R, C, 3) new array.

    Lid rings are placed around the eyeball centre by azimuth (from the columns) and elevation
    (from the rings): the margins bound an almond-shaped opening just outside the eyeball, the three
    rings beyond each margin rise towards the brow or the cheek, and the result blends into the
    surrounding skin over an elliptical region.
    """
    g = grid.copy()
    rows = np.arange(N_ROWS)[:, None]
    is_upper = rows <= LID_ROW
    rings_out = np.where(is_upper, LID_ROW - rows, rows - LID_ROW - 1)  # 0 at the margins
    frac = np.clip(rings_out / 3.0, 0.0, 1.0)
    relax = np.zeros((N_ROWS, N_COLS))
    for side, centre in enumerate(eye_centres(shape)):
        cols = np.arange(N_COLS) if side == 0 else N_COLS - 1 - np.arange(N_COLS)
        u = ((cols - 51.0) / 4.0)[None, :]  # -1 inner corner, +1 outer corner
        opening = np.clip(1.0 - u**2, 0.0, None) ** 0.6
        lower_margin = np.radians(18.0) * opening * shape.lid_lower[side] + np.radians(2.0)
        open_upper = np.radians(24.0) * opening + np.radians(2.0)
        upper_margin = open_upper * shape.lid_upper[side] + (np.radians(0.5) - lower_margin) * (
            1.0 - shape.lid_upper[side])
        elevation = np.where(is_upper, upper_margin + (np.radians(50.0) - upper_margin) * frac,
                             -lower_margin - (np.radians(48.0) - lower_margin) * frac)
        elevation = elevation + shape.gaze_up[side] * np.where(is_upper, 1.0, 0.6) * (1.0 - frac)
        azimuth = (np.radians(57.0) * np.clip(u, -1.15, 1.15) + np.radians(4.0)
                   + shape.gaze_side[side] * 0.5 * _bump(u / 2.0))
        azimuth = np.broadcast_to(azimuth, elevation.shape)
        radius = (EYE_RADIUS * shape.scale + 0.0011 + 0.0075 * frac**2
                  + 0.008 * _smoothstep(1.0, 2.2, np.abs(u)))
        direction = np.stack([np.cos(elevation) * np.sin(azimuth) * (1 - 2 * side), np.sin(elevation),
                              np.cos(elevation) * np.cos(azimuth)], axis=-1)
        design = centre + radius[..., None] * direction
        spread = np.hypot(1.1 * np.clip(np.abs(u) - 1.0, 0.0, None), rings_out / 3.2)
        w = (1.0 - _smoothstep(0.35, 1.25, spread))[..., None]
        g = g * (1.0 - w) + design * w
        relax = relax + 0.5 * (1.0 - _smoothstep(1.0, 1.8, spread)) * ((rings_out > 0) | (np.abs(u) > 1.0))
    return _relax(g, relax, 6)


def _relax(grid: np.ndarray, amount: np.ndarray, iterations: int) -> np.ndarray:
    """Laplacian smoothing on the grid. grid: (R, C, 3); amount: (R, C) step towards the mean of the
    four neighbours (0 pins a vertex) -> (R, C, 3) new array."""
    g = grid.copy()
    a = amount[..., None]
    for _ in range(iterations):
        up = np.concatenate([g[:1], g[:-1]])
        down = np.concatenate([g[1:], g[-1:]])
        mean = 0.25 * (up + down + np.roll(g, 1, axis=1) + np.roll(g, -1, axis=1))
        g = g + a * (mean - g)
    return g


def _head_grid(shape: _Shape) -> np.ndarray:
    """All head vertices on the grid, features included: (N_ROWS, N_COLS, 3) float64."""
    base = _base_grid()
    grid = _lips(base + _features(base, shape))
    grid = _global_scale(grid, shape)
    return _eyelids(grid, shape)


def _sphere_directions() -> np.ndarray:
    """Unit vectors of one eyeball, front pole (+Z) first, then rings, then the back pole: (N_EYE, 3)."""
    polar = np.pi * np.arange(1, EYE_RINGS + 1) / (EYE_RINGS + 1)
    azimuth = 2.0 * np.pi * np.arange(EYE_SEGMENTS) / EYE_SEGMENTS
    ring = np.stack([np.sin(polar)[:, None] * np.cos(azimuth), np.sin(polar)[:, None] * np.sin(azimuth),
                     np.cos(polar)[:, None] * np.ones_like(azimuth)], axis=-1).reshape(-1, 3)
    return np.concatenate([[[0.0, 0.0, 1.0]], ring, [[0.0, 0.0, -1.0]]])


def _vertices(shape: _Shape) -> np.ndarray:
    """Every vertex: pole, grid rings, left eyeball, right eyeball. -> (N_VERTS, 3) float64."""
    grid = _head_grid(shape)
    top = _global_scale(_TOP, shape)
    eyes = eye_centres(shape)[:, None, :] + EYE_RADIUS * shape.scale * _sphere_directions()[None]
    return np.concatenate([top[None], grid.reshape(-1, 3), eyes.reshape(-1, 3)])


def _grid_index(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Vertex index of grid ring ``rows``, column ``cols`` (columns wrap). Broadcasts; int64."""
    return 1 + np.asarray(rows) * N_COLS + np.asarray(cols) % N_COLS


def _strip(loop: np.ndarray) -> np.ndarray:
    """Zig-zag triangulation of a polygon loop (n,) int, keeping its winding -> (n - 2, 3) int64."""
    n = len(loop)
    order = np.zeros(n, dtype=np.int64)  # 0, 1, n - 1, 2, n - 2, ...
    order[1::2] = 1 + np.arange(n // 2)
    order[2::2] = n - 1 - np.arange((n - 1) // 2)
    s = loop[order]
    tri = np.stack([s[:-2], s[1:-1], s[2:]], axis=1)
    tri[1::2, :2] = tri[1::2, 1::-1]
    return tri


def _sphere_faces(offset: int, segments: int, rings: int) -> np.ndarray:
    """Outward triangles of a UV sphere laid out as :func:`_sphere_directions`: (2 s r, 3) int64."""
    j = np.arange(segments)
    nxt = (j + 1) % segments
    ring = lambda k: 1 + k * segments  # noqa: E731 - first vertex of ring k
    last = 1 + rings * segments
    front = np.stack([np.zeros(segments, dtype=np.int64), ring(0) + j, ring(0) + nxt], axis=1)
    k = np.arange(rings - 1)[:, None]
    a, b = ring(k) + j, ring(k) + nxt
    c, d = ring(k + 1) + j, ring(k + 1) + nxt
    quads = np.stack([np.stack([a, c, d], -1), np.stack([a, d, b], -1)], axis=2).reshape(-1, 3)
    back = np.stack([np.full(segments, last), ring(rings - 1) + nxt, ring(rings - 1) + j], axis=1)
    return offset + np.concatenate([front, quads, back])


def cut_quads() -> np.ndarray:
    """Grid quads removed for the mouth and eyes as (ring above, column) pairs: (29, 2) int64."""
    right_eye = N_COLS - 2 - LEFT_EYE_QUADS
    return np.concatenate([np.stack([np.full(len(q), row), q], axis=1) for row, q in
                           ((LIP_ROW, MOUTH_QUADS), (LID_ROW, LEFT_EYE_QUADS), (LID_ROW, right_eye))])


def faces() -> np.ndarray:
    """All triangles, outward, head then left and right eyeballs: (9976, 3) int64."""
    c = np.arange(N_COLS)
    top = np.stack([np.zeros(N_COLS, dtype=np.int64), _grid_index(0, c), _grid_index(0, c + 1)], axis=1)
    keep = np.ones((N_ROWS - 1, N_COLS), dtype=bool)
    cut = cut_quads()
    keep[cut[:, 0], cut[:, 1]] = False
    r, c = np.nonzero(keep)
    a, b = _grid_index(r, c), _grid_index(r, c + 1)
    lo_a, lo_b = _grid_index(r + 1, c), _grid_index(r + 1, c + 1)
    quads = np.stack([np.stack([a, lo_a, lo_b], -1), np.stack([a, lo_b, b], -1)], axis=1).reshape(-1, 3)
    bottom = _strip(_grid_index(N_ROWS - 1, -np.arange(N_COLS)))
    eyes = [_sphere_faces(N_HEAD + i * N_EYE, EYE_SEGMENTS, EYE_RINGS) for i in range(2)]
    return np.concatenate([top, quads, bottom, *eyes])


def _jaw_fraction() -> np.ndarray:
    """Share of the jaw in each grid vertex's head/jaw split: (N_ROWS, N_COLS) float64 in [0, 1].

    Near the mouth the share is 0.5 - sin(nu) / 2 in elliptic coordinates (mu, nu) whose foci are
    the mouth corners: 0 along the upper lip, 1 along the lower lip, 0.5 at the corners, so the lips
    part in a lens shape and the slit is the only discontinuity. Farther away a band rising from
    the lip line to the ear takes over, fading behind the jaw and below the jaw line.
    """
    half = 0.5 * len(MOUTH_QUADS)
    rows, cols = np.arange(N_ROWS)[:, None], np.arange(N_COLS)[None, :]
    s = rows - (LIP_ROW + 0.5)  # rings below the lip line
    X, Y = (cols - 40.5) / half, -s / half
    q = X**2 + Y**2 - 1.0
    sin_nu = np.sign(Y) * np.sqrt(0.5 * (np.sqrt(q**2 + 4.0 * Y**2) - q))
    near = 0.5 - 0.5 * sin_nu
    theta = np.abs(column_angles())[None, :]
    far = _smoothstep(-2.5, 2.5, s + 7.0 * _smoothstep(0.45, 1.3, theta))
    mix = _smoothstep(2.0, 5.0, np.hypot(np.clip(np.abs(cols - 40.5) - half, 0.0, None), s))
    fraction = near * (1.0 - mix) + far * mix
    jaw_line = 35.0 - 4.0 * _smoothstep(0.3, 1.2, theta)  # ring where the chin or jaw meets the neck
    return fraction * (1.0 - _smoothstep(1.1, 1.9, theta)) * (1.0 - _smoothstep(jaw_line, jaw_line + 10.0, rows))


def _skin_weights(head: np.ndarray) -> np.ndarray:
    """Linear blend skinning weights. head: (N_HEAD, 3) template -> (N_VERTS, 5) float64, rows sum to 1.

    The lower neck follows the root, the head the neck joint, lower lip, chin and jaw line the jaw,
    each eyeball its eye joint.
    """
    root = _smoothstep(-0.095, -0.165, head[:, 1])
    jaw = np.concatenate([[0.0], _jaw_fraction().ravel()])
    weights = np.zeros((N_VERTS, N_JOINTS))
    weights[:N_HEAD, 0] = root
    weights[:N_HEAD, 1] = (1.0 - root) * (1.0 - jaw)
    weights[:N_HEAD, 2] = (1.0 - root) * jaw
    weights[N_HEAD:N_HEAD + N_EYE, 3] = 1.0
    weights[N_HEAD + N_EYE:, 4] = 1.0
    return weights


def _joint_regressor(head: np.ndarray) -> np.ndarray:
    """(5, N_VERTS) float64, rows sum to 1: root and neck are centres of neck rings, the jaw is
    between two patches in front of the ears, and each eye the mean of its eyeball's vertices."""
    reg = np.zeros((N_JOINTS, N_VERTS))
    reg[0, _grid_index(46, np.arange(N_COLS))] = 1.0
    reg[1, _grid_index(37, np.arange(N_COLS))] = 1.0
    hinge = np.array([0.07, -0.008, -0.022])
    for sign in (1.0, -1.0):
        reg[2, :N_HEAD] += _bump(np.linalg.norm(head - hinge * [sign, 1, 1], axis=1) / 0.018)
    reg[3, N_HEAD:N_HEAD + N_EYE] = 1.0
    reg[4, N_HEAD + N_EYE:] = 1.0
    return reg / reg.sum(axis=1, keepdims=True)


def _blob(points: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    """Compact bump around centre. points: (N, 3), centre: (3,) -> (N,) float64 in [0, 1]."""
    return _bump(np.linalg.norm(points - centre, axis=1) / radius)


def _rbf_fields(points: np.ndarray, centres: np.ndarray, radius: float, coeffs: np.ndarray) -> np.ndarray:
    """Smooth random vector fields. points: (N, 3), centres: (M, 3), coeffs: (M, 3 K) -> (N, 3, K)."""
    dist2 = np.einsum("nmc,nmc->nm", points[:, None] - centres, points[:, None] - centres)
    phi = np.exp(-0.5 * dist2 / radius**2)
    phi /= phi.sum(axis=1, keepdims=True) + 1e-3
    return (phi @ coeffs).reshape(len(points), 3, -1)


def _normalised(dirs: np.ndarray, rms: np.ndarray, region: np.ndarray | None = None) -> np.ndarray:
    """Scale each component to a root-mean-square vertex displacement over a region.

    dirs: (V, 3, K); rms: (K,); region: (V,) weights, default all vertices -> (V, 3, K).
    """
    region = np.ones(len(dirs)) if region is None else region
    current = np.sqrt(np.einsum("v,vck,vck->k", region, dirs, dirs) / region.sum())
    return dirs * (rms / np.maximum(current, 1e-12))


_IDENTITY_STEPS = (  # (field, value at +1) for IDENTITY_NAMES in order
    ("scale", 1.035), ("scale_x", 1.045), ("scale_z", 1.04), ("face_length", 1.06), ("nose", 1.3),
    ("nose_width", 1.25), ("chin", 1.8), ("cheekbones", 1.7), ("jaw_width", 1.7), ("brow_ridge", 1.7),
    ("ears", 1.2),
)


def _semantic_identity(neutral: np.ndarray) -> np.ndarray:
    """Identity components named in IDENTITY_NAMES: (N_VERTS, 3, 11) float64."""
    return np.stack([_vertices(replace(_Shape(), **{field: value})) - neutral
                     for field, value in _IDENTITY_STEPS], axis=-1)


def _random_identity(rng: np.random.Generator, head: np.ndarray, eyes: np.ndarray, count: int) -> np.ndarray:
    """Smooth random identity fields, coarse first: (N_VERTS, 3, count) float64, RMS 1.

    Each eyeball moves rigidly with the field at its centre.
    """
    points = np.concatenate([head, eyes])
    fields = []
    for radius, n_centres in ((0.05, 48), (0.025, 160)):
        centres = head[rng.choice(N_HEAD, n_centres, replace=False)]
        fields.append(_rbf_fields(points, centres, radius, rng.normal(size=(n_centres, 3 * count))))
    detail = np.linspace(0.0, 1.0, count)
    mixed = _normalised(fields[0], np.ones(count)) * (1 - detail) + _normalised(fields[1], np.ones(count)) * detail
    out = np.concatenate([mixed[:N_HEAD], np.repeat(mixed[N_HEAD:], N_EYE, axis=0)])
    return _normalised(out, np.ones(count))


def _identity_dirs(rng: np.random.Generator, neutral: np.ndarray) -> np.ndarray:
    """All 300 identity directions, RMS decreasing like PCA: (N_VERTS, 3, 300) float64."""
    semantic = _semantic_identity(neutral)
    n = semantic.shape[2]
    rms = 0.004 / (1.0 + np.arange(N_SHAPE_MAX) / 6.0)
    random = _random_identity(rng, neutral[:N_HEAD], eye_centres(), N_SHAPE_MAX - n)
    semantic_rms = np.sqrt(np.einsum("vck,vck->k", semantic, semantic) / N_VERTS)
    # semantic steps are sized by hand; keep their order of variance but cap them
    semantic = semantic * np.minimum(1.0, rms[:n] * 1.5 / semantic_rms)
    return np.concatenate([semantic, random * rms[n:]], axis=2)


@dataclass(frozen=True)
class _Landmarks:
    """Template points the semantic fields are placed around, (3,) float64 each, left (+X) side."""

    corner: np.ndarray  # mouth corner
    mouth: np.ndarray  # centre of the lips
    brow: np.ndarray  # above the eye's centre


def _landmarks(grid: np.ndarray) -> _Landmarks:
    corner_col = 40 + len(MOUTH_QUADS) // 2 + 1
    corner = grid[LIP_ROW:LIP_ROW + 2, corner_col].mean(axis=0)
    mouth = grid[LIP_ROW:LIP_ROW + 2, 40:42].reshape(-1, 3).mean(axis=0)
    brow = eye_centres()[0] + [0.0, 0.018, 0.022]
    return _Landmarks(corner=corner, mouth=mouth, brow=brow)


def _mirror(v: np.ndarray) -> np.ndarray:
    """Reflect points or vectors through x = 0. (..., 3) -> (..., 3)."""
    return v * np.array([-1.0, 1.0, 1.0])


def _semantic_expressions(neutral: np.ndarray) -> np.ndarray:
    """Expression components named in EXPRESSION_NAMES: (N_VERTS, 3, 14) float64.

    Eyelid closing is the difference of two generated heads; the rest are displacement fields
    around template landmarks, mirrored for the subject's right side.
    """
    head = neutral[:N_HEAD]
    grid = head[1:].reshape(N_ROWS, N_COLS, 3)
    mark = _landmarks(grid)
    lower = np.concatenate([[0.0], _jaw_fraction().ravel()])  # 0 upper lip, 1 lower lip, continuous
    front = _smoothstep(-0.01, 0.02, head[:, 2])
    sides = (1.0, -1.0)

    def pair(centre: np.ndarray, radius: float, move: np.ndarray) -> np.ndarray:
        """The same move around a left landmark and, mirrored, around the right one. -> (N_HEAD, 3)."""
        return sum(_blob(head, centre * [s, 1, 1], radius)[:, None] * (move * [s, 1, 1]) for s in sides)

    def one(side: int, centre: np.ndarray, radius: float, move: np.ndarray) -> np.ndarray:
        s = sides[side]
        return _blob(head, centre * [s, 1, 1], radius)[:, None] * (move * [s, 1, 1])

    lips = _blob(head, mark.mouth, 0.03)[:, None] * front[:, None]
    brows = (_bump((head[:, 1] - 0.05) / 0.035) * _bump(head[:, 0] / 0.075) * front)[:, None]
    cheek = mark.corner + [0.014, 0.024, -0.008]
    fields = {
        "smile": pair(mark.corner, 0.03, np.array([0.004, 0.0065, -0.003]))
        + pair(cheek, 0.024, np.array([0.0, 0.003, 0.0015])),
        "frown": pair(mark.corner, 0.026, np.array([0.001, -0.005, -0.001])),
        "mouth_wide": pair(mark.corner, 0.03, np.array([0.0065, -0.001, -0.002])),
        "lip_pucker": lips * np.stack([-0.45 * (head[:, 0] - mark.mouth[0]), np.zeros(N_HEAD),
                                       np.full(N_HEAD, 0.007)], axis=1),
        "lips_part": lips * np.stack([np.zeros(N_HEAD), 0.002 - 0.0055 * lower, np.zeros(N_HEAD)], axis=1),
        "brow_raise": brows * [0.0, 0.006, 0.0],
        "brow_furrow": pair(mark.brow * [0.45, 1, 1], 0.022, np.array([-0.003, -0.003, 0.001])),
        "cheek_puff": pair(mark.corner + [0.022, 0.004, -0.012], 0.03, np.array([0.006, 0.0, 0.002])),
    }
    closed = [_vertices(_Shape(lid_upper=(1.0 - (i == 0), 1.0 - (i == 1)))) - neutral for i in (0, 1)]
    squint = [_vertices(_Shape(lid_lower=(1.0 - 0.5 * (i == 0), 1.0 - 0.5 * (i == 1)))) - neutral
              for i in (0, 1)]
    out = np.zeros((N_VERTS, 3, len(EXPRESSION_NAMES)))
    for name, field in fields.items():
        out[:N_HEAD, :, EXPRESSION_NAMES[name]] = field
    for i, tag in enumerate("LR"):
        out[:, :, EXPRESSION_NAMES[f"blink_{tag}"]] = closed[i]
        out[:, :, EXPRESSION_NAMES[f"squint_{tag}"]] = squint[i]
        out[:N_HEAD, :, EXPRESSION_NAMES[f"squint_{tag}"]] += one(i, cheek, 0.024, np.array([0, 0.002, 0.001]))
        out[:N_HEAD, :, EXPRESSION_NAMES[f"sneer_{tag}"]] = one(
            i, np.array([0.016, -0.02, 0.05]), 0.022, np.array([0.001, 0.004, 0.001]))
    return out


def _expression_dirs(rng: np.random.Generator, neutral: np.ndarray) -> np.ndarray:
    """All 100 expression directions: (N_VERTS, 3, 100) float64; eyeballs never move."""
    semantic = _semantic_expressions(neutral)
    n = semantic.shape[2]
    head = neutral[:N_HEAD]
    face = head[(head[:, 2] > 0.0) & (head[:, 1] > -0.1) & (head[:, 1] < 0.07)]
    centres = face[rng.choice(len(face), 96, replace=False)]
    random = _rbf_fields(head, centres, 0.02, rng.normal(size=(96, 3 * (N_EXPR - n))))
    mask = (_smoothstep(-0.03, 0.02, head[:, 2]) * _smoothstep(-0.12, -0.09, head[:, 1])
            * _smoothstep(0.09, 0.06, head[:, 1]))
    random = _normalised(random * mask[:, None, None], 0.0008 / (1.0 + np.arange(N_EXPR - n) / 8.0), mask)
    return np.concatenate([semantic, np.pad(random, ((0, 2 * N_EYE), (0, 0), (0, 0)))], axis=2)


def _antisymmetric(field: np.ndarray, row: int, col: int) -> np.ndarray:
    """Corrective columns driven by a rotation's sine about one axis: +field/2 on (R - I)[row, col],
    -field/2 on [col, row]. field: (V, 3) -> (V, 3, 9)."""
    out = np.zeros(field.shape + (9,))
    out[:, :, 3 * row + col] = 0.5 * field
    out[:, :, 3 * col + row] = -0.5 * field
    return out


def _pose_dirs(rng: np.random.Generator, neutral: np.ndarray) -> np.ndarray:
    """Pose correctives (N_VERTS, 3, 36) float64, feature 9 (j - 1) + 3 row + col of (R_j - I).

    Neck: the throat bulges when nodding forward, a side bulges when tilting towards it, the skin
    twists when turning. Jaw: the cheeks hollow when it opens. Eyes: the lids follow the gaze.
    Every neck and jaw feature also gets a faint smooth random field near its joint.
    """
    head = neutral[:N_HEAD]
    theta = np.arctan2(head[:, 0], head[:, 2] - _AXIS_Z)
    outward = np.stack([np.sin(theta), np.zeros(N_HEAD), np.cos(theta)], axis=1)
    around = np.stack([np.cos(theta), np.zeros(N_HEAD), -np.sin(theta)], axis=1)
    neck = _bump((head[:, 1] + 0.105) / 0.035)[:, None]
    cheeks = sum(_blob(head, np.array([0.05 * s, -0.04, 0.025]), 0.03) for s in (1.0, -1.0))[:, None]
    head_dirs = np.zeros((N_HEAD, 3, N_POSE_FEATURES))
    head_dirs[:, :, :9] = (_antisymmetric(0.015 * neck * np.clip(np.cos(theta), 0, None)[:, None] * outward, 2, 1)
                           + _antisymmetric(0.012 * neck * np.clip(-np.sin(theta), 0, None)[:, None] * outward, 1, 0)
                           + _antisymmetric(0.006 * neck * around, 0, 2))
    throat = (_blob(head, np.array([0.0, -0.105, 0.01]), 0.045)
              + sum(_blob(head, np.array([0.055 * s, -0.075, -0.03]), 0.035) for s in (1.0, -1.0)))
    head_dirs[:, :, 9:18] = _antisymmetric(-0.008 * cheeks * outward + 0.03 * throat[:, None] * [0, -0.3, 1], 2, 1)
    regions = (neck[:, 0], _bump((head[:, 1] + 0.06) / 0.05) * (head[:, 2] > -0.02))
    for j, region in enumerate(regions):
        centres = head[rng.choice(np.flatnonzero(region > 0.5), 24, replace=False)]
        faint = _rbf_fields(head, centres, 0.03, rng.normal(size=(24, 27))) * region[:, None, None]
        head_dirs[:, :, 9 * j:9 * j + 9] += _normalised(faint, np.full(9, 2e-4))
    out = np.pad(head_dirs, ((0, 2 * N_EYE), (0, 0), (0, 0)))
    eps = 0.05
    for side in (0, 1):
        up = _vertices(_Shape(gaze_up=(eps * (side == 0), eps * (side == 1)))) - neutral
        toward_left = (1.0, -1.0)[side] * eps  # rotating about +Y turns both eyes towards +X
        lateral = _vertices(_Shape(gaze_side=(toward_left * (side == 0), toward_left * (side == 1)))) - neutral
        k = 18 + 9 * side
        out[:, :, k:k + 9] = _antisymmetric(up / eps, 1, 2) + _antisymmetric(lateral / eps, 0, 2)
    return out


def demo_model_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """The demo head as a FLAME pickle's dict (see :func:`.synthetic.random_model_arrays`).

    v_template (5023, 3) float64 metres; f (9976, 3) uint32; shapedirs (5023, 3, 400) float64,
    300 identity then 100 expression columns; posedirs (5023, 3, 36); J_regressor (5, 5023) dense;
    weights (5023, 5); kintree_table (2, 5) uint32; J (5, 3); bs_style 'lbs'; bs_type 'lrotmin'.
    The geometry and the semantic components are fixed; ``seed`` draws the random components.
    """
    rng = np.random.default_rng(seed)
    neutral = _vertices(_Shape())
    J_regressor = _joint_regressor(neutral[:N_HEAD])
    shapedirs = np.concatenate([_identity_dirs(rng, neutral), _expression_dirs(rng, neutral)], axis=2)
    return {
        "v_template": neutral, "f": faces().astype(np.uint32), "shapedirs": shapedirs,
        "posedirs": _pose_dirs(rng, neutral), "J_regressor": J_regressor,
        "weights": _skin_weights(neutral[:N_HEAD]), "kintree_table": kintree_table(),
        "J": J_regressor @ neutral, "bs_style": "lbs", "bs_type": "lrotmin",
    }


def demo_model(seed: int = 0) -> FlameModel:
    """The demo head as a validated :class:`.model.FlameModel` named ``demo_head``."""
    return model_from_arrays(demo_model_arrays(seed), name="demo_head")
