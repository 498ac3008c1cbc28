"""Capping a mesh's holes: boundary loops, fans, and the watertight check."""

import numpy as np
import pytest

from flame_blender_addon.core.closed_mesh import boundary_loops, close_holes, edge_face_counts, is_watertight
from flame_blender_addon.core.errors import FlameError


def open_cylinder(n: int = 12, rings: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A tube of ``rings`` rings of ``n`` vertices, outward-facing triangles, open at both ends."""
    angles = 2 * np.pi * np.arange(n) / n
    vertices = np.array([(np.cos(a), np.sin(a), z) for z in range(rings) for a in angles])
    faces = []
    for r in range(rings - 1):
        for i in range(n):
            a, b, c, d = r * n + i, r * n + (i + 1) % n, (r + 1) * n + i, (r + 1) * n + (i + 1) % n
            faces += [(a, b, d), (a, d, c)]
    return vertices, np.array(faces)


def test_a_tube_has_two_holes_and_closes_watertight():
    vertices, faces = open_cylinder()
    loops = boundary_loops(faces)
    assert sorted(len(loop) for loop in loops) == [12, 12] and not is_watertight(faces)
    closed_v, closed_f = close_holes(vertices, faces)
    assert len(closed_v) == len(vertices) + 2 and len(closed_f) == len(faces) + 24
    assert is_watertight(closed_f) and np.all(edge_face_counts(closed_f) == 2)
    assert sorted(closed_v[-2:, 2]) == pytest.approx([0, 2])  # a centroid per end
    # outward caps: the signed volume of the closed tube is positive, about pi r^2 h for a fine tube
    corners = closed_v[closed_f]
    volume = np.einsum("fc,fc->f", corners[:, 0], np.cross(corners[:, 1], corners[:, 2])).sum() / 6
    assert volume == pytest.approx(0.5 * 12 * np.sin(2 * np.pi / 12) * 2, rel=1e-9)


def test_a_triangle_hole_gets_one_triangle():
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=float)
    faces = np.array([[0, 2, 1], [0, 1, 3], [1, 2, 3]])  # a tetrahedron missing the face (0, 3, 2)
    closed_v, closed_f = close_holes(vertices, faces)
    assert len(closed_v) == 4 and closed_f[-1].tolist() in ([0, 3, 2], [3, 2, 0], [2, 0, 3])
    assert is_watertight(closed_f)


def test_holes_meeting_at_a_vertex_are_refused():
    vertices, faces = open_cylinder(n=6, rings=2)
    bowtie = np.concatenate([faces, faces + 12])
    bowtie[bowtie == 12] = 0  # the second tube's first vertex is the first tube's: two holes meet there
    with pytest.raises(FlameError, match="two holes meet"):
        boundary_loops(bowtie)


def test_the_demo_head_closes_watertight():
    from flame_blender_addon.demo.head import demo_model

    model = demo_model()
    loops = boundary_loops(model.faces)
    assert len(loops) >= 2
    _, faces = close_holes(model.v_template, model.faces)
    assert is_watertight(faces)
