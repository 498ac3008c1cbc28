"""Camera conventions of the FLAME trackers and of Blender, as plain numpy.

One canonical camera is used everywhere: **OpenCV**, world -> camera, ``X_cam = R @ X_world + t``
(camera +X right, +Y down, +Z forward), intrinsics ``K`` in pixels with the origin at the top-left
*corner* of the top-left pixel (pixel centres at +0.5), and world = FLAME space (+X subject's left,
+Y up, +Z out of the face, metres). Conversions:

- pytorch3d ``PerspectiveCameras`` in NDC (metrical-tracker): ``X_view = R^T X + T`` with view axes
  +X left, +Y up, +Z forward; ``x_ndc = f X/Z + p``; the shorter image side spans NDC [-1, 1].
- OpenGL world -> camera (VHAP): camera axes +X right, +Y up, looking down -Z.
- Orthographic (DECA, EMOCA, SMIRK's ``batch_orth_proj``): the same R, t and K, but the pixel is
  ``K @ (X_cam, Y_cam, 1)``: depth does not divide (:attr:`CameraTrack.orthographic`).
- Blender: a camera object whose local axes are OpenGL's, placed by a camera-to-world matrix in
  FLAME space, with ``lens``/``sensor_width``/``shift_x``/``shift_y`` and the render resolution.
  FLAME's Y-up world becomes Blender's Z-up world by :data:`FLAME_TO_BLENDER` (applied to the head
  and the camera alike, e.g. by parenting both to one object).

Frame-batched arrays carry a leading T axis; single cameras may omit it where noted.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .errors import SequenceError
from .limits import IMAGE_SIDE
from .rig import FLAME_TO_BLENDER  # noqa: F401  (re-exported: FLAME Y-up -> Blender Z-up, 4x4)
from .rotations import rotation_6d_to_matrix

# OpenCV <-> OpenGL camera axes, and pytorch3d view <-> OpenCV camera axes: both flip two axes.
_CV_FROM_GL = np.diag([1.0, -1.0, -1.0])
_CV_FROM_P3D = np.diag([-1.0, -1.0, 1.0])



@dataclass(frozen=True)
class CameraTrack:
    """A per-frame OpenCV camera in FLAME space.

    K: (T, 3, 3) float64 intrinsics in pixels (top-left corner origin)
    R: (T, 3, 3) float64 world -> camera rotation
    t: (T, 3) float64 world -> camera translation, metres
    image_size: (H, W) in pixels, the image the intrinsics refer to
    orthographic: the pixel is ``K @ (X_cam, Y_cam, 1)`` (fx in pixels per metre), not ``K @ X_cam / Z_cam``
    """

    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    image_size: tuple[int, int]
    orthographic: bool = False

    def __len__(self) -> int:
        return len(self.K)

    def take(self, index: np.ndarray | slice) -> CameraTrack:
        """The frames selected by ``index`` (an index array, boolean mask or slice)."""
        return dataclasses.replace(self, K=self.K[index], R=self.R[index], t=self.t[index])


@dataclass(frozen=True)
class BlenderCamera:
    """Blender camera settings reproducing an OpenCV camera (square pixels).

    cam2world: (T, 4, 4) float64 camera object matrix in FLAME space, OpenGL camera axes
    lens: (T,) float64 focal length in mm for ``sensor_width``, or None for an orthographic camera
    ortho_scale: (T,) float64 metres the larger image side spans (orthographic camera), else None
    shift_x, shift_y: (T,) float64 lens shift in units of the larger image side
    sensor_width: mm; sensor_fit: always 'AUTO' (the fit follows the larger side)
    resolution: (W, H) render resolution in pixels, pixel aspect 1
    """

    cam2world: np.ndarray
    lens: np.ndarray | None
    shift_x: np.ndarray
    shift_y: np.ndarray
    sensor_width: float
    resolution: tuple[int, int]
    sensor_fit: str = "AUTO"
    ortho_scale: np.ndarray | None = None


def image_hw(value, what: str = "image size") -> tuple[int, int]:
    """``value`` ([H, W] in any array form) as two whole numbers of :data:`.limits.IMAGE_SIDE` pixels.

    Else SequenceError naming ``what`` (e.g. "clip.npz: 'image_size'").
    """
    size = np.asarray(value)
    low, high = IMAGE_SIDE
    if (size.dtype.kind not in "iuf" or size.size != 2 or not np.isfinite(size).all() or np.any(size % 1)
            or np.any(size < low) or np.any(size > high)):
        raise SequenceError(f"{what} is {size.reshape(-1)[:4].tolist()}, expected [H, W]: two whole numbers "
                            f"of {low} to {high} pixels")
    height, width = (int(v) for v in size.reshape(-1))
    return height, width


def intrinsics(f: np.ndarray, cx: np.ndarray, cy: np.ndarray, fy: np.ndarray | None = None) -> np.ndarray:
    """K matrices from (T,) or scalar focal lengths and principal points -> (T, 3, 3) float64."""
    f, cx, cy = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in (f, cx, cy)))
    fy = f if fy is None else np.broadcast_to(np.asarray(fy, dtype=np.float64), f.shape)
    K = np.zeros(f.shape + (3, 3))
    K[..., 0, 0], K[..., 1, 1], K[..., 0, 2], K[..., 1, 2], K[..., 2, 2] = f, fy, cx, cy, 1.0
    return K


def pytorch3d_to_opencv(R: np.ndarray, T: np.ndarray, focal_length: np.ndarray,
                        principal_point: np.ndarray, image_size) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """pytorch3d ``PerspectiveCameras(in_ndc=True)`` -> OpenCV (K, R, t), as ``opencv_from_cameras_projection``.

    R: (T, 6) pytorch3d 6D (first two rows) or (T, 3, 3) pytorch3d rotation (``X_view = X @ R + T``);
    T: (T, 3); focal_length: (T, 1) or (T, 2) or (T,) NDC; principal_point: (T, 2) NDC;
    image_size: (H, W). Returns K (T, 3, 3) pixels, R_cv (T, 3, 3), t_cv (T, 3), all float64:
    ``R_cv = diag(-1, -1, 1) R^T``, ``t_cv = diag(-1, -1, 1) T``, ``f_px = f s/2``,
    ``c = (W/2, H/2) - p s/2`` with ``s = min(H, W)``.
    """
    R = np.asarray(R, dtype=np.float64)
    R = rotation_6d_to_matrix(R) if R.shape[-1] == 6 else R.reshape(-1, 3, 3)
    n = len(R)
    T = np.asarray(T, dtype=np.float64).reshape(n, 3)
    fl = np.asarray(focal_length, dtype=np.float64).reshape(n, -1)
    pp = np.asarray(principal_point, dtype=np.float64).reshape(n, 2)
    h, w = image_hw(image_size)
    half = min(h, w) / 2.0
    K = intrinsics(fl[:, 0] * half, w / 2.0 - pp[:, 0] * half, h / 2.0 - pp[:, 1] * half,
                   fy=fl[:, -1] * half)
    R_cv = np.einsum("ij,tkj->tik", _CV_FROM_P3D, R)
    return K, R_cv, T @ _CV_FROM_P3D


def _square_pixels(K: np.ndarray, what: str) -> None:
    """Refuse intrinsics with fx != fy or skew; K: (T, 3, 3)."""
    fx, fy = K[:, 0, 0], K[:, 1, 1]
    if np.any(np.abs(fx - fy) > 1e-6 * np.abs(fx)) or np.any(np.abs(K[:, 0, 1]) > 1e-9 * np.abs(fx)):
        raise SequenceError(f"{what} needs square pixels without skew, but the camera has "
                            f"fx = {fx[0]:.6g}, fy = {fy[0]:.6g}, skew = {K[0, 0, 1]:.3g}")


def opencv_to_pytorch3d(K: np.ndarray, R: np.ndarray, t: np.ndarray, image_size
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`pytorch3d_to_opencv` for fx = fy without skew.

    K, R: (T, 3, 3); t: (T, 3); image_size: (H, W). Returns the pytorch3d rotation (T, 3, 3),
    T (T, 3), focal length (T, 1) and principal point (T, 2) in NDC, float64.
    """
    K = np.asarray(K, dtype=np.float64).reshape(-1, 3, 3)
    _square_pixels(K, "a pytorch3d camera with one focal length")
    h, w = image_hw(image_size)
    half = min(h, w) / 2.0
    R_p3d = np.einsum("tji,jk->tik", np.asarray(R, dtype=np.float64).reshape(-1, 3, 3), _CV_FROM_P3D)
    T = np.asarray(t, dtype=np.float64).reshape(-1, 3) @ _CV_FROM_P3D
    fl = K[:, 0, 0, None] / half
    pp = np.stack([(w / 2.0 - K[:, 0, 2]) / half, (h / 2.0 - K[:, 1, 2]) / half], axis=-1)
    return R_p3d, T, fl, pp


def opengl_to_opencv(R_gl: np.ndarray, t_gl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World -> camera in OpenGL axes (VHAP) -> OpenCV axes. R_gl: (..., 3, 3), t_gl: (..., 3)."""
    R_gl, t_gl = np.asarray(R_gl, dtype=np.float64), np.asarray(t_gl, dtype=np.float64)
    return np.einsum("ij,...jk->...ik", _CV_FROM_GL, R_gl), t_gl @ _CV_FROM_GL


def vhap_camera(focal_length: float, image_size, n_frames: int) -> CameraTrack:
    """VHAP's monocular camera: OpenGL world -> camera ``[I | (0, 0, -1)]`` (camera at FLAME
    (0, 0, 1) looking at the head), ``f = focal_length * max(H, W)`` px, principal point at the centre.
    """
    h, w = image_hw(image_size)
    R, t = opengl_to_opencv(np.eye(3), np.array([0.0, 0.0, -1.0]))
    K = intrinsics(float(focal_length) * max(h, w), w / 2.0, h / 2.0)
    return CameraTrack(np.repeat(K, n_frames, axis=0), np.repeat(R[None], n_frames, axis=0),
                       np.repeat(t[None], n_frames, axis=0), (h, w))


def orthographic_crop(cam: np.ndarray, side: int = 224, distance: float = 1.0) -> CameraTrack:
    """DECA / SMIRK's weak-perspective camera -> an orthographic track on their ``side``-pixel crop.

    cam: (T, 3) ``[s, tx, ty]``; ``batch_orth_proj`` gives NDC ``x = s (X + tx)``, ``y = -s (Y + ty)``
    (y negated: rows count down), so the pixel is ``u = side/2 (1 + s (X + tx))``,
    ``v = side/2 (1 - s (Y + ty))``. That is the camera ``R = diag(1, -1, -1)`` (looking down FLAME's
    -Z) at FLAME ``(-tx, -ty, distance)``, with ``fx = fy = s side/2`` and the principal point at the
    crop's centre; ``distance`` only keeps the head in front of it. Requires s > 0.
    """
    cam = np.asarray(cam, dtype=np.float64).reshape(-1, 3)
    n = len(cam)
    R = np.repeat(_CV_FROM_GL[None], n, axis=0)
    t = np.stack([cam[:, 1], -cam[:, 2], np.full(n, float(distance))], axis=-1)  # -R @ (-tx, -ty, d)
    K = intrinsics(cam[:, 0] * side / 2.0, side / 2.0, side / 2.0)
    return CameraTrack(K, R, t, (int(side), int(side)), orthographic=True)


def camera_to_world(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """World -> camera (R: (..., 3, 3), t: (..., 3)) -> camera -> world (..., 4, 4), same camera axes."""
    R, t = np.asarray(R, dtype=np.float64), np.asarray(t, dtype=np.float64)
    M = np.zeros(R.shape[:-2] + (4, 4))
    M[..., :3, :3] = np.swapaxes(R, -1, -2)
    M[..., :3, 3] = -np.einsum("...ji,...j->...i", R, t)
    M[..., 3, 3] = 1.0
    return M


def opencv_to_blender(camera: CameraTrack, sensor_width: float = 36.0) -> BlenderCamera:
    """OpenCV camera track -> Blender camera settings in FLAME space (square pixels required).

    ``cam2world = C2W_cv diag(1, -1, -1, 1)``; ``lens = fx sensor_width / max(W, H)`` (perspective) or
    ``ortho_scale = max(W, H) / fx`` (orthographic: fx is pixels per metre);
    ``shift_x = (W/2 - cx) / max(W, H)``; ``shift_y = (cy - H/2) / max(W, H)``.
    """
    _square_pixels(camera.K, "a Blender camera")
    h, w = camera.image_size
    side = float(max(w, h))
    cam2world = camera_to_world(camera.R, camera.t) @ np.diag([1.0, -1.0, -1.0, 1.0])
    fx = camera.K[:, 0, 0]
    return BlenderCamera(
        cam2world=cam2world, lens=None if camera.orthographic else fx * sensor_width / side,
        shift_x=(w / 2.0 - camera.K[:, 0, 2]) / side, shift_y=(camera.K[:, 1, 2] - h / 2.0) / side,
        sensor_width=float(sensor_width), resolution=(int(w), int(h)),
        ortho_scale=side / fx if camera.orthographic else None)


def blender_to_opencv(cam2world: np.ndarray, lens: np.ndarray, shift_x: np.ndarray, shift_y: np.ndarray,
                      sensor_width: float, resolution: tuple[int, int], orthographic: bool = False) -> CameraTrack:
    """Inverse of :func:`opencv_to_blender` (sensor fit 'AUTO', square pixels).

    cam2world: (T, 4, 4) in FLAME space, OpenGL camera axes; lens, shift_x, shift_y: (T,) or scalars;
    resolution: (W, H); orthographic: ``lens`` is then the ortho_scale in metres. Returns the OpenCV
    world -> camera track.
    """
    w, h = resolution
    side = float(max(w, h))
    c2w_cv = np.asarray(cam2world, dtype=np.float64) @ np.diag([1.0, -1.0, -1.0, 1.0])
    R = np.swapaxes(c2w_cv[:, :3, :3], -1, -2)
    t = -np.einsum("tij,tj->ti", R, c2w_cv[:, :3, 3])
    n = len(R)
    lens = np.asarray(lens, dtype=np.float64)
    f = np.broadcast_to(side / lens if orthographic else lens * side / sensor_width, (n,))
    cx = np.broadcast_to(w / 2.0 - np.asarray(shift_x, dtype=np.float64) * side, (n,))
    cy = np.broadcast_to(h / 2.0 + np.asarray(shift_y, dtype=np.float64) * side, (n,))
    return CameraTrack(intrinsics(f, cx, cy), R, t, (int(h), int(w)), orthographic)


def head_in_fixed_camera(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """For a "static camera, moving head" import: the head's object matrix (..., 4, 4) when the
    camera sits at the origin with identity rotation (OpenGL axes): ``diag(1, -1, -1) [R | t]``.
    R: (..., 3, 3), t: (..., 3) OpenCV world -> camera.
    """
    R_gl, t_gl = opengl_to_opencv(R, t)  # the axis flip is its own inverse
    M = np.zeros(R_gl.shape[:-2] + (4, 4))
    M[..., :3, :3], M[..., :3, 3], M[..., 3, 3] = R_gl, t_gl, 1.0
    return M


def project_opencv(points: np.ndarray, K: np.ndarray, R: np.ndarray, t: np.ndarray,
                   orthographic: bool = False) -> np.ndarray:
    """Pinhole (or orthographic) projection. points: (N, 3) world; K, R: (3, 3); t: (3,) -> (N, 2) pixels,
    top-left corner origin."""
    cam = np.einsum("ij,nj->ni", np.asarray(R, dtype=np.float64), np.asarray(points, dtype=np.float64)) + t
    if orthographic:
        cam[:, 2] = 1.0
    uvw = np.einsum("ij,nj->ni", np.asarray(K, dtype=np.float64), cam)
    return uvw[:, :2] / uvw[:, 2:]


def project_blender_camera(points: np.ndarray, cam2world: np.ndarray, lens: float, sensor_width: float,
                           shift_x: float, shift_y: float, width: int, height: int,
                           sensor_fit: str = "AUTO", sensor_height: float | None = None) -> np.ndarray:
    """Project like Blender's perspective camera (``BKE_camera_params_compute_viewplane``), square pixels.

    points: (N, 3) world; cam2world: (4, 4) camera object matrix (camera looks down its -Z, +Y up).
    The view plane at unit distance spans ``sensor / lens`` across the fitted side (the larger one
    for 'AUTO'), shifted by ``shift * fitted side`` pixels; Blender's pixel rows count upwards, so
    the result is flipped to rows counted from the top. Returns (N, 2) pixels, top-left corner origin.
    """
    fit = sensor_fit if sensor_fit != "AUTO" else ("HORIZONTAL" if width >= height else "VERTICAL")
    sensor = sensor_height if sensor_fit == "VERTICAL" and sensor_height is not None else sensor_width
    viewfac = float(width if fit == "HORIZONTAL" else height)  # pixels across the fitted side
    pixsize = sensor / lens / viewfac  # view-plane size of one pixel at unit distance
    world2cam = np.linalg.inv(np.asarray(cam2world, dtype=np.float64))
    p = np.einsum("ij,nj->ni", world2cam[:3, :3], np.asarray(points, dtype=np.float64)) + world2cam[:3, 3]
    plane = p[:, :2] / -p[:, 2:]  # intersection with the plane at distance 1 in front
    xmin = (-0.5 * width + shift_x * viewfac) * pixsize
    ymin = (-0.5 * height + shift_y * viewfac) * pixsize
    u = (plane[:, 0] - xmin) / pixsize
    v_up = (plane[:, 1] - ymin) / pixsize
    return np.stack([u, height - v_up], axis=-1)
