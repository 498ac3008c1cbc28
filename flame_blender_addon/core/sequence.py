"""Tracked FLAME sequences: one data class, readers for tracker outputs, writers and validation.

Every reader returns a :class:`FlameSequence` whose pose is one canonical representation, local
joint rotation matrices in FLAME order (root, neck, jaw, eye L, eye R), whatever the source stored
(pytorch3d 6D or axis-angle), and whose camera is an OpenCV world -> camera track in FLAME space
(:class:`~.camera.CameraTrack`). Problems a user can fix raise :class:`SequenceError` naming the
file, key and frame; oddities that do not stop an import (gaps, duplicates, padded components,
ignored offsets) are collected in ``FlameSequence.warnings``.

Inputs :func:`read_sequence` recognises
-----------------------------------------
- **metrical-tracker** output: the output folder holding ``checkpoint/``, the ``checkpoint/``
  folder itself, or any ``.frame`` file in it (then the whole folder is read). Each
  ``{frame:05d}.frame`` is a ``torch.save`` zip read through the restricted unpickler (never
  torch); leaves may be numpy arrays or torch tensors. Jaw and eyes are pytorch3d 6D; root, neck and
  translation are identity/zero (the head stays at the origin and the camera moves). The camera is
  pytorch3d ``R`` (6D), ``t``, ``fl``, ``pp`` (NDC) with ``img_size`` [H, W]. The eyelid
  blendshapes ``l_eyelid.npy`` / ``r_eyelid.npy`` (float64 (5023, 3)) are looked for in the given
  folder, or next to the checkpoints, and kept as ``eyelid_dirs``.
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
| `static_offset` | (V, 3) | optional: per-vertex offsets added to the template before joint regression (VHAP) |

World = FLAME space: +X the subject's left, +Y up, +Z out of the face, metres. The camera keys
come together or not at all.

The vertices of frame i are FLAME's linear blend skinning with these parameters, then the eyelid
offsets, then the translation (metrical-tracker's order); :func:`sequence_vertices` computes them.
"""

from __future__ import annotations

import dataclasses
import pickle
import pickletools
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from . import safe_pickle
from .camera import CameraTrack, opencv_to_pytorch3d, pytorch3d_to_opencv, vhap_camera
from .errors import SequenceError, UnsafePickleError
from .lbs import forward
from .model import N_JOINTS, FlameModel
from .rotations import (axis_angle_to_matrix, matrix_to_axis_angle, matrix_to_quaternion,
                        matrix_to_rotation_6d, quaternion_to_matrix, rotation_6d_to_matrix)

DEFAULT_FPS = 25.0  # metrical-tracker extracts frames at 25 fps; VHAP and GaussianAvatars store no fps
FLAME_VERTS = 5023  # VHAP's 5143-row offsets add 120 teeth vertices after FLAME's 5023
_ROTATION_TOL = 1e-6  # "is identity" tolerance for rotations read from float32 files
_VHAP_POSE_KEYS = (("rotation", 3), ("neck_pose", 3), ("jaw_pose", 3), ("eyes_pose", 6), ("translation", 3))


@dataclass
class FlameSequence:
    """T frames of FLAME parameters and an optional camera.

    shape: (S,) float64 identity, shared
    expr: (T, E) float64
    rotations: (T, 5, 3, 3) float64 local joint rotations (root, neck, jaw, eye L, eye R)
    translation: (T, 3) float64 metres, added after skinning
    frame_ids: (T,) int64 true frame numbers, strictly increasing, gaps allowed
    fps: frames per second of ``frame_ids``; fps_from_file: False when it is a default
    eyelids: (T, 2) float64 weights of eyelid_dirs, added after skinning, or None
    camera: OpenCV world -> camera track in FLAME space, or None
    static_offset: (V, 3) float64 template offsets before joint regression (VHAP), or None
    eyelid_dirs: (2, V, 3) float64 metrical-tracker's (l_eyelid, r_eyelid) blendshapes, or None
    source: the input format; path: where it was read from; warnings: for the user
    """

    shape: np.ndarray
    expr: np.ndarray
    rotations: np.ndarray
    translation: np.ndarray
    frame_ids: np.ndarray
    fps: float = DEFAULT_FPS
    fps_from_file: bool = False
    eyelids: np.ndarray | None = None
    camera: CameraTrack | None = None
    static_offset: np.ndarray | None = None
    eyelid_dirs: np.ndarray | None = None
    source: str = "unknown"
    path: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def n_frames(self) -> int:
        return len(self.frame_ids)

    @property
    def n_shape(self) -> int:
        return len(self.shape)

    @property
    def n_expr(self) -> int:
        return self.expr.shape[1]

    def take(self, index: np.ndarray | slice) -> "FlameSequence":
        """The frames selected by ``index`` (index array, boolean mask or slice); shared data is kept."""
        return dataclasses.replace(
            self, expr=self.expr[index], rotations=self.rotations[index],
            translation=self.translation[index], frame_ids=self.frame_ids[index],
            eyelids=None if self.eyelids is None else self.eyelids[index],
            camera=None if self.camera is None else self.camera.take(index),
            warnings=list(self.warnings))


# --------------------------------------------------------------------------------------------------
# validation


def _require_finite(where: str, key: str, values: np.ndarray, labels: Sequence[str] | None = None) -> None:
    """Raise SequenceError if ``values`` (T, ...) has NaN/inf, naming the first bad frame by ``labels``."""
    bad = ~np.isfinite(np.asarray(values, dtype=np.float64))
    if not bad.any():
        return
    if labels is not None and bad.ndim and len(bad) == len(labels):
        per_frame = bad.reshape(len(bad), -1).any(axis=1)
        first, count = int(np.argmax(per_frame)), int(per_frame.sum())
        raise SequenceError(f"{where}: '{key}' has NaN or infinite values in {labels[first]}"
                            + (f" (and {count - 1} more frames)" if count > 1 else ""))
    raise SequenceError(f"{where}: '{key}' has NaN or infinite values")


def _frame_labels(frame_ids: np.ndarray) -> list[str]:
    return [f"frame {i}" for i in frame_ids]


def _runs_text(starts: np.ndarray, ends: np.ndarray, limit: int = 8) -> str:
    """Inclusive runs -> '3-5, 9, 12-20' (at most ``limit`` runs, then '...')."""
    text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in zip(starts[:limit], ends[:limit]))
    return text + (", ..." if len(starts) > limit else "")


def _ranges(ids: np.ndarray) -> str:
    """Sorted unique ints -> '3-5, 9, 12-20'."""
    breaks = np.flatnonzero(np.diff(ids) != 1)
    return _runs_text(ids[np.r_[0, breaks + 1]], ids[np.r_[breaks, len(ids) - 1]])


def _clean_frame_ids(seq: FlameSequence, where: str) -> FlameSequence:
    """Sort frames by id, keep the first of duplicate ids, and warn about disorder, duplicates and gaps."""
    ids = seq.frame_ids
    warnings = list(seq.warnings)
    order = np.argsort(ids, kind="stable")
    if np.any(np.diff(ids) < 0):
        warnings.append(f"{where}: frames were not in order; sorted by frame number")
    sorted_ids = ids[order]
    first = np.concatenate([[True], sorted_ids[1:] != sorted_ids[:-1]])
    if not first.all():
        dup = np.unique(sorted_ids[~first])
        warnings.append(f"{where}: frame numbers {_ranges(dup)} appear more than once; "
                        f"kept the first of each ({int((~first).sum())} frames dropped)")
    if np.any(order != np.arange(len(ids))) or not first.all():
        seq = seq.take(order[first])
    kept = seq.frame_ids
    gaps = np.flatnonzero(np.diff(kept) > 1)
    if len(gaps):
        n_missing = int((kept[gaps + 1] - kept[gaps] - 1).sum())
        warnings.append(f"{where}: missing frames {_runs_text(kept[gaps] + 1, kept[gaps + 1] - 1)} "
                        f"({n_missing} in all); the others keep their frame numbers")
    seq.warnings = warnings
    return seq


def _check_shapes(seq: FlameSequence, where: str) -> None:
    T = seq.n_frames
    expected = {"expr": (T, None), "rotations": (T, N_JOINTS, 3, 3), "translation": (T, 3),
                "eyelids": (T, 2), "shape": (None,), "static_offset": (None, 3),
                "eyelid_dirs": (2, None, 3)}
    for key, want in expected.items():
        value = getattr(seq, key)
        if value is None:
            continue
        if value.ndim != len(want) or any(w is not None and s != w for s, w in zip(value.shape, want)):
            raise SequenceError(f"{where}: {key} has shape {value.shape}, expected "
                                f"({', '.join('n' if w is None else str(w) for w in want)})")
    cam = seq.camera
    if cam is not None and (cam.K.shape != (T, 3, 3) or cam.R.shape != (T, 3, 3) or cam.t.shape != (T, 3)):
        raise SequenceError(f"{where}: camera arrays K {cam.K.shape}, R {cam.R.shape}, t {cam.t.shape} "
                            f"do not match {T} frames")


def validate_sequence(seq: FlameSequence, where: str = "sequence") -> FlameSequence:
    """Check shapes, finiteness and rotations; sort frames, drop duplicate ids and note gaps.

    Returns a cleaned copy (``seq`` itself is not modified); raises SequenceError naming the
    field and frame. Readers call this; call it too on sequences built by hand.
    """
    seq = dataclasses.replace(seq, frame_ids=np.asarray(seq.frame_ids, dtype=np.int64).reshape(-1),
                              warnings=list(seq.warnings))
    if seq.n_frames == 0:
        raise SequenceError(f"{where}: the sequence has no frames")
    _check_shapes(seq, where)
    labels = _frame_labels(seq.frame_ids)
    per_frame = {"expr": seq.expr, "rotations": seq.rotations, "translation": seq.translation,
                 "eyelids": seq.eyelids}
    if seq.camera is not None:
        per_frame.update({"camera K": seq.camera.K, "camera R": seq.camera.R, "camera t": seq.camera.t})
    for key, value in per_frame.items():
        if value is not None:
            _require_finite(where, key, value, labels)
    for key in ("shape", "static_offset", "eyelid_dirs"):
        if getattr(seq, key) is not None:
            _require_finite(where, key, getattr(seq, key))
    if not (np.isfinite(seq.fps) and seq.fps > 0):
        raise SequenceError(f"{where}: fps is {seq.fps}, expected a positive number")
    _require_rotations(where, "rotations", seq.rotations, labels)
    if seq.camera is not None:
        _require_rotations(where, "camera R", seq.camera.R, labels)
    return _clean_frame_ids(seq, where)


def _require_rotations(where: str, key: str, R: np.ndarray, labels: Sequence[str]) -> None:
    """R: (T, ..., 3, 3) must be proper rotations."""
    err = np.abs(np.einsum("...ji,...jk->...ik", R, R) - np.eye(3)).max(axis=(-2, -1))
    bad = (err > 1e-4) | (np.linalg.det(R) < 0)
    if bad.any():
        frame = int(np.argmax(bad.reshape(len(R), -1).any(axis=1)))
        raise SequenceError(f"{where}: '{key}' in {labels[frame]} is not a rotation matrix")


# --------------------------------------------------------------------------------------------------
# reading: dispatch


def read_sequence(path: str | Path, fps: float | None = None,
                  eyelid_blendshapes: str | Path | None = None) -> FlameSequence:
    """Read any supported tracker output (see the module docstring) into a validated sequence.

    fps: overrides the file's fps (or the 25 fps default); eyelid_blendshapes: a folder holding
    ``l_eyelid.npy`` and ``r_eyelid.npy`` (metrical-tracker's ``flame/blendshapes``), else they are
    looked for beside the input.
    """
    path = Path(path)
    if not path.exists():
        raise SequenceError(f"{path}: no such file or folder")
    if path.suffix == ".frame" or _checkpoint_folder(path) is not None:
        return read_metrical(path, fps=fps, eyelid_blendshapes=eyelid_blendshapes)
    folder = path.parent if path.is_file() else path
    return _attach_eyelid_dirs(_read_npz_input(path, fps), eyelid_blendshapes, (folder,))


def _read_npz_input(path: Path, fps: float | None) -> FlameSequence:
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


def _int_stem(path: Path) -> int | None:
    return int(path.stem) if re.fullmatch(r"\d+", path.stem) else None


def _numbered_npz(folder: Path) -> list[Path]:
    """``<n>.npz`` files in ``folder`` ordered by n (GaussianAvatars' per-frame ``flame_param/``)."""
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.glob("*.npz") if _int_stem(p) is not None), key=_int_stem)


def _is_numbered_npz(path: Path) -> bool:
    return path.suffix == ".npz" and _int_stem(path) is not None


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


# --------------------------------------------------------------------------------------------------
# metrical-tracker


def _checkpoint_folder(path: Path) -> Path | None:
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


def read_frame_file(path: str | Path) -> dict[str, Any]:
    """One metrical ``.frame`` as a flat {'flame.exp': array, ...} dict, without torch.

    Raises UnsafePickleError (nothing executed) for pickles asking for anything but numpy/tensors,
    SequenceError for damaged or non-dict files.
    """
    path = Path(path)
    try:
        data = safe_pickle.load_torch_zip(path)
    except UnsafePickleError as err:
        raise UnsafePickleError(f"{path.name}: {err}") from None
    except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError,
            AttributeError, IndexError, OSError) as err:
        raise SequenceError(f"{path.name}: not a readable metrical-tracker checkpoint "
                            f"({type(err).__name__}: {err})") from None
    if not isinstance(data, Mapping):
        raise SequenceError(f"{path.name}: expected a dict of tracker values, found {type(data).__name__}")
    return _flatten(data)


def _stack(frames: Sequence[Mapping[str, Any]], key: str, names: Sequence[str],
           width: int | tuple[int, ...] | None, required: bool = True) -> np.ndarray | None:
    """Stack one key over frames (named ``names``) as (T, *width) float64; width None keeps each shape."""
    present = [key in f for f in frames]
    if not any(present) and not required:
        return None
    if not all(present):
        missing = names[present.index(False)]
        raise SequenceError(f"{missing}: missing '{key}' (found: {', '.join(sorted(frames[present.index(False)]))})")
    try:
        values = [np.asarray(f[key], dtype=np.float64) for f in frames]
        return np.stack([v.reshape(width) if width else v for v in values])
    except (ValueError, TypeError):
        shapes = sorted({np.shape(f[key]) for f in frames})
        raise SequenceError(f"{names[0]} to {names[-1]}: '{key}' has shapes {shapes}, expected "
                            f"{'matching shapes' if width is None else width} per frame") from None


def read_metrical(path: str | Path, fps: float | None = None,
                  eyelid_blendshapes: str | Path | None = None) -> FlameSequence:
    """metrical-tracker output (output folder, ``checkpoint/`` or one ``.frame`` in it) -> sequence."""
    path = Path(path)
    folder = _checkpoint_folder(path)
    if folder is None:
        raise SequenceError(f"{path}: no metrical-tracker checkpoints (*.frame) found")
    files = sorted(folder.glob("*.frame"))
    where = str(folder)
    warnings = []
    numbered = [(n, f) for f in files if (n := _int_stem(f)) is not None]
    if len(numbered) < len(files):
        skipped = [f.name for f in files if _int_stem(f) is None]
        warnings.append(f"{where}: skipped {len(skipped)} files not named <frame>.frame: "
                        f"{', '.join(skipped[:5])}")
    if not numbered:
        raise SequenceError(f"{folder}: no checkpoints named <frame number>.frame")
    numbered.sort()
    names = [f.name for _, f in numbered]
    frames = [read_frame_file(f) for _, f in numbered]

    raw = {key: _stack(frames, key, names, width, required)
           for key, width, required in (("flame.exp", -1, True), ("flame.shape", -1, True),
                                        ("flame.jaw", 6, True), ("flame.eyes", 12, True),
                                        ("flame.eyelids", 2, False))}
    for key, value in raw.items():
        if value is not None:
            _require_finite(where, key, value, names)
    T = len(frames)
    rotations = np.tile(np.eye(3), (T, N_JOINTS, 1, 1))
    rotations[:, 2] = rotation_6d_to_matrix(raw["flame.jaw"])
    rotations[:, 3:] = rotation_6d_to_matrix(raw["flame.eyes"].reshape(T, 2, 6))
    shapes = raw["flame.shape"]
    spread = float(np.abs(shapes - shapes[0]).max())
    if spread > 1e-5:
        warnings.append(f"{where}: the identity ('flame.shape') differs between frames by up to "
                        f"{spread:.3g}; using {names[0]}'s")
    camera = _metrical_camera(frames, names, where, warnings)
    seq = FlameSequence(
        shape=shapes[0], expr=raw["flame.exp"], rotations=rotations, translation=np.zeros((T, 3)),
        frame_ids=np.array([n for n, _ in numbered], dtype=np.int64),
        fps=DEFAULT_FPS if fps is None else float(fps), fps_from_file=False, eyelids=raw["flame.eyelids"],
        camera=camera, source="metrical-tracker", path=str(folder), warnings=warnings)
    seq = _attach_eyelid_dirs(seq, eyelid_blendshapes, (folder, folder.parent))
    return validate_sequence(seq, where)


def _metrical_camera(frames: Sequence[Mapping[str, Any]], names: Sequence[str], where: str,
                     warnings: list[str]) -> CameraTrack | None:
    """The OpenCV track from ``camera.*`` (pytorch3d, preferred) or ``opencv.*``, checked against each other."""
    if not all("img_size" in f for f in frames):
        warnings.append(f"{where}: no 'img_size' in the checkpoints; camera not imported")
        return None
    sizes = {tuple(int(v) for v in np.asarray(f["img_size"]).reshape(-1)[:2]) for f in frames}
    if len(sizes) > 1:
        raise SequenceError(f"{where}: 'img_size' changes between frames ({sorted(sizes)})")
    image_size = sizes.pop()
    p3d = {k: _stack(frames, f"camera.{k}", names, w, required=False)
           for k, w in (("R", 6), ("t", 3), ("fl", -1), ("pp", 2))}
    cv = {k: _stack(frames, f"opencv.{k}", names, w, required=False)
          for k, w in (("R", (3, 3)), ("t", 3), ("K", (3, 3)))}
    for group, values in (("camera", p3d), ("opencv", cv)):
        for k, v in values.items():
            if v is not None:
                _require_finite(where, f"{group}.{k}", v, names)
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


def load_eyelid_blendshapes(folder: str | Path) -> np.ndarray:
    """``l_eyelid.npy`` and ``r_eyelid.npy`` in ``folder`` -> (2, V, 3) float64 (left first)."""
    folder = Path(folder)
    dirs = []
    for name in ("l_eyelid.npy", "r_eyelid.npy"):
        file = folder / name
        try:
            arr = np.load(file, allow_pickle=False)
        except FileNotFoundError:
            raise SequenceError(f"{folder}: '{name}' not found") from None
        except (ValueError, OSError) as err:
            raise SequenceError(f"{file}: not a plain numeric .npy ({err})") from None
        if arr.ndim != 2 or arr.shape[1] != 3 or arr.dtype.kind not in "fiu":
            raise SequenceError(f"{file}: shape {arr.shape} ({arr.dtype}), expected (V, 3) numbers")
        _require_finite(str(file), name, arr)
        dirs.append(arr.astype(np.float64))
    if dirs[0].shape != dirs[1].shape:
        raise SequenceError(f"{folder}: l_eyelid {dirs[0].shape} and r_eyelid {dirs[1].shape} differ")
    return np.stack(dirs)


def _attach_eyelid_dirs(seq: FlameSequence, folder: str | Path | None,
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


# --------------------------------------------------------------------------------------------------
# npz: VHAP, GaussianAvatars, flame_sequence.npz


_NPZ_KEYS = ("shape", "expr", *(k for k, _ in _VHAP_POSE_KEYS), "eyelids", "fps", "frame_ids", "K", "cam_R",
             "cam_t", "image_size", "focal_length", "static_offset", "dynamic_offset", "timestep_id")


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    """The keys of a sequence npz that this module uses (never unpickling objects), plus
    ``'__files__'``: the names of all members, for error messages."""
    bad_file = (OSError, ValueError, zipfile.BadZipFile, EOFError)
    try:
        npz = np.load(path, allow_pickle=False)
    except bad_file as err:
        raise SequenceError(f"{path.name}: not a readable .npz ({err})") from None
    if not hasattr(npz, "files"):
        raise SequenceError(f"{path.name}: a single array, not an .npz archive of FLAME parameters")
    out: dict[str, np.ndarray] = {"__files__": np.array(sorted(npz.files))}
    with npz:
        for key in (k for k in _NPZ_KEYS if k in npz.files):
            try:
                out[key] = npz[key]
            except bad_file as err:  # object arrays (refused: unpickling could run code) or damage
                if key != "timestep_id":  # only used to number frames; 0..T-1 otherwise
                    raise SequenceError(f"{path.name}: '{key}' cannot be read ({err})") from None
    return out


def read_flame_npz(path: str | Path, fps: float | None = None) -> FlameSequence:
    """A VHAP ``tracked_flame_params*.npz``, GaussianAvatars ``flame_param.npz`` or ``flame_sequence.npz``."""
    path = Path(path)
    arrays = _load_npz(path)
    T = len(arrays["expr"]) if "expr" in arrays and arrays["expr"].ndim == 2 else 0
    return _sequence_from_arrays(arrays, path.name, str(path), _npz_frame_ids(arrays, T, path.name), fps)


def read_flame_param_folder(folder: str | Path, fps: float | None = None) -> FlameSequence:
    """A folder of per-frame GaussianAvatars/VHAP-export ``<n>.npz`` files, ordered by n."""
    folder = Path(folder)
    files = _numbered_npz(folder)
    if not files:
        raise SequenceError(f"{folder}: no per-frame <number>.npz files")
    per_file = [_load_npz(f) for f in files]
    names = [f.name for f in files]
    arrays = dict(per_file[0])
    for key in ("expr", "eyelids", "dynamic_offset", *(k for k, _ in _VHAP_POSE_KEYS)):
        values = _stack(per_file, key, names, None, required=key in ("expr", "jaw_pose"))
        if values is not None:
            arrays[key] = values.reshape(len(files), *values.shape[2:]) if values.shape[1:2] == (1,) else values
    ids = np.array([_int_stem(f) for f in files], dtype=np.int64)
    return _sequence_from_arrays(arrays, folder.name, str(folder), ids, fps, names)


def _npz_frame_ids(arrays: Mapping[str, np.ndarray], T: int, where: str) -> np.ndarray:
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
            ids = np.array([int(m.group(1)) for m in numbers], dtype=np.int64)
            if len(np.unique(ids)) == T:
                return ids
    return np.arange(T, dtype=np.int64)


def _npz_array(arrays: Mapping[str, np.ndarray], key: str, where: str, shape: tuple[int | None, ...],
               labels: Sequence[str] | None = None) -> np.ndarray:
    """arrays[key] as float64 with the given shape (None = any), finite."""
    value = arrays[key]
    if value.dtype.kind not in "fiub":
        raise SequenceError(f"{where}: '{key}' has dtype {value.dtype}, expected numbers")
    if value.ndim != len(shape) or any(w is not None and s != w for s, w in zip(value.shape, shape)):
        want = ", ".join("n" if w is None else str(w) for w in shape)
        raise SequenceError(f"{where}: '{key}' has shape {value.shape}, expected ({want})")
    value = value.astype(np.float64)
    _require_finite(where, key, value, labels if shape and shape[0] is not None else None)
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
    if (keys or "focal_length" in arrays) and "image_size" not in arrays:
        raise SequenceError(f"{where}: a camera is stored but 'image_size' [H, W] is missing")
    if keys:
        image_size = _image_size(arrays, where)
        return CameraTrack(_per_frame_or_shared(arrays, "K", where, T, (3, 3), labels),
                           _per_frame_or_shared(arrays, "cam_R", where, T, (3, 3), labels),
                           _per_frame_or_shared(arrays, "cam_t", where, T, (3,), labels), image_size)
    if "focal_length" in arrays:
        return vhap_camera(_scalar(arrays, "focal_length", where), _image_size(arrays, where), T)
    warnings.append(f"{where}: no camera in the file (calibrated or GaussianAvatars data); none imported")
    return None


def _scalar(arrays: Mapping[str, np.ndarray], key: str, where: str) -> float:
    """A () or (1,) numeric array as a finite float."""
    value = arrays[key]
    if value.size != 1 or value.dtype.kind not in "fiu" or not np.isfinite(value).all():
        raise SequenceError(f"{where}: '{key}' is {value.tolist()!r}, expected one finite number")
    return float(value.reshape(()))


def _image_size(arrays: Mapping[str, np.ndarray], where: str) -> tuple[int, int]:
    size = np.ravel(arrays["image_size"])
    if size.shape != (2,) or size.dtype.kind not in "iuf" or np.any(size <= 0) or np.any(size % 1):
        raise SequenceError(f"{where}: 'image_size' is {size.tolist()}, expected [H, W] in pixels")
    return int(size[0]), int(size[1])


def _offsets(arrays: Mapping[str, np.ndarray], where: str, T: int, warnings: list[str]) -> np.ndarray | None:
    """VHAP's static offsets as (V, 3) (teeth rows beyond FLAME's 5023 dropped); dynamic ones warned."""
    if "dynamic_offset" in arrays and np.any(arrays["dynamic_offset"] != 0):
        warnings.append(f"{where}: per-frame 'dynamic_offset' is not FLAME motion and was ignored")
    if "static_offset" not in arrays:
        return None
    raw = arrays["static_offset"]
    value = _npz_array(arrays, "static_offset", where, (1, None, 3) if raw.ndim == 3 else (None, 3))
    value = value.reshape(-1, 3)[:FLAME_VERTS]
    return value if np.any(value != 0) else None


def _sequence_from_arrays(arrays: Mapping[str, np.ndarray], where: str, path: str, frame_ids: np.ndarray,
                          fps: float | None, labels: Sequence[str] | None = None) -> FlameSequence:
    """Build a sequence from VHAP-named arrays plus this project's extra keys."""
    if "expr" not in arrays:
        found = ", ".join(arrays.get("__files__", np.array([])).tolist()) or "nothing"
        raise SequenceError(f"{where}: missing 'expr' (found: {found}); is this a FLAME parameter file?")
    T = len(arrays["expr"])
    labels = labels or _frame_labels(frame_ids)
    warnings: list[str] = []
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
        static_offset=_offsets(arrays, where, T, warnings), source=source, path=path, warnings=warnings)
    return validate_sequence(seq, where)


# --------------------------------------------------------------------------------------------------
# components, resampling


def fit_components(seq: FlameSequence, n_shape: int, n_expr: int) -> FlameSequence:
    """Pad with zeros or truncate identity/expression to the model's counts, warning about either."""
    warnings = list(seq.warnings)

    def fit(values: np.ndarray, n: int, what: str) -> np.ndarray:
        have = values.shape[-1]
        if have > n:
            dropped = float(np.abs(values[..., n:]).max(initial=0.0))
            warnings.append(f"{what}: the sequence has {have} components, the model {n}; dropped the last "
                            f"{have - n} (largest |value| {dropped:.3g})")
            return values[..., :n].copy()
        if have < n:
            warnings.append(f"{what}: the sequence has {have} components, the model {n}; the other "
                            f"{n - have} are set to zero")
            pad = np.zeros(values.shape[:-1] + (n - have,))
            return np.concatenate([values, pad], axis=-1)
        return values

    return dataclasses.replace(seq, shape=fit(seq.shape, n_shape, "identity"),
                               expr=fit(seq.expr, n_expr, "expression"), warnings=warnings)


def slerp(q0: np.ndarray, q1: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Spherical interpolation of unit quaternions q0, q1: (..., 4) with weights w: (...) in [0, 1]."""
    q1 = np.where(np.sum(q0 * q1, axis=-1, keepdims=True) < 0, -q1, q1)
    cos = np.clip(np.sum(q0 * q1, axis=-1, keepdims=True), -1.0, 1.0)
    theta = np.arccos(cos)
    w = np.asarray(w, dtype=np.float64)[..., None]
    small = theta < 1e-6
    sin = np.where(small, 1.0, np.sin(theta))
    a = np.where(small, 1.0 - w, np.sin((1.0 - w) * theta) / sin)
    b = np.where(small, w, np.sin(w * theta) / sin)
    q = a * q0 + b * q1
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def _interp_rotations(R: np.ndarray, i0: np.ndarray, i1: np.ndarray, w: np.ndarray) -> np.ndarray:
    """R: (T, ..., 3, 3); frames i0/i1: (N,), weights w: (N,) -> (N, ..., 3, 3) by slerp."""
    q = matrix_to_quaternion(R)  # slerp picks the short way, so signs need not be continuous
    w = w.reshape((-1,) + (1,) * (q.ndim - 2))
    return quaternion_to_matrix(slerp(q[i0], q[i1], np.broadcast_to(w, q[i0].shape[:-1])))


def _interp(values: np.ndarray, i0: np.ndarray, i1: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Linear interpolation of (T, ...) values between frames i0 and i1 with weights w: (N,)."""
    w = w.reshape((-1,) + (1,) * (values.ndim - 1))
    return (1.0 - w) * values[i0] + w * values[i1]


def resample(seq: FlameSequence, fps: float) -> FlameSequence:
    """The sequence sampled at ``fps``: frame g of the result is at time g / fps.

    Covers the same time span (source frame f is at f / seq.fps); vectors are interpolated
    linearly and rotations (joints and camera) by slerp, bridging gaps. Shape and offsets are shared.
    """
    if not (np.isfinite(fps) and fps > 0):
        raise SequenceError(f"cannot resample to {fps} fps")
    ids = seq.frame_ids
    scale = fps / seq.fps
    first, last = int(np.ceil(ids[0] * scale - 1e-9)), int(np.floor(ids[-1] * scale + 1e-9))
    new_ids = np.arange(first, max(first, last) + 1, dtype=np.int64)
    src = np.clip(new_ids / scale, ids[0], ids[-1])  # source time, in source frame units
    i1 = np.clip(np.searchsorted(ids, src, side="right"), 1, max(1, len(ids) - 1))
    i0 = i1 - 1 if len(ids) > 1 else np.zeros_like(i1)
    i1 = np.minimum(i1, len(ids) - 1)
    span = np.where(ids[i1] > ids[i0], ids[i1] - ids[i0], 1)
    w = np.clip((src - ids[i0]) / span, 0.0, 1.0)
    camera = seq.camera
    if camera is not None:
        camera = CameraTrack(_interp(camera.K, i0, i1, w), _interp_rotations(camera.R, i0, i1, w),
                             _interp(camera.t, i0, i1, w), camera.image_size)
    return dataclasses.replace(
        seq, expr=_interp(seq.expr, i0, i1, w), rotations=_interp_rotations(seq.rotations, i0, i1, w),
        translation=_interp(seq.translation, i0, i1, w), frame_ids=new_ids, fps=float(fps),
        eyelids=None if seq.eyelids is None else _interp(seq.eyelids, i0, i1, w), camera=camera,
        warnings=list(seq.warnings) + [f"resampled from {seq.fps:g} to {fps:g} fps"])


# --------------------------------------------------------------------------------------------------
# geometry


def _coefficients(model: FlameModel, seq: FlameSequence, frames: slice | np.ndarray
                  ) -> tuple[FlameModel, np.ndarray, np.ndarray]:
    """The model (template shifted by static offsets) and the shape (S,) / expr (n, E) to evaluate."""
    if seq.n_shape > model.n_shape or seq.n_expr > model.n_expr:
        raise SequenceError(f"the sequence has {seq.n_shape} identity / {seq.n_expr} expression components, "
                            f"the model only {model.n_shape} / {model.n_expr}; use fit_components first")
    if seq.static_offset is not None:
        if seq.static_offset.shape != model.v_template.shape:
            raise SequenceError(f"static_offset has {len(seq.static_offset)} vertices, the model "
                                f"{model.n_verts}")
        model = dataclasses.replace(model, v_template=model.v_template + seq.static_offset)
    return model, seq.shape, seq.expr[frames]


def rest_joints(model: FlameModel, seq: FlameSequence, frames: slice | np.ndarray = slice(None)) -> np.ndarray:
    """Joints regressed from each frame's shaped and expressed (unposed) mesh: (n, 5, 3) float64.

    FLAME's joints move with expression, so these differ per frame; the kinematic chain of frame i
    pivots on them.
    """
    model, shape, expr = _coefficients(model, seq, frames)
    basis = model.joint_basis()  # (1 + S_model + E_model, J, 3)
    S = model.n_shape
    return (basis[0] + np.einsum("s,sjc->jc", shape, basis[1:1 + len(shape)])
            + np.einsum("te,ejc->tjc", expr, basis[1 + S:1 + S + expr.shape[1]]))


def sequence_vertices(model: FlameModel, seq: FlameSequence, frames: slice | np.ndarray = slice(None),
                      eyelid_dirs: np.ndarray | None = None) -> np.ndarray:
    """Reference vertices of the selected frames in FLAME space: (n, V, 3) float64.

    LBS with the sequence's rotations, then eyelid offsets (``eyelid_dirs`` (2, V, 3), default
    ``seq.eyelid_dirs``), then translation: metrical-tracker's semantics. VHAP static offsets are
    added to the template before joint regression, as VHAP does.
    """
    model, shape, expr = _coefficients(model, seq, frames)
    dirs = seq.eyelid_dirs if eyelid_dirs is None else np.asarray(eyelid_dirs, dtype=np.float64)
    if dirs is not None and dirs.shape != (2, model.n_verts, 3):
        raise SequenceError(f"eyelid blendshapes have shape {dirs.shape}, expected (2, {model.n_verts}, 3)")
    eyelids = None if seq.eyelids is None or dirs is None else seq.eyelids[frames]
    return forward(model, shape, expr, seq.rotations[frames], seq.translation[frames],
                   eyelids, dirs).vertices


# --------------------------------------------------------------------------------------------------
# writing


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


def _portable_pickle(obj: Any) -> bytes:
    """Protocol-2 pickle whose numpy globals use the ``numpy.core`` names every numpy version reads.

    numpy 2 writes ``numpy._core.multiarray``, which numpy < 1.26 (trackers' environments) lacks.
    Protocol 2 has no frame lengths, so renaming GLOBAL opcodes in place keeps the stream valid.
    """
    data = pickle.dumps(obj, protocol=2)
    parts, last = [], 0
    for op, arg, pos in pickletools.genops(data):
        if op.name == "GLOBAL" and arg.startswith("numpy._core."):
            module, name = arg.split(" ", 1)
            parts += [data[last:pos], f"c{module.replace('numpy._core.', 'numpy.core.', 1)}\n{name}\n".encode()]
            last = pos + len(arg) + 2  # opcode byte + "module\nname\n"
    return b"".join(parts) + data[last:]


def write_torch_zip(path: str | Path, obj: Any) -> None:
    """Write ``obj`` (dicts of numpy arrays, str, int) in ``torch.save``'s zip layout without torch.

    Members ``<stem>/data.pkl`` (pickle protocol 2), ``<stem>/byteorder``, ``<stem>/version`` and an
    empty ``<stem>/data/``; readable by ``torch.load(weights_only=False)`` and
    :func:`safe_pickle.load_torch_zip`.
    """
    path = Path(path)
    stem = path.stem
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{stem}/data.pkl", _portable_pickle(obj))
        zf.writestr(f"{stem}/byteorder", b"little")
        zf.writestr(f"{stem}/data/", b"")
        zf.writestr(f"{stem}/version", b"3\n")


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
                               dtype: Any = np.float32, extra_flame: Mapping[str, np.ndarray] | None = None
                               ) -> list[str]:
    """Write ``folder/checkpoint/{frame:05d}.frame`` files as metrical-tracker's ``save_checkpoint`` does.

    metrical-tracker has no root, neck or translation: root rotation and translation (a rigid
    motion of the whole head) are moved exactly into the camera (a root rotation needs ``model``
    for its pivot, joint 0). A neck rotation or static offsets cannot be represented and raise
    SequenceError. ``extra_flame`` adds per-clip leaves to every frame's ``flame`` dict, e.g. the
    photometric stage's ``sh`` (1, 9, 3) and ``tex`` (1, n); without it no texture or lighting is written.
    Leaves are ``dtype`` arrays (the tracker's float32 by default). Checkpoints of other frame
    numbers already in the folder are left as they are. Returns warnings.
    """
    if seq.camera is None:
        raise SequenceError("metrical-tracker checkpoints need a camera; the sequence has none")
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
    R_cv, t_cv, warnings = _fold_rigid_motion(seq, model)
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
                      **{k: np.ascontiguousarray(v, dtype=dtype) for k, v in (extra_flame or {}).items()}},
            "camera": {"R": leaf(matrix_to_rotation_6d(R_p3d[i])), "t": leaf(T_p3d[i]), "fl": leaf(fl[i]),
                       "pp": leaf(pp[i])},
            "opencv": {"R": leaf(R_cv[i]), "t": leaf(t_cv[i]), "K": leaf(seq.camera.K[i])},
            "img_size": np.array(seq.camera.image_size, dtype=np.int64),
            "frame_id": name, "global_step": 0,
        }
        write_torch_zip(out / f"{name}.frame", frame)
    return warnings


__all__ = [
    "DEFAULT_FPS", "FlameSequence", "fit_components", "load_eyelid_blendshapes", "read_flame_npz",
    "read_flame_param_folder", "read_frame_file", "read_metrical", "read_sequence", "resample", "rest_joints",
    "sequence_arrays", "sequence_vertices", "slerp", "validate_sequence", "write_metrical_checkpoints",
    "write_sequence_npz", "write_torch_zip",
]
