"""The whole FLAME mesh in torch, in the landmark fit's parametrisation (autograd, batched).

The tracker keeps the neck at identity and puts the rigid head motion into the root, so (as in
:mod:`.landmark_model`) a frame's vertices in the fitting camera's frame are

    x_v = R0 y_v + tau,    y_v = p_v + sum_{j in jaw, eye L, eye R} w_vj (R_j - I)(p_v - J_j)

with p the template plus identity, expression and pose-corrective offsets and J the joints
regressed from the shaped, expressed mesh: FLAME's LBS exactly. Per-frame parameters use
``landmark_model.FRAME_LAYOUT`` (rotation, tau, jaw, eyes, then expression). The fitting camera is
at the origin looking along -Z with image y down, i.e. OpenCV ``X_cv = diag(1, -1, -1) x``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..core.model import FlameModel
from . import landmark_model as lm

TO_OPENCV = (1.0, -1.0, -1.0)  # the fitting camera's axes -> OpenCV camera axes


@dataclass(frozen=True)
class MeshModel:
    """FLAME's arrays as tensors (one device and dtype). K = S + E coefficients, identity first.

    template: (V, 3); dirs: (V, 3, K); posedirs: (V, 3, 27) correctives of jaw and eyes;
    weights: (V, 3) skin weights of jaw, eye L, eye R; J0: (5, 3); JB: (5, 3, K); faces: (F, 3) int64;
    eyelid_dirs: (2, V, 3) metrical-tracker's eyelid blendshapes or None.
    """

    template: torch.Tensor
    dirs: torch.Tensor
    posedirs: torch.Tensor
    weights: torch.Tensor
    J0: torch.Tensor
    JB: torch.Tensor
    faces: torch.Tensor
    n_shape: int
    n_expr: int
    eyelid_dirs: torch.Tensor | None = None

    @property
    def n_verts(self) -> int:
        return self.template.shape[0]


def mesh_model(model: FlameModel, n_shape: int, n_expr: int, device: torch.device | str = "cpu",
               dtype: torch.dtype = torch.float32, eyelid_dirs: np.ndarray | None = None) -> MeshModel:
    """Tensors of ``model`` keeping the first n_shape identity and n_expr expression components."""
    dirs = np.concatenate([model.shapedirs[:, :, :n_shape], model.exprdirs[:, :, :n_expr]], axis=2)
    t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=device)  # noqa: E731
    return MeshModel(
        template=t(model.v_template), dirs=t(dirs),
        posedirs=t(model.posedirs[:, :, lm.FEAT0:lm.FEAT0 + lm.N_FEAT]),
        weights=t(model.weights[:, list(lm.ARTICULATED)]), J0=t(model.J_regressor @ model.v_template),
        JB=t(np.einsum("jv,vxk->jxk", model.J_regressor, dirs)),
        faces=torch.as_tensor(model.faces, dtype=torch.int64, device=device), n_shape=n_shape, n_expr=n_expr,
        eyelid_dirs=None if eyelid_dirs is None else t(eyelid_dirs))


def vertices(m: MeshModel, beta: torch.Tensor, frames: torch.Tensor, eyelids: torch.Tensor | None = None
             ) -> torch.Tensor:
    """Posed vertices in the fitting camera's frame. beta: (S,); frames: (B, P); eyelids: (B, 2)
    weights of ``eyelid_dirs``, added before the root motion (metrical-tracker adds them after
    skinning with root and neck at identity) -> (B, V, 3)."""
    B = frames.shape[0]
    c = lm.coefficients(m, beta, frames)  # (B, K)
    p = m.template + torch.einsum("vxk,bk->bvx", m.dirs, c)
    R = lm.axis_angle_to_matrix(frames[:, lm.JAW.start:lm.EYE_R.stop].reshape(B, 3, 3))  # (B, 3j, 3, 3)
    A = R - torch.eye(3, dtype=R.dtype, device=R.device)
    p = p + torch.einsum("vxf,bf->bvx", m.posedirs, A.reshape(B, -1))
    joints = m.J0[list(lm.ARTICULATED)] + torch.einsum("jxk,bk->bjx", m.JB[list(lm.ARTICULATED)], c)
    offset = torch.einsum("bjxy,bvjy->bvx", A, m.weights[None, :, :, None] * (p[:, :, None] - joints[:, None]))
    y = p + offset
    if eyelids is not None and m.eyelid_dirs is not None:
        y = y + torch.einsum("bk,kvx->bvx", eyelids, m.eyelid_dirs)
    R0 = lm.axis_angle_to_matrix(frames[:, lm.ROT])
    return torch.einsum("bxy,bvy->bvx", R0, y) + frames[:, None, lm.TRANS]


def to_opencv(points: torch.Tensor) -> torch.Tensor:
    """Fitting-camera points (..., 3) -> OpenCV camera points (x right, y down, z forward)."""
    return points * points.new_tensor(TO_OPENCV)


root_translation = lm.root_translation  # it reads only J0, JB and n_expr, which a MeshModel has too
