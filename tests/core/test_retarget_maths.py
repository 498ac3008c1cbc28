"""Retargeting maths (numpy only) against truth built exactly."""

import os

import numpy as np
import pytest
from retarget_truth import midpoint_remesh, placement, unseen_identity

from flame_blender_addon.core import lbs, rig
from flame_blender_addon.core.errors import FileAccessError, RetargetError
from flame_blender_addon.core.retarget import binding, fit, geometry, livelink, similarity, solve
from flame_blender_addon.core.retarget.bvls import bounded_least_squares
from flame_blender_addon.core.rotations import axis_angle_to_matrix
from flame_blender_addon.demo import head as demo_head


@pytest.fixture(scope="module")
def model():
    return demo_head.demo_model()


def test_closest_point_on_triangles_beats_dense_sampling():
    rng = np.random.default_rng(0)
    a, b, c = rng.normal(size=(3, 200, 3))
    p = rng.normal(size=(200, 3)) * 2
    w = geometry.closest_on_triangles(p, a, b, c)
    assert np.all(w >= -1e-12) and np.allclose(w.sum(1), 1)
    q = w[:, :1] * a + w[:, 1:2] * b + w[:, 2:] * c
    u, v = np.meshgrid(np.linspace(0, 1, 60), np.linspace(0, 1, 60))
    keep = u + v <= 1
    grid = np.stack([1 - u[keep] - v[keep], u[keep], v[keep]], 1)  # (G, 3)
    samples = np.einsum("gk,nkc->ngc", grid, np.stack([a, b, c], 1))
    best = np.linalg.norm(samples - p[:, None], axis=2).min(1)
    assert np.all(np.linalg.norm(q - p, axis=1) <= best + 1e-12)


def test_umeyama_recovers_a_similarity():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(50, 3))
    M = similarity.compose(3.5, axis_angle_to_matrix(np.array([0.3, -1.0, 0.5])), np.array([1.0, 2.0, -3.0]))
    np.testing.assert_allclose(similarity.umeyama(src, similarity.transform(M, src)), M, atol=1e-10)
    s, R, t = similarity.decompose(M)
    assert s == pytest.approx(3.5) and np.allclose(R @ R.T, np.eye(3))


def test_bounded_least_squares_meets_the_optimality_conditions():
    rng = np.random.default_rng(2)
    A = rng.normal(size=(120, 30))
    A[:, 1] = 0.97 * A[:, 0] + 0.03 * A[:, 1]  # nearly collinear keys, as ARKit's pairs are
    lower, upper = np.zeros(30), np.r_[np.ones(29), 2.0]
    truth = np.clip(rng.uniform(-0.3, 1.3, size=(40, 30)), lower, upper)
    W = bounded_least_squares(A.T @ A, truth @ A.T @ A, lower, upper)
    np.testing.assert_allclose(W, truth, atol=1e-6)
    C = rng.normal(size=(40, 120)) @ A  # targets outside the box: check KKT
    W = bounded_least_squares(A.T @ A, C, lower, upper)
    g = W @ A.T @ A - C
    inside = (lower + 1e-9 < W) & (upper - 1e-9 > W)
    assert np.all((lower <= W) & (upper >= W))
    assert np.abs(g[inside]).max() < 1e-6 * np.abs(C).max()
    assert np.all(g[lower + 1e-9 >= W] > -1e-6) and np.all(g[upper - 1e-9 <= W] < 1e-6)


def test_head_local_displacement_is_flame_with_root_neck_and_eyes_at_rest(model):
    rng = np.random.default_rng(3)
    shape, expr = rng.normal(size=300), rng.normal(size=(4, 100))
    R = np.tile(np.eye(3), (4, 5, 1, 1))
    R[:, 2] = axis_angle_to_matrix(rng.normal(scale=0.2, size=(4, 3)))
    rest = lbs.forward(model, shape, np.zeros((1, 100)), np.tile(np.eye(3), (1, 5, 1, 1))).vertices
    want = lbs.forward(model, shape, expr, R).vertices - rest
    region = solve.face_region(model)
    got = solve.displacement(solve.face_model(model, shape, region), expr, R[:, 2])
    np.testing.assert_allclose(got, want[:, region], atol=1e-12)
    assert 0 < len(region) < model.n_verts


def _sample(model, region, n=600, seed=4):
    """n random points on region triangles (all three corners in the region)."""
    position = np.full(model.n_verts, -1)
    position[region] = np.arange(len(region))
    faces = model.faces[(position[model.faces] >= 0).all(1)]
    rng = np.random.default_rng(seed)
    bary = rng.dirichlet(np.ones(3), size=n)
    corners = position[faces[rng.integers(0, len(faces), n)]]
    zero = np.zeros(n)
    return binding.Binding(corners, bary, zero, zero, zero == 0)


def test_both_directions_recover_keys_made_of_flame_expressions(model):
    rng = np.random.default_rng(5)
    shape = rng.normal(size=300)
    region = solve.face_region(model)
    face = solve.face_model(model, shape, region)
    sample = _sample(model, region)
    combos = rng.normal(size=(12, 100)) * (rng.random((12, 100)) < 0.2)  # 12 keys
    keys = sample.interpolate(np.einsum("vce,ke->kvc", face.exprdirs, combos))  # (K, n, 3)
    weights = np.clip(rng.uniform(-0.2, 1, size=(25, 12)), 0, 1)
    still = np.tile(np.eye(3), (25, 1, 1))
    target = solve.displacement(face, weights @ combos, still)
    got = solve.keys_from_head(keys, sample, target, np.zeros(12), np.ones(12))
    np.testing.assert_allclose(got, weights, atol=1e-6)
    expr, jaw = solve.head_from_keys(face, sample, np.einsum("tk,knc->tnc", weights, keys))
    back = solve.displacement(face, expr, axis_angle_to_matrix(jaw))
    assert np.sqrt(np.mean((back - target) ** 2)) <= 1e-3 * np.sqrt(np.mean(target ** 2))


def test_head_from_keys_recovers_the_jaw(model):
    rng = np.random.default_rng(6)
    region = solve.face_region(model)
    face = solve.face_model(model, np.zeros(300), region)
    sample = _sample(model, region, n=1500)
    jaw = np.stack([rng.uniform(0, 0.3, 10), rng.normal(scale=0.03, size=10), np.zeros(10)], 1)
    expr = rng.normal(scale=0.5, size=(10, 100))
    target = sample.interpolate(solve.displacement(face, expr, axis_angle_to_matrix(jaw)))
    got_expr, got_jaw = solve.head_from_keys(face, sample, target)
    np.testing.assert_allclose(got_jaw, jaw, atol=1e-4)


def test_binding_carries_fields_and_reports_distances():
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], dtype=float)
    faces = np.array([[0, 1, 2], [1, 3, 2]])
    points = np.array([[0.2, 0.3, 0.1], [0.9, 0.8, -0.2], [3.0, 0.5, 0.0]])
    b = binding.bind(points, vertices, faces, np.array([0, 1, 1]))
    np.testing.assert_allclose(b.offset[:2], [0.1, -0.2])
    np.testing.assert_allclose(b.interpolate(vertices)[:2], points[:2] * [1, 1, 0])
    assert list(b.over_surface) == [True, True, False]  # the third lies beyond the open border
    rms, _, counted = binding.fit_report(b)
    assert rms == pytest.approx(np.sqrt((0.01 + 0.04) / 2)) and counted == pytest.approx(2 / 3)
    assert binding.fit_report(b, within=0.15)[0] == pytest.approx(0.1)


def test_initial_alignment_finds_scale_and_place_without_landmarks(model):
    surface = model.v_template + model.shapedirs[:, :, :100] @ unseen_identity(100)
    for scale in (1.0, 100.0, 1000.0):  # metres, centimetres, millimetres
        M = placement(scale=scale, angle_deg=0.0)
        target = similarity.transform(M, surface)
        init = fit.initial_alignment(model.v_template, rig.FLAME_TO_BLENDER[:3, :3], target)
        err = np.linalg.norm(similarity.transform(init, model.v_template) - target, axis=1)
        assert np.median(err) / scale < 0.02  # within 2 cm (FLAME scale): ICP's basin
        assert abs(similarity.decompose(init)[0] / scale - 1) < 0.15


def test_midpoint_remesh_is_another_topology_on_the_same_surface(model):
    points, polygons, edges = midpoint_remesh(model.v_template, model.faces)
    assert len(points) != model.n_verts and max(len(p) for p in polygons) > 4
    np.testing.assert_allclose(points, model.v_template[edges].mean(1))


# ------------------------------------------------------------------------------------------ Live Link
def test_livelink_round_trip(tmp_path):
    weights = np.random.default_rng(7).random((75, 52))
    rot = np.random.default_rng(8).normal(scale=0.1, size=(75, 9))
    path = livelink.write_take(tmp_path / "t.csv", weights, 30.0, rot)
    take = livelink.read_take(path)
    assert take.fps == 30 and len(take.times) == 75
    np.testing.assert_allclose(take.times, np.arange(75) / 30, atol=1e-9)
    np.testing.assert_allclose(take.weights, weights, atol=1e-7)
    np.testing.assert_allclose(take.rotations, rot, atol=1e-7)


def test_livelink_reads_the_apps_sub_frame_timecodes(tmp_path):
    """60 samples a second on a 30 fps timecode: FF.5 half frames, crossing a second."""
    header = ",".join(livelink.HEADER)
    rows = [f"10:00:00:{(29 + k // 2) % 30 if k < 2 else (k - 2) // 2:02d}.{500 * (k % 2):03d},61" + ",0.5" * 61
            for k in range(6)]
    rows[0], rows[1] = rows[0].replace("10:00:00:", "09:59:59:"), rows[1].replace("10:00:00:", "09:59:59:")
    (tmp_path / "t.csv").write_text("\n".join([header, *rows]) + "\n")
    take = livelink.read_take(tmp_path / "t.csv")
    assert take.fps == 60
    np.testing.assert_allclose(take.times, np.arange(6) / 60)


def test_livelink_name_matching_ignores_case_and_separators():
    found = livelink.match_names(["Basis", "eyeBlinkLeft", "JAWOPEN", "mouth_smile_right", "nose"])
    assert found == {0: "eyeBlinkLeft", 17: "JAWOPEN", 24: "mouth_smile_right"}


@pytest.mark.parametrize("body,message", [
    ("", "at least 2 rows"),
    ("00:00:00:00.000,61" + ",0" * 61 + "\n00:00:00:00.000,61" + ",0" * 61, "do not increase"),
    ("0:0:0,61" + ",0" * 61 + "\n00:00:00:01.000,61" + ",0" * 61, "not HH:MM:SS:FF"),
    ("00:00:00:00.000,61" + ",0" * 60 + "\n00:00:00:01.000,61" + ",0" * 61, "row 2 has 62 cells"),
    ("00:00:00:00.000,61" + ",nan" * 61 + "\n00:00:00:01.000,61" + ",0" * 61, "NaN"),
])
def test_livelink_bad_takes(tmp_path, body, message):
    (tmp_path / "t.csv").write_text(",".join(livelink.HEADER) + "\n" + body + "\n")
    with pytest.raises(RetargetError, match=message):
        livelink.read_take(tmp_path / "t.csv")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_livelink_take_that_is_no_regular_file_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "t.csv")
    with pytest.raises(FileAccessError, match="FIFO"):
        livelink.read_take(tmp_path / "t.csv")
