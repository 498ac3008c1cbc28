"""FLAME performances <-> a character's own shape-key weights, over FLAME's face region.

Everything is head-local: root, neck and eyes at rest, so the rigid head motion (which goes to the
character's object or head bone) and the gaze (eye bones) are left out. What remains of FLAME is
expression and jaw: for a face-region vertex,

    v(e, R) = v_s + E e + P vec(R - I),    v' = v + w (R - I)(v - j0 - Jd e),

where R is the jaw rotation, w the jaw's skin weight, P the jaw's pose correctives and j0 + Jd e the
expression-dependent jaw joint (:func:`..lbs.forward` with the other joints at rest; exact).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..lbs import blend_shapes
from ..model import FlameModel
from ..rotations import axis_angle_to_matrix
from .binding import Binding
from .bvls import bounded_least_squares

JAW = 2
_JAW_FEATURES = slice(9 * (JAW - 1), 9 * JAW)  # (R_jaw - I) row-major among the 36 pose features


@dataclass(frozen=True)
class FaceModel:
    """FLAME on m face-region vertices, head-local. index: (m,) FLAME vertex ids; rest: (m, 3) shaped,
    neutral; exprdirs: (m, 3, E); jaw_posedirs: (m, 3, 9); jaw_weight: (m,); jaw_joint: (3,) rest
    jaw joint for the shape; jaw_joint_dirs: (3, E) its shift per expression coefficient."""

    index: np.ndarray
    rest: np.ndarray
    exprdirs: np.ndarray
    jaw_posedirs: np.ndarray
    jaw_weight: np.ndarray
    jaw_joint: np.ndarray
    jaw_joint_dirs: np.ndarray

    @property
    def n_expr(self) -> int:
        return self.exprdirs.shape[2]


def face_region(model: FlameModel, threshold: float = 0.05) -> np.ndarray:
    """FLAME vertex ids (m,) that expression or the jaw moves: the largest expression displacement is
    at least ``threshold`` of the model's largest, or the jaw's skin weight is at least ``threshold``."""
    reach = np.linalg.norm(model.exprdirs, axis=1).max(axis=1) if model.n_expr else np.zeros(model.n_verts)
    return np.flatnonzero((reach >= threshold * max(reach.max(initial=0.0), 1e-300))
                          | (model.weights[:, JAW] >= threshold))


def face_model(model: FlameModel, shape: np.ndarray, index: np.ndarray) -> FaceModel:
    """Restrict ``model`` with identity ``shape`` (S,) to the vertices ``index`` (m,)."""
    shaped = model.v_template + blend_shapes(np.atleast_2d(shape), model.shapedirs)[0]
    return FaceModel(
        index=np.asarray(index), rest=shaped[index], exprdirs=model.exprdirs[index],
        jaw_posedirs=model.posedirs[index][:, :, _JAW_FEATURES], jaw_weight=model.weights[index, JAW],
        jaw_joint=model.J_regressor[JAW] @ shaped,
        jaw_joint_dirs=np.einsum("v,vce->ce", model.J_regressor[JAW], model.exprdirs))


def displacement(face: FaceModel, expr: np.ndarray, jaw: np.ndarray) -> np.ndarray:
    """Head-local displacement of the face region. expr: (T, E), jaw: (T, 3, 3) -> (T, m, 3)."""
    expr = np.asarray(expr, dtype=np.float64)
    T, m = len(expr), len(face.rest)
    rel = jaw - np.eye(3)  # (T, 3, 3)
    offsets = (face.exprdirs.reshape(3 * m, -1) @ expr.T).T.reshape(T, m, 3)
    offsets += (rel.reshape(T, 9) @ face.jaw_posedirs.reshape(3 * m, 9).T).reshape(T, m, 3)
    v = face.rest + offsets
    joint = face.jaw_joint + expr @ face.jaw_joint_dirs.T  # (T, 3)
    swing = (v - joint[:, None]) @ rel.transpose(0, 2, 1)
    return offsets + face.jaw_weight[:, None] * swing


def _scatter(sample: Binding, values: np.ndarray, m: int) -> np.ndarray:
    """Transpose of ``sample.interpolate``: values (..., n, 3) at the points -> (..., m, 3) on the region."""
    out = np.zeros((m, *values.shape[:-2], 3))
    moved = np.moveaxis(values, -2, 0)  # (n, ..., 3)
    for k in range(3):
        np.add.at(out, sample.corners[:, k], moved * sample.bary[:, k].reshape(-1, *[1] * (moved.ndim - 1)))
    return np.moveaxis(out, 0, -2)


def keys_from_head(key_deltas: np.ndarray, sample: Binding, target: np.ndarray, lower: np.ndarray,
                   upper: np.ndarray, vertex_weights: np.ndarray | None = None) -> np.ndarray:
    """Key weights that reproduce a head-local performance at the character's points, each within
    its slider range.

    key_deltas: (K, n, 3) the character's keys at its n face-region points (FLAME axes and units);
    sample: binding of those points to the region (corners index the region's m vertices);
    target: (T, m, 3) head-local displacement of the region (:func:`displacement`); lower, upper:
    (K,); vertex_weights: (n,) (0 drops a point). Minimises sum_n w_n |sum_k w_k D_kn - sample(target)_n|^2
    without sampling every frame: the keys are scattered back onto the region once. Returns (T, K)."""
    w = np.ones(key_deltas.shape[1]) if vertex_weights is None else np.asarray(vertex_weights, dtype=np.float64)
    weighted = key_deltas * w[None, :, None]
    G = weighted.reshape(len(weighted), -1) @ key_deltas.reshape(len(key_deltas), -1).T  # (K, K)
    back = _scatter(sample, weighted, target.shape[1])  # (K, m, 3)
    C = target.reshape(len(target), -1) @ back.reshape(len(back), -1).T  # (T, K)
    return bounded_least_squares(G, C, lower, upper)


def head_from_keys(face: FaceModel, sample: Binding, target: np.ndarray, vertex_weights: np.ndarray | None = None,
                   expr_prior: float = 1e-10, iterations: int = 6, chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Expression (T, E) and jaw axis-angle (T, 3) whose head-local displacement, sampled at the
    character's points, best matches ``target`` (T, n, 3) (least squares, Gauss-Newton for the jaw).

    sample: binding of the n points to the region's m vertices; vertex_weights: (n,);
    expr_prior: weight (m^2) of |e|^2 against the summed squared residual, keeps unused components
    at zero. The jaw's Jacobian is taken by finite differences; frames go ``chunk`` at a time."""
    T, n = target.shape[:2]
    w = np.ones(n) if vertex_weights is None else np.asarray(vertex_weights, dtype=np.float64)
    sw = np.sqrt(w)[:, None]
    E = face.n_expr
    B = (np.moveaxis(sample.interpolate(np.moveaxis(face.exprdirs, 2, 0)), 0, 2) * sw[:, :, None]).reshape(3 * n, E)
    BtB = B.T @ B + expr_prior * np.eye(E)
    expr, aa = np.zeros((T, E)), np.zeros((T, 3))
    h = 1e-5

    def sampled(e: np.ndarray, a: np.ndarray) -> np.ndarray:
        return (sample.interpolate(displacement(face, e, axis_angle_to_matrix(a))) * sw).reshape(len(e), -1)

    for lo in range(0, T, chunk):
        part = slice(lo, min(lo + chunk, T))
        e, a, y = expr[part], aa[part], (target[part] * sw).reshape(-1, 3 * n)
        for _ in range(iterations):
            base = sampled(e, a)
            r = base - y  # (t, 3n)
            Jj = np.stack([(sampled(e, a + h * np.eye(3)[k]) - base) / h for k in range(3)], axis=2)  # (t, 3n, 3)
            Jt = Jj.transpose(0, 2, 1)
            H = np.zeros((len(e), E + 3, E + 3))
            H[:, :E, :E] = BtB
            H[:, E:, :E] = Jt @ B
            H[:, :E, E:] = H[:, E:, :E].transpose(0, 2, 1)
            H[:, E:, E:] = Jt @ Jj + 1e-12 * np.eye(3)
            g = np.concatenate([r @ B + expr_prior * e, (Jt @ r[:, :, None])[:, :, 0]], axis=1)
            step = np.linalg.solve(H, -g[:, :, None])[:, :, 0]
            e, a = e + step[:, :E], a + step[:, E:]
        expr[part], aa[part] = e, a
    return expr, aa
