"""Fitting accuracy on synthetic ground truth: 1 px landmark noise, frames without a face."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import synthetic  # noqa: E402
from scenes import N_EXPR, N_SHAPE, NO_FACE  # noqa: E402

from flame_blender_addon.tracking import landmark_model as lm  # noqa: E402
from flame_blender_addon.tracking import landmarks as lmk  # noqa: E402
from flame_blender_addon.tracking import solver  # noqa: E402


def fit_scene(scene, focal):
    track = lmk.select(scene.track, scene.embedding)
    basis = lm.build_basis(scene.model, scene.embedding.face_idx, scene.embedding.bary, N_SHAPE, N_EXPR)
    problem = solver.make_problem(basis, track.points, track.conf, track.image_size, focal, solver.FitSettings())
    return solver.fit(problem)


def fitted_pose(fit):
    f = fit.frames
    pose = np.zeros((len(f), 5, 3))
    pose[:, 0], pose[:, 2:] = f[:, lm.ROT], f[:, lm.JAW.start:lm.EYE_R.stop].reshape(-1, 3, 3)
    return pose


def projected_vertices(scene, fit=None):
    clip = scene.clip
    if fit is None:
        return synthetic.project(synthetic.vertices(scene.model, clip), clip.focal, clip.image_size)
    verts = synthetic.vertices(scene.model, clip, shape=fit.beta, expr=fit.frames[:, lm.N_POSE:],
                               pose=fitted_pose(fit), translation=fit.translation)
    return synthetic.project(verts, fit.focal, clip.image_size)


def acceleration(uv):
    """Mean |second difference| per frame and point. uv: (T, N, 2) -> (T - 2,)."""
    return np.linalg.norm(uv[2:] - 2 * uv[1:-1] + uv[:-2], axis=-1).mean(axis=1)


@pytest.fixture(scope="module")
def fitted(scene):
    return fit_scene(scene, scene.clip.focal)


@pytest.fixture(scope="module")
def dense(scene, fitted):
    return projected_vertices(scene, fitted), projected_vertices(scene)


def test_landmark_reprojection_within_1px(scene, fitted):
    clean = synthetic.project(synthetic.landmarks(scene.model, scene.embedding,
                                                  synthetic.vertices(scene.model, scene.clip)),
                              scene.clip.focal, scene.clip.image_size)
    face = scene.track.face_found()
    error = np.linalg.norm(fitted.uv - clean, axis=-1)
    assert error[face].mean() <= 1.0
    assert np.nanmean(fitted.error_px) < 1.6  # against the noisy detections: about the noise


def test_dense_vertex_reprojection_within_2px(dense):
    fit_uv, true_uv = dense
    assert np.linalg.norm(fit_uv - true_uv, axis=-1).mean() <= 2.0


def test_frames_without_face_are_bridged_smoothly(scene, dense):
    fit_uv, true_uv = dense
    first, last = NO_FACE[0]
    gap = slice(first, last + 1)
    assert not scene.track.face_found()[gap].any()
    assert np.linalg.norm(fit_uv[gap] - true_uv[gap], axis=-1).mean() < 6.0  # 7 unseen frames of fast motion
    acc_fit, acc_true = acceleration(fit_uv), acceleration(true_uv)
    around = slice(first - 2, last + 1)  # accelerations centred on the gap's frames and its edges
    assert acc_fit[around].max() < 2.0 * acc_true.max()


def test_jitter_at_most_1_5x_ground_truth(dense):
    fit_uv, true_uv = dense
    assert acceleration(fit_uv).mean() <= 1.5 * acceleration(true_uv).mean()


def test_focal_estimated_when_not_given(scene):
    fit = fit_scene(scene, None)
    assert abs(fit.focal / scene.clip.focal - 1) < 0.2
    fit_uv, true_uv = projected_vertices(scene, fit), projected_vertices(scene)
    assert np.linalg.norm(fit_uv - true_uv, axis=-1).mean() <= 2.0


def test_block_tridiagonal_solve_matches_dense_solve():
    rng = np.random.default_rng(0)
    C, n, P = 2, 5, 4
    A = rng.normal(size=(C, n, P, P))
    H = torch.tensor(A @ A.transpose(0, 1, 3, 2) + 8 * np.eye(P))
    lam = torch.tensor(rng.uniform(0.5, 2.0, size=(C, n - 1, P)))
    b = torch.tensor(rng.normal(size=(C, n, P)))
    x = solver.solve_block_tridiagonal(H, b, lam).numpy()
    for c in range(C):
        full = np.zeros((n * P, n * P))
        for i in range(n):
            full[i * P:(i + 1) * P, i * P:(i + 1) * P] = H[c, i]
        for i in range(n - 1):
            full[i * P:(i + 1) * P, (i + 1) * P:(i + 2) * P] = -np.diag(lam[c, i])
            full[(i + 1) * P:(i + 2) * P, i * P:(i + 1) * P] = -np.diag(lam[c, i])
        np.testing.assert_allclose(x[c].reshape(-1), np.linalg.solve(full, b[c].numpy().reshape(-1)), atol=1e-10)


def test_interpolate_frames_fills_gaps_linearly():
    values = torch.tensor([[0.0], [9.0], [2.0], [9.0], [9.0], [8.0], [9.0]], dtype=torch.float64)
    known = torch.tensor([False, False, True, False, False, True, False])
    out = solver.interpolate_frames(values, known)[:, 0].tolist()
    assert out == pytest.approx([2.0, 2.0, 2.0, 4.0, 6.0, 8.0, 8.0])
