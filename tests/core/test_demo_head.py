"""The procedural demo head: FLAME's exact layout, a sound mesh and rig, and components that act
like FLAME's (jaw opens the mouth, blinks close the eyes, identity fields are smooth)."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_model import random_model_arrays

from flame_blender_addon.core import lbs, rotations
from flame_blender_addon.core.model import JOINT_NAMES, N_SHAPE_MAX, kintree_table
from flame_blender_addon.demo import head as dh

LEFT_EYE = slice(dh.N_HEAD, dh.N_HEAD + dh.N_EYE)
RIGHT_EYE = slice(dh.N_HEAD + dh.N_EYE, dh.N_VERTS)
MOUTH_MIDDLE = [40, 41]  # grid columns either side of x = 0
LEFT_EYE_MIDDLE = int(dh.LEFT_EYE_QUADS.mean() + 0.5)  # the column through the middle of the left eye


@pytest.fixture(scope="module")
def arrays() -> dict:
    return dh.demo_model_arrays()


@pytest.fixture(scope="module")
def model():
    return dh.demo_model()


def pose(model, expr: dict[str, float] | None = None, jaw: float = 0.0) -> np.ndarray:
    """Posed vertices (V, 3) for named expressions and a jaw rotation about +X (radians)."""
    e = np.zeros((1, model.n_expr))
    for name, value in (expr or {}).items():
        e[0, dh.EXPRESSION_NAMES[name]] = value
    aa = np.zeros((1, len(JOINT_NAMES), 3))
    aa[0, JOINT_NAMES.index("jaw"), 0] = jaw
    return lbs.forward(model, np.zeros(model.n_shape), e, rotations.axis_angle_to_matrix(aa)).vertices[0]


def short_head_edges(v: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unique undirected edges (E, 2) of the head's triangles, less the long ones across the neck base."""
    head = faces[(faces < dh.N_HEAD).all(axis=1)].astype(np.int64)
    edges = np.unique(np.sort(np.concatenate([head[:, [0, 1]], head[:, [1, 2]], head[:, [2, 0]]]), axis=1), axis=0)
    return edges[np.linalg.norm(v[edges[:, 0]] - v[edges[:, 1]], axis=1) < 0.015]


def roughness(fields: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """99th percentile over edges of how differently their ends move, relative to the largest
    displacement: about 1 for noise, small for smooth fields. fields: (V, 3, K) -> (K,)."""
    across = np.linalg.norm(fields[edges[:, 0]] - fields[edges[:, 1]], axis=1)
    return np.percentile(across, 99, axis=0) / np.linalg.norm(fields, axis=1).max(axis=0)


def test_same_keys_shapes_and_dtypes_as_flame(arrays):
    reference = random_model_arrays(n_verts=50, n_faces=20)
    assert arrays.keys() == reference.keys()
    for key, value in reference.items():
        if isinstance(value, np.ndarray):
            assert arrays[key].dtype == value.dtype, key
            assert arrays[key].ndim == value.ndim, key
        else:
            assert arrays[key] == value, key
    assert arrays["v_template"].shape == (5023, 3)
    assert arrays["f"].shape == (9976, 3)
    assert arrays["shapedirs"].shape == (5023, 3, 400)
    assert arrays["posedirs"].shape == (5023, 3, 36)
    assert arrays["J_regressor"].shape == (5, 5023)
    assert arrays["weights"].shape == (5023, 5)
    np.testing.assert_array_equal(arrays["kintree_table"], kintree_table())
    np.testing.assert_allclose(arrays["J"], arrays["J_regressor"] @ arrays["v_template"])
    assert all(np.isfinite(v).all() for v in arrays.values() if isinstance(v, np.ndarray))


def test_mesh_is_clean_with_eyeballs_last(arrays):
    f = arrays["f"].astype(np.int64)
    assert dh.N_HEAD == 4019 and dh.N_EYE == 502 and len(dh.cut_quads()) == 29
    assert np.bincount(f.ravel(), minlength=dh.N_VERTS).min() > 0, "a vertex is used by no face"
    assert (f[:, 0] != f[:, 1]).all() and (f[:, 1] != f[:, 2]).all() and (f[:, 0] != f[:, 2]).all()
    assert len(np.unique(np.sort(f, axis=1), axis=0)) == len(f)
    head, eyes = f[:7976], f[7976:]
    assert (head < dh.N_HEAD).all() and (eyes >= dh.N_HEAD).all()
    assert ((eyes[:1000] < dh.N_HEAD + dh.N_EYE).all() and (eyes[1000:] >= dh.N_HEAD + dh.N_EYE).all())


def test_faces_are_consistently_wound_outwards(arrays):
    v, f = arrays["v_template"], arrays["f"].astype(np.int64)
    directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    assert len(np.unique(directed, axis=0)) == len(directed), "an edge is used twice in one direction"
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    for eye in (slice(7976, 8976), slice(8976, 9976)):  # closed spheres: positive signed volume
        volume = np.einsum("fc,fc->", a[eye], np.cross(b[eye], c[eye])) / 6.0
        assert volume == pytest.approx(4.0 / 3.0 * np.pi * dh.EYE_RADIUS**3, rel=0.05)
    normals = np.cross(b - a, c - a)[:7976]
    centroids = (a + b + c)[:7976] / 3.0
    outward = centroids - [0.0, 0.0, -0.035]
    outward[:, 1] = np.where(centroids[:, 1] < 0.0, 0.0, outward[:, 1])  # the neck is a tube
    assert np.mean(np.einsum("fc,fc->f", normals, outward) > 0) > 0.97


def test_head_has_flame_proportions_and_is_symmetric(arrays):
    head = arrays["v_template"][:dh.N_HEAD]
    np.testing.assert_allclose(head.min(axis=0), [-0.108, -0.190, -0.155], atol=0.02)
    np.testing.assert_allclose(head.max(axis=0), [0.107, 0.132, 0.076], atol=0.02)
    grid = head[1:].reshape(dh.N_ROWS, dh.N_COLS, 3)
    np.testing.assert_allclose(grid[:, ::-1] * [-1, 1, 1], grid, atol=1e-12)
    np.testing.assert_allclose(head[dh.grid_index(dh.LIP_ROW, MOUTH_MIDDLE)][:, 0], [-0.0, 0.0], atol=0.004)


def test_skinning_weights_partition_unity_by_region(arrays):
    w = arrays["weights"]
    assert (w >= 0).all()
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    np.testing.assert_array_equal(w[LEFT_EYE, 3], 1.0)
    np.testing.assert_array_equal(w[RIGHT_EYE, 4], 1.0)
    lips = dh.grid_index(dh.LIP_ROW, MOUTH_MIDDLE), dh.grid_index(dh.LIP_ROW + 1, MOUTH_MIDDLE)
    assert (w[lips[0], 2] < 0.05).all() and (w[lips[1], 2] > 0.95).all()
    assert w[0, 1] == 1.0  # the top of the head follows the neck joint
    assert (w[dh.grid_index(dh.N_ROWS - 1, np.arange(dh.N_COLS)), 0] > 0.99).all()  # the neck base the root


def test_joints_sit_where_flame_puts_them(arrays):
    reg, v, J = arrays["J_regressor"], arrays["v_template"], arrays["J"]
    assert (reg >= 0).all()
    np.testing.assert_allclose(reg.sum(axis=1), 1.0)
    np.testing.assert_allclose(J[3], v[LEFT_EYE].mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(J[4], v[RIGHT_EYE].mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(v[LEFT_EYE] - J[3], axis=1), dh.EYE_RADIUS)
    assert J[3, 0] > 0 > J[4, 0]
    np.testing.assert_allclose(J[:3, 0], 0.0, atol=1e-9)
    root, neck, jaw, eye = J[0, 1], J[1, 1], J[2, 1], J[3, 1]
    assert root < -0.14 < neck < -0.06 < jaw < -0.02 + eye < eye  # neck base < head/neck < ear level


def test_model_from_arrays_accepts_it_without_warnings(model):
    assert model.warnings == ()
    assert model.name == "demo_head"
    assert (model.n_verts, model.n_shape, model.n_expr) == (5023, N_SHAPE_MAX, 100)


def test_deterministic_and_seed_only_changes_random_components(arrays):
    again, other = dh.demo_model_arrays(), dh.demo_model_arrays(seed=1)
    for key in ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights"):
        np.testing.assert_array_equal(again[key], arrays[key])
    np.testing.assert_array_equal(other["v_template"], arrays["v_template"])
    named = [*dh.IDENTITY_NAMES.values(), *(N_SHAPE_MAX + i for i in dh.EXPRESSION_NAMES.values())]
    np.testing.assert_array_equal(other["shapedirs"][:, :, named], arrays["shapedirs"][:, :, named])
    assert not np.allclose(other["shapedirs"], arrays["shapedirs"])


@pytest.mark.parametrize("n_shape", [100, 3])
def test_a_head_built_with_fewer_identity_components_is_the_same_head(model, n_shape):
    fewer = dh.demo_model(n_shape=n_shape)  # what the tracker builds: the components it fits, faster
    assert (fewer.n_shape, fewer.n_expr, fewer.name, fewer.edition) == (n_shape, 100, model.name, model.edition)
    for key in ("v_template", "faces", "exprdirs", "posedirs", "J_regressor", "weights"):
        np.testing.assert_array_equal(getattr(fewer, key), getattr(model, key))
    np.testing.assert_allclose(fewer.shapedirs, model.shapedirs[:, :, :n_shape], rtol=1e-12, atol=1e-18)


def test_named_components_index_distinct_columns():
    assert sorted(dh.EXPRESSION_NAMES.values()) == list(range(len(dh.EXPRESSION_NAMES)))
    assert sorted(dh.IDENTITY_NAMES.values()) == list(range(len(dh.IDENTITY_NAMES)))
    assert {"smile", "mouth_wide", "lip_pucker", "brow_raise", "brow_furrow", "blink_L", "blink_R"} <= set(
        dh.EXPRESSION_NAMES)


def test_jaw_rotation_opens_the_mouth(model):
    rest, opened = pose(model), pose(model, jaw=np.radians(20.0))
    upper = dh.grid_index(dh.LIP_ROW, MOUTH_MIDDLE)
    lower = dh.grid_index(dh.LIP_ROW + 1, MOUTH_MIDDLE)
    assert np.abs(rest[upper, 1] - rest[lower, 1]).max() < 0.001  # closed at rest
    assert (rest[lower, 1] - opened[lower, 1] > 0.015).all()  # the lower lip drops
    np.testing.assert_allclose(opened[upper], rest[upper], atol=0.001)  # the upper lip stays
    assert (opened[upper, 1] - opened[lower, 1] > 0.015).all()
    corners = dh.grid_index([dh.LIP_ROW, dh.LIP_ROW + 1], dh.MOUTH_QUADS[-1] + 1)
    assert np.ptp(opened[corners, 1]) < 0.5 * (opened[upper, 1] - opened[lower, 1]).min()  # a lens


def test_blink_closes_one_upper_lid_and_moves_no_eyeball(model):
    rest, blink = pose(model), pose(model, {"blink_L": 1.0})
    left_upper, left_lower = dh.grid_index(dh.LID_ROW, LEFT_EYE_MIDDLE), dh.grid_index(dh.LID_ROW + 1, LEFT_EYE_MIDDLE)
    right_upper = dh.grid_index(dh.LID_ROW, dh.N_COLS - 1 - LEFT_EYE_MIDDLE)
    assert rest[left_upper, 1] - rest[left_lower, 1] > 0.006  # open at rest
    assert rest[left_upper, 1] - blink[left_upper, 1] > 0.006  # the upper lid comes down
    assert abs(blink[left_upper, 1] - blink[left_lower, 1]) < 0.001  # onto the lower lid
    np.testing.assert_allclose(blink[right_upper], rest[right_upper], atol=1e-9)
    np.testing.assert_allclose(blink[dh.N_HEAD:], rest[dh.N_HEAD:], atol=1e-12)


@pytest.mark.parametrize("expr", [{}, {"blink_L": 1.0, "blink_R": 1.0}, {"squint_L": 1.0, "brow_raise": 1.0}])
def test_skin_stays_outside_the_eyeballs(model, expr):
    v = pose(model, expr)
    for eye in (LEFT_EYE, RIGHT_EYE):
        centre = v[eye].mean(axis=0)
        assert np.linalg.norm(v[:dh.N_HEAD] - centre, axis=1).min() > dh.EYE_RADIUS + 0.0005


def test_expressions_leave_the_eyeballs_still(arrays):
    np.testing.assert_array_equal(arrays["shapedirs"][dh.N_HEAD:, :, N_SHAPE_MAX:], 0.0)


def test_identity_components_are_smooth_and_shrink(arrays):
    identity = arrays["shapedirs"][:dh.N_HEAD, :, :N_SHAPE_MAX]
    edges = short_head_edges(arrays["v_template"], arrays["f"])
    noise = np.random.default_rng(0).normal(size=(dh.N_HEAD, 3, 1))
    assert roughness(noise, edges)[0] > 0.8
    assert (roughness(identity, edges) < 0.45).all(), "neighbouring vertices should move alike"
    rms = np.sqrt((arrays["shapedirs"][:, :, :N_SHAPE_MAX] ** 2).sum(axis=1).mean(axis=0))  # eyeballs too
    random = rms[len(dh.IDENTITY_NAMES):]
    assert (np.diff(random) < 0).all() and random[0] > 10 * random[-1]


def test_expression_components_are_smooth(arrays):
    edges = short_head_edges(arrays["v_template"], arrays["f"])
    assert (roughness(arrays["shapedirs"][:dh.N_HEAD, :, N_SHAPE_MAX:], edges) < 0.45).all()


def test_named_identity_components_do_what_they_say(arrays):
    v, dirs = arrays["v_template"], arrays["shapedirs"]
    head = v[:dh.N_HEAD]

    def extent(d: np.ndarray, axis: int) -> float:
        moved = head + d[:dh.N_HEAD]
        return np.ptp(moved[:, axis]) - np.ptp(head[:, axis])

    assert extent(dirs[:, :, dh.IDENTITY_NAMES["head_width"]], 0) > 0.003
    assert extent(dirs[:, :, dh.IDENTITY_NAMES["head_length"]], 2) > 0.003
    tip = np.argmax(head[:, 2])
    assert dirs[tip, 2, dh.IDENTITY_NAMES["nose_length"]] > 0.002


def test_smile_lifts_the_mouth_corners(model):
    rest, smile = pose(model), pose(model, {"smile": 1.0})
    corners = dh.grid_index(dh.LIP_ROW, [dh.MOUTH_QUADS[0], dh.MOUTH_QUADS[-1] + 1])
    assert (smile[corners, 1] - rest[corners, 1] > 0.004).all()
    np.testing.assert_allclose(smile[corners, 0] * [-1, 1], rest[corners, 0] * [-1, 1] + 0.004, atol=0.001)


def test_pose_correctives_are_small_and_leave_eyeballs_alone(arrays):
    posedirs = arrays["posedirs"]
    np.testing.assert_array_equal(posedirs[dh.N_HEAD:], 0.0)
    assert 0.001 < np.abs(posedirs).max() < 0.05  # metres per unit of (R - I)
    gaze_up = posedirs[:, 1, 18 + 5]  # left eye's (R - I)[1, 2]: positive when looking up
    assert gaze_up[dh.grid_index(dh.LID_ROW, LEFT_EYE_MIDDLE)] > 0.002
