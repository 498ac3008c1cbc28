"""The demo head's UV layout and face region."""

import numpy as np

from flame_blender_addon.demo import head as demo_head
from flame_blender_addon.demo import surface as demo_surface


def _uv_areas(vt, ft):
    tri = vt[ft]
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    return 0.5 * (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])


def test_uvs_cover_every_corner_without_flips_or_wrapping():
    vt, ft = demo_surface.uv_layout()
    faces = demo_head.faces()
    assert ft.shape == faces.shape and ft.min() == 0 and ft.max() == len(vt) - 1
    assert vt.min() >= 0 and vt.max() <= 1
    area = _uv_areas(vt, ft)
    neck_base = (faces >= demo_head.grid_index(demo_head.N_ROWS - 1, 0)).all(1) & (faces < demo_head.N_HEAD).all(1)
    assert (np.abs(area[neck_base]) < 1e-12).all()  # the strip closing the neck is never seen
    assert (area[~neck_base] > 0).all()  # one orientation: no folded triangle
    assert area[~neck_base].max() < 2e-4  # no triangle spans a seam across the texture
    # the charts do not overlap: sample points strictly inside triangles are inside only one
    n = 256
    tri = vt[ft[~neck_base]] * n
    lo, hi = np.ceil(tri.min(1) - 0.5).astype(int), np.floor(tri.max(1) - 0.5).astype(int)
    count = np.clip(hi - lo + 1, 0, None).prod(1)
    owner = np.repeat(np.arange(len(tri)), count)
    local = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    width = (hi - lo + 1)[owner, 0]
    xy = lo[owner] + np.stack([local % width, local // width], 1)
    p = xy + 0.5
    a, b, c = (tri[owner, k] for k in range(3))

    def cross(u, v):
        return (v[:, 0] - u[:, 0]) * (p[:, 1] - u[:, 1]) - (v[:, 1] - u[:, 1]) * (p[:, 0] - u[:, 0])

    inside = (cross(a, b) > 1e-9) & (cross(b, c) > 1e-9) & (cross(c, a) > 1e-9)
    hits = np.bincount(xy[inside, 1] * n + xy[inside, 0], minlength=n * n)
    assert hits.max() == 1 and (hits > 0).mean() > 0.8


def test_each_vertex_has_one_uv_except_on_seams_and_poles():
    vt, ft = demo_surface.uv_layout()
    faces = demo_head.faces()
    pairs = np.unique(np.stack([faces.ravel(), ft.ravel()], 1), axis=0)
    copies = np.bincount(pairs[:, 0], minlength=demo_head.N_VERTS)
    assert copies.min() == 1
    poles = [0, demo_head.N_HEAD, demo_head.N_HEAD + demo_head.N_EYE - 1, demo_head.N_HEAD + demo_head.N_EYE,
             demo_head.N_VERTS - 1]
    assert (np.delete(copies, poles) <= 2).all()
    assert (np.delete(copies, poles) == 2).sum() == demo_head.N_ROWS + 2 * demo_head.EYE_RINGS  # the seams


def test_face_region_is_the_front_of_the_head():
    region = demo_surface.face_region()
    v = demo_head.demo_model().v_template
    face = region > 0.5
    assert 1000 < face.sum() < 2500
    assert (v[face, 2] > -0.04).all() and (region[demo_head.N_HEAD:] == 0).all()
    nose_tip = np.argmax(np.where(np.arange(len(v)) < demo_head.N_HEAD, v[:, 2], -1))
    assert face[nose_tip]
    mirrored = np.array([np.argmin(np.linalg.norm(v[:demo_head.N_HEAD] - p * [-1, 1, 1], axis=1)) for p in v[face]])
    assert face[mirrored].all()  # symmetric
