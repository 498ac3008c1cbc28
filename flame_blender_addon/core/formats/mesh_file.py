"""Triangle meshes as files: OBJ (text) and binary STL written straight from numpy arrays; the vertices
of PLY (ASCII or binary) and OBJ files read within memory limits (MICA's ``mesh.ply`` / ``mesh.obj``)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .. import safe_files
from ..errors import FileFormatError, guarded
from ..limits import SMALL, Budget, Limits

STL_TRIANGLE = np.dtype([("normal", "<f4", 3), ("corners", "<f4", (3, 3)), ("attributes", "<u2")])
_PLY_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
              "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
              "float": "f4", "float32": "f4", "double": "f8", "float64": "f8"}
_PLY_FORMATS = {"ascii": None, "binary_little_endian": "<", "binary_big_endian": ">"}
_MAX_PLY_HEADER = 1 << 16
_NUMBER = rb"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_OBJ_VERTEX = re.compile(rb"^[ \t]*v[ \t]+(" + _NUMBER + rb")[ \t]+(" + _NUMBER + rb")[ \t]+(" + _NUMBER + rb")",
                         re.MULTILINE)


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


@guarded
def read_mesh_vertices(path: str | Path, limits: Limits = SMALL) -> np.ndarray:
    """The vertices of a ``.ply`` or ``.obj`` file as (V, 3) float64, in the file's units."""
    path = Path(path)
    if path.suffix.lower() not in (".ply", ".obj"):
        raise FileFormatError(f"{path.name}: not a mesh file (expected .ply or .obj)")
    data = safe_files.read_bytes(path, limits)
    vertices = _ply_vertices(data, path.name, Budget(limits)) if path.suffix.lower() == ".ply" else \
        _obj_vertices(data, path.name)
    if not np.isfinite(vertices).all():
        raise FileFormatError(f"{path.name}: vertices with NaN or infinite coordinates")
    return vertices


def _obj_vertices(data: bytes, name: str) -> np.ndarray:
    """``v x y z`` lines (anything after z, such as vertex colours, is ignored)."""
    rows = _OBJ_VERTEX.findall(data)
    if not rows:
        raise FileFormatError(f"{name}: no 'v x y z' vertex lines: not a Wavefront OBJ mesh")
    return np.array(rows, dtype=np.float64)


def _ply_header(data: bytes, name: str) -> tuple[str, list[tuple[str, int, list[tuple[str, str]]]], int]:
    """(format, [(element, count, [(property, numpy type or 'list')])], header bytes)."""
    end = data.find(b"end_header", 0, _MAX_PLY_HEADER)
    if not data.startswith(b"ply") or end < 0:
        raise FileFormatError(f"{name}: not a PLY file (no 'ply' ... 'end_header' header)")
    body = data.find(b"\n", end) + 1
    lines = data[:end].decode("ascii", "replace").splitlines()
    fmt, elements = None, []
    for line in lines[1:]:
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format" and len(words) == 3 and words[1] in _PLY_FORMATS:
            fmt = words[1]
        elif words[0] == "element" and len(words) == 3 and words[2].isdigit():
            elements.append((words[1], int(words[2]), []))
        elif words[0] == "property" and elements and len(words) == 3 and words[1] in _PLY_TYPES:
            elements[-1][2].append((words[2], _PLY_TYPES[words[1]]))
        elif words[0] == "property" and elements and len(words) == 5 and words[1] == "list":
            elements[-1][2].append((words[4], "list"))
        else:
            raise FileFormatError(f"{name}: unsupported PLY header line {line.strip()[:60]!r}")
    if fmt is None or body == 0:
        raise FileFormatError(f"{name}: the PLY header has no 'format ascii|binary_little_endian|"
                              "binary_big_endian 1.0' line")
    return fmt, elements, body


def _ply_vertices(data: bytes, name: str, budget: Budget) -> np.ndarray:
    """The x, y, z of the ``vertex`` element, which must come first (as every exporter writes it)."""
    fmt, elements, body = _ply_header(data, name)
    if not elements or elements[0][0] != "vertex":
        raise FileFormatError(f"{name}: the PLY file's first element is not 'vertex'")
    _, count, props = elements[0]
    names = [p for p, _ in props]
    if any(kind == "list" for _, kind in props) or not {"x", "y", "z"} <= set(names):
        raise FileFormatError(f"{name}: PLY vertices need float properties x, y, z (found {', '.join(names)})")
    twice = sorted({p for p in names if names.count(p) > 1})
    if twice:
        raise FileFormatError(f"{name}: the PLY vertex property {', '.join(twice)} is declared more than once")
    columns = [names.index(axis) for axis in "xyz"]
    budget.take((count, len(props)), np.dtype("f8"), f"{name}: vertices")
    if fmt == "ascii":
        rows = data[body:].split(b"\n", count)[:count]
        try:
            table = np.array([row.split() for row in rows], dtype=np.float64)
        except ValueError:
            raise FileFormatError(f"{name}: the first {count} lines after the header are not "
                                  f"{len(props)} numbers each") from None
        if table.shape != (count, len(props)):
            raise FileFormatError(f"{name}: the header declares {count} vertices of {len(props)} values; "
                                  f"the file holds {table.shape}")
        return table[:, columns]
    dtype = np.dtype([(p, _PLY_FORMATS[fmt] + kind) for p, kind in props])
    if len(data) - body < count * dtype.itemsize:
        raise FileFormatError(f"{name}: ends inside its {count} vertices (truncated)")
    table = np.frombuffer(data, dtype=dtype, count=count, offset=body)
    return np.stack([table[axis].astype(np.float64) for axis in "xyz"], axis=1)
