"""The npz sequence formats: VHAP, GaussianAvatars and this project's ``flame_sequence.npz`` (read and written).

- **VHAP** ``tracked_flame_params[_<epoch>].npz`` (a folder holding them: the un-suffixed file, else
  the highest epoch): axis-angle poses, ``focal_length`` and ``image_size`` for the monocular
  OpenGL camera at (0, 0, 1), ``static_offset`` (1, 5143, 3) kept as (5023, 3).
- **GaussianAvatars** ``flame_param.npz`` (same keys, no camera) or a folder of per-frame
  ``flame_param/<n>.npz`` files with (1, k) arrays, ordered by the number ``n``.
- **this project's** ``flame_sequence.npz``, schema below.

``flame_sequence.npz`` schema
-----------------------------
Written with ``np.savez``; every value is a plain numeric array, so ``np.load(path,
allow_pickle=False)`` reads it. Key names follow VHAP. T frames; float64 unless noted.

| key | shape | meaning |
|---|---|---|
| `shape` | (S,) | identity coefficients, shared by all frames |
| `expr` | (T, E) | expression coefficients |
| `rotation` | (T, 3) | axis-angle of joint 0 (root); it pivots on the root joint, not the origin |
| `neck_pose` | (T, 3) | axis-angle of joint 1 (neck) |
| `jaw_pose` | (T, 3) | axis-angle of joint 2 (jaw) |
| `eyes_pose` | (T, 6) | axis-angle of joint 3 (left eye, on +X), then joint 4 (right eye) |
| `translation` | (T, 3) | metres, added after skinning |
| `fps` | () | frames per second of `frame_ids` |
| `frame_ids` | (T,) int64 | optional: true frame numbers, gaps allowed (default 0..T-1) |
| `eyelids` | (T, 2) | optional: weights of metrical-tracker's `l_eyelid` / `r_eyelid`, added after skinning |
| `K` | (3, 3) or (T, 3, 3) | optional camera: OpenCV intrinsics in pixels, origin at the image's top-left corner |
| `cam_R` | (3, 3) or (T, 3, 3) | world -> camera rotation, OpenCV axes (+X right, +Y down, +Z forward) |
| `cam_t` | (3,) or (T, 3) | world -> camera translation: `X_cam = cam_R @ X + cam_t` |
| `image_size` | (2,) int64 | [H, W] of the image `K` refers to (required with `K`) |
| `cam_orthographic` | () | optional, 1: an orthographic camera, pixel `K @ (X_cam, Y_cam, 1)` (DECA, SMIRK) |
| `static_offset` | (V, 3) | optional: per-vertex offsets added to the template before joint regression (VHAP) |

World = FLAME space: +X the subject's left, +Y up, +Z out of the face, metres. The camera keys
come together or not at all.

The vertices of frame i are FLAME's linear blend skinning with these parameters, then the eyelid
offsets, then the translation (metrical-tracker's order); :func:`..evaluation.sequence_vertices` computes them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .. import safe_files
from ..camera import CameraTrack, image_hw, vhap_camera
from ..errors import FlameError, SequenceError, guarded
from ..limits import FOLDER, LARGE, Budget, Limits
from ..model import N_JOINTS, N_VERTS
from ..rotations import axis_angle_to_matrix, matrix_to_axis_angle
from ..sequence import DEFAULT_FPS, FlameSequence, frame_labels, require_finite, unmatched_shape, validate_sequence
from .per_frame import int_stem, stack

_VHAP_POSE_KEYS = (("rotation", 3), ("neck_pose", 3), ("jaw_pose", 3), ("eyes_pose", 6), ("translation", 3))


def read_npz_input(path: Path, fps: float | None) -> FlameSequence:
    """VHAP, GaussianAvatars or flame_sequence.npz input: a file, or a folder holding one."""
    if path.is_file():
        if _is_numbered_npz(path):
            return read_flame_param_folder(path.parent, fps=fps)
        return read_flame_npz(path, fps=fps)
    for folder in (path, path / "flame_param"):
        if _numbered_npz(folder):
            return read_flame_param_folder(folder, fps=fps)
    npz, others = _pick_npz(path)
    if npz is None:
        raise SequenceError(f"{path}: no tracker output found (expected metrical-tracker 'checkpoint/*.frame', "
                            "'tracked_flame_params*.npz', 'flame_param.npz', 'flame_param/<n>.npz' or "
                            "'flame_sequence.npz')")
    seq = read_flame_npz(npz, fps=fps)
    if others:
        seq.warnings.insert(0, f"{path.name}: read {npz.name} (also there: {', '.join(others)})")
    return seq


def _numbered_npz(folder: Path) -> list[Path]:
    """``<n>.npz`` files in ``folder`` ordered by n (GaussianAvatars' per-frame ``flame_param/``)."""
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.glob("*.npz") if int_stem(p) is not None), key=int_stem)


def _is_numbered_npz(path: Path) -> bool:
    return path.suffix == ".npz" and int_stem(path) is not None


def _pick_npz(folder: Path) -> tuple[Path | None, list[str]]:
    """The sequence file of a VHAP / GaussianAvatars / own output folder (or None), and the other candidates.

    Preference: flame_sequence.npz, tracked_flame_params.npz, flame_param.npz, then VHAP's
    tracked_flame_params_<epoch>.npz with the highest epoch.
    """
    named = [folder / n for n in ("flame_sequence.npz", "tracked_flame_params.npz", "flame_param.npz")]
    epochs = sorted(((int(m.group(1)), p) for p in folder.glob("tracked_flame_params_*.npz")
                     if (m := re.fullmatch(r"tracked_flame_params_(\d+)", p.stem))), reverse=True)
    candidates = [p for p in named if p.is_file()] + [p for _, p in epochs]
    if not candidates:
        return None, []
    return candidates[0], [p.name for p in candidates[1:]]


_NPZ_KEYS = ("shape", "expr", *(k for k, _ in _VHAP_POSE_KEYS), "eyelids", "fps", "frame_ids", "K", "cam_R",
             "cam_t", "image_size", "cam_orthographic", "focal_length", "static_offset", "dynamic_offset",
             "timestep_id")


def _load_npz(path: Path, budget: Budget, limits: Limits = LARGE, inside: Path | None = None
              ) -> dict[str, np.ndarray]:
    """The keys of a sequence npz that this module uses (read lazily and within ``budget``, never
    unpickling objects), plus ``'__files__'``: the names of all members, for error messages."""
    with safe_files.NpzArchive.open(path, limits, budget, inside) as npz:
        out: dict[str, np.ndarray] = {"__files__": np.array(sorted(npz), dtype=str)}
        for key in (k for k in _NPZ_KEYS if k in npz):
            try:
                out[key] = npz[key]
            except FlameError:  # object arrays (refused: unpickling could run code) or damage
                if key != "timestep_id":  # only used to number frames; 0..T-1 otherwise
                    raise
    return out


def _n_frames(arrays: Mapping[str, np.ndarray], where: str) -> int:
    """T from ``expr`` (T, E), checked before anything else is read from it."""
    if "expr" not in arrays:
        found = ", ".join(arrays.get("__files__", np.array([])).tolist()) or "nothing"
        raise SequenceError(f"{where}: missing 'expr' (found: {found}); is this a FLAME parameter file?")
    expr = arrays["expr"]
    if expr.ndim != 2 or expr.dtype.kind not in "fiub":
        raise SequenceError(f"{where}: 'expr' has shape {expr.shape} ({expr.dtype}), expected (T, E) numbers")
    if len(expr) == 0:
        raise SequenceError(f"{where}: 'expr' has no frames")
    return len(expr)


@guarded
def read_flame_npz(path: str | Path, fps: float | None = None) -> FlameSequence:
    """A VHAP ``tracked_flame_params*.npz``, GaussianAvatars ``flame_param.npz`` or ``flame_sequence.npz``."""
    path = Path(path)
    arrays = _load_npz(path, Budget(LARGE))
    warnings: list[str] = []
    frame_ids = _npz_frame_ids(arrays, _n_frames(arrays, path.name), path.name, warnings)
    return _sequence_from_arrays(arrays, path.name, str(path), frame_ids, fps, warnings=warnings)


@guarded
def read_flame_param_folder(folder: str | Path, fps: float | None = None) -> FlameSequence:
    """A folder of per-frame GaussianAvatars/VHAP-export ``<n>.npz`` files, ordered by n."""
    folder = Path(folder)
    files = _numbered_npz(folder)
    if not files:
        raise SequenceError(f"{folder}: no per-frame <number>.npz files")
    budget = Budget(FOLDER)
    per_file = [_load_npz(f, budget, FOLDER, inside=folder) for f in files]
    names = [f.name for f in files]
    arrays = dict(per_file[0])
    for key in ("expr", "eyelids", "dynamic_offset", *(k for k, _ in _VHAP_POSE_KEYS)):
        values = stack(per_file, key, names, None, required=key in ("expr", "jaw_pose"))
        if values is not None:
            arrays[key] = values.reshape(len(files), *values.shape[2:]) if values.shape[1:2] == (1,) else values
    ids = np.array([int_stem(f) for f in files], dtype=np.int64)
    return _sequence_from_arrays(arrays, folder.name, str(folder), ids, fps, names)


def _npz_frame_ids(arrays: Mapping[str, np.ndarray], T: int, where: str, warnings: list[str]) -> np.ndarray:
    """``frame_ids``, else the trailing numbers of VHAP's ``timestep_id`` strings, else 0..T-1."""
    if "frame_ids" in arrays:
        ids = arrays["frame_ids"]
        if ids.shape != (T,) or ids.dtype.kind not in "iu":
            raise SequenceError(f"{where}: 'frame_ids' has shape {ids.shape} ({ids.dtype}), "
                                f"expected ({T},) integers")
        return ids.astype(np.int64)
    stamps = arrays.get("timestep_id")
    if stamps is not None and stamps.shape == (T,) and stamps.dtype.kind in "US":
        numbers = [re.search(r"(\d+)\D*$", str(s)) for s in stamps]
        if all(numbers):
            ids = np.array([int(m.group(1)[-18:]) for m in numbers], dtype=np.int64)
            if len(np.unique(ids)) == T:
                return ids
    if stamps is not None:
        warnings.append(f"{where}: 'timestep_id' {stamps.shape} does not give {T} distinct frame numbers; "
                        f"numbered the frames 0 to {T - 1}")
    return np.arange(T, dtype=np.int64)


def _npz_array(arrays: Mapping[str, np.ndarray], key: str, where: str, shape: tuple[int | None, ...],
               labels: Sequence[str] | None = None) -> np.ndarray:
    """arrays[key] as float64 with the given shape (None = any), finite."""
    value = arrays[key]
    if value.dtype.kind not in "fiub":
        raise SequenceError(f"{where}: '{key}' has dtype {value.dtype}, expected numbers")
    wanted = unmatched_shape(value.shape, shape)
    if wanted:
        raise SequenceError(f"{where}: '{key}' has shape {value.shape}, expected {wanted}")
    value = value.astype(np.float64)
    require_finite(where, key, value, labels if shape and shape[0] is not None else None)
    return value


def _per_frame_or_shared(arrays: Mapping[str, np.ndarray], key: str, where: str, T: int,
                         tail: tuple[int, ...], labels: Sequence[str]) -> np.ndarray:
    """(T, *tail) or (*tail,) broadcast to (T, *tail)."""
    shared = arrays[key].ndim == len(tail)
    value = _npz_array(arrays, key, where, tail if shared else (T, *tail), labels)
    return np.broadcast_to(value, (T, *tail)).copy()


def _shared_shape(arrays: Mapping[str, np.ndarray], where: str, warnings: list[str]) -> np.ndarray:
    """Identity as (S,): accepts (S,) or (1, S); for (T, S) uses the first row and warns if it varies."""
    if "shape" not in arrays:
        warnings.append(f"{where}: no 'shape' (identity); using the mean head")
        return np.zeros(0)
    shape = arrays["shape"]
    value = _npz_array(arrays, "shape", where, (None,) if shape.ndim == 1 else (None, None))
    if value.ndim == 2:
        if len(value) == 0:
            raise SequenceError(f"{where}: 'shape' has shape {value.shape}: no identity row")
        if len(value) > 1 and np.abs(value - value[0]).max() > 1e-5:
            warnings.append(f"{where}: 'shape' differs between frames; using the first")
        value = value[0]
    return value


def _npz_camera(arrays: Mapping[str, np.ndarray], where: str, T: int, labels: Sequence[str],
                warnings: list[str]) -> CameraTrack | None:
    """Own-format OpenCV camera, else VHAP's monocular camera, else None."""
    keys = [k for k in ("K", "cam_R", "cam_t") if k in arrays]
    if keys and len(keys) < 3:
        raise SequenceError(f"{where}: camera needs 'K', 'cam_R' and 'cam_t' together; found only {keys}")
    if not keys and "focal_length" not in arrays:
        warnings.append(f"{where}: no camera in the file (calibrated or GaussianAvatars data); none imported")
        return None
    if "image_size" not in arrays:
        raise SequenceError(f"{where}: a camera is stored but 'image_size' [H, W] is missing")
    image_size = image_hw(arrays["image_size"], f"{where}: 'image_size'")
    if keys:
        orthographic = "cam_orthographic" in arrays and _scalar(arrays, "cam_orthographic", where) != 0
        return CameraTrack(_per_frame_or_shared(arrays, "K", where, T, (3, 3), labels),
                           _per_frame_or_shared(arrays, "cam_R", where, T, (3, 3), labels),
                           _per_frame_or_shared(arrays, "cam_t", where, T, (3,), labels), image_size, orthographic)
    return vhap_camera(_scalar(arrays, "focal_length", where), image_size, T)


def _scalar(arrays: Mapping[str, np.ndarray], key: str, where: str) -> float:
    """A () or (1,) numeric array as a finite float."""
    value = arrays[key]
    if value.size != 1 or value.dtype.kind not in "fiu" or not np.isfinite(value).all():
        raise SequenceError(f"{where}: '{key}' is {value.tolist()!r}, expected one finite number")
    return float(value.reshape(()))


def _offsets(arrays: Mapping[str, np.ndarray], where: str, warnings: list[str]) -> np.ndarray | None:
    """VHAP's static offsets as (V, 3) (teeth rows beyond FLAME's 5023 dropped); dynamic ones warned."""
    if "dynamic_offset" in arrays and np.any(arrays["dynamic_offset"] != 0):
        warnings.append(f"{where}: per-frame 'dynamic_offset' is not FLAME motion and was ignored")
    if "static_offset" not in arrays:
        return None
    raw = arrays["static_offset"]
    value = _npz_array(arrays, "static_offset", where, (1, None, 3) if raw.ndim == 3 else (None, 3))
    value = value.reshape(-1, 3)[:N_VERTS]
    return value if np.any(value != 0) else None


def _sequence_from_arrays(arrays: Mapping[str, np.ndarray], where: str, path: str, frame_ids: np.ndarray,
                          fps: float | None, labels: Sequence[str] | None = None,
                          warnings: list[str] | None = None) -> FlameSequence:
    """Build a sequence from VHAP-named arrays plus this project's extra keys."""
    T = _n_frames(arrays, where)
    labels = labels or frame_labels(frame_ids)
    warnings = list(warnings or [])
    expr = _npz_array(arrays, "expr", where, (T, None), labels)
    poses = {}
    for key, width in _VHAP_POSE_KEYS:
        if key in arrays:
            poses[key] = _npz_array(arrays, key, where, (T, width), labels)
        else:
            poses[key] = np.zeros((T, width))
            warnings.append(f"{where}: no '{key}'; using zeros")
    aa = np.concatenate([poses[k] for k, _ in _VHAP_POSE_KEYS[:4]], axis=1).reshape(T, N_JOINTS, 3)
    fps_value = _scalar(arrays, "fps", where) if "fps" in arrays else None
    if fps_value is not None:
        source = "flame_sequence"
    elif "focal_length" in arrays or "timestep_id" in arrays:
        source = "VHAP"
    else:
        source = "GaussianAvatars"
    seq = FlameSequence(
        shape=_shared_shape(arrays, where, warnings), expr=expr, rotations=axis_angle_to_matrix(aa),
        translation=poses["translation"], frame_ids=frame_ids,
        fps=float(fps) if fps is not None else fps_value if fps_value is not None else DEFAULT_FPS,
        fps_from_file=fps is None and fps_value is not None,
        eyelids=_npz_array(arrays, "eyelids", where, (T, 2), labels) if "eyelids" in arrays else None,
        camera=_npz_camera(arrays, where, T, labels, warnings),
        static_offset=_offsets(arrays, where, warnings), source=source, path=path, warnings=warnings)
    return validate_sequence(seq, where)


def sequence_arrays(seq: FlameSequence) -> dict[str, np.ndarray]:
    """The ``flame_sequence.npz`` arrays of a sequence (see the module docstring)."""
    aa = matrix_to_axis_angle(seq.rotations)  # (T, 5, 3)
    out = {"shape": seq.shape, "expr": seq.expr, "rotation": aa[:, 0], "neck_pose": aa[:, 1],
           "jaw_pose": aa[:, 2], "eyes_pose": aa[:, 3:].reshape(-1, 6), "translation": seq.translation,
           "fps": np.array(seq.fps, dtype=np.float64), "frame_ids": seq.frame_ids.astype(np.int64)}
    if seq.eyelids is not None:
        out["eyelids"] = seq.eyelids
    if seq.camera is not None:
        out.update(K=seq.camera.K, cam_R=seq.camera.R, cam_t=seq.camera.t,
                   image_size=np.array(seq.camera.image_size, dtype=np.int64))
        if seq.camera.orthographic:
            out["cam_orthographic"] = np.array(1.0)
    if seq.static_offset is not None:
        out["static_offset"] = seq.static_offset
    return {k: np.ascontiguousarray(v, dtype=np.int64 if k in ("frame_ids", "image_size") else np.float64)
            for k, v in out.items()}


def write_sequence_npz(path: str | Path, seq: FlameSequence) -> Path:
    """Write ``flame_sequence.npz`` (exactly this path, no suffix added); read back with read_sequence."""
    path = Path(path)
    with open(path, "wb") as f:
        np.savez(f, **sequence_arrays(seq))
    return path
