"""A procedurally generated demo head in FLAME's exact layout, so the add-on works without FLAME.

:func:`demo_model_arrays` returns the keys, shapes and dtypes of a FLAME pickle (see
the test suite's ``random_model_arrays``) for a stylised head and neck in FLAME's axes (+X subject's
left, +Y up, +Z forward, metres): 5023 vertices and 9976 triangles, eyeball vertices last, so
FLAME-indexed assets (eyelid blendshapes, landmark embeddings) fit it. Nothing here derives from
FLAME's data; the arrays (48 MB) are built at runtime in a fraction of a second.

Topology (fixed; the seed only draws the random components):

- head: a latitude-longitude grid with a top pole (vertex 0) and ``N_ROWS`` rings of ``N_COLS``
  vertices, ring r column c at :func:`grid_index` ``(r, c) = 1 + r * N_COLS + c``: 4019 vertices.
  Columns run from the back of the head (c = 0) through the subject's right to the front (between
  c = 40 and 41) and round the left; column c mirrors column ``N_COLS - 1 - c``. Faces: a cap at the
  pole, two triangles per grid quad and a zig-zag strip closing the neck (8034 triangles), less
  the 29 quads of :func:`cut_quads`: the mouth slit (13 quads below ring ``LIP_ROW``) and the two
  eye slits (8 quads each below ring ``LID_ROW``), leaving 7976 triangles. Ring ``LIP_ROW`` is the
  upper lip margin and the next ring the lower one; likewise ``LID_ROW`` and the next ring are the
  upper and lower eyelid margins. Cutting slits one quad high keeps every vertex in use.
- eyeballs: left (+X, joint 3) then right (joint 4), each a UV sphere of ``EYE_RINGS`` rings of
  ``EYE_SEGMENTS`` vertices between a front pole (the pupil) and a back pole: 502 vertices and
  1000 triangles per eye.

Components: 300 identity directions (the first ones named in ``IDENTITY_NAMES``, then smooth random
fields of decreasing size, like PCA), 100 expression directions (the first ones named in
``EXPRESSION_NAMES``, then smooth random fields in the face of decreasing size) and 36 pose
correctives (neck bulges, jaw, eyelids following the gaze).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from ..core.editions import DEMO
from ..core.model import (
    N_COMPONENTS,
    N_JOINTS,
    N_POSE_FEATURES,
    N_SHAPE_MAX,
    FlameModel,
    kintree_table,
    model_from_arrays,
)

N_ROWS, N_COLS = 49, 82
N_HEAD = 1 + N_ROWS * N_COLS  # 4019 head vertices: the pole and the grid
EYE_SEGMENTS, EYE_RINGS = 25, 20
N_EYE = EYE_SEGMENTS * EYE_RINGS + 2  # 502 vertices per eyeball
N_VERTS = N_HEAD + 2 * N_EYE  # 5023, as FLAME
N_EXPR = N_COMPONENTS - N_SHAPE_MAX  # 100
LID_ROW = 15  # upper eyelid margin ring; LID_ROW + 1 is the lower margin
LIP_ROW = 29  # upper lip margin ring; LIP_ROW + 1 is the lower margin
MOUTH_QUADS = np.arange(34, 47)  # grid quads (columns c, c + 1) cut below ring LIP_ROW
LEFT_EYE_QUADS = np.arange(47, 55)  # cut below ring LID_ROW; the right eye's mirror them
EYE_RADIUS = 0.0125

_IDENTITY_STEPS = {  # name -> (field of _Shape, its value at +1)
    "head_size": ("scale", 1.035), "head_length": ("scale_z", 1.04), "head_width": ("scale_x", 1.045),
    "jaw_width": ("jaw_width", 1.7), "chin": ("chin", 1.4), "face_length": ("face_length", 1.06),
    "ears": ("ears", 1.15), "nose_length": ("nose", 1.3), "nose_width": ("nose_width", 1.25),
    "cheekbones": ("cheekbones", 1.7), "brow_ridge": ("brow_ridge", 1.7),
}
IDENTITY_NAMES = {name: i for i, name in enumerate(_IDENTITY_STEPS)}
"""Named identity components (indices into the 300 identity columns): head_size, head_length,
head_width, jaw_width, chin, face_length, ears, nose_length, nose_width, cheekbones, brow_ridge;
+1 is about one standard deviation bigger, longer or wider."""

EXPRESSION_NAMES = {
    "smile": 0, "frown": 1, "mouth_wide": 2, "lip_pucker": 3, "lips_part": 4, "brow_raise": 5,
    "brow_furrow": 6, "blink_L": 7, "blink_R": 8, "squint_L": 9, "squint_R": 10, "cheek_puff": 11,
    "sneer_L": 12, "sneer_R": 13,
}
"""Named expression components (indices into the 100 expression columns); 1 is the full expression
(``blink_*`` at 1 closes the eye). ``_L``/``_R`` are the subject's left (+X) and right."""

# Meridians of the featureless head from the top pole to the neck base, as control points
# (distance from the grid's vertical axis, y) in metres: front, side and back.
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
# Rings pinned to heights on each meridian (ring -1 is the pole): brow, eyes (between the eyelid
# margins), lips (between the lip margins), chin or jaw angle, neck base.
_ANCHOR_RINGS = np.array([-1.0, 8.0, LID_ROW + 0.5, LIP_ROW + 0.5, 36.0, N_ROWS - 1.0])
_ANCHOR_HEIGHTS = np.array([[0.132, 0.075, 0.019, -0.0512, -0.095, -0.19],
                            [0.132, 0.08, 0.02, -0.054, -0.085, -0.19],
                            [0.132, 0.09, 0.03, -0.055, -0.085, -0.19]])
_AXIS_Z = -0.035  # z of the grid's vertical axis; column angles are measured about it
_LEFT_EYE = np.array([0.0315, 0.0195, 0.031])
_LIP_LINE = -0.0512


@dataclass(frozen=True)
class _Shape:
    """Parameters of the generated geometry; named components are differences of two shapes.

    Identity: ``scale*`` are relative scalings, the others multiply the neutral size of a feature.
    Eyes, per (left, right): ``lid_upper``/``lid_lower`` open the lids (1 open, 0 closed);
    ``gaze_up``/``gaze_side`` turn the lids' layout (radians; side is lateral-positive).
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


# ---------------------------------------------------------------------------------------------
# Curves and windows


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    """0 at e0, 1 at e1 (either order), C1 in between. x: any shape -> same shape float64."""
    t = np.clip((np.asarray(x, dtype=np.float64) - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _bump(t: np.ndarray) -> np.ndarray:
    """Compact C1 bump (1 - t^2)^2 on |t| < 1, 0 outside. t: any shape -> same shape float64."""
    return np.clip(1.0 - np.asarray(t, dtype=np.float64) ** 2, 0.0, None) ** 2


def _hermite(knots: np.ndarray, values: np.ndarray, slopes: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Cubic Hermite interpolation. knots: (K,); values, slopes: (K,) or (K, D); x: (N,) -> (N,) or (N, D)."""
    i = np.clip(np.searchsorted(knots, x, side="right") - 1, 0, len(knots) - 2)
    h = knots[i + 1] - knots[i]
    t = (x - knots[i]) / h
    if values.ndim == 2:
        t, h = t[:, None], h[:, None]
    h00, h10 = 2 * t**3 - 3 * t**2 + 1, t**3 - 2 * t**2 + t
    h01, h11 = -2 * t**3 + 3 * t**2, t**3 - t**2
    return h00 * values[i] + h10 * h * slopes[i] + h01 * values[i + 1] + h11 * h * slopes[i + 1]


def _spline(knots: np.ndarray, values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """C1 cubic through (knots (K,), values (K, D)) with finite-difference slopes, at x (N,) -> (N, D)."""
    return _hermite(knots, values, np.gradient(values, knots, axis=0), x)


def _monotone(knots: np.ndarray, values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Monotone cubic (Fritsch-Carlson) through increasing (knots, values) (K,) at x (N,) -> (N,)."""
    secant = np.diff(values) / np.diff(knots)
    inner = 2.0 * secant[:-1] * secant[1:] / (secant[:-1] + secant[1:])  # harmonic mean
    return _hermite(knots, values, np.concatenate([[secant[0]], inner, [secant[-1]]]), x)


def _blob(points: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    """Compact bump around a centre. points: (N, 3), centre: (3,) -> (N,) float64 in [0, 1]."""
    return _bump(np.linalg.norm(points - centre, axis=1) / radius)


# ---------------------------------------------------------------------------------------------
# Geometry


def column_angles() -> np.ndarray:
    """Angle of each grid column about the vertical axis, 0 front, +pi/2 left: (N_COLS,) float64.

    Uniform steps warped by ``phi - 0.58 sin(phi)``: columns are 3.8 times denser at the face than
    at the back of the head.
    """
    phi = 2.0 * np.pi * (np.arange(N_COLS) + 0.5) / N_COLS - np.pi
    return phi - 0.58 * np.sin(phi)


def _profile_rings(points: np.ndarray, heights: np.ndarray) -> np.ndarray:
    """One meridian sampled at the grid rings. points: (P, 2) control points (distance from the
    axis, y); heights: (6,) y of the anchor rings -> (N_ROWS, 2) float64.

    Rings are spaced along the curve's arc length by a monotone cubic through the anchor rings, so
    the spacing varies smoothly and the meridians stay in step when blended.
    """
    chord = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    dense = _spline(chord, points, np.linspace(0.0, chord[-1], 1200))
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))])
    ring_arc = _monotone(_ANCHOR_RINGS, np.interp(-heights, -dense[:, 1], arc),
                         np.arange(N_ROWS, dtype=np.float64))
    return np.stack([np.interp(ring_arc, arc, dense[:, 0]), np.interp(ring_arc, arc, dense[:, 1])], axis=1)


@lru_cache(maxsize=1)
def _base_grid() -> np.ndarray:
    """The featureless head and neck: (N_ROWS, N_COLS, 3) float64, read-only.

    The front, side and back meridians blend around the head as 1, cos and cos^2 harmonics.
    """
    (front_r, front_y), (side_r, side_y), (back_r, back_y) = (
        _profile_rings(points, heights).T for points, heights in zip(_PROFILES, _ANCHOR_HEIGHTS, strict=True))
    theta = column_angles()
    c1, c2 = np.cos(theta)[None, :], np.cos(theta)[None, :] ** 2

    def blend(front: np.ndarray, side: np.ndarray, back: np.ndarray) -> np.ndarray:
        f, s, b = front[:, None], side[:, None], back[:, None]
        return s + 0.5 * (f - b) * c1 + (0.5 * (f + b) - s) * c2

    radius, y = blend(front_r, side_r, back_r), blend(front_y, side_y, back_y)
    grid = np.stack([radius * np.sin(theta), y, _AXIS_Z + radius * np.cos(theta)], axis=-1)
    grid.setflags(write=False)
    return grid


def _global_scale(p: np.ndarray, shape: _Shape) -> np.ndarray:
    """Head size, width and length scalings about a point in the head. p: (..., 3) -> (..., 3)."""
    centre = np.array([0.0, 0.0, -0.04])
    return centre + (p - centre) * (shape.scale * np.array([shape.scale_x, 1.0, shape.scale_z]))


def eye_centres(shape: _Shape = _Shape()) -> np.ndarray:
    """Eyeball centres, left (+X) then right: (2, 3) float64."""
    return _global_scale(np.stack([_LEFT_EYE, _LEFT_EYE * [-1.0, 1.0, 1.0]]), shape)


def _features(base: np.ndarray, shape: _Shape) -> np.ndarray:
    """Nose, brow ridge, eye sockets, cheekbones, chin, jaw and ears as displacements of the
    featureless head. base: (..., 3) -> (..., 3) float64."""
    x, y, z = base[..., 0], base[..., 1], base[..., 2]
    ax = np.abs(x)
    front = _smoothstep(_AXIS_Z, _AXIS_Z + 0.03, z)
    radial = np.stack([x, np.zeros_like(x), z - _AXIS_Z], axis=-1)
    radial /= np.linalg.norm(radial, axis=-1, keepdims=True)
    ridge = np.interp(y, [-0.032, -0.027, -0.022, -0.016, 0.0, 0.024, 0.032],
                      [0.0, 0.010, 0.0185, 0.0195, 0.0115, 0.0025, 0.0])
    half_width = np.interp(y, [-0.03, -0.02, 0.0, 0.025], [0.014, 0.012, 0.008, 0.007]) * shape.nose_width
    nose = shape.nose * (ridge * _bump(x / half_width) + 0.0045 * _bump(
        np.hypot((ax - 0.0125 * shape.nose_width) / 0.007, (y + 0.0245) / 0.008)))  # with its wings
    brow = 0.003 * shape.brow_ridge * _bump((y - 0.036) / 0.014) * _bump(x / 0.06)
    sockets = 0.008 * _bump(np.hypot((ax - 0.03) / 0.022, (y - 0.018) / 0.02) ** 2)
    chin_forward = 0.008 * (shape.chin - 1.0) * _bump(np.hypot(x / 0.03, (y + 0.08) / 0.03)) * front
    cheek = 0.003 * shape.cheekbones * _bump(np.hypot((ax - 0.045) / 0.03, (y + 0.002) / 0.026))
    chin = 0.004 * shape.chin * _bump(np.hypot(x / 0.024, (y + 0.08) / 0.02))
    out = ((cheek + chin) * front)[..., None] * radial
    out[..., 2] += nose + brow - sockets + chin_forward
    lower_face = _smoothstep(-0.035, -0.06, y) * _smoothstep(-0.125, -0.1, y) * front
    out[..., 0] += 0.12 * (shape.jaw_width - 1.0) * x * lower_face
    out[..., 1] += 0.2 * (shape.face_length - 1.0) * np.clip(y - 0.02, -0.12, 0.0) * _smoothstep(-0.12, -0.03, z)
    # ears: slabs leaning back from the sides of the head, thicker towards the rim
    ear_r = np.hypot((y - 0.002) / (0.029 * shape.ears), (z + 0.045) / (0.016 * shape.ears))
    ear = 0.020 * shape.ears * _bump(ear_r**2) * (0.55 + 0.45 * _smoothstep(0.2, 0.9, ear_r))
    out[..., 0] += np.sign(x) * ear
    out[..., 2] -= 0.45 * ear
    return out


def _lips(grid: np.ndarray) -> np.ndarray:
    """Closes the lip margins onto one line and shapes the lips. grid: (R, C, 3) -> (R, C, 3) new."""
    g = grid.copy()
    s = np.arange(N_ROWS)[:, None] - (LIP_ROW + 0.5)  # +-0.5 at the lip margins
    u = (np.arange(N_COLS)[None, :] - 40.5) / (0.5 * len(MOUTH_QUADS))  # +-1 at the mouth corners
    line = _LIP_LINE + 0.001 * np.clip(u, -1.0, 1.0) ** 2  # curving up a touch at the corners
    squeeze = np.interp(np.abs(s), [0.5, 1.5, 2.5], [0.95, 0.4, 0.0]) * (1.0 - _smoothstep(0.9, 1.6, np.abs(u)))
    g[..., 1] = line + (g[..., 1] - line) * (1.0 - squeeze)
    g[..., 0] *= 1.0 + 0.12 * _bump(s / 4.0) * _bump(u / 1.8)
    forward = np.interp(s, [-3.5, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, 4.5],
                        [0.0, 0.0025, 0.0045, 0.0012, 0.0004, 0.0042, 0.0022, -0.0015, 0.0])
    corners = -0.003 * _bump((np.abs(u) - 1.0) / 0.7) * _bump(s / 3.5)
    g[..., 2] += forward * np.sqrt(np.clip(1.0 - u**2, 0.0, None)) + corners
    return g


def _eyelids(grid: np.ndarray, shape: _Shape) -> np.ndarray:
    """Wraps the skin round each eye slit onto its eyeball. grid: (R, C, 3) -> (R, C, 3) new array.

    Around each eyeball centre the lid rings are laid out by azimuth (from the columns) and
    elevation (from the rings): the margins bound an almond-shaped opening just outside the
    eyeball, the three rings beyond each margin rise towards the brow or the cheek, the layout
    blends into the skin over an elliptical region, and the blend region is relaxed.
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
        lower_margin = np.radians(18.0) * opening * shape.lid_lower[side] + np.radians(2.0)  # below
        closed = np.radians(0.5) - lower_margin
        upper_margin = closed + (np.radians(24.0) * opening + np.radians(2.0) - closed) * shape.lid_upper[side]
        elevation = np.where(is_upper, upper_margin + (np.radians(50.0) - upper_margin) * frac,
                             -lower_margin - (np.radians(48.0) - lower_margin) * frac)
        elevation = elevation + shape.gaze_up[side] * np.where(is_upper, 1.0, 0.6) * (1.0 - frac)
        azimuth = np.broadcast_to(np.radians(57.0) * np.clip(u, -1.15, 1.15) + np.radians(4.0)
                                  + 0.5 * shape.gaze_side[side] * _bump(u / 2.0), elevation.shape)
        radius = (EYE_RADIUS * shape.scale + 0.0011 + 0.0075 * frac**2
                  + 0.008 * _smoothstep(1.0, 2.2, np.abs(u)))
        direction = np.stack([np.cos(elevation) * np.sin(azimuth) * (1 - 2 * side), np.sin(elevation),
                              np.cos(elevation) * np.cos(azimuth)], axis=-1)
        spread = np.hypot(1.1 * np.clip(np.abs(u) - 1.0, 0.0, None), rings_out / 3.2)
        w = (1.0 - _smoothstep(0.35, 1.25, spread))[..., None]
        g = g * (1.0 - w) + (centre + radius[..., None] * direction) * w
        relax += 0.5 * (1.0 - _smoothstep(1.0, 1.8, spread)) * ((rings_out > 0) | (np.abs(u) > 1.0))
    return _relax(g, relax, 6)


def _relax(grid: np.ndarray, amount: np.ndarray, iterations: int) -> np.ndarray:
    """Laplacian smoothing on the grid. grid: (R, C, 3); amount: (R, C) step towards the mean of
    the four neighbours, 0 pins a vertex -> (R, C, 3) new array."""
    g = grid.copy()
    a = amount[..., None]
    for _ in range(iterations):
        up, down = np.concatenate([g[:1], g[:-1]]), np.concatenate([g[1:], g[-1:]])
        g = g + a * (0.25 * (up + down + np.roll(g, 1, axis=1) + np.roll(g, -1, axis=1)) - g)
    return g


def _sphere_directions() -> np.ndarray:
    """Unit vectors of an eyeball's vertices: front pole (+Z), rings, back pole -> (N_EYE, 3) float64."""
    polar = np.pi * np.arange(1, EYE_RINGS + 1) / (EYE_RINGS + 1)
    azimuth = 2.0 * np.pi * np.arange(EYE_SEGMENTS) / EYE_SEGMENTS
    ring = np.stack([np.sin(polar)[:, None] * np.cos(azimuth), np.sin(polar)[:, None] * np.sin(azimuth),
                     np.cos(polar)[:, None] * np.ones_like(azimuth)], axis=-1).reshape(-1, 3)
    return np.concatenate([[[0.0, 0.0, 1.0]], ring, [[0.0, 0.0, -1.0]]])


def _vertices(shape: _Shape) -> np.ndarray:
    """Every vertex: pole, grid rings, left eyeball, right eyeball -> (N_VERTS, 3) float64."""
    base = _base_grid()
    grid = _eyelids(_global_scale(_lips(base + _features(base, shape)), shape), shape)
    top = _global_scale(np.array([0.0, _PROFILES[0][0, 1], _AXIS_Z]), shape)
    eyes = eye_centres(shape)[:, None, :] + EYE_RADIUS * shape.scale * _sphere_directions()
    return np.concatenate([top[None], grid.reshape(-1, 3), eyes.reshape(-1, 3)])


# ---------------------------------------------------------------------------------------------
# Topology


def grid_index(ring: np.ndarray | int, column: np.ndarray | int) -> np.ndarray:
    """Vertex index of a grid ring and column (columns wrap round). Broadcasts -> int64 array."""
    return 1 + np.asarray(ring, dtype=np.int64) * N_COLS + np.asarray(column, dtype=np.int64) % N_COLS


def cut_quads() -> np.ndarray:
    """Grid quads left out for the mouth and the eyes, as (ring above, column): (29, 2) int64."""
    right_eye = N_COLS - 2 - LEFT_EYE_QUADS
    return np.concatenate([np.stack([np.full(len(q), ring), q], axis=1) for ring, q in
                           ((LIP_ROW, MOUTH_QUADS), (LID_ROW, LEFT_EYE_QUADS), (LID_ROW, right_eye))])


def _strip(loop: np.ndarray) -> np.ndarray:
    """Zig-zag triangulation of a polygon, wound like its loop. loop: (n,) int -> (n - 2, 3) int64."""
    n = len(loop)
    order = np.zeros(n, dtype=np.int64)  # 0, 1, n - 1, 2, n - 2, ...
    order[1::2] = 1 + np.arange(n // 2)
    order[2::2] = n - 1 - np.arange((n - 1) // 2)
    s = loop[order]
    tri = np.stack([s[:-2], s[1:-1], s[2:]], axis=1)
    tri[1::2, :2] = tri[1::2, 1::-1]
    return tri


def _sphere_faces(offset: int) -> np.ndarray:
    """Outward triangles of an eyeball laid out as :func:`_sphere_directions`: (1000, 3) int64."""
    j = np.arange(EYE_SEGMENTS)
    nxt = (j + 1) % EYE_SEGMENTS
    k = np.arange(EYE_RINGS)[:, None]
    a, b = 1 + k * EYE_SEGMENTS + j, 1 + k * EYE_SEGMENTS + nxt  # (rings, segments)
    quads = np.stack([np.stack([a[:-1], a[1:], b[1:]], -1), np.stack([a[:-1], b[1:], b[:-1]], -1)], axis=2)
    front = np.stack([np.zeros_like(j), a[0], b[0]], axis=1)
    back = np.stack([np.full_like(j, N_EYE - 1), b[-1], a[-1]], axis=1)
    return offset + np.concatenate([front, quads.reshape(-1, 3), back])


def faces() -> np.ndarray:
    """All triangles, wound outwards: head, then left and right eyeballs -> (9976, 3) int64."""
    c = np.arange(N_COLS)
    top = np.stack([np.zeros(N_COLS, dtype=np.int64), grid_index(0, c), grid_index(0, c + 1)], axis=1)
    keep = np.ones((N_ROWS - 1, N_COLS), dtype=bool)
    cut = cut_quads()
    keep[cut[:, 0], cut[:, 1]] = False
    r, c = np.nonzero(keep)
    a, b = grid_index(r, c), grid_index(r, c + 1)
    below_a, below_b = grid_index(r + 1, c), grid_index(r + 1, c + 1)
    quads = np.stack([np.stack([a, below_a, below_b], -1), np.stack([a, below_b, b], -1)], axis=1)
    neck_base = _strip(grid_index(N_ROWS - 1, -np.arange(N_COLS)))
    return np.concatenate([top, quads.reshape(-1, 3), neck_base,
                           _sphere_faces(N_HEAD), _sphere_faces(N_HEAD + N_EYE)])


# ---------------------------------------------------------------------------------------------
# Rig


def _jaw_fraction() -> np.ndarray:
    """The jaw's share of each grid vertex's head/jaw split: (N_ROWS, N_COLS) float64 in [0, 1].

    Near the mouth the share is (1 - sin nu) / 2 in elliptic coordinates (mu, nu) whose foci are
    the mouth corners: 0 along the upper lip, 1 along the lower lip and 0.5 at the corners, so the
    lips part in a lens shape and the slit is the only discontinuity. Farther away a band rising
    from the lip line towards the ear takes over, fading behind the jaw and down the neck.
    """
    half = 0.5 * len(MOUTH_QUADS)
    rows, cols = np.arange(N_ROWS)[:, None], np.arange(N_COLS)[None, :]
    s = rows - (LIP_ROW + 0.5)  # rings below the lip line
    X, Y = (cols - 40.5) / half, -s / half
    q = X**2 + Y**2 - 1.0
    sin_nu = np.sign(Y) * np.sqrt(0.5 * (np.sqrt(q**2 + 4.0 * Y**2) - q))
    theta = np.abs(column_angles())[None, :]
    far = _smoothstep(-2.5, 2.5, s + 7.0 * _smoothstep(0.45, 1.3, theta))
    mix = _smoothstep(2.0, 5.0, np.hypot(np.clip(np.abs(cols - 40.5) - half, 0.0, None), s))
    fraction = 0.5 * (1.0 - sin_nu) * (1.0 - mix) + far * mix
    jaw_line = 35.0 - 4.0 * _smoothstep(0.3, 1.2, theta)  # ring where the chin or jaw meets the neck
    return fraction * (1.0 - _smoothstep(1.1, 1.9, theta)) * (1.0 - _smoothstep(jaw_line, jaw_line + 10.0, rows))


def _skin_weights(head: np.ndarray) -> np.ndarray:
    """Skinning weights. head: (N_HEAD, 3) template -> (N_VERTS, 5) float64, rows summing to 1.

    The lower neck follows the root, the head the neck joint, the lower lip, chin and jaw the jaw
    joint, each eyeball its eye joint.
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
    """Joint regressor (5, N_VERTS) float64 with rows summing to 1. head: (N_HEAD, 3) template.

    Root and neck are the centres of a low and a high neck ring, the jaw lies between two patches
    in front of the ears, each eye is the mean of its eyeball's vertices (the sphere's centre).
    """
    reg = np.zeros((N_JOINTS, N_VERTS))
    reg[0, grid_index(46, np.arange(N_COLS))] = 1.0
    reg[1, grid_index(37, np.arange(N_COLS))] = 1.0
    hinge = np.array([0.07, -0.008, -0.022])
    reg[2, :N_HEAD] = _blob(head, hinge, 0.018) + _blob(head, hinge * [-1.0, 1.0, 1.0], 0.018)
    reg[3, N_HEAD:N_HEAD + N_EYE] = 1.0
    reg[4, N_HEAD + N_EYE:] = 1.0
    return reg / reg.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------------------------------
# Components


def _rbf_basis(points: np.ndarray, centres: np.ndarray, radius: float) -> np.ndarray:
    """Normalised Gaussian bumps. points: (N, 3), centres: (M, 3) -> (N, M) float64, rows sum <= 1."""
    diff = points[:, None, :] - centres[None, :, :]
    phi = np.exp(-0.5 * np.einsum("nmc,nmc->nm", diff, diff) / radius**2)
    return phi / (phi.sum(axis=1, keepdims=True) + 1e-3)


def _normalised(dirs: np.ndarray, rms: np.ndarray, region: np.ndarray | None = None) -> np.ndarray:
    """Each component scaled to a root-mean-square vertex displacement over a region.

    dirs: (V, 3, K); rms: (K,); region: (V,) weights, all vertices by default -> (V, 3, K) float64.
    """
    region = np.ones(len(dirs)) if region is None else region
    current = np.sqrt(np.einsum("v,vk->k", region, np.einsum("vck,vck->vk", dirs, dirs)) / region.sum())
    return dirs * (rms / np.maximum(current, 1e-12))


def _identity_dirs(rng: np.random.Generator, neutral: np.ndarray, n_shape: int = N_SHAPE_MAX) -> np.ndarray:
    """The 300 identity directions (N_VERTS, 3, 300) float64, those past the first ``n_shape`` zero
    (not built). ``rng`` draws for all 300 whatever ``n_shape`` is.

    Named ones first (differences of generated heads), then sums of random smooth bumps, coarse
    first, with root-mean-square displacement falling from 1.5 mm; eyeballs move rigidly with the
    field at their centres.
    """
    named = np.stack([_vertices(replace(_Shape(), **{field: value})) - neutral
                      for field, value in _IDENTITY_STEPS.values()], axis=-1)[:, :, :n_shape]
    count = N_SHAPE_MAX - len(_IDENTITY_STEPS)
    kept = max(0, n_shape - len(_IDENTITY_STEPS))  # of the random ones
    head = neutral[:N_HEAD]
    points = np.concatenate([head, eye_centres()])
    detail = np.linspace(0.0, 1.0, count)[:kept]  # the share of fine bumps grows along the components
    fields = 0.0
    for n_centres, radius, share in ((48, 0.05, 1.0 - detail), (160, 0.025, detail)):
        centres = head[rng.choice(N_HEAD, n_centres, replace=False)]
        weights = rng.normal(size=(n_centres, 3, count))[:, :, :kept].reshape(n_centres, 3 * kept)
        band = _rbf_basis(points, centres, radius) @ weights
        fields = fields + _normalised(band.reshape(len(points), 3, kept), share)
    fields = np.concatenate([fields[:N_HEAD], np.repeat(fields[N_HEAD:], N_EYE, axis=0)])
    random = _normalised(fields, (0.0015 / (1.0 + np.arange(count) / 8.0))[:kept])
    unbuilt = np.zeros((N_VERTS, 3, N_SHAPE_MAX - named.shape[2] - kept))
    return np.concatenate([named, random, unbuilt], axis=2)


def _semantic_expressions(neutral: np.ndarray) -> np.ndarray:
    """The expressions named in EXPRESSION_NAMES: (N_VERTS, 3, 14) float64.

    Blinks and squints are differences of generated heads; the rest are displacement fields around
    points of the template, mirrored for the subject's right side.
    """
    head = neutral[:N_HEAD]
    grid = head[1:].reshape(N_ROWS, N_COLS, 3)
    corner = grid[LIP_ROW:LIP_ROW + 2, MOUTH_QUADS[-1] + 1].mean(axis=0)  # left mouth corner
    mouth = grid[LIP_ROW:LIP_ROW + 2, 40:42].reshape(-1, 3).mean(axis=0)
    inner_brow = _LEFT_EYE * [0.45, 1.0, 1.0] + [0.0, 0.018, 0.022]
    cheek = corner + [0.014, 0.024, -0.008]
    nose_wing = np.array([0.016, -0.02, 0.05])
    lower = np.concatenate([[0.0], _jaw_fraction().ravel()])  # 0 upper lip .. 1 lower lip
    front = _smoothstep(-0.01, 0.02, head[:, 2])
    lips = (_blob(head, mouth, 0.03) * front)[:, None]
    zero = np.zeros(N_HEAD)

    def move(centre: np.ndarray, radius: float, step: tuple[float, float, float], sides: str = "LR") -> np.ndarray:
        """step (metres) around a left-side centre, mirrored on the right -> (N_HEAD, 3)."""
        mirror = {"L": np.array([1.0, 1.0, 1.0]), "R": np.array([-1.0, 1.0, 1.0])}
        return sum(_blob(head, centre * mirror[s], radius)[:, None] * (np.array(step) * mirror[s]) for s in sides)

    fields = {
        "smile": move(corner, 0.03, (0.004, 0.0065, -0.003)) + move(cheek, 0.024, (0.0, 0.003, 0.0015)),
        "frown": move(corner, 0.026, (0.001, -0.005, -0.001)),
        "mouth_wide": move(corner, 0.03, (0.0065, -0.001, -0.002)),
        "lip_pucker": lips * np.stack([-0.45 * (head[:, 0] - mouth[0]), zero, np.full(N_HEAD, 0.007)], axis=1),
        "lips_part": lips * np.stack([zero, 0.002 - 0.0055 * lower, zero], axis=1),
        "brow_raise": (_bump((head[:, 1] - 0.05) / 0.035) * _bump(head[:, 0] / 0.075) * front)[:, None]
        * [0.0, 0.006, 0.0],
        "brow_furrow": move(inner_brow, 0.022, (-0.003, -0.003, 0.001)),
        "cheek_puff": move(corner + [0.022, 0.004, -0.012], 0.03, (0.006, 0.0, 0.002)),
    }
    out = np.zeros((N_VERTS, 3, len(EXPRESSION_NAMES)))
    for name, field in fields.items():
        out[:N_HEAD, :, EXPRESSION_NAMES[name]] = field
    for side, tag in enumerate("LR"):
        this_eye = (1.0 - (side == 0), 1.0 - (side == 1))  # 0 for this eye, 1 for the other
        half = tuple(0.5 + 0.5 * v for v in this_eye)
        out[:, :, EXPRESSION_NAMES[f"blink_{tag}"]] = _vertices(_Shape(lid_upper=this_eye)) - neutral
        out[:, :, EXPRESSION_NAMES[f"squint_{tag}"]] = _vertices(_Shape(lid_lower=half)) - neutral
        out[:N_HEAD, :, EXPRESSION_NAMES[f"squint_{tag}"]] += move(cheek, 0.024, (0.0, 0.002, 0.001), tag)
        out[:N_HEAD, :, EXPRESSION_NAMES[f"sneer_{tag}"]] = move(nose_wing, 0.022, (0.001, 0.004, 0.001), tag)
    return out


def _expression_dirs(rng: np.random.Generator, neutral: np.ndarray) -> np.ndarray:
    """The 100 expression directions (N_VERTS, 3, 100) float64: named ones, then random smooth
    fields in the face with root-mean-square displacement there falling from 0.8 mm. Eyeballs
    never move."""
    named = _semantic_expressions(neutral)
    count = N_EXPR - named.shape[2]
    head = neutral[:N_HEAD]
    face = np.flatnonzero((head[:, 2] > 0.0) & (head[:, 1] > -0.1) & (head[:, 1] < 0.07))
    centres = head[rng.choice(face, 96, replace=False)]
    fields = (_rbf_basis(head, centres, 0.02) @ rng.normal(size=(96, 3 * count))).reshape(N_HEAD, 3, count)
    mask = (_smoothstep(-0.03, 0.02, head[:, 2]) * _smoothstep(-0.12, -0.09, head[:, 1])
            * _smoothstep(0.09, 0.06, head[:, 1]))
    random = _normalised(fields * mask[:, None, None], 0.0008 / (1.0 + np.arange(count) / 8.0), mask)
    return np.concatenate([named, np.pad(random, ((0, 2 * N_EYE), (0, 0), (0, 0)))], axis=2)


def _antisymmetric(field: np.ndarray, row: int, col: int) -> np.ndarray:
    """Corrective columns of one joint driven by the sine of a rotation about one axis:
    +field / 2 on (R - I)[row, col] and -field / 2 on [col, row]. field: (V, 3) -> (V, 3, 9)."""
    out = np.zeros(field.shape + (9,))
    out[:, :, 3 * row + col] = 0.5 * field
    out[:, :, 3 * col + row] = -0.5 * field
    return out


def _pose_dirs(rng: np.random.Generator, neutral: np.ndarray) -> np.ndarray:
    """Pose correctives (N_VERTS, 3, 36) float64; feature 9 (j - 1) + 3 row + col is (R_j - I)[row, col].

    Neck: the throat bulges when nodding forward, a side bulges when tilting towards it, the skin
    twists when turning. Jaw: the cheeks hollow and the throat is pushed forward as it opens. Eyes:
    the lids follow the gaze. Every neck and jaw feature also gets a faint random smooth field.
    """
    head = neutral[:N_HEAD]
    theta = np.arctan2(head[:, 0], head[:, 2] - _AXIS_Z)
    outward = np.stack([np.sin(theta), np.zeros(N_HEAD), np.cos(theta)], axis=1)
    around = np.stack([np.cos(theta), np.zeros(N_HEAD), -np.sin(theta)], axis=1)
    neck = _bump((head[:, 1] + 0.105) / 0.035)
    cheeks = sum(_blob(head, np.array([0.05 * s, -0.04, 0.025]), 0.03) for s in (1.0, -1.0))
    throat = _blob(head, np.array([0.0, -0.105, 0.01]), 0.045) + sum(
        _blob(head, np.array([0.055 * s, -0.075, -0.03]), 0.035) for s in (1.0, -1.0))
    dirs = np.zeros((N_HEAD, 3, N_POSE_FEATURES))
    dirs[:, :, :9] = (_antisymmetric((0.015 * neck * np.clip(np.cos(theta), 0.0, None))[:, None] * outward, 2, 1)
                      + _antisymmetric((0.012 * neck * np.clip(-np.sin(theta), 0.0, None))[:, None] * outward, 1, 0)
                      + _antisymmetric(0.006 * neck[:, None] * around, 0, 2))
    dirs[:, :, 9:18] = _antisymmetric(-0.008 * cheeks[:, None] * outward + 0.03 * throat[:, None] * [0.0, -0.3, 1.0],
                                      2, 1)
    jaw = _bump((head[:, 1] + 0.06) / 0.05) * _smoothstep(-0.03, -0.01, head[:, 2])
    for j, region in enumerate((neck, jaw)):
        centres = head[rng.choice(np.flatnonzero(region > 0.5), 24, replace=False)]
        faint = (_rbf_basis(head, centres, 0.03) @ rng.normal(size=(24, 27))).reshape(N_HEAD, 3, 9)
        dirs[:, :, 9 * j:9 * j + 9] += _normalised(faint * region[:, None, None], np.full(9, 2e-4))
    out = np.pad(dirs, ((0, 2 * N_EYE), (0, 0), (0, 0)))
    eps = 0.05  # radians; the lids' response is linear for small turns
    for side in (0, 1):
        only = (side == 0, side == 1)
        up = _vertices(_Shape(gaze_up=tuple(eps * o for o in only))) - neutral
        toward_left = (1.0, -1.0)[side] * eps  # turning about +Y takes both eyes towards +X
        lateral = _vertices(_Shape(gaze_side=tuple(toward_left * o for o in only))) - neutral
        k = 18 + 9 * side
        out[:, :, k:k + 9] = _antisymmetric(up / eps, 1, 2) + _antisymmetric(lateral / eps, 0, 2)
    return out


# ---------------------------------------------------------------------------------------------
# Public


def demo_model_arrays(seed: int = 0, n_shape: int = N_SHAPE_MAX) -> dict[str, np.ndarray]:
    """The demo head as a FLAME pickle's dict (the keys and layout of a FLAME model file).

    v_template (5023, 3) float64 metres; f (9976, 3) uint32; shapedirs (5023, 3, 400) float64 with
    300 identity (those past the first ``n_shape`` zero) then 100 expression columns; posedirs
    (5023, 3, 36) float64; J_regressor (5, 5023) dense float64; weights (5023, 5) float64;
    kintree_table (2, 5) uint32; J (5, 3) float64; bs_style 'lbs'; bs_type 'lrotmin'. The geometry
    and the named components are fixed; ``seed`` draws the random components.
    """
    rng = np.random.default_rng(seed)
    n_shape = min(n_shape, N_SHAPE_MAX)
    neutral = _vertices(_Shape())
    J_regressor = _joint_regressor(neutral[:N_HEAD])
    shapedirs = np.concatenate([_identity_dirs(rng, neutral, n_shape), _expression_dirs(rng, neutral)], axis=2)
    return {
        "v_template": neutral, "f": faces().astype(np.uint32), "shapedirs": shapedirs,
        "posedirs": _pose_dirs(rng, neutral), "J_regressor": J_regressor,
        "weights": _skin_weights(neutral[:N_HEAD]), "kintree_table": kintree_table(),
        "J": J_regressor @ neutral, "bs_style": "lbs", "bs_type": "lrotmin",
    }


def demo_model(seed: int = 0, n_shape: int = N_SHAPE_MAX) -> FlameModel:
    """The demo head as a validated :class:`..core.model.FlameModel` named ``demo_head`` (edition
    ``demo``); with ``n_shape`` below 300 the same head with its first ``n_shape`` identity components
    only, built faster (the tracker's)."""
    model = model_from_arrays(demo_model_arrays(seed, n_shape), name="demo_head").truncated(n_shape)
    return replace(model, edition=DEMO.id)
