"""``head_template.obj``: FLAME's UV layout (format notes §9.1).

5023 ``v``, 5118 ``vt`` and 9976 triangles ``f v/vt`` (1-based) for FLAME 2020 / 2023; the same in
DECA's ``head_template.obj``, SMIRK's and VHAP's ``head_template_mesh.obj``. Its vertices are not in
FLAME space, so only the faces (checked to be the head's) and the UVs are used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import safe_files
from ..errors import AssetError, guarded
from ..limits import SMALL

UV_FILES = ("head_template.obj", "head_template_mesh.obj")


def _rows(lines: list[list[str]], width: int, kind: type, what: str) -> np.ndarray:
    try:
        return np.array(lines, dtype=kind).reshape(len(lines), width)
    except (ValueError, OverflowError):
        raise AssetError(f"{what}: expected {width} numbers per line") from None


@guarded
def read_template_uvs(path: str | Path, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The UVs of an OBJ whose triangles are ``faces`` (F, 3): ``vt`` (N, 2) float32 in [0, 1] and ``ft``
    (F, 3) int64, the UV of each face corner. AssetError (one line) for another topology."""
    path = Path(path)
    text = safe_files.read_bytes(path, SMALL).decode("latin1")
    n_verts, uvs, corners = 0, [], []
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "v":
            n_verts += 1
        elif fields[0] == "vt":
            uvs.append(fields[1:3])
        elif fields[0] == "f":
            if len(fields) != 4:
                raise AssetError(f"{path.name}: a face of {len(fields) - 1} corners; FLAME's template has triangles")
            corners.append([part for corner in fields[1:] for part in (corner.split("/") + [""])[:2]])
    if not corners or not uvs:
        raise AssetError(f"{path.name}: no UVs ('vt') or faces ('f v/vt'); not a FLAME template mesh")
    if any("" in row for row in corners):
        raise AssetError(f"{path.name}: faces without UV indices (expected 'f v/vt v/vt v/vt')")
    vt = _rows(uvs, 2, np.float64, f"{path.name}: vt")
    f = _rows(corners, 6, np.int64, f"{path.name}: f") - 1
    fv, ft = f[:, 0::2], f[:, 1::2]
    if fv.shape != np.shape(faces) or not np.array_equal(fv, faces):
        raise AssetError(f"{path.name}: its {len(fv)} triangles over {n_verts} vertices are not the head's "
                         f"{len(faces)} triangles (UVs for another topology?)")
    if ft.min() < 0 or ft.max() >= len(vt) or not np.isfinite(vt).all():
        raise AssetError(f"{path.name}: face UV indices {ft.min() + 1}..{ft.max() + 1} outside its {len(vt)} "
                         "UVs, or UVs that are not finite")
    return vt.astype(np.float32), ft
