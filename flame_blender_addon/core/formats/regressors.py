"""Per-image outputs of the FLAME regressors DECA, EMOCA and SMIRK, read as a sequence of frames.

A regressor reconstructs one image at a time, so a "sequence" is a folder of per-image outputs,
ordered by the frame number in their names (:func:`.per_frame.frame_numbers`):

- **EMOCA** (``save_codes``): one folder per image holding ``shape.npy`` (100,), ``exp.npy`` (50,),
  ``pose.npy`` (6,) = [global, jaw] axis-angle (FLAME pose parameters 1-3 and 7-9), ``tex.npy``,
  ``detail.npy``. No camera is saved, so none is imported.
- **DECA** ``codedict`` dumps: one ``.npz`` or ``.pkl`` per image with ``shape`` (100,), ``exp`` (50,),
  ``pose`` (6,), ``cam`` (3,) = [s, tx, ty] (EMOCA's ``shapecode``/``expcode``/``posecode`` names too).
- **SMIRK**: one ``.npz`` or ``.pkl`` per image with ``shape_params`` (300,), ``expression_params`` (50,),
  ``pose_params`` (3,) global, ``jaw_params`` (3,), ``eyelid_params`` (2,) in [0, 1] (left first), ``cam`` (3,).

Arrays may keep the batch axis of one, (1, n). A ``.pkl`` is a plain pickle (through the restricted
unpickler) or a ``torch.save`` zip; tensors become numpy arrays. ``cam`` is the weak-perspective
camera of ``batch_orth_proj`` on the 224-pixel crop, imported as an orthographic camera
(:func:`..camera.orthographic_crop`). Codes with fewer components than the model are the first
FLAME 2020 components: the operator pads them with zeros (:func:`..sequence.fit_components`, which
warns with both counts). Each image has its own identity estimate; the sequence uses their mean.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import safe_files, safe_pickle
from ..camera import orthographic_crop
from ..errors import FlameError, SequenceError
from ..limits import FOLDER, Budget
from ..model import N_JOINTS
from ..rotations import axis_angle_to_matrix
from ..sequence import DEFAULT_FPS, FlameSequence, require_finite, validate_sequence
from .per_frame import frame_numbers, stack
from .torch_zip import read_torch_zip

CROP = 224  # pixels per side of the crop DECA, EMOCA and SMIRK regress from
CODE_SUFFIXES = (".npz", ".pkl", ".pt", ".pth")
# canonical key -> the names each regressor saves it under
_ALIASES = {"shape": ("shape", "shapecode"), "exp": ("exp", "expcode"), "pose": ("pose", "posecode")}
_SMIRK_KEYS = ("shape_params", "expression_params", "pose_params", "jaw_params", "eyelid_params")
_EXPRESSION_KEYS = ("exp", "expcode", "expression_params")
_EMOCA_FILES = ("shape", "exp", "pose", "cam")
_KEYS = {name for names in _ALIASES.values() for name in names} | {*_SMIRK_KEYS, "cam"}  # all that is read


def _image_folders(folder: Path) -> list[Path]:
    """EMOCA's per-image folders in ``folder`` (those holding ``exp.npy``)."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and (p / "exp.npy").is_file())


def _code_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in CODE_SUFFIXES and p.is_file())


def _npz_keys(path: Path) -> set[str]:
    with safe_files.NpzArchive.open(path, FOLDER, Budget(FOLDER)) as npz:
        return set(npz)


@dataclass(frozen=True)
class Outputs:
    """A folder of per-image regressor outputs and what it holds: EMOCA's per-image folders
    (``image_folders``) or code files, listed once."""
    folder: Path
    sources: list[Path]
    image_folders: bool


def _listed(folder: Path) -> Outputs:
    images = _image_folders(folder)
    return Outputs(folder, images or _code_files(folder), bool(images))


def regressor_outputs(path: Path) -> Outputs | None:
    """The per-image regressor outputs that ``path`` (the folder, or one output in it) is part of,
    else None. Where there are ``.npz`` files, they decide: a regressor's have ``exp`` / ``expcode`` /
    ``expression_params``, not VHAP's and this project's ``expr``."""
    if path.is_file():
        if path.suffix == ".npy" and (path.parent / "exp.npy").is_file():
            return _listed(path.parent.parent)
        if path.suffix not in CODE_SUFFIXES or (path.suffix == ".npz" and not _npz_keys(path) & set(_EXPRESSION_KEYS)):
            return None
        found = regressor_outputs(path.parent)
        if found is None:  # one output among files that are not (VHAP's npz beside a .pkl)
            raise SequenceError(f"{path.parent}: no DECA, EMOCA or SMIRK outputs (per-image folders with exp.npy, "
                                f"or {', '.join(CODE_SUFFIXES)} code files)")
        return found
    if not path.is_dir():
        return None
    found = _listed(path)
    if found.image_folders:
        return found
    npz = [f for f in found.sources if f.suffix == ".npz"]  # with npz files (VHAP's, ours), their keys decide
    return found if found.sources and (not npz or _npz_keys(npz[0]) & set(_EXPRESSION_KEYS)) else None


def read_code_file(path: Path, budget: Budget, inside: Path) -> dict[str, Any]:
    """One per-image code file (npz, pickle or torch zip) as a flat dict."""
    if path.suffix == ".npz":
        with safe_files.NpzArchive.open(path, FOLDER, budget, inside) as npz:
            return {key: npz[key] for key in _KEYS & set(npz)}
    with safe_files.open_regular(path, FOLDER, inside) as f:  # opened once: sniffed, then read
        is_zip = f.read(2) == b"PK"
        f.seek(0)
        if is_zip:
            data = read_torch_zip(f, path.name, budget)
        else:
            try:
                data = safe_pickle.loads(safe_files.read_rest(f, path.name, FOLDER), budget)
            except FlameError as err:
                raise type(err)(f"{path.name}: {err}") from None
    if not isinstance(data, Mapping):
        raise SequenceError(f"{path.name}: expected a dict of codes, found {type(data).__name__}")
    return {str(key): value for key, value in data.items()}


def _read_image_folder(folder: Path, budget: Budget, inside: Path) -> dict[str, Any]:
    """EMOCA's ``<image>/shape.npy`` ... as {'shape': array, ...}."""
    return {name: safe_files.load_npy(folder / f"{name}.npy", FOLDER, budget, inside)
            for name in _EMOCA_FILES if (folder / f"{name}.npy").is_file()}


def canonical_codes(frame: dict[str, Any]) -> dict[str, Any]:
    """DECA's and EMOCA's alternative key names mapped to ``shape``, ``exp``, ``pose``."""
    for key, names in _ALIASES.items():
        found = next((name for name in names if name in frame), None)
        if found is not None:
            frame[key] = frame[found]
    return frame


def _stacked(frames: list[dict[str, Any]], names: list[str], where: str, key: str,
             width: int = -1, required: bool = True) -> np.ndarray | None:
    values = stack(frames, key, names, width, required)
    if values is not None:
        require_finite(where, key, values, names)
    return values


def _shared_identity(shapes: np.ndarray, where: str, warnings: list[str]) -> np.ndarray:
    """The mean of the per-image identities (T, S), with a warning saying how much they vary."""
    mean = shapes.mean(axis=0)
    spread = float(np.abs(shapes - mean).max(initial=0.0))
    if len(shapes) > 1 and spread > 1e-6:
        warnings.append(f"{where}: each image has its own identity estimate (they differ from their mean by up "
                        f"to {spread:.3g}); the head uses the mean of the {len(shapes)}")
    return mean


def read_outputs(found: Outputs, fps: float | None = None) -> FlameSequence:
    """The validated sequence of :func:`regressor_outputs`' find."""
    folder, sources, image_folders = found.folder, found.sources, found.image_folders
    where, budget = str(folder), Budget(FOLDER)
    ids = frame_numbers([p.name if p.is_dir() else p.stem for p in sources])
    if ids is None:
        raise SequenceError(f"{where}: the names {', '.join(p.name for p in sources[:4])} ... do not give distinct "
                            "frame numbers")
    order = np.argsort(ids, kind="stable")
    sources, ids = [sources[i] for i in order], [ids[i] for i in order]
    names = [p.name for p in sources]  # for messages
    read = _read_image_folder if image_folders else read_code_file
    frames = [canonical_codes(read(p, budget, folder)) for p in sources]
    smirk = any(key in frames[0] for key in _SMIRK_KEYS)
    source = "SMIRK" if smirk else "EMOCA" if image_folders else "DECA"
    T, warnings = len(frames), []
    rotations = np.tile(np.eye(3), (T, N_JOINTS, 1, 1))
    if smirk:
        shapes, expr = (_stacked(frames, names, where, k) for k in ("shape_params", "expression_params"))
        rotations[:, 0] = axis_angle_to_matrix(_stacked(frames, names, where, "pose_params", 3))
        rotations[:, 2] = axis_angle_to_matrix(_stacked(frames, names, where, "jaw_params", 3))
        eyelids = _stacked(frames, names, where, "eyelid_params", 2, required=False)
        if eyelids is not None and np.any(eyelids != 0) and not np.allclose(rotations[:, 0], np.eye(3)):
            warnings.append(f"{where}: SMIRK adds the eyelids after posing; on the head they are shape keys that "
                            "turn with it, which differs slightly where the head is turned")
    else:
        shapes, expr = (_stacked(frames, names, where, k) for k in ("shape", "exp"))
        pose = _stacked(frames, names, where, "pose", 6).reshape(T, 2, 3)
        rotations[:, 0], rotations[:, 2] = axis_angle_to_matrix(pose[:, 0]), axis_angle_to_matrix(pose[:, 1])
        eyelids = None
    cam = _stacked(frames, names, where, "cam", 3, required=False)
    if cam is None:
        warnings.append(f"{where}: {source} saves no camera; none imported")
    elif np.any(cam[:, 0] <= 0):
        bad = int(np.argmax(cam[:, 0] <= 0))
        raise SequenceError(f"{names[bad]}: 'cam' scale is {cam[bad, 0]:.4g}; the orthographic scale must be positive")
    seq = FlameSequence(
        shape=_shared_identity(shapes, where, warnings), expr=expr, rotations=rotations, translation=np.zeros((T, 3)),
        frame_ids=np.array(ids, dtype=np.int64), fps=DEFAULT_FPS if fps is None else float(fps),
        eyelids=eyelids, camera=None if cam is None else orthographic_crop(cam, CROP), source=source,
        path=where, warnings=warnings)
    return validate_sequence(seq, where)
