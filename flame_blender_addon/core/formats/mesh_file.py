"""Writing a triangle mesh as OBJ (text) or binary STL, straight from numpy arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np

STL_TRIANGLE = np.dtype([("normal", "<f4", 3), ("corners", "<f4", (3, 3)), ("attributes", "<u2")])


def write_obj(path: Path, vertices: np.ndarray, faces: np.ndarray) -> Path:
    """vertices (V, 3), faces (F, 3) 0-based -> a Wavefront OBJ (``v`` and ``f`` lines, 1-based)."""
    path = Path(path)
    with open(path, "w", encoding="ascii") as f:
        f.write(f"# {len(vertices)} vertices, {len(faces)} triangles\n")
        np.savetxt(f, np.asarray(vertices, dtype=np.float64), fmt="v %.6f %.6f %.6f")
        np.savetxt(f, np.asarray(faces, dtype=np.int64) + 1, fmt="f %d %d %d")
    return path


def write_stl(path: Path, vertices: np.ndarray, faces: np.ndarray, name: str = "FLAME head") -> Path:
    """vertices (V, 3), faces (F, 3) -> a binary STL: an 80-byte header, the count, then per triangle
    its unit normal (right-handed from the winding) and three corners, float32 little-endian."""
    corners = np.asarray(vertices, dtype=np.float64)[np.asarray(faces, dtype=np.int64)]  # (F, 3, 3)
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    lengths = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.divide(normals, lengths, out=np.zeros_like(normals), where=lengths > 0)
    triangles = np.zeros(len(corners), dtype=STL_TRIANGLE)
    triangles["normal"], triangles["corners"] = normals, corners
    path = Path(path)
    with open(path, "wb") as f:
        f.write(name.encode("ascii", "replace")[:80].ljust(80, b" "))
        f.write(np.uint32(len(triangles)).astype("<u4").tobytes())
        f.write(triangles.tobytes())
    return path

