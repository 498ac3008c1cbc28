"""The FLAME ecosystem's asset files in their distributed layouts, written without torch, for any topology.

- ``FLAME_masks.pkl``, ``flame_static_embedding.pkl``: Python-2 protocol-0 text pickles (optionally
  CRLF-damaged) of int64 / uint32 / float64 arrays (format notes §3, §4);
- ``flame_dynamic_embedding.npy``: a 0-d object npy around a Python-2 protocol-2 pickle of lists of arrays;
- ``landmark_embedding.npy`` (DECA, MICA, SMIRK) and VHAP's ``landmark_embedding_with_eyes.npy``: a 0-d
  object npy, pickle protocol 3, whose ``dynamic_*`` values are torch tensors as ``np.save`` pickles them
  (``_rebuild_tensor_v2`` over ``torch.storage._load_from_bytes`` of a legacy ``torch.save`` stream);
- ``mediapipe_landmark_embedding.npz``: a plain npz;
- ``head_template.obj``: vertices away from FLAME space, UVs with seams, faces ``v/vt``.
"""

from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path

import legacy_pickle
import numpy as np

MASK_REGIONS = ("eye_region", "neck", "left_eyeball", "right_eyeball", "right_ear", "right_eye_region",
                "forehead", "lips", "nose", "scalp", "boundary", "face", "left_ear", "left_eye_region")
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGES = {"int64": "LongStorage", "float32": "FloatStorage", "float64": "DoubleStorage"}


class Tensor:
    """Marks an array to be written as a torch tensor (a contiguous one, as torch tensors usually are)."""

    def __init__(self, array: np.ndarray):
        self.array = np.ascontiguousarray(array)


def _binunicode(s: str) -> bytes:
    return b"X" + struct.pack("<I", len(s.encode())) + s.encode()


def legacy_storage_stream(array: np.ndarray, key: str = "94503034781664") -> bytes:
    """What ``torch.save(storage, f, _use_new_zipfile_serialization=False)`` writes for ``array``'s storage:
    magic number, protocol 1001, system info, the storage's persistent id, [key], count (int64), data."""
    root = (b"\x80\x02(" + _binunicode("storage") + b"ctorch\n" + _STORAGES[array.dtype.name].encode() + b"\nq\x01"
            + _binunicode(key) + _binunicode("cpu") + b"J" + struct.pack("<i", array.size) + b"NtQ.")
    info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
    return (pickle.dumps(_LEGACY_MAGIC, protocol=2) + pickle.dumps(1001, protocol=2) + pickle.dumps(info, protocol=2)
            + root + pickle.dumps([key], protocol=2) + struct.pack("<q", array.size)
            + array.astype(array.dtype.newbyteorder("<")).tobytes())


class _Py3Writer(legacy_pickle._Py2Writer):
    """Protocol 3 as Python 3's ``np.save`` writes: str as BINUNICODE, bytes as BINBYTES, tensors as torch
    pickles them outside ``torch.save``."""

    def __init__(self) -> None:
        self.out = bytearray(b"\x80\x03")

    def text(self, s: str) -> None:
        self.out += _binunicode(s)

    def bytestring(self, b: bytes) -> None:
        self.out += (b"C" + bytes([len(b)]) if len(b) < 256 else b"B" + struct.pack("<I", len(b))) + b

    def value(self, v) -> None:
        if isinstance(v, str):
            self.text(v)
        elif isinstance(v, Tensor):
            a = v.array
            self.glob("torch._utils", "_rebuild_tensor_v2")
            self.out += b"("
            self.glob("torch.storage", "_load_from_bytes")
            self.out += b"("
            self.bytestring(legacy_storage_stream(a))
            self.out += b"tR"
            self.value(0)
            self.value(tuple(a.shape))
            self.value(tuple(s // a.itemsize for s in a.strides))
            self.value(False)
            self.glob("collections", "OrderedDict")
            self.out += b")RtR"
        else:
            super().value(v)


def object_npy(payload: bytes) -> bytes:
    """An .npy of a 0-d object array whose pickle is ``payload``."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": "|O", "fortran_order": False, "shape": ()})
    return out.getvalue() + payload


def random_embedding(rng: np.random.Generator, n_faces: int, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """face indices ``shape`` and barycentric weights ``shape + (3,)`` (rows sum to 1)."""
    bary = rng.random(shape + (3,)) + 0.05
    return rng.integers(0, n_faces, shape), bary / bary.sum(-1, keepdims=True)


def mask_regions(rng: np.random.Generator, n_verts: int) -> dict[str, np.ndarray]:
    """The 14 regions of FLAME_masks.pkl as random int64 vertex subsets (``lips`` unsorted, as distributed)."""
    regions = {name: np.sort(rng.choice(n_verts, rng.integers(5, n_verts // 3), replace=False)).astype(np.int64)
               for name in MASK_REGIONS}
    regions["lips"] = rng.permutation(regions["lips"])
    return regions


def write_masks(path: Path, regions: dict[str, np.ndarray], crlf: bool = False) -> Path:
    path.write_bytes(legacy_pickle.dumps_text(dict(regions), crlf))
    return path


def write_static_embedding(path: Path, face_idx: np.ndarray, bary: np.ndarray, crlf: bool = False) -> Path:
    """RingNet's flame_static_embedding.pkl: lmk_face_idx uint32 (L,), lmk_b_coords float64 (L, 3)."""
    path.write_bytes(legacy_pickle.dumps_text({"lmk_face_idx": face_idx.astype(np.uint32),
                                               "lmk_b_coords": bary.astype(np.float64)}, crlf))
    return path


def write_dynamic_embedding(path: Path, face_idx: np.ndarray, bary: np.ndarray) -> Path:
    """RingNet's flame_dynamic_embedding.npy: lists of uint32 (17,) / float64 (17, 3), one per yaw bin."""
    content = {"lmk_face_idx": [f.astype(np.uint32) for f in face_idx],
               "lmk_b_coords": [b.astype(np.float64) for b in bary]}
    path.write_bytes(object_npy(legacy_pickle.dumps_py2(legacy_pickle.ObjectArray(content))))
    return path


def landmark_embedding_dict(rng: np.random.Generator, n_faces: int, eyes: bool = False) -> dict:
    """The keys of DECA's landmark_embedding.npy (eyes: VHAP's landmark_embedding_with_eyes.npy), as arrays."""
    n_static = 53 if eyes else 51
    static = random_embedding(rng, n_faces, (n_static,))
    dynamic = random_embedding(rng, n_faces, (79, 17))
    full_faces = np.concatenate([dynamic[0][0], static[0][:51], static[0][51:]])[None]
    full_bary = np.concatenate([dynamic[1][0], static[1][:51], static[1][51:]])[None]
    return {"static_lmk_faces_idx": static[0].astype(np.int64),
            "static_lmk_bary_coords": np.asfortranarray(static[1]),
            "dynamic_lmk_faces_idx": dynamic[0].astype(np.int64),
            "dynamic_lmk_bary_coords": dynamic[1].astype(np.float32),
            "full_lmk_faces_idx": full_faces.astype(np.int64),
            "full_lmk_bary_coords": full_bary.astype(np.float64 if eyes else np.float32)}


def write_landmark_embedding(path: Path, content: dict) -> Path:
    """``np.save(path, content)`` with the dynamic_* arrays as torch tensors, as DECA's file holds them."""
    wrapped = {k: Tensor(v) if k.startswith("dynamic_") else v for k, v in content.items()}
    w = _Py3Writer()
    w.value(legacy_pickle.ObjectArray(wrapped))
    w.out += b"."
    path.write_bytes(object_npy(bytes(w.out)))
    return path


def write_mediapipe_embedding(path: Path, face_idx: np.ndarray, bary: np.ndarray, points: np.ndarray) -> Path:
    np.savez(path, lmk_face_idx=face_idx.astype(np.uint32), lmk_b_coords=bary.astype(np.float64),
             landmark_indices=points.astype(np.int64))
    return path


def template_uvs(rng: np.random.Generator, faces: np.ndarray, n_verts: int,
                 n_seam: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """vt (V + n_seam, 2) and ft (F, 3): one UV per vertex, and a second UV for ``n_seam`` seam vertices
    (default V / 20) that their odd-numbered faces use, as FLAME's 5023 vertices have 5118 UVs (95 seams)."""
    n_seam = n_verts // 20 if n_seam is None else n_seam
    vt = np.round(rng.random((n_verts + n_seam, 2)) * 0.98 + 0.01, 6)
    second = np.full(n_verts, -1)
    second[rng.choice(n_verts, n_seam, replace=False)] = n_verts + np.arange(n_seam)
    odd = (np.arange(len(faces)) % 2 == 1)[:, None]
    return vt, np.where(odd & (second[faces] >= 0), second[faces], faces)


def write_template_obj(path: Path, faces: np.ndarray, vt: np.ndarray, ft: np.ndarray, n_verts: int,
                       rng: np.random.Generator | None = None) -> Path:
    """head_template.obj: ``v`` lines away from FLAME space (+1.5 m in y), ``vt``, then ``f v/vt``, 1-based."""
    rng = rng or np.random.default_rng(0)
    v = rng.normal(scale=0.05, size=(n_verts, 3)) + [0.0, 1.503, 0.016]
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in v] + [f"vt {u:.6f} {w:.6f}" for u, w in vt]
    lines += ["f " + " ".join(f"{a + 1}/{b + 1}" for a, b in zip(fv, fuv, strict=True))
              for fv, fuv in zip(faces, ft, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_mica_layout(folder: Path, arrays: dict, rng: np.random.Generator, crlf: bool = False) -> dict:
    """Beside a model at ``folder/data/FLAME2020/generic_model.pkl`` (MICA's layout): masks in
    ``FLAME_masks/``, the template, landmark_embedding.npy and mediapipe_landmark_embedding.npz.
    Returns the model's path, the regions, (vt, ft), and per embedding name (face_idx, bary, points)."""
    faces, n_verts = np.asarray(arrays["f"]), len(arrays["v_template"])
    place = folder / "data" / "FLAME2020"
    (place / "FLAME_masks").mkdir(parents=True)
    written = {"model": legacy_pickle.write_flame_pickle(place / "generic_model.pkl", arrays),
               "regions": mask_regions(rng, n_verts), "uvs": template_uvs(rng, faces, n_verts)}
    write_masks(place / "FLAME_masks" / "FLAME_masks.pkl", written["regions"], crlf)
    write_template_obj(place / "head_template.obj", faces, *written["uvs"], n_verts, rng)
    deca = landmark_embedding_dict(rng, len(faces))
    write_landmark_embedding(place / "landmark_embedding.npy", deca)
    mediapipe = (*random_embedding(rng, len(faces), (105,)), rng.choice(468, 105, replace=False))
    write_mediapipe_embedding(place / "mediapipe_landmark_embedding.npz", *mediapipe)
    written["embeddings"] = {"68": (deca["full_lmk_faces_idx"][0], deca["full_lmk_bary_coords"][0], np.arange(68)),
                             "mediapipe": mediapipe}
    return written
