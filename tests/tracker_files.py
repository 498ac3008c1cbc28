"""Fake tracker outputs in their exact on-disk layouts, for tests (no torch, no licensed data).

Written independently of ``core.sequence``'s writers, following the trackers' own code:
metrical-tracker ``save_checkpoint`` (a nested dict passed to ``torch.save``), VHAP ``save_result``
(``np.savez`` of float32 arrays, string ``timestep_id``) and GaussianAvatars / VHAP-export
``flame_param`` files. Values are random but plausible (small rotations, a camera near
metrical-tracker's initial one).
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

I6D = np.array([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])  # pytorch3d 6D of the identity
METRICAL_INITIAL_R6 = np.array([-1.0, 0.0, 0.0, 0.0, 1.0, 0.0])  # look_at_view_transform(dist=1)


def write_torch_save_zip(path: Path, obj: Any) -> Path:
    """The zip ``torch.save`` writes for an object without tensors: ``<stem>/data.pkl`` and friends."""
    stem = path.stem
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{stem}/data.pkl", pickle.dumps(obj, protocol=2))
        zf.writestr(f"{stem}/byteorder", "little")
        zf.writestr(f"{stem}/version", "3\n")
    return path


def small_rotation_6d(rng: np.random.Generator, n: int, scale: float = 0.2) -> np.ndarray:
    """(n, 6) unnormalised pytorch3d 6D vectors near the identity (tests Gram-Schmidt too)."""
    return (I6D + rng.normal(scale=scale, size=(n, 6))) * rng.uniform(0.5, 2.0, size=(n, 1))


def metrical_frame(rng: np.random.Generator, frame_id: int, n_shape: int = 300, n_expr: int = 100,
                   shape: np.ndarray | None = None, img_size: tuple[int, int] = (512, 512)) -> dict:
    """One checkpoint dict as metrical-tracker's ``save_checkpoint`` builds it (float32, (1, k) leaves).

    ``opencv`` holds the conversion of the pytorch3d camera written out by hand
    (``R_cv = diag(-1, -1, 1) R^T``, ``t_cv = diag(-1, -1, 1) T``, ``f = fl s/2``,
    ``c = (W/2, H/2) - pp s/2``), as ``opencv_from_cameras_projection`` returns it.
    """
    f32 = np.float32
    r6 = METRICAL_INITIAL_R6 + rng.normal(scale=0.05, size=6)
    a1 = r6[:3] / np.linalg.norm(r6[:3])
    a2 = r6[3:] - (a1 @ r6[3:]) * a1
    a2 /= np.linalg.norm(a2)
    R = np.stack([a1, a2, np.cross(a1, a2)])
    T = np.array([0.0, 0.0, 1.0]) + rng.normal(scale=0.02, size=3)
    fl, pp = 5000 / img_size[0] * (1 + rng.normal(scale=0.05)), rng.normal(scale=0.01, size=2)
    H, W = img_size
    half = min(H, W) / 2
    flip = np.diag([-1.0, -1.0, 1.0])
    K = np.array([[fl * half, 0, W / 2 - pp[0] * half], [0, fl * half, H / 2 - pp[1] * half], [0, 0, 1]])
    return {
        "flame": {
            "exp": rng.normal(size=(1, n_expr)).astype(f32),
            "shape": (rng.normal(size=(1, n_shape)) if shape is None else shape[None]).astype(f32),
            "tex": rng.normal(size=(1, 140)).astype(f32),
            "sh": rng.normal(size=(1, 9, 3)).astype(f32),
            "eyes": np.concatenate([small_rotation_6d(rng, 1), small_rotation_6d(rng, 1)], axis=1).astype(f32),
            "eyelids": rng.uniform(0, 1, size=(1, 2)).astype(f32),
            "jaw": small_rotation_6d(rng, 1).astype(f32),
        },
        "camera": {"R": r6[None].astype(f32), "t": T[None].astype(f32),
                   "fl": np.array([[fl]], dtype=f32), "pp": pp[None].astype(f32)},
        "opencv": {"R": (flip @ R.T)[None].astype(f32), "t": (flip @ T)[None].astype(f32),
                   "K": K[None].astype(f32)},
        "img_size": np.array(img_size, dtype=np.int64),
        "frame_id": f"{frame_id:05d}",
        "global_step": 314 * (frame_id + 1),
    }


def metrical_sh_shading(sh: np.ndarray, n: np.ndarray) -> np.ndarray:
    """metrical-tracker's renderer (renderer.py ``add_SHlight``): the shading (..., 3) of world-frame
    unit normals n (..., 3) under its ``sh`` (9, 3), ``sum_j sh[j] c_j p_j(n)`` with its ``constant_factor``
    c and the polynomials p = 1, x, y, z, xy, xz, yz, x^2 - y^2, 3 z^2 - 1."""
    x, y, z = np.moveaxis(n, -1, 0)
    polys = np.stack([np.ones_like(x), x, y, z, x * y, x * z, y * z, x * x - y * y, 3 * z * z - 1], -1)
    pi = np.pi
    c = np.array([1 / np.sqrt(4 * pi)] + [2 * pi / 3 * np.sqrt(3 / (4 * pi))] * 3
                 + [pi / 4 * 3 * np.sqrt(5 / (12 * pi))] * 3
                 + [pi / 4 * 3 / 2 * np.sqrt(5 / (12 * pi)), pi / 4 * 1 / 2 * np.sqrt(5 / (4 * pi))])
    return (polys * c) @ np.asarray(sh).reshape(9, 3)


def write_metrical_output(root: Path, frames: dict[int, dict]) -> Path:
    """``root/checkpoint/{frame:05d}.frame`` for each frame dict; returns root."""
    folder = root / "checkpoint"
    folder.mkdir(parents=True, exist_ok=True)
    for frame_id, frame in frames.items():
        write_torch_save_zip(folder / f"{frame_id:05d}.frame", frame)
    return root


class _System:
    """Pickles to ``os.system(command)``: what a hostile checkpoint would run on load."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def write_hostile_frame(path: Path, marker: Path) -> Path:
    """A ``.frame`` whose data.pkl would create ``marker`` through ``os.system`` if unpickled naively."""
    return write_torch_save_zip(path, {"flame": {"exp": _System(f"touch '{marker}'")}})


def vhap_arrays(rng: np.random.Generator, n_frames: int, n_shape: int = 300, n_expr: int = 100,
                n_verts: int = 5143, image_size: tuple[int, int] = (512, 512)) -> dict[str, np.ndarray]:
    """The arrays VHAP's ``save_result`` passes to ``np.savez`` (monocular, static offsets on)."""
    f32 = np.float32
    aa = rng.normal(scale=0.1, size=(n_frames, 18))
    return {
        "rotation": aa[:, 0:3].astype(f32), "translation": rng.normal(scale=0.01, size=(n_frames, 3)).astype(f32),
        "neck_pose": aa[:, 3:6].astype(f32), "jaw_pose": aa[:, 6:9].astype(f32),
        "eyes_pose": aa[:, 9:15].astype(f32), "shape": rng.normal(size=n_shape).astype(f32),
        "expr": rng.normal(size=(n_frames, n_expr)).astype(f32),
        "timestep_id": np.array([f"{i:05d}" for i in range(n_frames)]),
        "n_processed_frames": np.array(n_frames), "focal_length": np.array([1.6], dtype=f32),
        "tex": rng.normal(size=100).astype(f32), "lights": rng.normal(size=(9, 3)).astype(f32),
        "static_offset": rng.normal(scale=1e-3, size=(1, n_verts, 3)).astype(f32),
        "image_size": np.array(image_size, dtype=np.int64),
    }


def gaussian_avatars_arrays(rng: np.random.Generator, n_frames: int, n_verts: int = 5143) -> dict[str, np.ndarray]:
    """GaussianAvatars' ``flame_param.npz``: VHAP's parameters, zero dynamic offsets, no camera."""
    keep = ("rotation", "translation", "neck_pose", "jaw_pose", "eyes_pose", "shape", "expr", "static_offset")
    arrays = {k: v for k, v in vhap_arrays(rng, n_frames, n_verts=n_verts).items() if k in keep}
    arrays["dynamic_offset"] = np.zeros((n_frames, n_verts, 3), dtype=np.float32)
    return arrays


def write_flame_param_folder(folder: Path, arrays: dict[str, np.ndarray], frame_ids: list[int]) -> Path:
    """Per-frame ``flame_param/<n>.npz`` files: per-frame keys as (1, k), shared keys as they are."""
    folder.mkdir(parents=True, exist_ok=True)
    shared = {"shape", "static_offset"}
    for i, frame_id in enumerate(frame_ids):
        np.savez(folder / f"{frame_id:05d}.npz",
                 **{k: v if k in shared else v[i:i + 1] for k, v in arrays.items()})
    return folder
