"""Register FLAME's neutral surface to a character's head: similarity transform + identity.

The unknowns are a similarity M (scale s, rotation R, translation t) taking FLAME space to the
character's frame and the identity coefficients beta, so that ``x = s R (template + shapedirs beta) + t``
lies on the character. Closest points on the character come from a callback (Blender's BVH tree in
the add-on, brute force in the tests), so this module stays numpy only. Gauss-Newton iterations on
point-to-plane residuals (plus a little point-to-point, for stability), with outlier rejection by
distance and normal agreement: extra geometry (neck, shoulders, hair) that is far from FLAME's
surface, or faces the other way, does not pull the fit. The first iterations solve the similarity
only; identity joins once the head is roughly in place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import RetargetError
from ..rotations import axis_angle_to_matrix
from .geometry import vertex_normals
from .similarity import compose, decompose, transform

ClosestFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""points (N, 3) in the character's frame -> closest surface points (N, 3) and their unit normals (N, 3)."""

POINT_WEIGHT = 0.1  # point-to-point residuals' weight beside point-to-plane
NORMAL_AGREEMENT = 0.3  # |cos| between FLAME's and the character's normals for a match to count
MIN_TRIM = 2e-3  # outlier distance never below this (FLAME metres)


@dataclass(frozen=True)
class HeadSurface:
    """FLAME's neutral surface. template: (V, 3) FLAME metres; shapedirs: (V, 3, K); faces: (F, 3) int."""

    template: np.ndarray
    shapedirs: np.ndarray
    faces: np.ndarray

    def vertices(self, shape: np.ndarray) -> np.ndarray:
        """(V, 3) for identity coefficients shape: (k <= K,)."""
        return self.template + self.shapedirs[:, :, : len(shape)] @ shape


@dataclass(frozen=True)
class Landmarks:
    """Optional anchors. weights: (L, V) FLAME vertex weights per landmark (rows sum to one);
    targets: (L, 3) the same landmarks on the character, in its frame."""

    weights: np.ndarray
    targets: np.ndarray


@dataclass
class FitResult:
    """matrix: (4, 4) FLAME -> character frame; shape: (K,); vertices: (V, 3) fitted FLAME surface in
    the character's frame; distances: (V,) FLAME vertex -> character surface, FLAME metres; inliers:
    (V,) bool matches used by the last step; rms: RMS of the inliers' distances (FLAME metres)."""

    matrix: np.ndarray
    shape: np.ndarray
    vertices: np.ndarray
    distances: np.ndarray
    inliers: np.ndarray
    rms: float

    @property
    def scale(self) -> float:
        return decompose(self.matrix)[0]


def _slab_extent(points: np.ndarray, level: float, half: float) -> tuple[np.ndarray, np.ndarray] | None:
    """Low and high x, y quantiles of the points within ``half`` of height ``level`` (z), or None."""
    slab = points[np.abs(points[:, 2] - level) <= half]
    if len(slab) < 8:
        return None
    return np.quantile(slab[:, :2], 0.02, axis=0), np.quantile(slab[:, :2], 0.98, axis=0)


def initial_alignment(template: np.ndarray, base: np.ndarray, target: np.ndarray,
                      depth: float = 0.1) -> np.ndarray:
    """A similarity (4, 4) placing FLAME on an upright, front-facing character at any scale.

    template: (V, 3) FLAME vertices; base: (3, 3) rotation turning FLAME's axes into the character
    frame's (Y-up -> Z-up, facing -Y); target: (N, 3) character vertices. Scale-free: the width of a
    horizontal slice grows like sqrt(depth) below the crown and then levels off, so width / depth
    falls monotonically; the depth where the character's ratio meets FLAME's at ``depth`` metres
    below its crown gives the scale, and the slices' centres and the crowns give the translation.
    Extra geometry below the head (neck, shoulders) is never reached by the scan.
    """
    flame = template @ base.T
    f_top = flame[:, 2].max()
    f_ext = _slab_extent(flame, f_top - depth, 0.05 * depth)
    if f_ext is None:
        raise RetargetError("FLAME template has no vertices at eye level")
    ratio = (f_ext[1][0] - f_ext[0][0]) / depth
    c_top, height = target[:, 2].max(), np.ptp(target[:, 2])
    if not height > 0:
        raise RetargetError("character mesh is flat: it has no height to fit a head to")
    found = None
    for h in height * np.linspace(0.02, 1.0, 200):
        ext = _slab_extent(target, c_top - h, max(0.05 * h, 0.005 * height))
        if ext is not None and (ext[1][0] - ext[0][0]) / h <= ratio:
            found = h, ext
            break
    if found is None:
        raise RetargetError("cannot find a head in the character: no slice is as narrow as a head")
    h, ext = found
    s = h / depth
    centre_f = np.r_[(f_ext[0] + f_ext[1]) / 2, f_top]
    centre_c = np.r_[(ext[0] + ext[1]) / 2, c_top]
    return compose(s, base, centre_c - s * centre_f)


def _cross_matrix(q: np.ndarray) -> np.ndarray:
    """q: (N, 3) -> (N, 3, 3) with [q]x w = q x w."""
    z = np.zeros(len(q))
    return np.stack([z, -q[:, 2], q[:, 1], q[:, 2], z, -q[:, 0], -q[:, 1], q[:, 0], z], 1).reshape(-1, 3, 3)


def _point_jacobian(x: np.ndarray, M: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """d(x / s) / d(omega, tau, log s, beta) for points x = s R v + t: (N, 3, 7 + K).

    omega rotates about t, tau = dt / s, beta moves v along dirs (N, 3, K)."""
    s, R, t = decompose(M)
    q = (x - t) / s
    J = np.empty((len(x), 3, 7 + dirs.shape[2]))
    J[:, :, :3] = -_cross_matrix(q)
    J[:, :, 3:6] = np.eye(3)
    J[:, :, 6] = q
    J[:, :, 7:] = np.einsum("rc,nck->nrk", R, dirs)
    return J


def _matches(surface: HeadSurface, closest: ClosestFn, M: np.ndarray, beta: np.ndarray):
    """FLAME's vertices x (V, 3) in the character's frame, their closest points y and normals ny,
    distances d (V,) in FLAME metres and the inliers (V,) bool: normals agree and d is not an outlier."""
    x = transform(M, surface.vertices(beta))
    y, ny = closest(x)
    d = np.linalg.norm(x - y, axis=1) / decompose(M)[0]
    agree = np.abs(np.einsum("nc,nc->n", vertex_normals(x, surface.faces), ny)) > NORMAL_AGREEMENT
    trim = max(2.5 * np.median(d[agree]) if agree.any() else np.inf, MIN_TRIM)
    return x, y, ny, d, agree & (d < trim)


def fit_head(surface: HeadSurface, closest: ClosestFn, init: np.ndarray, *, landmarks: Landmarks | None = None,
             n_shape: int = 100, rigid_iterations: int = 12, iterations: int = 30, shape_prior: float = 1e-8,
             max_rms: float = 0.01, on_progress: Callable[[float], None] = lambda f: None) -> FitResult:
    """Fit similarity and identity (``n_shape`` components) from ``init`` (4, 4).

    shape_prior: weight (m^2) of |beta|^2 against the mean squared distance. Raises RetargetError
    when the fit does not converge: inlier RMS above ``max_rms`` metres or under half the vertices
    matched.
    """
    K = min(n_shape, surface.shapedirs.shape[2])
    dirs = surface.shapedirs[:, :, :K]
    M, beta = np.array(init, dtype=np.float64), np.zeros(K)
    total = rigid_iterations + iterations
    for it in range(total):
        with_shape = it >= rigid_iterations and K > 0
        x, y, ny, d, inliers = _matches(surface, closest, M, beta)
        s = decompose(M)[0]
        n_in = max(int(inliers.sum()), 1)
        J = _point_jacobian(x[inliers], M, dirs[inliers])
        r = (x[inliers] - y[inliers]) / s
        n = ny[inliers]
        J_plane, r_plane = np.einsum("nc,ncp->np", n, J), np.einsum("nc,nc->n", n, r)
        J_point, r_point = J.reshape(-1, J.shape[2]), r.ravel()
        H = (J_plane.T @ J_plane + POINT_WEIGHT ** 2 * J_point.T @ J_point) / n_in
        g = (J_plane.T @ r_plane + POINT_WEIGHT ** 2 * J_point.T @ r_point) / n_in
        if landmarks is not None:
            x_l = landmarks.weights @ x
            J_l = _point_jacobian(x_l, M, np.einsum("lv,vck->lck", landmarks.weights, dirs)).reshape(-1, 7 + K)
            r_l = ((x_l - landmarks.targets) / s).ravel()
            H += J_l.T @ J_l / len(landmarks.targets)
            g += J_l.T @ r_l / len(landmarks.targets)
        free = np.r_[np.ones(7, dtype=bool), np.full(K, with_shape)]
        H, g = H[np.ix_(free, free)], g[free]
        prior = np.r_[np.zeros(7), np.full(int(with_shape) * K, shape_prior)]
        H[np.diag_indices_from(H)] += prior + 1e-6 * np.diag(H) + 1e-12
        g += prior * np.r_[np.zeros(7), beta][free]
        step = -np.linalg.solve(H, g)
        s_new = s * np.exp(step[6])
        R_new = axis_angle_to_matrix(step[:3]) @ decompose(M)[1]
        M = compose(s_new, R_new, M[:3, 3] + s * step[3:6])
        if with_shape:
            beta = beta + step[7:]
        on_progress((it + 1) / total)
    x, _, _, d, inliers = _matches(surface, closest, M, beta)
    rms = float(np.sqrt(np.mean(d[inliers] ** 2))) if inliers.any() else np.inf
    if not rms <= max_rms or inliers.mean() < 0.5:
        raise RetargetError(f"fit did not converge: RMS {rms * 1000:.1f} mm (FLAME scale) over "
                            f"{100 * inliers.mean():.0f}% of FLAME's vertices (needs <= {max_rms * 1000:.1f} mm "
                            f"over half); check that the head faces -Y and stands up +Z, or add flame_lmk.* hints")
    return FitResult(M, beta, x, d, inliers, rms)
