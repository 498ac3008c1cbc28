"""DECA, EMOCA, SMIRK and MICA outputs written in their own layouts (test fixtures, not shipped).

- EMOCA ``save_codes``: ``<out>/<image>/{shape,exp,tex,pose,detail}.npy``, float32 (n,).
- DECA ``codedict`` dumps: ``<out>/<image>.npz`` / ``.pkl`` (pickle of numpy arrays) / ``.pt``
  (``torch.save`` of tensors), (1, n) float32 values, with DECA's other codes (tex, light, detail).
- SMIRK's encoder outputs: ``<out>/<image>.npz`` / ``.pkl``, (1, n) float32.
- MICA: ``identity.npy`` (300,) float32, ``mesh.ply`` (trimesh's binary little-endian layout) and
  ``mesh.obj`` in millimetres, ``kpt7.npy`` / ``kpt68.npy``.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np
from fuzz_targets import torch_style_pickle


def regressor_codes(rng: np.random.Generator, n_frames: int, smirk: bool = False) -> list[dict[str, np.ndarray]]:
    """Per-image codes of DECA (100 shape, 50 exp, pose [global, jaw], cam) or SMIRK, float32 (1, n)."""
    frames = []
    shape = rng.normal(size=300 if smirk else 100)
    for _ in range(n_frames):
        cam = np.array([rng.uniform(7.0, 10.0), *rng.normal(scale=0.01, size=2)])
        if smirk:
            codes = {"shape_params": shape + rng.normal(scale=0.01, size=300), "expression_params": rng.normal(size=50),
                     "pose_params": rng.normal(scale=0.15, size=3), "cam": cam,
                     "eyelid_params": rng.uniform(0, 1, size=2),
                     "jaw_params": np.array([rng.uniform(0, 0.2), *rng.uniform(-0.05, 0.05, size=2)])}
        else:
            codes = {"shape": shape + rng.normal(scale=0.01, size=100), "tex": rng.normal(size=50),
                     "exp": rng.normal(size=50), "pose": np.r_[rng.normal(scale=0.15, size=3),
                                                               rng.uniform(0, 0.2), rng.normal(scale=0.02, size=2)],
                     "cam": cam, "light": rng.normal(size=(9, 3)), "detail": rng.normal(size=128)}
        frames.append({k: v.astype(np.float32)[None] for k, v in codes.items()})
    return frames


def write_emoca(out: Path, frames: list[dict[str, np.ndarray]], names: list[str]) -> Path:
    """EMOCA's per-image folders (no camera: ``save_codes`` writes none)."""
    for name, codes in zip(names, frames, strict=True):
        (out / name).mkdir(parents=True)
        for key in ("shape", "exp", "tex", "pose", "detail"):
            np.save(out / name / f"{key}.npy", codes[key][0])
    return out


def write_code_files(out: Path, frames: list[dict[str, np.ndarray]], names: list[str], suffix: str) -> Path:
    """One code dict per image: ``.npz`` (np.savez), ``.pkl`` (pickle of arrays) or ``.pt`` (torch.save of tensors)."""
    out.mkdir(parents=True, exist_ok=True)
    for name, codes in zip(names, frames, strict=True):
        path = out / f"{name}{suffix}"
        if suffix == ".npz":
            np.savez(path, **codes)
        elif suffix == ".pkl":
            path.write_bytes(pickle.dumps(codes, protocol=pickle.HIGHEST_PROTOCOL))
        else:
            data, storages = torch_style_pickle(codes)
            with zipfile.ZipFile(path, "w") as zf:
                zf.writestr(f"{name}/data.pkl", data)
                zf.writestr(f"{name}/version", b"3\n")
                for key, raw in storages.items():
                    zf.writestr(f"{name}/data/{key}", raw)
    return out


def write_ply(path: Path, vertices: np.ndarray, faces: np.ndarray, binary: bool = True) -> Path:
    """A PLY as trimesh exports it: float32 x y z, then ``uchar int`` face lists."""
    v, f = np.asarray(vertices, dtype="<f4"), np.asarray(faces, dtype="<i4")
    header = ["ply", f"format {'binary_little_endian' if binary else 'ascii'} 1.0",
              "comment https://github.com/mikedh/trimesh", f"element vertex {len(v)}", "property float x",
              "property float y", "property float z", f"element face {len(f)}",
              "property list uchar int vertex_indices", "end_header"]
    with open(path, "wb") as out:
        out.write(("\n".join(header) + "\n").encode())
        if binary:
            face_rows = np.zeros(len(f), dtype=[("n", "u1"), ("i", "<i4", 3)])
            face_rows["n"], face_rows["i"] = 3, f
            out.write(v.tobytes() + face_rows.tobytes())
        else:
            np.savetxt(out, v, fmt="%.8g")
            np.savetxt(out, np.c_[np.full(len(f), 3), f], fmt="%d")
    return path


def write_mica(out: Path, betas: np.ndarray, vertices_m: np.ndarray, faces: np.ndarray) -> Path:
    """MICA's demo output for one image: identity.npy and the mesh in millimetres."""
    from flame_blender_addon.core.formats.mesh_file import write_obj

    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "identity.npy", np.asarray(betas, dtype=np.float32))
    mm = np.asarray(vertices_m) * 1000.0
    write_ply(out / "mesh.ply", mm, faces)
    write_obj(out / "mesh.obj", mm, faces)
    np.save(out / "kpt7.npy", mm[:7].astype(np.float32))
    np.save(out / "kpt68.npy", mm[:68].astype(np.float32))
    return out
