"""The FLAME forward pass in numpy: the reference that Blender's evaluated mesh is tested against.

B frames, V vertices, J = 5 joints, S identity and E expression components. Follows smplx's
``lbs.py``: blendshapes, joints from the shaped and expressed mesh, pose correctives from
(R - I) of joints 1..4, the kinematic chain, linear blend skinning, then translation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .model import FlameModel


def blend_shapes(coeffs: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """coeffs: (B, K), dirs: (V, 3, K) -> offsets (B, V, 3)."""
    return np.einsum("bk,vck->bvc", coeffs, dirs[:, :, : coeffs.shape[1]])


def pose_features(rotations: np.ndarray) -> np.ndarray:
    """rotations: (B, J, 3, 3) -> (R_j - I) of joints 1.. flattened row-major: (B, 9 (J - 1))."""
    B = rotations.shape[0]
    return (rotations[:, 1:] - np.eye(3)).reshape(B, -1)


def rigid_transforms(rotations: np.ndarray, joints: np.ndarray, parents: np.ndarray):
    """Forward kinematics.

    rotations: (B, J, 3, 3) local joint rotations; joints: (B, J, 3) rest joints; parents: (J,).
    Returns posed joints (B, J, 3) and rest-relative skinning transforms A (B, J, 4, 4).
    """
    B, J = joints.shape[:2]
    rel = joints.copy()
    rel[:, 1:] -= joints[:, parents[1:]]
    local = np.zeros((B, J, 4, 4))
    local[:, :, :3, :3] = rotations
    local[:, :, :3, 3] = rel
    local[:, :, 3, 3] = 1.0
    chain = [local[:, 0]]
    for j in range(1, J):  # parents precede children in FLAME's kinematic tree
        chain.append(chain[parents[j]] @ local[:, j])
    G = np.stack(chain, axis=1)  # (B, J, 4, 4)
    A = G.copy()
    A[:, :, :3, 3] -= np.einsum("bjrc,bjc->bjr", G[:, :, :3, :3], joints)
    return G[:, :, :3, 3].copy(), A


def skin(vertices: np.ndarray, weights: np.ndarray, A: np.ndarray) -> np.ndarray:
    """Linear blend skinning. vertices: (B, V, 3), weights: (V, J), A: (B, J, 4, 4) -> (B, V, 3)."""
    T = np.einsum("vj,bjrc->bvrc", weights, A)  # (B, V, 4, 4)
    return np.einsum("bvrc,bvc->bvr", T[:, :, :3, :3], vertices) + T[:, :, :3, 3]


@dataclass
class ForwardResult:
    """vertices: (B, V, 3) posed; joints: (B, J, 3) posed; rest_joints: (B, J, 3) before posing."""

    vertices: np.ndarray
    joints: np.ndarray
    rest_joints: np.ndarray


def forward(model: FlameModel, shape: np.ndarray, expr: np.ndarray, rotations: np.ndarray,
            translation: np.ndarray | None = None, eyelids: np.ndarray | None = None,
            eyelid_dirs: np.ndarray | None = None) -> ForwardResult:
    """FLAME for B frames.

    shape: (B, S) or (S,) shared; expr: (B, E); rotations: (B, J, 3, 3) local joint rotations in
    FLAME order (root, neck, jaw, eye L, eye R); translation: (B, 3) added after skinning;
    eyelids: (B, 2) weights of eyelid_dirs (2, V, 3), added after skinning (metrical-tracker).
    """
    rotations = np.asarray(rotations, dtype=np.float64)
    B = rotations.shape[0]
    shape = np.broadcast_to(np.atleast_2d(np.asarray(shape, dtype=np.float64)), (B, np.shape(shape)[-1]))
    expr = np.asarray(expr, dtype=np.float64).reshape(B, -1)
    v_shaped = (model.v_template + blend_shapes(shape, model.shapedirs)
                + blend_shapes(expr, model.exprdirs))
    rest_joints = np.einsum("jv,bvc->bjc", model.J_regressor, v_shaped)
    v_posed = v_shaped + blend_shapes(pose_features(rotations), model.posedirs)
    joints, A = rigid_transforms(rotations, rest_joints, model.parents)
    verts = skin(v_posed, model.weights, A)
    if eyelids is not None and eyelid_dirs is not None:
        verts = verts + np.einsum("bk,kvc->bvc", np.asarray(eyelids).reshape(B, -1), eyelid_dirs)
    if translation is not None:
        t = np.asarray(translation, dtype=np.float64).reshape(B, 1, 3)
        verts, joints = verts + t, joints + t
    return ForwardResult(verts, joints, rest_joints)
