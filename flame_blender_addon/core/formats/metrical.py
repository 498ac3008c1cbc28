"""metrical-tracker's output: ``checkpoint/*.frame`` files (read and written), eyelid blendshapes.

Input: the output folder holding ``checkpoint/``, the ``checkpoint/`` folder itself, or any
``.frame`` file in it (then the whole folder is read). Each ``{frame:05d}.frame`` is a ``torch.save``
zip (:mod:`.torch_zip`) read through the restricted unpickler (never torch); leaves may be numpy
arrays or torch tensors. Jaw and eyes are pytorch3d 6D; root, neck and translation are
identity/zero (the head stays at the origin and the camera moves). The camera is pytorch3d ``R``
(6D), ``t``, ``fl``, ``pp`` (NDC) with ``img_size`` [H, W]. The eyelid blendshapes ``l_eyelid.npy`` /
``r_eyelid.npy`` (float64 (5023, 3)) are looked for in the given folder, or next to the
checkpoints, and kept as ``eyelid_dirs``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import safe_files
from ..camera import CameraTrack, image_hw, opencv_to_pytorch3d, pytorch3d_to_opencv
from ..errors import SequenceError, guarded
from ..evaluation import rest_joints
from ..limits import FOLDER, SMALL, Budget
from ..model import N_JOINTS, FlameModel
from ..rotations import matrix_to_rotation_6d, rotation_6d_to_matrix
from ..sequence import DEFAULT_FPS, FlameSequence, require_finite, validate_sequence
from ..sh_lighting import from_metrical, rotate, to_metrical
from .per_frame import int_stem, stack
from .torch_zip import load_torch_zip, write_torch_zip

_ROTATION_TOL = 1e-6  # "is identity" tolerance for rotations read from float32 files


def checkpoint_folder(path: Path) -> Path | None:
    """The metrical ``checkpoint`` folder for an output folder, a checkpoint folder or a .frame file."""
    if path.is_file():
        return path.parent if path.suffix == ".frame" else None
    for folder in (path / "checkpoint", path):
        if folder.is_dir() and any(folder.glob("*.frame")):
            return folder
    return None


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'flame': {'exp': a}} -> {'flame.exp': a}; already dotted keys pass through."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


@guarded
def read_frame_file(path: str | Path, budget: Budget | None = None, inside: str | Path | None = None
                    ) -> dict[str, Any]:
    """One metrical ``.frame`` as a flat {'flame.exp': array, ...} dict, without torch.

    budget: shared by the frames of one folder; inside: the folder the user chose. Raises
    UnsafePickleError (nothing executed) for pickles asking for anything but numpy/tensors,
    FileFormatError / SequenceError for damaged or non-dict files, LimitError.
    """
    path = Path(path)
    data = load_torch_zip(path, budget or Budget(FOLDER), inside)
    if not isinstance(data, Mapping):
        raise SequenceError(f"{path.name}: expected a dict of tracker values, found {type(data).__name__}")
    return _flatten(data)


@guarded
def read_metrical(path: str | Path, fps: float | None = None,
                  eyelid_blendshapes: str | Path | None = None) -> FlameSequence:
    """metrical-tracker output (output folder, ``checkpoint/`` or one ``.frame`` in it) -> sequence."""
    path = Path(path)
    folder = checkpoint_folder(path)
    if folder is None:
        raise SequenceError(f"{path}: no metrical-tracker checkpoints (*.frame) found")
    files = sorted(folder.glob("*.frame"))
    where = str(folder)
    warnings = []
    numbered = [(n, f) for f in files if (n := int_stem(f)) is not None]
    if len(numbered) < len(files):
        skipped = [f.name for f in files if int_stem(f) is None]
        warnings.append(f"{where}: skipped {len(skipped)} files not named <frame>.frame: "
                        f"{', '.join(skipped[:5])}")
    if not numbered:
        raise SequenceError(f"{folder}: no checkpoints named <frame number>.frame")
    numbered.sort()
    names = [f.name for _, f in numbered]
    budget, inside = Budget(FOLDER), path if path.is_dir() else folder
    frames = [read_frame_file(f, budget, inside) for _, f in numbered]

    raw = {key: stack(frames, key, names, width, required)
           for key, width, required in (("flame.exp", -1, True), ("flame.shape", -1, True),
                                        ("flame.jaw", 6, True), ("flame.eyes", 12, True),
                                        ("flame.eyelids", 2, False))}
    for key, value in raw.items():
        if value is not None:
            require_finite(where, key, value, names)
    T = len(frames)
    rotations = np.tile(np.eye(3), (T, N_JOINTS, 1, 1))
    rotations[:, 2] = rotation_6d_to_matrix(raw["flame.jaw"])
    rotations[:, 3:] = rotation_6d_to_matrix(raw["flame.eyes"].reshape(T, 2, 6))
    shapes = raw["flame.shape"]
    spread = float(np.abs(shapes - shapes[0]).max(initial=0.0))
    if spread > 1e-5:
        warnings.append(f"{where}: the identity ('flame.shape') differs between frames by up to "
                        f"{spread:.3g}; using {names[0]}'s")
    camera = _metrical_camera(frames, names, where, warnings)
    seq = FlameSequence(
        shape=shapes[0], expr=raw["flame.exp"], rotations=rotations, translation=np.zeros((T, 3)),
        frame_ids=np.array([n for n, _ in numbered], dtype=np.int64),
        fps=DEFAULT_FPS if fps is None else float(fps), fps_from_file=False, eyelids=raw["flame.eyelids"],
        camera=camera, appearance=_appearance(frames, names), source="metrical-tracker", path=str(folder),
        warnings=warnings)
    seq = attach_eyelid_dirs(seq, eyelid_blendshapes, (folder, folder.parent))
    return validate_sequence(seq, where)


def _appearance(frames: Sequence[Mapping[str, Any]], names: Sequence[str]) -> dict[str, np.ndarray] | None:
    """The first checkpoint's ``flame.tex`` (1, n) and ``flame.sh`` (1, 9, 3), as (n,) and our SH (9, 3),
    and ``sh_frames`` (T, 9, 3) when every checkpoint has an ``sh`` and they differ."""
    look = {}
    for key, shape in (("flame.tex", (-1,)), ("flame.sh", (9, 3))):
        if key in frames[0]:
            look[key[6:]] = _leaf(frames[0], names[0], key, shape)
    if "sh" in look and len(frames) > 1 and all("flame.sh" in f for f in frames):
        sh = np.stack([_leaf(f, name, "flame.sh", (9, 3)) for f, name in zip(frames, names, strict=True)])
        if np.abs(sh - sh[0]).max() > 0:
            look["sh_frames"] = sh
    return look or None


def _leaf(frame: Mapping[str, Any], name: str, key: str, shape: tuple[int, ...]) -> np.ndarray:
    """``flame.tex`` as (n,), or ``flame.sh`` as our SH (9, 3)."""
    try:
        value = np.asarray(frame[key], dtype=np.float64).reshape(shape)
    except (ValueError, TypeError):
        expected = "(1, n)" if shape == (-1,) else "(1, 9, 3)"
        raise SequenceError(f"{name}: '{key}' is {np.shape(frame[key])}, expected {expected}") from None
    require_finite(name, key, value[None])
    return from_metrical(value) if key == "flame.sh" else value


def _metrical_camera(frames: Sequence[Mapping[str, Any]], names: Sequence[str], where: str,
                     warnings: list[str]) -> CameraTrack | None:
    """The OpenCV track from ``camera.*`` (pytorch3d, preferred) or ``opencv.*``, checked against each other."""
    if not all("img_size" in f for f in frames):
        warnings.append(f"{where}: no 'img_size' in the checkpoints; camera not imported")
        return None
    sizes = {image_hw(f["img_size"], f"{name}: 'img_size'") for f, name in zip(frames, names, strict=True)}
    if len(sizes) > 1:
        raise SequenceError(f"{where}: 'img_size' changes between frames ({sorted(sizes)})")
    image_size = sizes.pop()
    p3d = {k: stack(frames, f"camera.{k}", names, w, required=False)
           for k, w in (("R", 6), ("t", 3), ("fl", 1), ("pp", 2))}
    cv = {k: stack(frames, f"opencv.{k}", names, w, required=False)
          for k, w in (("R", (3, 3)), ("t", 3), ("K", (3, 3)))}
    for group, values in (("camera", p3d), ("opencv", cv)):
        for k, v in values.items():
            if v is not None:
                require_finite(where, f"{group}.{k}", v, names)
    if all(v is not None for v in p3d.values()):
        K, R, t = pytorch3d_to_opencv(p3d["R"], p3d["t"], p3d["fl"], p3d["pp"], image_size)
        if all(v is not None for v in cv.values()):
            _compare_cameras(where, (K, R, t), (cv["K"], cv["R"], cv["t"]), warnings)
    elif all(v is not None for v in cv.values()):
        K, R, t = cv["K"], cv["R"], cv["t"]
    else:
        warnings.append(f"{where}: no complete 'camera' or 'opencv' entries; camera not imported")
        return None
    return CameraTrack(K, R, t, image_size)


def _compare_cameras(where: str, ours: tuple, stored: tuple, warnings: list[str]) -> None:
    """Warn if the pytorch3d-derived and the stored OpenCV camera disagree beyond float32 rounding."""
    (K, R, t), (K2, R2, t2) = ours, stored
    scale = max(1.0, float(np.abs(t).max()))
    if (np.abs(K - K2).max() > 1e-4 * np.abs(K).max() or np.abs(R - R2).max() > 1e-4
            or np.abs(t - t2).max() > 1e-4 * scale):
        warnings.append(f"{where}: the stored 'opencv' camera differs from the one derived from the "
                        "pytorch3d 'camera' values; using the pytorch3d values")


# --------------------------------------------------------------------------------------------------
# eyelid blendshapes


@guarded
def load_eyelid_blendshapes(folder: str | Path) -> np.ndarray:
    """``l_eyelid.npy`` and ``r_eyelid.npy`` in ``folder`` -> (2, V, 3) float64 (left first)."""
    folder = Path(folder)
    dirs = []
    budget = Budget(SMALL)
    for name in ("l_eyelid.npy", "r_eyelid.npy"):
        file = folder / name
        if not os.path.lexists(file):
            raise SequenceError(f"{folder}: '{name}' not found")
        arr = safe_files.load_npy(file, SMALL, budget, inside=folder)
        if arr.ndim != 2 or arr.shape[1] != 3 or arr.dtype.kind not in "fiu":
            raise SequenceError(f"{file}: shape {arr.shape} ({arr.dtype}), expected (V, 3) numbers")
        require_finite(str(file), name, arr)
        dirs.append(arr.astype(np.float64))
    if dirs[0].shape != dirs[1].shape:
        raise SequenceError(f"{folder}: l_eyelid {dirs[0].shape} and r_eyelid {dirs[1].shape} differ")
    return np.stack(dirs)


def attach_eyelid_dirs(seq: FlameSequence, folder: str | Path | None,
                        search: Sequence[Path]) -> FlameSequence:
    """Load eyelid blendshapes from ``folder`` or the first of ``search`` holding both files."""
    if folder is None:
        folder = next((f for f in search if (f / "l_eyelid.npy").is_file() and (f / "r_eyelid.npy").is_file()),
                      None)
    if folder is not None:
        return dataclasses.replace(seq, eyelid_dirs=load_eyelid_blendshapes(folder))
    if seq.eyelids is not None and np.any(seq.eyelids != 0):
        seq.warnings.append("the tracker moved the eyelids, but l_eyelid.npy / r_eyelid.npy were not found: "
                            "pick the folder holding them (metrical-tracker's flame/blendshapes) to import "
                            "the eyelids")
    return seq


def _is_identity(R: np.ndarray) -> np.ndarray:
    """R: (T, 3, 3) -> (T,) bool, within float32 rounding."""
    return np.abs(R - np.eye(3)).max(axis=(-2, -1)) <= _ROTATION_TOL


def _fold_rigid_motion(seq: FlameSequence, model: FlameModel | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Camera (R, t) with the head's root rotation and translation moved into it.

    FLAME's root rotation R0 pivots on joint 0 (J0, per frame) and translation t follows, so
    ``v = R0 (v0 - J0) + J0 + t`` with v0 the head at identity root: a rigid motion M. The camera
    ``X_cam = R M v0 + t_c`` is then ``R' = R R0``, ``t' = R (J0 - R0 J0 + t) + t_c``.
    """
    cam = seq.camera
    R0, t = seq.rotations[:, 0], seq.translation
    warnings = []
    if _is_identity(R0).all():
        offset = t
    else:
        if model is None:
            raise SequenceError("the head has a root rotation, which metrical-tracker checkpoints store in the "
                                "camera; that needs the FLAME model (the rotation pivots on joint 0)")
        J0 = rest_joints(model, seq)[:, 0]
        offset = J0 - np.einsum("tij,tj->ti", R0, J0) + t
        if seq.eyelids is not None and np.any(seq.eyelids != 0):
            warnings.append("eyelid offsets now turn with the head (metrical-tracker adds them before the "
                            "camera), so they differ slightly from the source where the head is rotated")
    return cam.R @ R0, np.einsum("tij,tj->ti", cam.R, offset) + cam.t, warnings


def write_metrical_checkpoints(folder: str | Path, seq: FlameSequence, model: FlameModel | None = None,
                               dtype: Any = np.float32, extra_flame: Mapping[str, np.ndarray] | None = None,
                               sh: np.ndarray | None = None) -> list[str]:
    """Write ``folder/checkpoint/{frame:05d}.frame`` files as metrical-tracker's ``save_checkpoint`` does.

    metrical-tracker has no root, neck or translation: root rotation and translation (a rigid
    motion of the whole head) are moved exactly into the camera (a root rotation needs ``model``
    for its pivot, joint 0). A neck rotation or static offsets cannot be represented and raise
    SequenceError. ``extra_flame`` adds per-clip leaves to every frame's ``flame`` dict, e.g. the
    photometric stage's texture ``tex`` (1, n). ``sh`` is the photometric stage's lighting
    (:mod:`..sh_lighting`'s convention, normals in the OpenCV camera frame of ``seq.camera``), (9, 3)
    for the clip or (T, 9, 3) per frame; each frame's ``flame.sh`` (1, 9, 3) gets it in metrical-tracker's
    convention, normals in FLAME's world frame through that frame's camera rotation (after the root
    motion is folded into it), so it differs per frame whenever the head turns. Without ``sh`` no lighting is written.
    Leaves are ``dtype`` arrays (the tracker's float32 by default). Checkpoints of other frame
    numbers already in the folder are left as they are. Returns warnings.
    """
    if seq.camera is None:
        raise SequenceError("metrical-tracker checkpoints need a camera; the sequence has none")
    if seq.camera.orthographic:
        raise SequenceError("metrical-tracker checkpoints hold a perspective camera; this sequence's camera is "
                            "orthographic (DECA, SMIRK): export flame_sequence.npz instead")
    if seq.frame_ids.min() < 0:
        raise SequenceError(f"frame {seq.frame_ids.min()}: metrical-tracker checkpoints are named by "
                            "non-negative frame numbers")
    neck_ok = _is_identity(seq.rotations[:, 1])
    if not neck_ok.all():
        raise SequenceError(f"frame {seq.frame_ids[np.argmin(neck_ok)]} has a neck rotation, which "
                            "metrical-tracker checkpoints cannot store (they have no neck pose)")
    if seq.static_offset is not None:
        raise SequenceError("the sequence has static vertex offsets, which metrical-tracker checkpoints "
                            "cannot store")
    if sh is not None and np.ndim(sh) == 3 and len(sh) != seq.n_frames:
        raise SequenceError(f"per-frame lighting 'sh' has {len(sh)} rows for {seq.n_frames} frames")
    R_cv, t_cv, warnings = _fold_rigid_motion(seq, model)
    lighting = {} if sh is None else {"sh": to_metrical(rotate(sh, R_cv))}  # (T, 9, 3), FLAME world frame
    R_p3d, T_p3d, fl, pp = opencv_to_pytorch3d(seq.camera.K, R_cv, t_cv, seq.camera.image_size)
    eyelids = np.zeros((seq.n_frames, 2)) if seq.eyelids is None else seq.eyelids
    out = Path(folder) / "checkpoint"
    out.mkdir(parents=True, exist_ok=True)

    def leaf(x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x, dtype=dtype)[None]

    for i, frame_id in enumerate(seq.frame_ids):
        name = f"{int(frame_id):05d}"
        frame = {
            "flame": {"exp": leaf(seq.expr[i]), "shape": leaf(seq.shape),
                      "eyes": leaf(matrix_to_rotation_6d(seq.rotations[i, 3:]).reshape(12)),
                      "eyelids": leaf(eyelids[i]), "jaw": leaf(matrix_to_rotation_6d(seq.rotations[i, 2])),
                      **{k: np.ascontiguousarray(v, dtype=dtype) for k, v in (extra_flame or {}).items()},
                      **{k: leaf(v[i]) for k, v in lighting.items()}},
            "camera": {"R": leaf(matrix_to_rotation_6d(R_p3d[i])), "t": leaf(T_p3d[i]), "fl": leaf(fl[i]),
                       "pp": leaf(pp[i])},
            "opencv": {"R": leaf(R_cv[i]), "t": leaf(t_cv[i]), "K": leaf(seq.camera.K[i])},
            "img_size": np.array(seq.camera.image_size, dtype=np.int64),
            "frame_id": name, "global_step": 0,
        }
        write_torch_zip(out / f"{name}.frame", frame)
    return warnings

