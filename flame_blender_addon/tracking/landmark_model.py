"""FLAME restricted to landmarks, with analytic Jacobians, in torch (the tracker's inner loop).

Landmark l is ``sum_c bary[l, c] * vertex[face[l], c]`` on the posed mesh. The tracker keeps the
neck at identity and puts the whole rigid head motion into the root joint, so with
``y`` the landmark posed with root = I and no translation, FLAME gives exactly

    x_l = R0 y_l + tau,     tau = J0 - R0 J0 + t      (t: FLAME translation, J0: root joint)
    y_l = m_l + sum_{j in jaw, eye L, eye R} (R_j - I) (n_lj - s_lj J_j)

where ``m_l = sum_c b_c v_c``, ``n_lj = sum_c b_c w_cj v_c`` and ``s_lj = sum_c b_c w_cj`` over the
triangle's posed-rest vertices v (template + blendshapes + pose correctives), all linear in the
coefficients and the pose features. Those linear maps are precomputed per landmark once, so a
frame costs O(L K) and no per-vertex work. Rotations are axis-angle; Jacobians use the right
Jacobian of SO(3). Projection: OpenCV camera ``R = diag(1, -1, -1), t = 0`` (camera at the
origin looking along -Z, image y down), pixels ``u = cx + f x / d, v = cy - f y / d, d = -z``.

Shapes: L landmarks, K = S + E coefficients (identity first), B frames, P = 15 + E per-frame
parameters laid out as ``FRAME_LAYOUT``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..core.model import FlameModel

ARTICULATED = (2, 3, 4)  # jaw, eye L, eye R: the joints fitted per frame besides the root
N_FEAT = 9 * len(ARTICULATED)  # their pose-corrective features, FLAME features 9..35
FEAT0 = 9  # first feature of joint 2 (feature k = 9 (j - 1) + 3 row + col)
ROT, TRANS, JAW, EYE_L, EYE_R = (slice(0, 3), slice(3, 6), slice(6, 9), slice(9, 12), slice(12, 15))
N_POSE = 15  # root rotation, tau, jaw, eye L, eye R; expression follows
FRAME_LAYOUT = {"rotation": ROT, "tau": TRANS, "jaw": JAW, "eye_l": EYE_L, "eye_r": EYE_R}


@dataclass(frozen=True)
class LandmarkBasis:
    """Precomputed linear maps of the landmark model (all float tensors on one device).

    m0: (L, 3); Bm: (L, 3, K); Pm: (L, 3, 27) -- the barycentric rest landmark
    s: (L, 3) skin weight of the jaw/eye joints; n0: (L, 3, 3); Bn: (L, 3, 3, K); Pn: (L, 3, 3, 27)
    J0: (5, 3) template joints; JB: (5, 3, K) joint blendshapes
    C: (L, 4 * 3, K) = [Bm, Bn_j - s_lj JB_j for the 3 joints], so d y / d c = [I, A_j] C
    size: (3, S) relative change of the neutral head's width, height and depth per unit of each
    identity coefficient (least-squares scale factor per axis of the whole mesh about its centroid)
    """

    m0: torch.Tensor
    Bm: torch.Tensor
    Pm: torch.Tensor
    s: torch.Tensor
    n0: torch.Tensor
    Bn: torch.Tensor
    Pn: torch.Tensor
    J0: torch.Tensor
    JB: torch.Tensor
    C: torch.Tensor
    size: torch.Tensor
    n_shape: int
    n_expr: int

    @property
    def n_landmarks(self) -> int:
        return self.m0.shape[0]


def build_basis(model: FlameModel, face_idx: np.ndarray, bary: np.ndarray, n_shape: int, n_expr: int,
                device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64) -> LandmarkBasis:
    """Restrict ``model`` to the landmarks ``(face_idx (L,), bary (L, 3))``, keeping the first
    ``n_shape`` identity and ``n_expr`` expression components."""
    corners = model.faces[np.asarray(face_idx, dtype=np.int64)]  # (L, 3)
    b = np.asarray(bary, dtype=np.float64)
    dirs = np.concatenate([model.shapedirs[:, :, :n_shape], model.exprdirs[:, :, :n_expr]], axis=2)
    feats = model.posedirs[:, :, FEAT0:FEAT0 + N_FEAT]
    w = model.weights[corners][:, :, list(ARTICULATED)]  # (L, 3c, 3j)
    arrays = {
        "m0": np.einsum("lc,lcx->lx", b, model.v_template[corners]),
        "Bm": np.einsum("lc,lcxk->lxk", b, dirs[corners]),
        "Pm": np.einsum("lc,lcxf->lxf", b, feats[corners]),
        "s": np.einsum("lc,lcj->lj", b, w),
        "n0": np.einsum("lc,lcj,lcx->ljx", b, w, model.v_template[corners]),
        "Bn": np.einsum("lc,lcj,lcxk->ljxk", b, w, dirs[corners]),
        "Pn": np.einsum("lc,lcj,lcxf->ljxf", b, w, feats[corners]),
        "J0": model.J_regressor @ model.v_template,
        "JB": np.einsum("jv,vxk->jxk", model.J_regressor, dirs),
    }
    JBa = arrays["JB"][list(ARTICULATED)]  # (3j, 3, K)
    C = arrays["Bn"] - np.einsum("lj,jxk->ljxk", arrays["s"], JBa)
    arrays["C"] = np.concatenate([arrays["Bm"][:, None], C], axis=1).reshape(len(b), 12, -1)
    arrays["size"] = size_directions(model, n_shape)
    tensors = {k: torch.as_tensor(v, dtype=dtype, device=device) for k, v in arrays.items()}
    return LandmarkBasis(**tensors, n_shape=n_shape, n_expr=n_expr)


def size_directions(model: FlameModel, n_shape: int) -> np.ndarray:
    """(3, n_shape): d scale_axis / d beta_k, the least-squares scale factor of each axis of the
    neutral mesh about its centroid (``sum_v X_va D_vak / sum_v X_va^2``, X the centred template)."""
    X = model.v_template - model.v_template.mean(axis=0)
    return np.einsum("va,vak->ak", X, model.shapedirs[:, :, :n_shape]) / (X * X).sum(axis=0)[:, None]


def skew(v: torch.Tensor) -> torch.Tensor:
    """(..., 3) -> cross-product matrices (..., 3, 3) with skew(a) @ b = a x b."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(v.shape + (3,))


def _so3_coeffs(r: torch.Tensor):
    """sin(t)/t, (1-cos t)/t^2, (t-sin t)/t^3 for axis-angle r (..., 3), stable at t = 0."""
    t2 = (r * r).sum(-1, keepdim=True)[..., None]  # (..., 1, 1)
    small = t2 < 1e-8
    safe_t = torch.sqrt(torch.where(small, torch.ones_like(t2), t2))  # finite gradients in both branches
    a = torch.where(small, 1 - t2 / 6, torch.sin(safe_t) / safe_t)
    b = torch.where(small, 0.5 - t2 / 24, (1 - torch.cos(safe_t)) / safe_t ** 2)
    c = torch.where(small, 1.0 / 6 - t2 / 120, (safe_t - torch.sin(safe_t)) / safe_t ** 3)
    return a, b, c


def axis_angle_to_matrix(r: torch.Tensor) -> torch.Tensor:
    """Rodrigues. r: (..., 3) -> (..., 3, 3)."""
    a, b, _ = _so3_coeffs(r)
    K = skew(r)
    return torch.eye(3, dtype=r.dtype, device=r.device) + a * K + b * (K @ K)


def right_jacobian(r: torch.Tensor) -> torch.Tensor:
    """Jr (..., 3, 3) with exp(r + d) = exp(r) exp(Jr d) to first order."""
    _, b, c = _so3_coeffs(r)
    K = skew(r)
    return torch.eye(3, dtype=r.dtype, device=r.device) - b * K + c * (K @ K)


def coefficients(basis: LandmarkBasis, beta: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """[shape, expression] per frame. beta: (S,), frames: (B, P) -> (B, K). ``basis`` may be any model with
    ``n_expr`` (a :class:`.mesh_model.MeshModel` too)."""
    expr = frames[:, N_POSE:N_POSE + basis.n_expr]
    return torch.cat([beta.expand(frames.shape[0], -1), expr], dim=1)


@dataclass
class Evaluation:
    """Landmarks of B frames and, when asked for, their Jacobians.

    x: (B, L, 3) camera-space points; uv: (B, L, 2) pixels; depth: (B, L)
    J_frame: (B, L, 2, P) d uv / d frame params; J_global: (B, L, 2, S [+1]) d uv / d (beta [, log f])
    """

    x: torch.Tensor
    uv: torch.Tensor
    depth: torch.Tensor
    J_frame: torch.Tensor | None = None
    J_global: torch.Tensor | None = None


def evaluate(basis: LandmarkBasis, beta: torch.Tensor, frames: torch.Tensor, focal: torch.Tensor,
             center: torch.Tensor, frame_cols: int = 0, shape_jac: bool = False,
             focal_jac: bool = False) -> Evaluation:
    """Landmark pixels for per-frame parameters ``frames`` (B, P) and identity ``beta`` (S,).

    frame_cols: how many leading per-frame columns get a Jacobian (0: none, 6: rigid only,
    P: all); shape_jac / focal_jac add columns for beta and log focal to ``J_global``.
    focal: () pixels; center: (2,) principal point in pixels.
    """
    B = frames.shape[0]
    eye = torch.eye(3, dtype=frames.dtype, device=frames.device)
    c = coefficients(basis, beta, frames)  # (B, K)
    rot_art = frames[:, JAW.start:EYE_R.stop].reshape(B, 3, 3)  # (B, 3j, 3) axis-angle
    R = axis_angle_to_matrix(rot_art)  # (B, 3j, 3, 3)
    A = R - eye  # (B, 3j, 3, 3)
    pf = A.reshape(B, N_FEAT)  # row-major per joint, joints 2, 3, 4
    m = basis.m0 + torch.einsum("lxk,bk->blx", basis.Bm, c) + torch.einsum("lxf,bf->blx", basis.Pm, pf)
    n = basis.n0 + torch.einsum("ljxk,bk->bljx", basis.Bn, c) + torch.einsum("ljxf,bf->bljx", basis.Pn, pf)
    joints = basis.J0[list(ARTICULATED)] + torch.einsum("jxk,bk->bjx", basis.JB[list(ARTICULATED)], c)
    u = n - basis.s[None, :, :, None] * joints[:, None]  # (B, L, 3j, 3)
    y = m + torch.einsum("bjxy,bljy->blx", A, u)
    R0 = axis_angle_to_matrix(frames[:, ROT])  # (B, 3, 3)
    x = torch.einsum("bxy,bly->blx", R0, y) + frames[:, None, TRANS]
    depth = -x[..., 2]
    inv_d = 1.0 / depth
    uv = torch.stack([center[0] + focal * x[..., 0] * inv_d, center[1] - focal * x[..., 1] * inv_d], -1)
    out = Evaluation(x=x, uv=uv, depth=depth)
    if not (frame_cols or shape_jac or focal_jac):
        return out

    # d uv / d x: (B, L, 2, 3)
    fd = focal * inv_d
    zero = torch.zeros_like(fd)
    Jp = torch.stack([torch.stack([fd, zero, fd * x[..., 0] * inv_d], -1),
                      torch.stack([zero, -fd, -fd * x[..., 1] * inv_d], -1)], -2)
    JpR0 = torch.einsum("blux,bxy->bluy", Jp, R0)  # d uv / d y
    # d uv / d y times [I, A_jaw, A_eyeL, A_eyeR]: (L, B 2, 12), contracted with C for coefficients
    JpA = torch.cat([JpR0[:, :, :, None], torch.einsum("bluy,bjyz->blujz", JpR0, A)], 3)
    JpA = JpA.permute(1, 0, 2, 3, 4).reshape(JpR0.shape[1], B * 2, 12)
    cols = []
    if frame_cols:
        J_rot = -torch.einsum("bluy,blyz,bzw->bluw", JpR0, skew(y), right_jacobian(frames[:, ROT]))
        cols += [J_rot, Jp]
    if frame_cols > 6:
        # articulated joints, right perturbation R_j <- R_j exp([d]x): d y = -R_j [u]x d + Q dpf
        Q = basis.Pm + torch.einsum("bjxy,ljyf->blxf", A, basis.Pn)  # (B, L, 3, 27)
        gen = skew(eye)  # (3k, 3, 3): gen[k] = [e_k]x
        dpf = torch.einsum("bjxy,kyz->bjxzk", R, gen).reshape(B, 3, 9, 3)  # vec(R_j [e_k]x)
        Qj = Q.reshape(B, -1, 3, 3, 9)  # (B, L, 3x, 3j, 9)
        dy = (-torch.einsum("bjxy,bljyz->bljxz", R, skew(u))
              + torch.einsum("blxjf,bjfk->bljxk", Qj, dpf))  # (B, L, 3j, 3, 3)
        dy = torch.einsum("bljxk,bjkz->bljxz", dy, right_jacobian(rot_art))
        cols.append(torch.einsum("bluy,bljyz->blujz", JpR0, dy).reshape(B, -1, 2, 9))
        cols.append(_coeff_jacobian(basis, JpA, basis.n_shape, None))
    if cols:
        out.J_frame = torch.cat(cols, dim=-1)[..., :frame_cols]
    gcols = []
    if shape_jac:
        gcols.append(_coeff_jacobian(basis, JpA, 0, basis.n_shape))
    if focal_jac:
        gcols.append((uv - center)[..., None])
    if gcols:
        out.J_global = torch.cat(gcols, dim=-1)
    return out


def _coeff_jacobian(basis: LandmarkBasis, JpA: torch.Tensor, k0: int, k1: int | None) -> torch.Tensor:
    """d uv / d c for coefficient columns k0:k1. JpA: (L, B 2, 12) -> (B, L, 2, k1 - k0)."""
    out = torch.bmm(JpA, basis.C[..., k0:k1])  # (L, B 2, k)
    L = out.shape[0]
    return out.reshape(L, -1, 2, out.shape[-1]).transpose(0, 1)


def root_translation(basis: LandmarkBasis, beta: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """FLAME translation t = tau - J0 + R0 J0 for each frame. -> (B, 3). ``basis`` may be any model with
    ``J0``, ``JB`` and ``n_expr`` (a :class:`.mesh_model.MeshModel` too)."""
    c = coefficients(basis, beta, frames)
    J0 = basis.J0[0] + torch.einsum("xk,bk->bx", basis.JB[0], c)
    R0 = axis_angle_to_matrix(frames[:, ROT])
    return frames[:, TRANS] - J0 + torch.einsum("bxy,by->bx", R0, J0)
