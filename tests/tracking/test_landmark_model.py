"""The torch landmark model against the numpy FLAME reference, and its Jacobians against autograd."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from flame_blender_addon.core import lbs, rotations  # noqa: E402
from flame_blender_addon.tracking import landmark_model as lm  # noqa: E402


def random_state(rng, B, S, E):
    beta = torch.tensor(rng.normal(size=S))
    frames = torch.tensor(np.concatenate([rng.normal(scale=0.3, size=(B, 3)),
                                          rng.normal(scale=0.05, size=(B, 3)) + [0, 0, -0.6],
                                          rng.normal(scale=0.2, size=(B, 9)), rng.normal(size=(B, E))], 1))
    return beta, frames


def test_landmarks_match_numpy_lbs(scene):
    model, emb = scene.model, scene.embedding
    S, E, B = 6, 5, 3
    basis = lm.build_basis(model, emb.face_idx, emb.bary, S, E)
    beta, frames = random_state(np.random.default_rng(0), B, S, E)
    x = lm.evaluate(basis, beta, frames, torch.tensor(800.0), torch.tensor([256.0, 256.0])).x.numpy()
    f = frames.numpy()
    aa = np.zeros((B, 5, 3))
    aa[:, 0], aa[:, 2:] = f[:, lm.ROT], f[:, lm.JAW.start:lm.EYE_R.stop].reshape(B, 3, 3)
    t = lm.root_translation(basis, beta, frames).numpy()
    verts = lbs.forward(model.truncated(S, E), beta.numpy(), f[:, lm.N_POSE:], rotations.axis_angle_to_matrix(aa),
                        t).vertices
    ref = np.einsum("lc,blcx->blx", emb.bary, verts[:, model.faces[emb.face_idx]])
    np.testing.assert_allclose(x, ref, atol=1e-12)


def test_jacobians_match_autograd(scene):
    model, emb = scene.model, scene.embedding
    S, E, B = 4, 3, 2
    basis = lm.build_basis(model, emb.face_idx[:12], emb.bary[:12], S, E)
    beta, frames = random_state(np.random.default_rng(1), B, S, E)
    centre, log_f = torch.tensor([300.0, 200.0]), torch.tensor(np.log(700.0))
    ev = lm.evaluate(basis, beta, frames, torch.exp(log_f), centre, frame_cols=lm.N_POSE + E, shape_jac=True,
                     focal_jac=True)

    def uv(fr, be, lf):
        return lm.evaluate(basis, be, fr, torch.exp(lf), centre).uv

    jf = torch.autograd.functional.jacobian(lambda fr: uv(fr, beta, log_f), frames)
    jf = torch.stack([jf[b, :, :, b] for b in range(B)])
    jb = torch.autograd.functional.jacobian(lambda be: uv(frames, be, log_f), beta)
    jl = torch.autograd.functional.jacobian(lambda lf: uv(frames, beta, lf), log_f)[..., None]
    scale = jf.abs().max()
    assert (ev.J_frame - jf).abs().max() < 1e-9 * scale
    assert (ev.J_global - torch.cat([jb, jl], -1)).abs().max() < 1e-9 * scale


def test_rotation_helpers_agree_with_core():
    r = torch.tensor([[0.3, -0.2, 0.5], [0.0, 0.0, 0.0], [1e-6, 0.0, 0.0]], dtype=torch.float64)
    np.testing.assert_allclose(lm.axis_angle_to_matrix(r).numpy(), rotations.axis_angle_to_matrix(r.numpy()),
                               atol=1e-12)
    d = torch.tensor([1e-6, -2e-6, 1.5e-6], dtype=torch.float64)
    left = lm.axis_angle_to_matrix(r[0] + d)
    right = lm.axis_angle_to_matrix(r[0]) @ lm.axis_angle_to_matrix(lm.right_jacobian(r[0]) @ d)
    assert (left - right).abs().max() < 1e-10
