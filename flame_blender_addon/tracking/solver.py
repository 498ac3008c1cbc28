"""Landmark fitting of a whole clip: damped Gauss-Newton (Levenberg-Marquardt) in float64.

Objective (all frames, one identity):

    1/2 sum_t,l  c_tl rho(|M_tl (uv_tl - target_tl)| / sigma)   robust data term (Huber)
  + 1/2 sum_t,d  c_td rho(|r_ta - r_tb| / sigma)                 lip contact, mouth width (r = uv - target)
  + 1/2 sum_t    (p_t - mu)^T W (p_t - mu)                        per-frame priors
  + 1/2 sum_t    (p_t+1 - p_t)^T V (p_t+1 - p_t)                  temporal smoothness
  + 1/2 N [|beta|^2 / s_b^2 + |size(beta)|^2 / s_h^2              identity and head-size priors
           (+ (log f - log f0)^2 / s_f^2)]                        (and the focal prior)
    subject to |beta_k| <= bound

N is the number of frames in the data term, so the global priors keep their strength against the
data however long the clip (a prior counted once would fade as the frames pile up, and the
identity would drift to absorb the model's mismatch with a real face). ``size(beta)`` (3,) is the
relative change of the neutral head's width, height and depth (``LandmarkBasis.size``): a face's
size and its distance to the camera are not separable from landmarks, so the size is held near
the template's and the distance follows. The bound is kept by projecting every step onto the box.

The data term knows a few MediaPipe roles (:func:`.landmarks.roles`): inner-lip points and mouth
corners weigh more (``c_tl``); facing inner-lip points and the two mouth corners (a, b) add the
difference of their residuals, so the fitted lips touch when the detected ones do and the mouth
keeps its width; on outline points M_tl = I - (1 - s) t t^T
(t the detected outline's direction there) lets the point slide along the outline, as the outline
of a turning face is a silhouette, not a fixed point on the skin.

Stages, each made of LM steps with accept/reject:
1. rigid pose per frame from an affine fit of the mean face, refined (6 parameters per frame);
2. identity (and focal) with all per-frame parameters of a few key frames, the per-frame blocks
   eliminated by a Schur complement as in bundle adjustment;
3. every frame initialised from its rigid pose and the key frames' interpolated expression;
4. passes over all frames with the identity fixed: the block-tridiagonal normal equations of
   chunks of frames are solved exactly, alternating even and odd chunks (the other half held
   fixed), so the temporal prior bridges frames without a face;
5. an identity-only step over all frames, then a final pass.

T frames, L landmarks, P = 15 + E per-frame parameters (see :mod:`.landmark_model`), S identity
components, G global parameters (S, plus one for log focal when it is estimated).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ..core.rotations import matrix_to_axis_angle as _matrix_to_axis_angle
from . import landmark_model as lm
from . import landmarks as lmk

Progress = Callable[[float, str], None]
MIN_DEPTH = 1e-3  # metres in front of the camera


@dataclass(frozen=True)
class FitSettings:
    """Solver settings. Prior weights are inverse variances (parameter units), the data term is
    in units of the landmark noise ``sigma`` (pixels; ``None`` = 0.4 % of the face size)."""

    keyframes: int = 16  # at least this many key frames (all frames when fewer) ...
    keyframe_spacing: int = 16  # ... and at least one per this many frames ...
    max_keyframes: int = 256  # ... but no more than this
    chunk: int = 32
    key_iterations: int = 12
    rigid_iterations: int = 6
    passes: int = 3
    final_passes: int = 2
    noise_px: float | None = None
    huber: float = 3.0
    w_inner_lip: float = 2.0  # data weight of inner-lip points (other points 1)
    w_mouth_corner: float = 2.0
    w_lip_contact: float = 4.0  # weight of the upper-minus-lower residual of facing inner-lip points
    contour_slide: float = 0.5  # outline points: factor on the residual along the outline (1 = fixed)
    w_contour: float = 1.0  # data weight of outline points
    sd_expr: float = 1.0
    sd_shape: float = 0.5  # identity prior, counted once per frame in the data term
    shape_bound: float = 3.0  # hard bound on every |beta_k|
    sd_head_size: float = 0.03  # relative width, height and depth of the neutral head
    sd_jaw: tuple[float, float, float] = (0.3, 0.05, 0.05)
    sd_eye: tuple[float, float, float] = (0.4, 0.4, 0.02)
    sd_eye_pair: float = 0.05
    sd_log_focal: float = 0.3  # counted once per frame, like the identity prior
    vel_rot: float = 0.05
    vel_trans: float = 0.01
    vel_jaw: float = 0.05
    vel_eye: float = 0.1
    vel_expr: float = 0.3
    acc_rot: float = 0.002
    acc_trans: float = 0.0004
    acc_jaw: float = 0.02
    acc_eye: float = 0.015
    acc_expr: float = 0.15


@dataclass
class Problem:
    """Fixed inputs of a fit (tensors on the fitting device, float64).

    target: (T, L, 2) pixels (0 where missing); conf: (T, L) data weights (0 = missing)
    center: (2,) principal point; log_f0: () focal prior; fixed_focal: whether f is known
    prior_w: (P,) diagonal prior weights; vel_w, acc_w: (P,) weights of first and second differences
    pairs: (D, 2) rows (a, b) whose residual difference is fitted too (lip contact, mouth width), weighted pair_w
    contour: (C,) outline rows; contour_M: (T, C, 2, 2) their residual transforms M_tl
    """

    basis: lm.LandmarkBasis
    target: torch.Tensor
    conf: torch.Tensor
    center: torch.Tensor
    log_f0: torch.Tensor
    fixed_focal: bool
    sigma: float
    settings: FitSettings
    prior_w: torch.Tensor
    vel_w: torch.Tensor
    acc_w: torch.Tensor
    eye_pair_w: float
    pairs: torch.Tensor
    pair_w: float
    contour: torch.Tensor
    contour_M: torch.Tensor

    @property
    def n_frames(self) -> int:
        return self.target.shape[0]

    @property
    def shape_w(self) -> float:
        """Total weight of the identity prior: once per frame, so it keeps pace with the data term."""
        return self.n_frames / self.settings.sd_shape ** 2

    @property
    def n_params(self) -> int:
        return lm.N_POSE + self.basis.n_expr


@dataclass
class State:
    """Unknowns. beta: (S,), log_f: (), frames: (T, P)."""

    beta: torch.Tensor
    log_f: torch.Tensor
    frames: torch.Tensor


@dataclass
class FitResult:
    """Fitted parameters (numpy, float64) and diagnostics.

    beta: (S,); focal: pixels; frames: (T, P) per-frame parameters (``lm.FRAME_LAYOUT``);
    translation: (T, 3) FLAME translation in the fitting camera's frame; uv: (T, L, 2) fitted
    landmarks; error_px: (T,) mean landmark distance to the targets (NaN without a face)
    beta_history (N, S), focal_history (N,): identity and focal after each iteration that updates them
    """

    beta: np.ndarray
    focal: float
    frames: np.ndarray
    translation: np.ndarray
    uv: np.ndarray
    error_px: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)
    beta_history: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    focal_history: np.ndarray = field(default_factory=lambda: np.zeros(0))


def make_problem(basis: lm.LandmarkBasis, target: np.ndarray, conf: np.ndarray, image_size: tuple[int, int],
                 focal: float | None, settings: FitSettings, roles: lmk.Roles | None = None) -> Problem:
    """target: (T, L, 2) pixels with NaN rows for missing points; conf: (T, L) in [0, 1];
    roles: the rows with a role in the data term (none when omitted)."""
    dev, dt = basis.m0.device, basis.m0.dtype
    missing = ~np.isfinite(target).all(axis=2)
    conf = np.where(missing, 0.0, np.nan_to_num(conf, nan=0.0))
    roles = roles or lmk.Roles.none()
    weight = np.ones(target.shape[1])
    weight[roles.inner_lip] = settings.w_inner_lip
    weight[roles.mouth_corners] = settings.w_mouth_corner
    weight[roles.contour] = settings.w_contour
    conf = conf * weight
    H, W = image_size
    sigma = settings.noise_px or max(0.5, 0.004 * _face_size(target, missing))
    E = basis.n_expr
    prior = np.zeros(lm.N_POSE + E)
    prior[lm.JAW] = 1 / np.square(settings.sd_jaw)
    prior[lm.EYE_L] = prior[lm.EYE_R] = 1 / np.square(settings.sd_eye)
    prior[lm.N_POSE:] = 1 / settings.sd_expr ** 2
    prior[:6] = 1e-8  # keeps the rigid blocks positive definite; no real prior on pose
    vel = _block_weights(E, settings.vel_rot, settings.vel_trans, settings.vel_jaw, settings.vel_eye,
                         settings.vel_expr)
    acc = _block_weights(E, settings.acc_rot, settings.acc_trans, settings.acc_jaw, settings.acc_eye,
                         settings.acc_expr)
    f0 = focal if focal else float(max(H, W))
    t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=dt, device=dev)  # noqa: E731
    index = lambda a: torch.as_tensor(a, dtype=torch.long, device=dev)  # noqa: E731
    return Problem(basis=basis, target=t(np.nan_to_num(target, nan=0.0)), conf=t(conf),
                   center=t([W / 2, H / 2]), log_f0=t(math.log(f0)), fixed_focal=bool(focal),
                   sigma=float(sigma), settings=settings, prior_w=t(prior), vel_w=t(vel), acc_w=t(acc),
                   eye_pair_w=settings.sd_eye_pair ** -2, pairs=index(roles.lip_pairs), pair_w=settings.w_lip_contact,
                   contour=index(roles.contour),
                   contour_M=t(slide_matrices(target, roles.contour, roles.contour_neighbours, settings.contour_slide)))


def slide_matrices(target: np.ndarray, contour: np.ndarray, neighbours: np.ndarray, slide: float) -> np.ndarray:
    """Residual transforms (T, C, 2, 2) of outline points: ``I - (1 - slide) t t^T`` with t the unit
    direction of the detected outline at each point (through its neighbours, or one of them);
    the identity where the direction is unknown. target: (T, L, 2); contour: (C,); neighbours: (C, 2)."""
    T, C = target.shape[0], len(contour)
    M = np.broadcast_to(np.eye(2), (T, C, 2, 2)).copy()
    if C == 0:
        return M
    a = np.where(neighbours[:, 0] >= 0, neighbours[:, 0], contour)
    b = np.where(neighbours[:, 1] >= 0, neighbours[:, 1], contour)
    tangent = target[:, b] - target[:, a]
    length = np.linalg.norm(tangent, axis=-1)
    ok = np.isfinite(length) & (length > 1e-6) & (a != b)
    t = np.where(ok[..., None], tangent, 0.0) / np.where(ok, length, 1.0)[..., None]
    return M - (1 - slide) * t[..., :, None] * t[..., None, :]


def _block_weights(n_expr: int, rot: float, trans: float, jaw: float, eye: float, expr: float) -> np.ndarray:
    """Inverse variances (P,) from standard deviations per parameter block (0 = no term)."""
    sd = np.full(lm.N_POSE + n_expr, expr, dtype=np.float64)
    sd[lm.ROT], sd[lm.TRANS], sd[lm.JAW], sd[lm.EYE_L.start:lm.EYE_R.stop] = rot, trans, jaw, eye
    return np.where(sd > 0, 1.0 / np.where(sd > 0, sd, 1.0) ** 2, 0.0)


def _face_size(target: np.ndarray, missing: np.ndarray) -> float:
    """Median diagonal of the landmarks' bounding box over frames with a face (pixels)."""
    pts = np.where(missing[..., None], np.nan, target)
    valid = ~missing.all(axis=1)
    if not valid.any():
        return 100.0
    span = np.nanmax(pts[valid], axis=1) - np.nanmin(pts[valid], axis=1)
    return float(np.median(np.linalg.norm(span, axis=1)))


# ----------------------------------------------------------------------------------- terms


def _data(problem: Problem, state: State, idx: torch.Tensor, frames: torch.Tensor, frame_cols: int = 0,
          with_global: bool = False):
    """Robust data term of frames ``idx`` at per-frame parameters ``frames`` (B, P).

    Returns cost (B,) and, when Jacobians are asked for, per-frame normal-equation pieces
    Hff (B, c, c), gf (B, c), Hfg (B, c, G), Hgg (B, G, G), gg (B, G) (None where not asked).
    """
    fix_f = problem.fixed_focal
    ev = lm.evaluate(problem.basis, state.beta, frames, torch.exp(state.log_f), problem.center,
                     frame_cols=frame_cols, shape_jac=with_global, focal_jac=with_global and not fix_f)
    res = _rows(problem, idx, (ev.uv - problem.target[idx]) / problem.sigma)  # (B, R, 2)
    e = torch.linalg.vector_norm(res, dim=-1)
    k = problem.settings.huber
    conf = problem.conf[idx]
    if len(problem.pairs):
        conf = torch.cat([conf, problem.pair_w * torch.minimum(conf[:, problem.pairs[:, 0]],
                                                               conf[:, problem.pairs[:, 1]])], 1)
    rho = torch.where(e <= k, e * e, 2 * k * e - k * k)
    behind = (ev.depth <= MIN_DEPTH).any(-1)  # never accept a head reaching behind the camera
    cost = torch.where(behind, torch.full_like(e[:, 0], math.inf), 0.5 * (conf * rho).sum(-1))
    if not (frame_cols or with_global):
        return cost, None, None, None, None, None
    # IRLS: Huber weights, normal equations J^T W J and J^T W r with r in pixels
    w = (conf * torch.clamp(k / torch.clamp(e, min=1e-12), max=1.0)).sqrt()[..., None] / problem.sigma
    B = frames.shape[0]
    rw = (res * problem.sigma * w).reshape(B, -1)
    weighted = lambda J: (_rows(problem, idx, J) * w[..., None]).reshape(B, -1, J.shape[-1])  # noqa: E731
    Jf = weighted(ev.J_frame) if frame_cols else None
    Jg = weighted(ev.J_global) if with_global else None
    Hff = Jf.transpose(1, 2) @ Jf if Jf is not None else None
    gf = torch.einsum("bnc,bn->bc", Jf, rw) if Jf is not None else None
    Hfg = Jf.transpose(1, 2) @ Jg if (Jf is not None and Jg is not None) else None
    Hgg = Jg.transpose(1, 2) @ Jg if Jg is not None else None
    gg = torch.einsum("bng,bn->bg", Jg, rw) if Jg is not None else None
    return cost, Hff, gf, Hfg, Hgg, gg


def _rows(problem: Problem, idx: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Residual rows (B, R, 2[, n]) of the data term from landmark residuals or their Jacobians
    x (B, L, 2[, n]): outline rows transformed by M, then one row per lip pair (a - b)."""
    vec = x.dim() == 3
    y = x[..., None] if vec else x
    if len(problem.contour):
        y = y.clone()
        y[:, problem.contour] = problem.contour_M[idx] @ y[:, problem.contour]
    if len(problem.pairs):
        diff = x[:, problem.pairs[:, 0]] - x[:, problem.pairs[:, 1]]
        y = torch.cat([y, diff[..., None] if vec else diff], 1)
    return y[..., 0] if vec else y


def _prior(problem: Problem, frames: torch.Tensor, cols: int):
    """Per-frame prior: cost (B,), gradient (B, cols), Hessian (cols, cols) (shared)."""
    w = problem.prior_w
    pair = problem.eye_pair_w
    d_eye = frames[:, lm.EYE_L] - frames[:, lm.EYE_R]
    cost = 0.5 * (w * frames * frames).sum(-1) + 0.5 * pair * (d_eye * d_eye).sum(-1)
    grad = w * frames
    grad[:, lm.EYE_L] += pair * d_eye
    grad[:, lm.EYE_R] -= pair * d_eye
    hess = torch.diag(w)
    eye3 = pair * torch.eye(3, dtype=w.dtype, device=w.device)
    hess[lm.EYE_L, lm.EYE_L] += eye3
    hess[lm.EYE_R, lm.EYE_R] += eye3
    hess[lm.EYE_L, lm.EYE_R] -= eye3
    hess[lm.EYE_R, lm.EYE_L] -= eye3
    return cost, grad[:, :cols], hess[:cols, :cols]


def _global_prior(problem: Problem, state: State, n_frames: int):
    """Identity, head-size (and focal) priors of a data term over ``n_frames`` frames:
    cost (), gradient (G,), Hessian (G, G)."""
    s = problem.settings
    beta, A = state.beta, problem.basis.size  # A: (3, S)
    ws, wh = n_frames / s.sd_shape ** 2, n_frames / s.sd_head_size ** 2
    size = A @ beta
    cost = 0.5 * ws * (beta * beta).sum() + 0.5 * wh * (size * size).sum()
    grad = ws * beta + wh * (A.T @ size)
    hess = ws * torch.eye(len(beta), dtype=beta.dtype, device=beta.device) + wh * (A.T @ A)
    if problem.fixed_focal:
        return cost, grad, hess
    wf = n_frames / s.sd_log_focal ** 2
    d = state.log_f - problem.log_f0
    return (cost + 0.5 * wf * d * d, torch.cat([grad, (wf * d).reshape(1)]),
            torch.block_diag(hess, torch.full_like(hess[:1, :1], wf)))


def _split_global(problem: Problem, state: State, step: torch.Tensor) -> State:
    """Apply a global step, projected onto the identity bound."""
    S, bound = problem.basis.n_shape, problem.settings.shape_bound
    log_f = state.log_f if problem.fixed_focal else state.log_f + step[S]
    return State(beta=(state.beta + step[:S]).clamp(-bound, bound), log_f=log_f, frames=state.frames)


def _damp(H: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """Marquardt damping: H + mu diag(H) (+ a tiny ridge). H: (..., n, n), mu broadcast to (...)."""
    d = torch.diagonal(H, dim1=-2, dim2=-1)
    return H + torch.diag_embed((mu[..., None] if mu.dim() else mu) * d + 1e-9)


def _chol_solve(H: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Solve SPD systems H (..., n, n) X = rhs (..., n, m), adding a ridge where Cholesky fails."""
    L, info = torch.linalg.cholesky_ex(H)
    if bool((info > 0).any()):
        ridge = 1e-6 * torch.diagonal(H, dim1=-2, dim2=-1).abs().mean(-1).clamp(min=1e-9)
        L = torch.linalg.cholesky(H + torch.diag_embed(ridge[..., None].expand(H.shape[:-1])))
    return torch.cholesky_solve(rhs, L)


# ------------------------------------------------------------------- independent blocks


def blocks_lm(problem: Problem, state: State, idx: torch.Tensor, cols: int, with_global: bool,
              iterations: int, batch: int = 512, history: list[State] | None = None) -> State:
    """LM over frames ``idx`` taken independently (no temporal term), their first ``cols``
    parameters free, plus the globals when ``with_global`` (Schur complement over the frame
    blocks). Without globals each frame accepts or rejects its own step. ``history`` receives
    the state after each iteration with globals."""
    frames = state.frames
    mu_f = torch.full((len(idx),), 1e-3, dtype=frames.dtype, device=frames.device)
    mu_g = torch.tensor(1e-3, dtype=frames.dtype, device=frames.device)
    for _ in range(iterations):
        sub = state.frames[idx]
        parts = [_data(problem, state, idx[i:i + batch], sub[i:i + batch], cols, with_global)
                 for i in range(0, len(idx), batch)]
        cost0, Hff, gf, Hfg, Hgg, gg = (torch.cat([p[k] for p in parts]) if parts[0][k] is not None else None
                                        for k in range(6))
        pc, pg, ph = _prior(problem, sub, cols)
        cost0 = cost0 + pc
        if cols:
            Hff, gf = Hff + ph, gf + pg
        if not with_global:
            pending = torch.ones_like(mu_f, dtype=torch.bool)
            new = sub
            for _try in range(4):
                cand = sub.clone()
                cand[:, :cols] -= _chol_solve(_damp(Hff, mu_f), gf[..., None])[..., 0]
                ok = (_frames_cost(problem, state, idx, cand, batch) < cost0) & pending
                mu_f = torch.where(ok, mu_f / 3, torch.where(pending, mu_f * 4, mu_f))
                new = torch.where(ok[:, None], cand, new)
                pending = pending & ~ok
                if not bool(pending.any()):
                    break
            frames = state.frames.clone()
            frames[idx] = new
            state = State(state.beta, state.log_f, frames)
            continue
        gcost, ggp, ghp = _global_prior(problem, state, len(idx))
        Hgg_t, gg_t = Hgg.sum(0) + ghp, gg.sum(0) + ggp
        total0 = cost0.sum() + gcost
        for _try in range(6):
            if cols:
                X = _chol_solve(_damp(Hff, mu_g.expand(len(idx))), torch.cat([Hfg, gf[..., None]], -1))
                Sg = _damp(Hgg_t, mu_g) - (Hfg.transpose(1, 2) @ X[..., :-1]).sum(0)
                rhs = -gg_t + (Hfg.transpose(1, 2) @ X[..., -1:]).sum(0)[:, 0]
                dg = _chol_solve(Sg, rhs[:, None])[:, 0]
                df = -(X[..., -1] + X[..., :-1] @ dg)
            else:
                dg = _chol_solve(_damp(Hgg_t, mu_g), -gg_t[:, None])[:, 0]
            cand = _split_global(problem, state, dg)
            cand_frames = state.frames.clone()
            if cols:
                cand_frames[idx, :cols] += df
            cand = State(cand.beta, cand.log_f, cand_frames)
            total1 = (_frames_cost(problem, cand, idx, cand_frames[idx], batch).sum()
                      + _global_prior(problem, cand, len(idx))[0])
            if bool(total1 < total0):
                state, mu_g = cand, mu_g / 3
                break
            mu_g = mu_g * 4
        if history is not None:
            history.append(state)
    return state


def _frames_cost(problem: Problem, state: State, idx: torch.Tensor, frames: torch.Tensor, batch: int) -> torch.Tensor:
    """Data + prior cost of frames idx at parameters frames (B, P) -> (B,)."""
    data = torch.cat([_data(problem, state, idx[i:i + batch], frames[i:i + batch])[0]
                      for i in range(0, len(idx), batch)])
    return data + _prior(problem, frames, 0)[0]


# --------------------------------------------------------------- block-tridiagonal chunks


def solve_block_tridiagonal(H: torch.Tensor, b: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Solve ``H_i x_i - diag(lam_{i-1}) x_{i-1} - diag(lam_i) x_{i+1} = b_i`` for C chains at once.

    H: (C, n, P, P) SPD diagonal blocks; b: (C, n, P); lam: (C, n - 1, P) couplings -> x (C, n, P).
    Block Thomas algorithm: n sequential steps, each a batched Cholesky solve.
    """
    n = H.shape[1]
    S, y = H[:, 0], b[:, 0]
    Z1, Z2 = [], []
    for i in range(n - 1):
        Z = _chol_solve(S, torch.cat([torch.diag_embed(lam[:, i]), y[..., None]], -1))
        Z1.append(Z[..., :-1])  # S_i^-1 diag(lam_i)
        Z2.append(Z[..., -1])  # S_i^-1 y_i
        S = H[:, i + 1] - lam[:, i, :, None] * Z[..., :-1]
        y = b[:, i + 1] + lam[:, i] * Z[..., -1]
    x = _chol_solve(S, y[..., None])[..., 0]
    xs = [x]
    for i in range(n - 2, -1, -1):
        x = Z2[i] + (Z1[i] @ x[..., None])[..., 0]
        xs.append(x)
    return torch.stack(xs[::-1], dim=1)


def _chunks(T: int, chunk: int, color: int, device) -> torch.Tensor:
    """Frame indices of every other chunk, (C, chunk), padded with -1."""
    starts = list(range(color * chunk, T, 2 * chunk))
    if not starts:
        return torch.empty((0, chunk), dtype=torch.long, device=device)
    idx = torch.arange(chunk, device=device)[None] + torch.tensor(starts, device=device)[:, None]
    return torch.where(idx < T, idx, torch.full_like(idx, -1))


def _temporal(problem: Problem, frames: torch.Tensor, idx: torch.Tensor, cand: torch.Tensor):
    """Temporal priors of chunks with candidate values ``cand`` (C, n, P) for frames ``idx``
    (C, n) (-1 = padding), the other frames keeping their values in ``frames`` (T, P).

    Returns cost (C,) of every term touching a chunk, gradient (C, n, P), and the Hessian used
    for the step: diagonal (C, n, P) and internal couplings (C, n - 1, P). The acceleration term
    enters that Hessian through the bound D2^T D2 <= 4 D1^T D1 (D1, D2 first and second
    differences), which keeps it block-tridiagonal; LM's accept/reject uses the exact cost.
    """
    T = frames.shape[0]
    v, a = problem.vel_w, problem.acc_w
    real = idx >= 0
    full = frames.clone()
    full[idx[real]] = cand[real]
    chunk_of = torch.full((T,), -1, dtype=torch.long, device=idx.device)
    chunk_of[idx[real]] = real.nonzero()[:, 0]
    d1 = full[1:] - full[:-1]  # (T-1, P) edge e joins frames e, e+1
    d2 = full[2:] - 2 * full[1:-1] + full[:-2]  # (T-2, P) term t covers frames t..t+2
    grad = torch.zeros_like(full)
    grad[1:] += v * d1
    grad[:-1] -= v * d1
    grad[2:] += a * d2
    grad[1:-1] -= 2 * a * d2
    grad[:-2] += a * d2
    term_cost = torch.cat([0.5 * (v * d1 * d1).sum(1), 0.5 * (a * d2 * d2).sum(1)])
    owner = torch.cat([torch.maximum(chunk_of[1:], chunk_of[:-1]),
                       torch.maximum(torch.maximum(chunk_of[2:], chunk_of[1:-1]), chunk_of[:-2])])
    cost = torch.zeros(idx.shape[0], dtype=full.dtype, device=full.device)
    cost.index_add_(0, owner.clamp(min=0), term_cost * (owner >= 0))
    edges = torch.zeros(T, dtype=full.dtype, device=full.device)  # velocity edges per frame
    edges[1:] += 1
    edges[:-1] += 1
    w = v + 4 * a
    inner = (real[:, 1:] & real[:, :-1]).to(full.dtype)[..., None]
    diag = w * edges[idx.clamp(min=0)][..., None] * real[..., None]
    return cost, grad[idx.clamp(min=0)] * real[..., None], diag, w * inner


def sequence_pass(problem: Problem, state: State, batch_frames: int = 2048) -> State:
    """One LM iteration over all frames: even chunks, then odd chunks (the other half fixed)."""
    chunk = problem.settings.chunk
    P = problem.n_params
    for color in (0, 1):
        idx = _chunks(problem.n_frames, chunk, color, state.frames.device)
        if idx.numel() == 0:
            continue
        real = idx >= 0
        flat = idx[real]
        frames = state.frames
        cur = frames[idx.clamp(min=0)]  # (C, n, P)
        parts = [_data(problem, state, flat[i:i + batch_frames], frames[flat[i:i + batch_frames]], P)
                 for i in range(0, len(flat), batch_frames)]
        dcost = torch.cat([p[0] for p in parts])
        pc, pg, ph = _prior(problem, frames[flat], P)
        H = torch.eye(P, dtype=frames.dtype, device=frames.device).repeat(*idx.shape, 1, 1)
        g = torch.zeros_like(cur)
        H[real] = torch.cat([p[1] for p in parts]) + ph
        g[real] = torch.cat([p[2] for p in parts]) + pg
        chunk_cost = torch.zeros(idx.shape[0], dtype=frames.dtype, device=frames.device)
        chunk_cost.index_add_(0, real.nonzero()[:, 0], dcost + pc)
        tcost, tgrad, tdiag, lam = _temporal(problem, frames, idx, cur)
        cost0 = chunk_cost + tcost
        H = H + torch.diag_embed(tdiag)
        g = g + tgrad * real[..., None]
        mu = torch.full((idx.shape[0],), 1e-3, dtype=frames.dtype, device=frames.device)
        pending = torch.ones(idx.shape[0], dtype=torch.bool, device=frames.device)
        new = cur.clone()
        for _try in range(4):
            Hd = H + torch.diag_embed(mu[:, None, None] * torch.diagonal(H, dim1=-2, dim2=-1))
            step = solve_block_tridiagonal(Hd, -g, lam) * real[..., None]
            cand = cur + step
            cost1 = _chunk_cost(problem, state, idx, cand, frames)
            ok = (cost1 < cost0) & pending
            new = torch.where(ok[:, None, None], cand, new)
            pending = pending & ~ok
            mu = torch.where(ok, mu / 3, mu * 4)
            if not bool(pending.any()):
                break
        frames = frames.clone()
        frames[flat] = new[real]
        state = State(state.beta, state.log_f, frames)
    return state


def _chunk_cost(problem: Problem, state: State, idx: torch.Tensor, cand: torch.Tensor,
                frames: torch.Tensor) -> torch.Tensor:
    """Data + prior + temporal cost of each chunk (C,) at candidate values cand (C, n, P)."""
    real = idx >= 0
    flat = idx[real]
    per_frame = _frames_cost(problem, state, flat, cand[real], 4096)
    cost = torch.zeros(idx.shape[0], dtype=cand.dtype, device=cand.device)
    cost.index_add_(0, real.nonzero()[:, 0], per_frame)
    return cost + _temporal(problem, frames, idx, cand)[0]


# ------------------------------------------------------------------------------ stages


def affine_init(problem: Problem, idx: torch.Tensor) -> torch.Tensor:
    """Rigid pose of frames ``idx`` from a weak-perspective fit of the mean face. -> (B, P) params
    (rotation and tau set, everything else zero)."""
    basis = problem.basis
    X = basis.m0  # (L, 3) mean-face landmarks
    w = problem.conf[idx]  # (B, L)
    uv = problem.target[idx]
    f = torch.exp(problem.log_f0)
    img = torch.stack([uv[..., 0] - problem.center[0], problem.center[1] - uv[..., 1]], -1)  # y up
    wsum = w.sum(1, keepdim=True).clamp(min=1e-9)
    Xm = (w[..., None] * X).sum(1) / wsum  # (B, 3)
    im = (w[..., None] * img).sum(1) / wsum  # (B, 2)
    Xc, ic = X - Xm[:, None], img - im[:, None]
    M = torch.einsum("bl,blx,bly->bxy", w, Xc, Xc) + 1e-9 * torch.eye(3, dtype=X.dtype, device=X.device)
    A = torch.linalg.solve(M, torch.einsum("bl,blx,blu->bxu", w, Xc, ic)).transpose(1, 2)  # (B, 2, 3)
    scale = torch.linalg.vector_norm(A, dim=-1).mean(-1)  # f / depth
    r1 = A[:, 0] / torch.linalg.vector_norm(A[:, 0], dim=-1, keepdim=True)
    r2 = A[:, 1] - (A[:, 1] * r1).sum(-1, keepdim=True) * r1
    r2 = r2 / torch.linalg.vector_norm(r2, dim=-1, keepdim=True)
    R = torch.stack([r1, r2, torch.cross(r1, r2, dim=-1)], 1)
    U, _, Vh = torch.linalg.svd(R)
    R = U @ Vh
    depth = f / scale
    RX = torch.einsum("bxy,by->bx", R, Xm)
    tau = torch.stack([im[:, 0] / scale - RX[:, 0], im[:, 1] / scale - RX[:, 1], -depth - RX[:, 2]], -1)
    out = torch.zeros((len(idx), problem.n_params), dtype=X.dtype, device=X.device)
    out[:, lm.ROT] = matrix_to_axis_angle(R)
    out[:, lm.TRANS] = tau
    return out


def matrix_to_axis_angle(R: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) -> (B, 3) through numpy's reference conversion (stage set-up only)."""
    return torch.as_tensor(_matrix_to_axis_angle(R.detach().cpu().numpy()), dtype=R.dtype, device=R.device)


def interpolate_frames(values: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Fill rows of ``values`` (T, P) where ``known`` (T,) is False by linear interpolation along
    time between known rows (constant beyond the ends)."""
    t_known = known.nonzero()[:, 0]
    T = values.shape[0]
    t = torch.arange(T, device=values.device)
    right = torch.searchsorted(t_known, t).clamp(max=len(t_known) - 1)
    left = (right - 1).clamp(min=0)
    exact = t_known[right] == t
    left = torch.where(exact, right, left)
    tl, tr = t_known[left].to(values.dtype), t_known[right].to(values.dtype)
    a = torch.where(tr > tl, (t - tl) / (tr - tl).clamp(min=1), torch.zeros_like(tl)).clamp(0, 1)
    a = torch.where(t.to(values.dtype) > tr, torch.ones_like(a), a)
    return values[t_known[left]] * (1 - a[:, None]) + values[t_known[right]] * a[:, None]


def fit(problem: Problem, on_progress: Progress | None = None) -> FitResult:
    """Run all stages; returns the fitted clip."""
    report = on_progress or (lambda fraction, message: None)
    s = problem.settings
    dev, dt = problem.target.device, problem.target.dtype
    T, P = problem.n_frames, problem.n_params
    has_face = problem.conf.sum(1) > 0
    valid = has_face.nonzero()[:, 0]
    times: dict[str, float] = {}
    t0 = time.perf_counter()

    report(0.0, "rigid pose per frame")
    state = State(beta=torch.zeros(problem.basis.n_shape, dtype=dt, device=dev), log_f=problem.log_f0.clone(),
                  frames=torch.zeros((T, P), dtype=dt, device=dev))
    frames = state.frames.clone()
    frames[valid] = affine_init(problem, valid)
    state = blocks_lm(problem, State(state.beta, state.log_f, frames), valid, 6, False, s.rigid_iterations)
    times["rigid"] = time.perf_counter() - t0

    report(0.15, "identity on key frames")
    n_key = min(len(valid), max(s.keyframes, min(s.max_keyframes, len(valid) // s.keyframe_spacing)))
    keys = valid[torch.linspace(0, len(valid) - 1, n_key, device=dev).round().long()].unique()
    history: list[State] = []
    state = blocks_lm(problem, state, keys, P, True, s.key_iterations, history=history)
    times["keyframes"] = time.perf_counter() - t0 - sum(times.values())

    report(0.35, "all frames")
    is_key = torch.zeros(T, dtype=torch.bool, device=dev)
    is_key[keys] = True
    frames = interpolate_frames(state.frames, is_key)
    frames[:, :6] = state.frames[:, :6]
    state = blocks_lm(problem, State(state.beta, state.log_f, frames), valid, 6, False, 2)
    frames = state.frames.clone()
    frames[:, :6] = interpolate_frames(frames, has_face)[:, :6]
    state = State(state.beta, state.log_f, frames)
    n_pass = s.passes + s.final_passes
    for i in range(s.passes):
        state = sequence_pass(problem, state)
        report(0.35 + 0.5 * (i + 1) / n_pass, f"all frames, pass {i + 1}/{n_pass}")
    state = blocks_lm(problem, state, valid, 0, True, 2, history=history)
    for i in range(s.passes, n_pass):
        state = sequence_pass(problem, state)
        report(0.35 + 0.5 * (i + 1) / n_pass, f"all frames, pass {i + 1}/{n_pass}")
    times["sequence"] = time.perf_counter() - t0 - sum(times.values())
    return _result(problem, state, times, history)


def landmark_error(uv: torch.Tensor, target: torch.Tensor, has: torch.Tensor) -> torch.Tensor:
    """Mean distance (T,) of landmarks uv (T, L, 2) to their targets over the observed ones ``has``
    (T, L) bool; NaN for frames without any."""
    dist = torch.linalg.vector_norm(uv - target, dim=-1)
    return torch.where(has.any(1), (dist * has).sum(1) / has.sum(1).clamp(min=1), torch.full_like(dist[:, 0], math.nan))


def _result(problem: Problem, state: State, times: dict[str, float], history: list[State]) -> FitResult:
    ev = lm.evaluate(problem.basis, state.beta, state.frames, torch.exp(state.log_f), problem.center)
    err = landmark_error(ev.uv, problem.target, problem.conf > 0)
    trans = lm.root_translation(problem.basis, state.beta, state.frames)
    np_ = lambda x: x.detach().cpu().numpy().astype(np.float64)  # noqa: E731
    return FitResult(beta=np_(state.beta), focal=float(torch.exp(state.log_f)), frames=np_(state.frames),
                     translation=np_(trans), uv=np_(ev.uv), error_px=np_(err), timings=times,
                     beta_history=np.stack([np_(h.beta) for h in history]),
                     focal_history=np.array([float(torch.exp(h.log_f)) for h in history]))
