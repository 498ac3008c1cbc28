"""The differentiable renderer, SH shading and the whole-mesh torch FLAME on small cases."""

import numpy as np
import pytest
import torch

from flame_blender_addon.core import lbs, rotations, sh_lighting
from flame_blender_addon.demo import head as demo_head
from flame_blender_addon.tracking import landmark_model as lm
from flame_blender_addon.tracking import mesh_model as mm
from flame_blender_addon.tracking import photometric as ph
from flame_blender_addon.tracking import raster, sh


def _random_triangles(n: int, size: int, seed: int):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(2, size - 2, (n, 1, 2))
    screen = centres + rng.normal(scale=size / 5, size=(n, 3, 2))
    depth = rng.uniform(1.0, 3.0, (n, 3))
    return torch.as_tensor(screen.reshape(1, -1, 2)), torch.as_tensor(depth.reshape(1, -1)), \
        torch.arange(3 * n).reshape(n, 3)


def test_rasterize_matches_a_brute_force_z_buffer():
    H, W = 23, 31
    screen, depth, faces = _random_triangles(12, 24, seed=1)
    frags = raster.rasterize(screen, depth, faces, (H, W), cull_backfaces=False)
    tri = screen[0][faces].numpy()
    d = depth[0][faces].numpy()
    expected = np.full((H, W), -1)
    for y in range(H):
        for x in range(W):
            p = np.array([x + 0.5, y + 0.5])
            best = np.inf
            for f in range(len(faces)):
                a, b, c = tri[f]
                area = np.cross(b - a, c - a)
                lam = np.array([np.cross(b - p, c - p), np.cross(c - p, a - p), np.cross(a - p, b - p)]) / area
                if (lam >= 0).all():
                    z = 1 / (lam / d[f]).sum()
                    if z < best:
                        best, expected[y, x] = z, f
    assert (expected >= 0).sum() > 100
    assert (frags.face_map[0].numpy() == expected).mean() > 0.995  # ties on shared edges aside


def test_rasterize_in_small_batches_gives_the_same_result(monkeypatch):
    screen, depth, faces = _random_triangles(30, 40, seed=2)
    whole = raster.rasterize(screen, depth, faces, (40, 40))
    monkeypatch.setattr(raster, "MAX_PAIRS", 50)
    assert torch.equal(raster.rasterize(screen, depth, faces, (40, 40)).face_map, whole.face_map)


def test_interpolated_attributes_have_exact_gradients_wrt_vertices():
    screen, depth, faces = _random_triangles(4, 16, seed=3)
    frags = raster.rasterize(screen, depth, faces, (16, 16), cull_backfaces=False)
    values = torch.randn(1, screen.shape[1], 2, dtype=torch.float64)

    def f(s, d):
        return raster.interpolate(values, faces, frags, raster.barycentrics(s, d, faces, frags))

    assert torch.autograd.gradcheck(f, (screen.clone().requires_grad_(), depth.clone().requires_grad_()))


def test_antialias_makes_coverage_differentiable_at_silhouettes():
    """A white square over black: the image's sum is its area in pixels, and moving its right edge
    by dx changes the sum by about height * dx -- through the silhouette term alone."""
    H = W = 24
    corners = torch.tensor([[[6.3, 5.2], [6.3, 17.7], [15.4, 17.7], [15.4, 5.2]]], dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    if raster._signed_area(corners[0][faces]).sign()[0] != raster.FRONT:
        faces = faces.flip(1)
    adjacency = torch.as_tensor(raster.edge_adjacency(faces.numpy()))

    def image_sum(pts: torch.Tensor) -> torch.Tensor:
        depth = torch.ones(1, 4, dtype=torch.float64)
        frags = raster.rasterize(pts, depth, faces, (H, W))
        image = raster.to_image(torch.ones(len(frags.pixel), 1, dtype=torch.float64), frags, 0.0)
        dmap = raster.to_image(torch.ones(len(frags.pixel), 1, dtype=torch.float64), frags, float("inf"))[..., 0]
        pix, col = raster.antialias(image, frags, pts, dmap, faces, adjacency)
        return image.reshape(-1, 1).index_put((pix,), col).sum()

    pts = corners.clone().requires_grad_()
    total = image_sum(pts)
    assert abs(float(total.detach()) - 9.1 * 12.5) < 1.0
    total.backward()
    right_edge = float(pts.grad[0, 2:, 0].sum())
    assert right_edge == pytest.approx(12.5, rel=0.1)
    moved = corners.clone()
    moved[0, 2:, 0] += 0.3
    assert float(image_sum(moved) - total.detach()) == pytest.approx(0.3 * 12.5, rel=0.15)


def test_edge_adjacency_of_a_tetrahedron_and_a_boundary():
    tet = np.array([[0, 1, 2], [0, 3, 1], [1, 3, 2], [2, 3, 0]])
    adj = raster.edge_adjacency(tet)
    for f, row in enumerate(adj):
        for k, g in enumerate(row):
            edge = {tet[f, k], tet[f, (k + 1) % 3]}
            assert g != f and edge <= set(tet[g])
    assert (raster.edge_adjacency(tet[:2]) == [[1, -1, -1], [-1, -1, 0]]).all()


def test_sh_lobe_coefficients_are_the_projection_of_the_clamped_cosine():
    n = 20000  # Fibonacci sphere quadrature
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    phi = np.pi * (1 + 5 ** 0.5) * i
    w = np.stack([np.sqrt(1 - z * z) * np.cos(phi), np.sqrt(1 - z * z) * np.sin(phi), z], 1)
    d = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    Y = sh.basis(torch.as_tensor(w)).numpy()
    projected = 4 * np.pi / n * Y.T @ (np.maximum(w @ d, 0) / np.pi)
    assert np.allclose(sh_lighting.from_light(d, np.ones(1), np.zeros(1))[:, 0], projected, atol=2e-3)
    assert np.allclose(sh_lighting.dominant_direction(sh_lighting.from_light(d, np.ones(3), np.full(3, 0.4))), d)


def test_uniform_environment_shades_to_its_radiance():
    light = sh_lighting.from_light(np.array([0, 0, 1.0]), np.zeros(3), np.array([0.2, 0.5, 0.9]))
    normals = torch.nn.functional.normalize(torch.randn(50, 3, dtype=torch.float64), dim=-1)
    shaded = sh.shading(normals, torch.as_tensor(light))
    assert torch.allclose(shaded, torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64))


def test_mesh_model_is_flame_lbs():
    model = demo_head.demo_model()
    S = E = 12
    m = mm.mesh_model(model, S, E, dtype=torch.float64)
    rng = np.random.default_rng(0)
    frames = np.zeros((3, lm.N_POSE + E))
    frames[:, lm.ROT] = rng.normal(scale=0.3, size=(3, 3))
    frames[:, lm.TRANS] = rng.normal(scale=0.05, size=(3, 3)) + [0, 0, -0.6]
    frames[:, lm.JAW.start:lm.EYE_R.stop] = rng.normal(scale=0.15, size=(3, 9))
    frames[:, lm.N_POSE:] = rng.normal(size=(3, E))
    beta = rng.normal(size=S)
    ours = mm.vertices(m, torch.as_tensor(beta), torch.as_tensor(frames))
    trans = mm.root_translation(m, torch.as_tensor(beta), torch.as_tensor(frames)).numpy()
    aa = np.zeros((3, 5, 3))
    aa[:, 0], aa[:, 2:] = frames[:, lm.ROT], frames[:, lm.JAW.start:lm.EYE_R.stop].reshape(3, 3, 3)
    ref = lbs.forward(model.truncated(S, E), beta, frames[:, lm.N_POSE:], rotations.axis_angle_to_matrix(aa), trans)
    assert np.abs(ours.numpy() - ref.vertices).max() < 1e-9


def test_vertex_normals_point_out_of_the_demo_head():
    model = demo_head.demo_model()
    verts = torch.as_tensor(model.v_template[None])
    normals = raster.vertex_normals(verts, torch.as_tensor(model.faces, dtype=torch.int64))[0].numpy()
    head = slice(1, demo_head.N_HEAD)
    outward = model.v_template[head] - [0, 0, -0.035]
    outward[:, 1] = 0  # the head is roughly a vertical cylinder about the grid's axis
    rings = np.arange(demo_head.N_HEAD - 1) // demo_head.N_COLS
    mid = (rings > 10) & (rings < 40)
    assert (np.einsum("vc,vc->v", normals[head], outward)[mid] > 0).mean() > 0.95


def test_non_finite_huge_or_collapsed_vertices_neither_crash_nor_spread():
    """The tracker died (segmentation fault) on a real clip once a fit produced NaN: coordinates
    that are not finite, or far outside the image, must not reach any index."""
    screen, depth, faces = _random_triangles(12, 24, seed=4)
    bad = screen.clone()
    bad[0, 0:3] = float("nan")
    bad[0, 3:6] = torch.tensor([[-1e30, 5.0], [1e30, 5.0], [0.0, 1e30]], dtype=bad.dtype)
    bad[0, 6, 0] = float("inf")
    frags = raster.rasterize(bad, depth, faces, (24, 24), cull_backfaces=False)
    rest = raster.rasterize(screen, depth, faces[3:], (24, 24), cull_backfaces=False)
    assert torch.equal(frags.face_map, torch.where(rest.face_map >= 0, rest.face_map + 3, -1))  # the 3 left out

    # fragments reused after the vertices moved: a triangle collapsed to a point, the rest shifted
    frags = raster.rasterize(screen, depth, faces, (24, 24), cull_backfaces=False)
    moved = screen + 3.0
    hit = int(frags.face[0])
    moved[0, faces[hit]] = moved[0, faces[hit, 0]].clone()
    bary = raster.barycentrics(moved, depth, faces, frags)
    assert torch.isfinite(bary).all() and (bary >= 0).all()
    collapsed = frags.face == hit  # no area: no weights; the others sum to one
    assert (bary[collapsed] == 0).all() and torch.allclose(bary[~collapsed].sum(-1), bary.new_ones(1))


def test_texture_lookups_at_non_finite_uvs_are_finite():
    """grid_sample's CPU backward indexes memory with NaN coordinates (a segmentation fault)."""
    texture = torch.rand(3, 16, 16, requires_grad=True)
    uv = torch.tensor([[0.3, 0.6], [float("nan"), 0.2], [float("inf"), -float("inf")]])
    colour = ph.sample(texture, uv)
    colour.sum().backward()
    assert torch.isfinite(colour).all() and torch.isfinite(texture.grad).all()
    assert torch.isfinite(ph.splat((3, 16, 16), uv, torch.ones(3, 3))).all()
