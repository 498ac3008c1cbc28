"""The numpy forward pass against an independent, loop-based formulation and FLAME's invariants."""

import numpy as np
import pytest
from synthetic_model import random_model_arrays

from flame_blender_addon.core import lbs, rig, rotations
from flame_blender_addon.core.model import model_from_arrays


@pytest.fixture(scope="module")
def model():
    return model_from_arrays(random_model_arrays(n_verts=40, n_faces=60, seed=2, joint_spread=5.0))


def _hom(R, t):
    M = np.eye(4)
    M[:3, :3], M[:3, 3] = R, t
    return M


def naive_flame(model, shape, expr, R, t):
    """FLAME written out vertex by vertex and joint by joint, as in the paper."""
    v_shaped = model.v_template.copy()
    for k in range(len(shape)):
        v_shaped += shape[k] * model.shapedirs[:, :, k]
    for k in range(len(expr)):
        v_shaped += expr[k] * model.exprdirs[:, :, k]
    J = np.array([sum(model.J_regressor[j, v] * v_shaped[v] for v in range(model.n_verts)) for j in range(5)])
    feats = [R[j][r, c] - (r == c) for j in range(1, 5) for r in range(3) for c in range(3)]
    v_posed = v_shaped + sum(f * model.posedirs[:, :, k] for k, f in enumerate(feats))
    world = {}
    for j in range(5):
        p = model.parents[j]
        local = _hom(R[j], J[j] - (J[p] if p >= 0 else 0))
        world[j] = local if p < 0 else world[p] @ local
    out = np.zeros_like(v_posed)
    for v in range(model.n_verts):
        M = sum(model.weights[v, j] * (world[j] @ _hom(np.eye(3), -J[j])) for j in range(5))
        out[v] = (M @ np.append(v_posed[v], 1.0))[:3] + t
    return out


def random_pose(rng, B):
    axis = rng.normal(size=(B, 5, 3))
    axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
    return rotations.axis_angle_to_matrix(axis * rng.uniform(0, np.radians(60), (B, 5, 1)))


def test_forward_matches_naive_formulation(model):
    rng = np.random.default_rng(0)
    shape, expr = rng.normal(0, 1.5, 300), rng.normal(0, 1.5, (3, 100))
    R, t = random_pose(rng, 3), rng.normal(0, 0.1, (3, 3))
    out = lbs.forward(model, shape, expr, R, t)
    for b in range(3):
        np.testing.assert_allclose(out.vertices[b], naive_flame(model, shape, expr[b], R[b], t[b]), atol=1e-12)


def test_root_rotation_pivots_on_root_joint(model):
    rng = np.random.default_rng(1)
    R = np.tile(np.eye(3), (1, 5, 1, 1))
    R[0, 0] = rotations.axis_angle_to_matrix(np.array([0.3, -0.5, 0.2]))
    expr = rng.normal(size=(1, 100))
    posed = lbs.forward(model, np.zeros(300), expr, R, np.array([[0.01, 0.02, 0.03]]))
    rest = lbs.forward(model, np.zeros(300), expr, np.tile(np.eye(3), (1, 5, 1, 1)))
    J0 = rest.rest_joints[0, 0]
    expected = (rest.vertices[0] - J0) @ R[0, 0].T + J0 + [0.01, 0.02, 0.03]
    np.testing.assert_allclose(posed.vertices[0], expected, atol=1e-12)


def test_pose_features_are_row_major_per_joint():
    R = np.tile(np.eye(3), (1, 5, 1, 1))
    R[0, 2] = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    pf = lbs.pose_features(R)[0]
    assert pf.shape == (36,)
    np.testing.assert_array_equal(pf[9:18], [0, 2, 3, 4, 4, 6, 7, 8, 8])
    assert not pf[:9].any() and not pf[18:].any()


def test_corrective_driver_expressions_equal_r_minus_i():
    rng = np.random.default_rng(3)
    drivers = rig.corrective_drivers()
    assert len(drivers) == 36 and [b for b, _ in drivers[::9]] == ["neck", "jaw", "eye.L", "eye.R"]
    for _ in range(20):
        q = rng.normal(size=4) * rng.uniform(0.3, 3)  # deliberately not unit length
        w, x, y, z = q
        values = [eval(expr, {}, dict(w=w, x=x, y=y, z=z)) for _, expr in drivers[:9]]
        np.testing.assert_allclose(values, (rotations.quaternion_to_matrix(q) - np.eye(3)).ravel(), atol=1e-12)


def test_bone_locations_reproduce_expression_dependent_joints(model):
    """A rig resting at J0 with locations (I - R) d poses exactly like FLAME with joints J0 + d.

    Blender's pose chain: M_j = M_parent T(J0_j - J0_parent) T(l_j) R_j, skinning S_j = M_j T(-J0_j).
    """
    rng = np.random.default_rng(4)
    R = random_pose(rng, 1)
    J0 = model.rest_joints()
    J = model.rest_joints(rng.normal(size=300), rng.normal(size=100) * 3)
    t = rng.normal(0, 0.1, 3)
    loc = rig.bone_locations(R, (J - J0)[None], t[None])[0]
    _, A = lbs.rigid_transforms(R, J[None], model.parents)
    M = {}
    for j in range(5):
        p = model.parents[j]
        local = _hom(np.eye(3), J0[j] - (J0[p] if p >= 0 else 0) + loc[j]) @ _hom(R[0, j], 0)
        M[j] = local if p < 0 else M[p] @ local
        S = M[j] @ _hom(np.eye(3), -J0[j])
        expected = A[0, j].copy()
        expected[:3, 3] += t
        np.testing.assert_allclose(S, expected, atol=1e-12)
    assert np.abs(J - J0).max() > 1e-3  # the test would be vacuous if expression did not move joints


def test_joint_basis_is_linear_in_coefficients(model):
    rng = np.random.default_rng(5)
    shape, expr = rng.normal(size=300), rng.normal(size=100)
    basis = model.joint_basis()
    assert basis.shape == (401, 5, 3)
    np.testing.assert_allclose(basis[0] + np.tensordot(np.r_[shape, expr], basis[1:], 1),
                               model.rest_joints(shape, expr), atol=1e-12)
