"""The demo head's MediaPipe embedding: metrical-tracker's schema, points on the features they name,
mirror symmetric, and riding the lid and lip margins when the demo head blinks or opens its jaw."""

from __future__ import annotations

import numpy as np
import pytest

from flame_blender_addon.core import lbs, rotations
from flame_blender_addon.core.model import JOINT_NAMES
from flame_blender_addon.demo import head as dh
from flame_blender_addon.demo.embedding import demo_embedding_arrays

MEDIAPIPE_POINTS = 478
# MediaPipe points and their mirror images (the subject's right first): eye corners outer and inner,
# upper and lower eyelid middles, mouth corners, eyebrows, iris centres
MIRROR_PAIRS = ((33, 263), (133, 362), (159, 386), (145, 374), (61, 291), (105, 334), (468, 473))
MIDLINE = (10, 168, 4, 2, 0, 13, 14, 17, 152)  # forehead, nasion, nose tip, subnasale, lips, chin


@pytest.fixture(scope="module")
def model():
    return dh.demo_model()


@pytest.fixture(scope="module")
def arrays():
    return demo_embedding_arrays()


def landmarks(model, arrays, vertices: np.ndarray) -> dict[int, np.ndarray]:
    """MediaPipe point -> its position (3,) on the given demo head vertices (V, 3)."""
    corners = vertices[model.faces[arrays["lmk_face_idx"]]]
    points = np.einsum("lc,lcx->lx", arrays["lmk_b_coords"], corners)
    return dict(zip(arrays["landmark_indices"].tolist(), points, strict=True))


def posed(model, expressions: dict[str, float], jaw: float = 0.0) -> np.ndarray:
    """Demo head vertices (V, 3) with named expressions and the jaw opened by ``jaw`` radians."""
    expr = np.zeros((1, model.n_expr))
    for name, value in expressions.items():
        expr[0, dh.EXPRESSION_NAMES[name]] = value
    aa = np.zeros((1, len(JOINT_NAMES), 3))
    aa[0, JOINT_NAMES.index("jaw"), 0] = jaw
    return lbs.forward(model, np.zeros(model.n_shape), expr, rotations.axis_angle_to_matrix(aa)).vertices[0]


def test_metrical_tracker_schema_on_the_demo_mesh(model, arrays):
    assert set(arrays) == {"lmk_face_idx", "lmk_b_coords", "landmark_indices"}
    face, bary, points = arrays["lmk_face_idx"], arrays["lmk_b_coords"], arrays["landmark_indices"]
    assert face.dtype == points.dtype == np.int64 and bary.dtype == np.float64
    assert face.shape == points.shape and bary.shape == (len(face), 3) and len(face) >= 100
    assert (np.diff(points) > 0).all() and points[0] >= 0 and points[-1] < MEDIAPIPE_POINTS
    assert face.min() >= 0 and face.max() < len(model.faces)
    assert (bary >= 0).all() and np.allclose(bary.sum(axis=1), 1.0)


def test_irises_on_the_eyeballs_everything_else_on_the_head(model, arrays):
    corners = model.faces[arrays["lmk_face_idx"]]
    by_point = dict(zip(arrays["landmark_indices"].tolist(), corners, strict=True))
    at = landmarks(model, arrays, model.v_template)
    right_eye, left_eye = dh.N_HEAD + dh.N_EYE, dh.N_HEAD  # first vertex (the front pole) of each eyeball
    for centre, first_vertex in ((468, right_eye), (473, left_eye)):
        np.testing.assert_allclose(at[centre], model.v_template[first_vertex], atol=1e-9)
        for point in range(centre, centre + 5):
            assert ((by_point[point] >= first_vertex) & (by_point[point] < first_vertex + dh.N_EYE)).all(), point
    face_points = arrays["landmark_indices"] < 468
    assert (corners[face_points] < dh.N_HEAD).all()


def test_points_sit_on_the_features_they_name(model, arrays):
    at = landmarks(model, arrays, model.v_template)
    for point in MIDLINE:
        assert abs(at[point][0]) < 1e-6, point
    heights = [at[p][1] for p in (10, 105, 33, 4, 2, 0, 13, 14, 17, 152)]  # forehead down to the chin
    assert heights == sorted(heights, reverse=True)
    assert max(at, key=lambda p: at[p][2]) == 4  # the nose tip is the most forward point
    assert at[33][0] < at[133][0] < 0 < at[362][0] < at[263][0]  # the subject's right eye is on -X
    assert at[61][0] < 0 < at[291][0] and at[468][0] < 0 < at[473][0]


def test_mirror_symmetric(model, arrays):
    at = landmarks(model, arrays, model.v_template)
    for right, left in MIRROR_PAIRS:
        np.testing.assert_allclose(at[right] * [-1.0, 1.0, 1.0], at[left], atol=1e-4)
    points = np.stack(list(at.values()))
    nearest = np.linalg.norm(points[:, None] * [-1.0, 1.0, 1.0] - points[None], axis=-1).min(axis=1)
    assert nearest.max() < 0.002  # every point has a mirror image within 2 mm (triangulations differ)


def test_lid_and_lip_points_follow_blinks_and_the_jaw(model, arrays):
    def gaps(vertices: np.ndarray) -> np.ndarray:
        at = landmarks(model, arrays, vertices)
        return np.array([np.linalg.norm(at[a] - at[b]) for a, b in ((159, 145), (386, 374), (13, 14))])

    neutral = gaps(model.v_template)
    closed = gaps(posed(model, {"blink_L": 1.0, "blink_R": 1.0}))
    open_jaw = gaps(posed(model, {}, jaw=0.25))
    assert (neutral[:2] > 0.008).all() and (closed[:2] < 0.0005).all()  # upper and lower lid middles meet
    assert neutral[2] < 0.002 and open_jaw[2] > 0.015 and np.allclose(open_jaw[:2], neutral[:2])
