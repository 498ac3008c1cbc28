"""Camera conventions: pytorch3d -> OpenCV against pytorch3d's documented projection, OpenCV -> Blender
against a re-implementation of Blender's view-plane maths, VHAP's OpenGL camera."""

import numpy as np
import pytest

from flame_blender_addon.core import camera as cam
from flame_blender_addon.core.errors import SequenceError
from flame_blender_addon.core.rotations import axis_angle_to_matrix, matrix_to_rotation_6d, rotation_6d_to_matrix


def pytorch3d_screen(points, R, T, fl, pp, image_size):
    """pytorch3d's ``transform_points_screen`` for ``PerspectiveCameras(in_ndc=True)``, written from its docs:
    ``X_view = X @ R + T`` (row vectors), ``x_ndc = f X/Z + p`` (+X left, +Y up, shorter side in [-1, 1]),
    then screen ``x = W/2 - s x_ndc``, ``y = H/2 - s y_ndc`` with ``s = min(H, W)/2``."""
    H, W = image_size
    view = points @ R + T
    ndc = fl * view[:, :2] / view[:, 2:] + pp
    s = min(H, W) / 2
    return np.stack([W / 2 - s * ndc[:, 0], H / 2 - s * ndc[:, 1]], axis=-1)


def random_points(rng, n=50):
    return rng.normal(scale=0.08, size=(n, 3))


def random_opencv_camera(rng, image_size, T=1):
    """A camera ~1 m in front of the face (+Z) looking at it, off-centre principal point."""
    H, W = image_size
    R = axis_angle_to_matrix(rng.normal(scale=0.3, size=(T, 3))) @ np.diag([1.0, -1.0, -1.0])
    t = np.array([0.0, 0.0, 1.0]) + rng.normal(scale=0.05, size=(T, 3))
    K = cam.intrinsics(rng.uniform(800, 3000, T), W / 2 + rng.uniform(-60, 60, T), H / 2 + rng.uniform(-60, 60, T))
    return cam.CameraTrack(K, R, t, image_size)


def test_metrical_initial_camera_is_one_metre_in_front_with_2500px_focal():
    K, R, t = cam.pytorch3d_to_opencv(np.array([[-1.0, 0, 0, 0, 1, 0]]), np.array([[0.0, 0, 1]]),
                                      np.array([[5000 / 512]]), np.zeros((1, 2)), (512, 512))
    np.testing.assert_allclose(K[0], [[2500, 0, 256], [0, 2500, 256], [0, 0, 1]])
    np.testing.assert_allclose(R[0], np.diag([1.0, -1.0, -1.0]))
    np.testing.assert_allclose(t[0], [0, 0, 1])
    # camera centre -R^T t is at FLAME (0, 0, 1): in front of the face
    np.testing.assert_allclose(-R[0].T @ t[0], [0, 0, 1])
    uv = cam.project_opencv(np.array([[0, 0, 0], [0.01, 0, 0], [0, 0.01, 0]]), K[0], R[0], t[0])
    np.testing.assert_allclose(uv[0], [256, 256])
    assert uv[1, 0] > 256  # subject's left (+X) appears on the image's right when facing the camera
    assert uv[2, 1] < 256  # up (+Y) is up in the image


@pytest.mark.parametrize("image_size", [(512, 512), (480, 640), (720, 405)])
def test_pytorch3d_to_opencv_projects_like_pytorch3d(image_size):
    rng = np.random.default_rng(1)
    n = 4
    r6 = np.array([-1.0, 0, 0, 0, 1, 0]) + rng.normal(scale=0.1, size=(n, 6))
    T = np.array([0, 0, 1.0]) + rng.normal(scale=0.05, size=(n, 3))
    fl, pp = rng.uniform(5, 12, (n, 1)), rng.normal(scale=0.05, size=(n, 2))
    K, R, t = cam.pytorch3d_to_opencv(r6, T, fl, pp, image_size)
    pts = random_points(rng)
    for i in range(n):
        expected = pytorch3d_screen(pts, rotation_6d_to_matrix(r6[i]), T[i], fl[i], pp[i], image_size)
        np.testing.assert_allclose(cam.project_opencv(pts, K[i], R[i], t[i]), expected, atol=1e-9)


def test_pytorch3d_accepts_3x3_rotations_and_two_focal_lengths():
    rng = np.random.default_rng(2)
    R3 = axis_angle_to_matrix(rng.normal(size=(2, 3)))
    K, R, _ = cam.pytorch3d_to_opencv(R3, np.ones((2, 3)), np.array([[2.0, 3.0]] * 2), np.zeros((2, 2)), (100, 200))
    K6, R6, _ = cam.pytorch3d_to_opencv(matrix_to_rotation_6d(R3), np.ones((2, 3)), np.array([[2.0, 3.0]] * 2),
                                        np.zeros((2, 2)), (100, 200))
    np.testing.assert_allclose(R, R6, atol=1e-12)
    np.testing.assert_allclose(K[:, 0, 0], 100.0)  # f s/2 with s = min(H, W) = 100
    np.testing.assert_allclose(K[:, 1, 1], 150.0)


def test_opencv_to_pytorch3d_inverts():
    rng = np.random.default_rng(3)
    c = random_opencv_camera(rng, (300, 400), T=5)
    R_p, T_p, fl, pp = cam.opencv_to_pytorch3d(c.K, c.R, c.t, c.image_size)
    K, R, t = cam.pytorch3d_to_opencv(R_p, T_p, fl, pp, c.image_size)
    np.testing.assert_allclose(K, c.K, atol=1e-9)
    np.testing.assert_allclose(R, c.R, atol=1e-12)
    np.testing.assert_allclose(t, c.t, atol=1e-12)
    assert fl.shape == (5, 1) and pp.shape == (5, 2)


def test_image_hw_reads_h_w_and_refuses_the_rest():
    assert cam.image_hw(np.array([[480.0, 640.0]])) == (480, 640)
    assert cam.image_hw((16, 16384), "x") == (16, 16384)
    for bad in ([480], [480, 640, 3], [480.5, 640], [15, 640], [480, 16385], [np.nan, 640], ["480", "640"]):
        with pytest.raises(SequenceError, match=r"^clip: 'img' is .*expected \[H, W\]"):
            cam.image_hw(np.array(bad), "clip: 'img'")


def test_non_square_pixels_are_refused():
    K = cam.intrinsics(1000.0, 256, 256, fy=1100.0)
    with pytest.raises(SequenceError, match="square pixels"):
        cam.opencv_to_pytorch3d(K, np.eye(3)[None], np.zeros((1, 3)), (512, 512))
    with pytest.raises(SequenceError, match="square pixels"):
        cam.opencv_to_blender(cam.CameraTrack(K, np.eye(3)[None], np.zeros((1, 3)), (512, 512)))


@pytest.mark.parametrize("image_size", [(512, 512), (1080, 1920), (1920, 1080), (333, 517)])
def test_blender_camera_projects_like_opencv(image_size):
    rng = np.random.default_rng(4)
    track = random_opencv_camera(rng, image_size, T=3)
    bc = cam.opencv_to_blender(track, sensor_width=36.0)
    H, W = image_size
    assert bc.resolution == (W, H) and bc.sensor_fit == "AUTO"
    pts = random_points(rng)
    for i in range(3):
        expected = cam.project_opencv(pts, track.K[i], track.R[i], track.t[i])
        got = cam.project_blender_camera(pts, bc.cam2world[i], bc.lens[i], bc.sensor_width,
                                         bc.shift_x[i], bc.shift_y[i], W, H)
        assert np.abs(got - expected).max() < 1e-6


def test_blender_fit_modes_agree_when_they_describe_the_same_camera():
    # A landscape image: AUTO fits the width. The same camera with a VERTICAL fit needs the lens
    # for the height's sensor and shifts in units of the height.
    rng = np.random.default_rng(5)
    W, H = 640, 480
    pts = random_points(rng)
    c2w = np.eye(4)
    c2w[2, 3] = 1.0
    lens, sensor = 50.0, 36.0
    auto = cam.project_blender_camera(pts, c2w, lens, sensor, 0.05, -0.02, W, H)
    horizontal = cam.project_blender_camera(pts, c2w, lens, sensor, 0.05, -0.02, W, H, sensor_fit="HORIZONTAL")
    f_px = lens / sensor * W
    vertical = cam.project_blender_camera(pts, c2w, f_px * 24.0 / H, sensor, 0.05 * W / H, -0.02 * W / H, W, H,
                                          sensor_fit="VERTICAL", sensor_height=24.0)
    np.testing.assert_allclose(horizontal, auto, atol=1e-9)
    np.testing.assert_allclose(vertical, auto, atol=1e-9)


def test_metrical_initial_camera_becomes_identity_blender_camera_at_plus_z():
    K, R, t = cam.pytorch3d_to_opencv(np.array([[-1.0, 0, 0, 0, 1, 0]]), np.array([[0.0, 0, 1]]),
                                      np.array([[5000 / 512]]), np.zeros((1, 2)), (512, 512))
    bc = cam.opencv_to_blender(cam.CameraTrack(K, R, t, (512, 512)), sensor_width=36.0)
    expected = np.eye(4)
    expected[2, 3] = 1.0
    np.testing.assert_allclose(bc.cam2world[0], expected, atol=1e-12)
    np.testing.assert_allclose(bc.lens, [2500 * 36 / 512])
    np.testing.assert_allclose([bc.shift_x[0], bc.shift_y[0]], [0, 0])


def test_vhap_camera_is_opengl_identity_at_plus_z():
    track = cam.vhap_camera(1.5, (480, 640), n_frames=2)
    np.testing.assert_allclose(track.K[0], [[960, 0, 320], [0, 960, 240], [0, 0, 1]])
    np.testing.assert_allclose(track.R[1], np.diag([1.0, -1.0, -1.0]))
    np.testing.assert_allclose(track.t[1], [0, 0, 1])
    bc = cam.opencv_to_blender(track, sensor_width=36.0)
    np.testing.assert_allclose(bc.cam2world[0, :3, :3], np.eye(3), atol=1e-12)
    np.testing.assert_allclose(bc.cam2world[0, :3, 3], [0, 0, 1])
    np.testing.assert_allclose(bc.lens, 1.5 * 36.0)  # focal_length * sensor width, fit on the larger side


def test_opengl_to_opencv_flips_y_and_z_rows():
    R_gl, t_gl = axis_angle_to_matrix(np.array([0.1, 0.2, 0.3])), np.array([0.1, 0.2, -1.0])
    R, t = cam.opengl_to_opencv(R_gl, t_gl)
    p = np.array([0.03, -0.02, 0.05])
    gl = R_gl @ p + t_gl
    np.testing.assert_allclose(R @ p + t, gl * [1, -1, -1])


def test_head_in_fixed_camera_reproduces_view_coordinates():
    rng = np.random.default_rng(6)
    track = random_opencv_camera(rng, (512, 512), T=2)
    M = cam.head_in_fixed_camera(track.R, track.t)  # head object matrix, camera at the origin (OpenGL)
    p = random_points(rng, 5)
    cv = np.einsum("ij,nj->ni", track.R[1], p) + track.t[1]
    gl = np.einsum("ij,nj->ni", M[1, :3, :3], p) + M[1, :3, 3]
    np.testing.assert_allclose(gl, cv * [1, -1, -1], atol=1e-12)


def test_flame_to_blender_stands_the_head_up():
    up, forward = cam.FLAME_TO_BLENDER[:3, :3] @ [0, 1, 0], cam.FLAME_TO_BLENDER[:3, :3] @ [0, 0, 1]
    np.testing.assert_allclose(up, [0, 0, 1])  # FLAME +Y -> Blender +Z
    np.testing.assert_allclose(forward, [0, -1, 0])  # the face looks along -Y (Blender's front view)


def test_camera_track_take_selects_frames():
    track = random_opencv_camera(np.random.default_rng(7), (10, 20), T=4)
    sub = track.take(np.array([3, 1]))
    assert len(sub) == 2 and sub.image_size == (10, 20)
    np.testing.assert_array_equal(sub.K[0], track.K[3])
