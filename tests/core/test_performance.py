"""The built-in demo performance: deterministic, speech-like, and framed by its camera."""

import dataclasses

import numpy as np
import pytest

from flame_blender_addon.core.camera import project_opencv
from flame_blender_addon.core.evaluation import sequence_vertices
from flame_blender_addon.core.rotations import matrix_to_axis_angle
from flame_blender_addon.core.sequence import validate_sequence
from flame_blender_addon.demo import performance
from flame_blender_addon.demo.head import EXPRESSION_NAMES, demo_model


@pytest.fixture(scope="module")
def seq():
    return performance.demo_performance()


def channel(seq, name):
    return seq.expr[:, EXPRESSION_NAMES[name]]


def test_shape_and_determinism(seq):
    assert seq.n_frames == 125 and seq.fps == 25.0 and seq.n_shape == 300 and seq.n_expr == 100
    np.testing.assert_array_equal(seq.frame_ids, np.arange(125))
    again = performance.demo_performance()
    for field in dataclasses.fields(seq):
        a, b = getattr(seq, field.name), getattr(again, field.name)
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(seq.camera.R, again.camera.R)
    assert validate_sequence(seq).warnings == []
    assert performance.demo_performance(duration=2.0, fps=30.0).n_frames == 60


def test_only_the_semantic_expressions_move(seq):
    moving = set(np.flatnonzero(np.abs(seq.expr).max(axis=0) > 0))
    assert moving <= set(EXPRESSION_NAMES.values())
    assert {EXPRESSION_NAMES[n] for n in ("lips_part", "mouth_wide", "lip_pucker", "brow_raise", "blink_L",
                                           "blink_R", "smile")} <= moving
    assert np.all(seq.shape == 0) and np.all(seq.translation == 0)
    with pytest.raises(ValueError, match="at least"):
        performance.demo_performance(n_expr=10)


def test_speech_opens_the_jaw_in_syllables_with_pauses(seq):
    jaw = matrix_to_axis_angle(seq.rotations[:, performance.JAW])
    assert np.abs(jaw[:, 1:]).max() < 1e-9  # opening only, about +X
    opening = jaw[:, 0]
    assert 0.12 < opening.max() < 0.3 and opening.min() >= 0.0
    peaks = np.flatnonzero((opening[1:-1] > opening[:-2]) & (opening[1:-1] >= opening[2:]) & (opening[1:-1] > 0.05))
    assert len(peaks) == 15  # syllables in three phrases
    closed = opening < 1e-3
    assert closed[:5].all() and closed[36:42].all() and closed[68:76].all()  # silence before and between phrases
    assert np.corrcoef(opening, channel(seq, "lips_part"))[0, 1] > 0.95


def test_four_blinks_of_both_eyes(seq):
    left, right = channel(seq, "blink_L"), channel(seq, "blink_R")
    np.testing.assert_array_equal(left, right)
    assert left.max() > 0.9 and left.min() == 0.0
    closings = np.flatnonzero((left[1:] > 0.5) & (left[:-1] <= 0.5))
    assert len(closings) == 4


def test_head_turns_both_ways_and_the_eyes_lead(seq):
    neck = matrix_to_axis_angle(seq.rotations[:, performance.NECK])
    yaw = neck[:, 1]
    assert yaw.max() > 0.3 and yaw.min() < -0.2 and abs(yaw[0]) < 1e-9 and abs(yaw[-1]) < 0.01
    eyes = matrix_to_axis_angle(seq.rotations[:, performance.EYE_L])
    turning = np.flatnonzero(np.abs(np.diff(yaw)) > 0.01)
    assert np.abs(eyes[turning[0] - 2:turning[0] + 1, 1]).max() > 0.01  # the eyes move before the head


@pytest.mark.parametrize("image_size", [(512, 512), (480, 640)])
def test_the_camera_frames_the_head_in_every_frame(image_size):
    seq = performance.demo_performance(n_shape=0, n_expr=20, image_size=image_size)
    model = demo_model().truncated(0, 20)
    h, w = image_size
    for i, vertices in zip(range(0, seq.n_frames, 12), sequence_vertices(model, seq, slice(0, None, 12)), strict=True):
        K, R, t = seq.camera.K[i], seq.camera.R[i], seq.camera.t[i]
        px = project_opencv(vertices, K, R, t)
        assert px.min(axis=0).min() > 0 and px[:, 0].max() < w and px[:, 1].max() < h, f"frame {i}"
        assert np.ptp(px[:, 1]) > 0.6 * h  # the head fills most of the picture's height
    assert seq.camera.image_size == image_size
