"""Landmark embeddings of the FLAME ecosystem, read without torch (format notes §4).

An embedding ties landmark l to the surface point ``sum_c bary[l, c] * V[faces[face_idx[l], c]]``.
The files, and the fixed embedding each gives (:func:`read_embeddings`):

- ``landmark_embedding.npy`` (DECA, MICA, SMIRK; np.save of a dict with torch tensors inside) and
  VHAP's ``landmark_embedding_with_eyes.npy``: ``full_lmk_*`` (1, 68) / (1, 70), named ``"68"`` / ``"70"``;
- ``flame_static_embedding.pkl`` (RingNet, TF_FLAME; protocol-0 text pickle): ``lmk_*`` (51,), points
  17..67 of the 68-point scheme, named ``"static"`` (a 68-row file is named ``"68"``);
- ``flame_dynamic_embedding.npy`` (RingNet; Python-2 pickle in an object npy): the jaw contour per yaw
  bin; its frontal bin 0 (points 0..16), named ``"contour"``;
- ``mediapipe_landmark_embedding.npz`` (metrical-tracker, SMIRK; plain npz): ``lmk_*`` (105,) and
  ``landmark_indices``, the MediaPipe point of each row, named ``"mediapipe"``.

``Embedding.points`` holds each row's landmark number in its scheme (68-point index, MediaPipe index).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import safe_files, safe_pickle
from ..errors import AssetError, guarded
from ..limits import SMALL, Budget

EMBEDDING_KEYS = ("lmk_face_idx", "lmk_b_coords")
EMBEDDING_FILES = ("landmark_embedding.npy", "landmark_embedding_with_eyes.npy", "flame_static_embedding.pkl",
                   "flame_dynamic_embedding.npy", "mediapipe_landmark_embedding.npz")
N_CONTOUR = 17  # the 68-point scheme's jaw contour; points 17..67 are the 51 static ones


@dataclass(frozen=True)
class Embedding:
    """face_idx: (L,) int64; bary: (L, 3) float64 rows summing to 1; points: (L,) int64 detector
    point per row (None when landmark tracks are given in embedding order); name: for messages."""

    face_idx: np.ndarray
    bary: np.ndarray
    points: np.ndarray | None
    name: str

    def __len__(self) -> int:
        return len(self.face_idx)

    def corners(self, faces: np.ndarray) -> np.ndarray:
        """The vertices (L, 3) of each landmark's triangle; AssetError (without the file's name) when
        ``faces`` (F, 3) has too few."""
        if self.face_idx.min() < 0 or self.face_idx.max() >= len(faces):
            raise AssetError(f"uses triangle {self.face_idx.max()}, but the head has {len(faces)} "
                             "(an embedding for another topology?)")
        return np.asarray(faces)[self.face_idx]

    def positions(self, faces: np.ndarray, vertices: np.ndarray) -> np.ndarray:
        """The landmarks on a mesh: (..., L, 3) for vertices (..., V, 3) (the barycentric formula above)."""
        return np.einsum("lc,...lcx->...lx", self.bary, vertices[..., self.corners(faces), :])


def embedding_from_arrays(raw: dict[str, Any], name: str) -> Embedding:
    """Validate ``lmk_face_idx`` (L,), ``lmk_b_coords`` (L, 3) and optional ``landmark_indices`` (L,)."""
    missing = [k for k in EMBEDDING_KEYS if k not in raw]
    if missing:
        raise AssetError(f"{name}: missing key(s) {', '.join(missing)}; a landmark embedding needs "
                         f"{', '.join(EMBEDDING_KEYS)} (like metrical-tracker's mediapipe_landmark_embedding.npz)")
    face_idx = np.asarray(raw["lmk_face_idx"]).reshape(-1)
    bary = np.asarray(raw["lmk_b_coords"])
    if bary.dtype.kind not in "biuf":
        raise AssetError(f"{name}: 'lmk_b_coords' holds {bary.dtype} values, expected numbers")
    bary = bary.astype(np.float64)
    if face_idx.dtype.kind not in "iu" or bary.shape != (len(face_idx), 3) or len(face_idx) == 0:
        raise AssetError(f"{name}: lmk_face_idx {face_idx.shape} ({face_idx.dtype}) and lmk_b_coords "
                         f"{bary.shape} do not describe L landmarks as (L,) integers and (L, 3) weights")
    if not np.isfinite(bary).all() or np.abs(bary.sum(1) - 1).max() > 1e-3:
        raise AssetError(f"{name}: lmk_b_coords rows must be finite barycentric weights summing to 1")
    points = None
    if "landmark_indices" in raw:
        points = np.asarray(raw["landmark_indices"]).reshape(-1)
        if points.dtype.kind not in "iu" or len(points) != len(face_idx):
            raise AssetError(f"{name}: landmark_indices has shape {points.shape}, "
                             f"expected ({len(face_idx)},) integers")
        points = points.astype(np.int64)
    return Embedding(face_idx.astype(np.int64), bary, points, name)


def _named(raw: dict[str, Any], what: str, name: str = "", first: int = 0) -> Embedding:
    """An embedding named ``name`` (default: its number of landmarks) whose rows are landmarks ``first``,
    ``first + 1``, ... of their scheme (``what`` names the file and part in messages)."""
    embedding = embedding_from_arrays(raw, what)
    return Embedding(embedding.face_idx, embedding.bary, np.arange(first, first + len(embedding)),
                     name or str(len(embedding)))


def read_npz_embedding(path: Path) -> Embedding:
    """A plain-npz embedding (metrical-tracker's ``mediapipe_landmark_embedding.npz`` layout: ``lmk_*``,
    optional ``landmark_indices``), named after its file."""
    with safe_files.NpzArchive.open(path, SMALL, Budget(SMALL)) as npz:
        raw = {k: npz[k] for k in (*EMBEDDING_KEYS, "landmark_indices") if k in npz}
    return embedding_from_arrays(raw, path.name)


@guarded
def read_embedding(path: str | Path) -> tuple[Embedding, list[str]]:
    """The fixed embedding in one of :data:`EMBEDDING_FILES` (see the module notes) and warnings (a
    repaired text pickle). Names are short (``"68"``, ``"mediapipe"``); errors name the file."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        embedding = read_npz_embedding(path)
        return Embedding(embedding.face_idx, embedding.bary, embedding.points, "mediapipe"), []
    raw, warnings = safe_pickle.load_file(path, SMALL)
    if not isinstance(raw, dict):
        raise AssetError(f"{path.name}: holds a {type(raw).__name__}, expected a dict of landmark arrays")
    if "full_lmk_faces_idx" in raw:  # DECA / VHAP: (1, L) and (1, L, 3)
        bary = np.asarray(raw.get("full_lmk_bary_coords", np.zeros((0, 3))))
        full = {"lmk_face_idx": raw["full_lmk_faces_idx"], "lmk_b_coords": bary[0] if bary.ndim == 3 else bary}
        return _named(full, f"{path.name}: full_lmk"), warnings
    if isinstance(raw.get("lmk_face_idx"), list):  # RingNet's dynamic contour: one (17,) entry per yaw bin
        bins = [raw.get(k) for k in EMBEDDING_KEYS]
        if not all(isinstance(v, list) and v for v in bins):
            raise AssetError(f"{path.name}: expected lists of per-yaw-bin arrays under {', '.join(EMBEDDING_KEYS)}")
        frontal = {key: values[0] for key, values in zip(EMBEDDING_KEYS, bins, strict=True)}
        return _named(frontal, f"{path.name}: bin 0", "contour"), warnings
    if len(embedding_from_arrays(raw, path.name)) == 68 - N_CONTOUR:
        return _named(raw, path.name, "static", N_CONTOUR), warnings
    return _named(raw, path.name), warnings
