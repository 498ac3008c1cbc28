"""Landmark embeddings as the tracker uses them, and 2D landmark tracks (numpy only).

An embedding (:class:`..core.formats.embeddings.Embedding`) ties landmark l to the surface point
``sum_c bary[l, c] * V[faces[face_idx[l], c]]``; metrical-tracker's ``mediapipe_landmark_embedding.npz``
adds ``landmark_indices``, the MediaPipe point (of 478) each row corresponds to. Landmark tracks are
pixel positions, origin at the image's top-left corner, NaN where there is no face.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core import safe_files
from ..core.errors import TrackerError, guarded
from ..core.formats.embeddings import EMBEDDING_KEYS, Embedding, embedding_from_arrays, read_npz_embedding
from ..core.limits import FPS_RANGE, IMAGE_SIDE, LARGE, Budget, Limits
from ..core.model import N_VERTS, FlameModel

MEDIAPIPE_POINTS = 478
# MediaPipe iris points -> FLAME eyeball vertices (as metrical-tracker maps them; 468..472 is the
# image-left iris, i.e. the subject's right eye). Valid for FLAME's topology only.
IRIS_POINTS = np.arange(468, 478)
IRIS_VERTICES = np.array([4597, 4542, 4510, 4603, 4570, 4051, 3996, 3964, 3932, 4028])
# MediaPipe face-mesh topology (point numbers of its 478-point mesh)
LIP_PAIRS = ((191, 95), (80, 88), (81, 178), (82, 87), (13, 14), (312, 317), (311, 402), (310, 318), (415, 324))
"""Inner-lip points facing each other: (upper, lower), from the subject's right corner to the left."""
MOUTH_CORNERS = (61, 291)
EYE_CORNERS = (33, 263)  # outer corners, subject's right then left: the inter-ocular distance (IOD)
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377, 152, 148,
             176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
"""The face outline as a closed loop, from the top of the forehead round the subject's left."""


@dataclass(frozen=True)
class Track:
    """points: (T, N, 2) float64 pixels, NaN rows where missing; conf: (T, N) in [0, 1];
    image_size: (H, W); fps: frames per second or None when unknown."""

    points: np.ndarray
    conf: np.ndarray
    image_size: tuple[int, int]
    fps: float | None = None

    @property
    def n_frames(self) -> int:
        return self.points.shape[0]

    def face_found(self) -> np.ndarray:
        """(T,) bool: frames with at least one usable point."""
        return (np.isfinite(self.points).all(axis=2) & (self.conf > 0)).any(axis=1)


def _require(path: Path, what: str) -> None:
    if not os.path.lexists(path):
        raise TrackerError(f"{path}: {what} file not found")


def read_npz(path: Path, what: str, keys: tuple[str, ...], limits: Limits) -> dict[str, np.ndarray]:
    """The members ``keys`` that are present (read within ``limits``), plus '__files__' (all keys)."""
    _require(path, what)
    with safe_files.NpzArchive.open(path, limits, Budget(limits)) as npz:
        return {"__files__": sorted(npz), **{k: npz[k] for k in keys if k in npz}}


@guarded
def load_embedding(path: str | Path) -> Embedding:
    """Read an embedding ``.npz`` (metrical-tracker's schema), named after its file."""
    path = Path(path)
    _require(path, "landmark embedding")
    return read_npz_embedding(path)


@guarded
def embedding_in_model_file(path: str | Path) -> Embedding | None:
    """An embedding stored in a ``.npz`` model file under the embedding keys, else None."""
    path = Path(path)
    if path.suffix.lower() != ".npz":
        return None
    raw = read_npz(path, "model", (*EMBEDDING_KEYS, "landmark_indices"), LARGE)
    if not all(k in raw for k in EMBEDDING_KEYS):
        return None
    return embedding_from_arrays(raw, f"{path.name} (embedded landmarks)")


def check_embedding(embedding: Embedding, model: FlameModel) -> None:
    """Raise TrackerError when the embedding does not fit the model's triangles."""
    n_faces = len(model.faces)
    if embedding.face_idx.min() < 0 or embedding.face_idx.max() >= n_faces:
        raise TrackerError(f"{embedding.name} does not match {model.name}: it uses triangle "
                           f"{embedding.face_idx.max()}, but the model has {n_faces} triangles "
                           f"(an embedding for another FLAME topology?)")


def with_irises(embedding: Embedding, model: FlameModel) -> Embedding:
    """Add the 10 MediaPipe iris points as eyeball vertices when the model has FLAME's topology
    (5023 vertices, and those vertices skinned to the right eye, then the left eye) and the
    embedding maps detector points but not the irises yet; otherwise unchanged."""
    if embedding.points is None or model.n_verts != N_VERTS or np.isin(IRIS_POINTS, embedding.points).any():
        return embedding
    if not (model.weights[IRIS_VERTICES].argmax(axis=1) == np.repeat([4, 3], 5)).all():
        return embedding
    face_idx, corner = vertex_faces(model.faces, IRIS_VERTICES)
    bary = np.zeros((len(IRIS_VERTICES), 3))
    bary[np.arange(len(corner)), corner] = 1.0
    return Embedding(np.concatenate([embedding.face_idx, face_idx]), np.concatenate([embedding.bary, bary]),
                     np.concatenate([embedding.points, IRIS_POINTS]), embedding.name + " + irises")


def vertex_faces(faces: np.ndarray, vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each vertex (N,), one triangle using it and the corner it occupies. -> (N,), (N,)."""
    hit = faces.reshape(-1)[None, :] == np.asarray(vertices)[:, None]  # (N, 3F)
    if not hit.any(axis=1).all():
        raise TrackerError("an iris vertex is not used by any triangle of the model")
    flat = hit.argmax(axis=1)
    return flat // 3, flat % 3


@dataclass(frozen=True)
class Roles:
    """Rows of an embedding with a role in the fit (empty where the embedding has no MediaPipe
    point numbers or lacks the points).

    inner_lip: (N,) rows of the inner lip contour between its corners; mouth_corners: (M,) rows of the
    (outer) mouth corners; lip_pairs: (D, 2) rows whose difference is fitted too: inner-lip points
    facing each other (upper, lower), then the mouth corners (right, left);
    contour: (C,) rows of face-outline points and contour_neighbours: (C, 2) the rows of their
    neighbours along the outline (-1 where the neighbouring point is not in the embedding)
    """

    inner_lip: np.ndarray
    mouth_corners: np.ndarray
    lip_pairs: np.ndarray
    contour: np.ndarray
    contour_neighbours: np.ndarray

    @staticmethod
    def none() -> Roles:
        """No row has a role (an embedding without MediaPipe point numbers)."""
        empty = np.zeros(0, dtype=np.int64)
        return Roles(empty, empty, empty.reshape(0, 2), empty, empty.reshape(0, 2))


def roles(embedding: Embedding) -> Roles:
    """The rows of ``embedding`` with a role in the fit, found by their MediaPipe point numbers."""
    row = {} if embedding.points is None else {int(p): i for i, p in enumerate(embedding.points)}
    rows = lambda points: np.array([row[p] for p in points if p in row], dtype=np.int64)  # noqa: E731
    pairs = np.array([(row[a], row[b]) for a, b in LIP_PAIRS + (MOUTH_CORNERS,)
                      if a in row and b in row], dtype=np.int64)
    inner = rows(sorted({p for pair in LIP_PAIRS for p in pair}))
    n = len(FACE_OVAL)
    on = [i for i, p in enumerate(FACE_OVAL) if p in row]
    neighbours = np.array([[row.get(FACE_OVAL[(i - 1) % n], -1), row.get(FACE_OVAL[(i + 1) % n], -1)] for i in on],
                          dtype=np.int64).reshape(-1, 2)
    return Roles(inner, rows(MOUTH_CORNERS), pairs.reshape(-1, 2),
                 rows([FACE_OVAL[i] for i in on]), neighbours)


@guarded
def load_track(path: str | Path) -> Track:
    """Read precomputed landmarks: ``lmk`` (T, L, 2) pixels, optional ``conf`` (T, L),
    ``image_size`` [H, W], optional ``fps``."""
    path = Path(path)
    raw = read_npz(path, "landmarks", ("lmk", "conf", "image_size", "fps"), LARGE)
    if "lmk" not in raw or "image_size" not in raw:
        raise TrackerError(f"{path.name}: needs 'lmk' (T, L, 2) pixels and 'image_size' [H, W]; found "
                           f"{', '.join(raw['__files__']) or 'nothing'}")
    lmk = _numbers(raw, "lmk", path.name)  # NaN marks frames without a face
    if lmk.ndim != 3 or lmk.shape[2] != 2 or lmk.shape[0] == 0:
        raise TrackerError(f"{path.name}: 'lmk' has shape {lmk.shape}, expected (T, L, 2)")
    conf = _numbers(raw, "conf", path.name) if "conf" in raw else np.ones(lmk.shape[:2])
    if conf.shape != lmk.shape[:2]:
        raise TrackerError(f"{path.name}: 'conf' has shape {conf.shape}, expected {lmk.shape[:2]}")
    size = _numbers(raw, "image_size", path.name).reshape(-1)
    low, high = IMAGE_SIDE
    if size.shape != (2,) or np.any(size % 1) or not ((size >= low) & (size <= high)).all():
        raise TrackerError(f"{path.name}: 'image_size' is {size.tolist()[:4]}, expected [H, W] of {low} to "
                           f"{high} pixels")
    fps = None
    if "fps" in raw:
        fps_value = _numbers(raw, "fps", path.name).reshape(-1)
        if fps_value.shape != (1,) or not FPS_RANGE[0] <= fps_value[0] <= FPS_RANGE[1]:
            raise TrackerError(f"{path.name}: 'fps' is {fps_value.tolist()[:4]}, expected one number from "
                               f"{FPS_RANGE[0]:g} to {FPS_RANGE[1]:g}")
        fps = float(fps_value[0])
    conf = np.where(np.isfinite(lmk).all(axis=2), np.clip(np.nan_to_num(conf), 0, 1), 0.0)
    return Track(lmk, conf, (int(size[0]), int(size[1])), fps)


def _numbers(raw: dict[str, np.ndarray], key: str, name: str) -> np.ndarray:
    """raw[key] as float64, refusing text and other non-numeric arrays."""
    value = np.asarray(raw[key])
    if value.dtype.kind not in "biuf":
        raise TrackerError(f"{name}: '{key}' holds {value.dtype} values, expected numbers")
    return value.astype(np.float64)


def select(track: Track, embedding: Embedding) -> Track:
    """The track's points in embedding order: (T, L, 2). Raises TrackerError on a mismatch."""
    N, L = track.points.shape[1], len(embedding)
    if embedding.points is not None and N != L:
        if embedding.points.max() >= N:
            raise TrackerError(f"{embedding.name} refers to detector point {embedding.points.max()}, "
                               f"but the landmarks have only {N} points per frame")
        return Track(track.points[:, embedding.points], track.conf[:, embedding.points],
                     track.image_size, track.fps)
    if N != L:
        raise TrackerError(f"the landmarks have {N} points per frame but {embedding.name} describes {L}; "
                           f"give an embedding with one row per landmark or with landmark_indices")
    return track


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (first, last) frame ranges where ``mask`` (T,) is True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), (np.flatnonzero(edges == -1) - 1).tolist(), strict=True))
