"""A head's identity (FLAME shape coefficients) from the files of the FLAME ecosystem.

- MICA's ``identity.npy`` (300,) float32, EMOCA's ``shape.npy`` (100,): the coefficients themselves.
- DECA / SMIRK code dumps (``.npz``, ``.pkl``, ``.pt``): their ``shape`` / ``shapecode`` / ``shape_params``.
- A mesh in FLAME's topology (``.ply`` / ``.obj``, e.g. MICA's ``mesh.ply``, in millimetres, or a
  FLAME mesh in metres): solved for the coefficients by least squares over the identity basis.

The mesh is taken as it is, in FLAME's own axes and origin (MICA writes FLAME space times 1000):
no rigid or similarity alignment is solved, because FLAME's identity components themselves
include size and proportions, and a free scale would absorb part of them. The residual (RMS and
largest vertex distance) says how well the mesh is a FLAME head of the model's components; a mesh
moved or rotated out of FLAME space shows as a large residual.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import safe_files
from .errors import IdentityError, guarded
from .formats.mesh_file import read_mesh_vertices
from .formats.regressors import CODE_SUFFIXES, canonical_codes, read_code_file
from .limits import SMALL, Budget

# A FLAME head is about 0.2-0.3 m across; these generous windows (1000-fold apart) tell metres from millimetres.
METRE_EXTENT = (0.05, 1.0)
MILLIMETRE_EXTENT = (50.0, 1000.0)


class MeshFit(NamedTuple):
    """betas: (S,) coefficients; residual_m: RMS vertex distance of the fitted head to the mesh
    (metres); max_m: the largest; scale: the unit of the mesh in metres (1 or 0.001)."""

    betas: np.ndarray
    residual_m: float
    max_m: float
    scale: float


def mesh_unit(vertices: np.ndarray, where: str = "the mesh") -> float:
    """Metres per unit of a head mesh (V, 3) from its extent: 1.0 (metres) or 0.001 (millimetres)."""
    extent = float(np.ptp(vertices, axis=0).max()) if len(vertices) else 0.0
    if METRE_EXTENT[0] <= extent <= METRE_EXTENT[1]:
        return 1.0
    if MILLIMETRE_EXTENT[0] <= extent <= MILLIMETRE_EXTENT[1]:
        return 1e-3
    raise IdentityError(f"{where} is {extent:.4g} units across: neither a head in metres ({METRE_EXTENT[0]:g}-"
                        f"{METRE_EXTENT[1]:g}) nor in millimetres ({MILLIMETRE_EXTENT[0]:g}-{MILLIMETRE_EXTENT[1]:g})")


def identity_from_mesh(template: np.ndarray, shapedirs: np.ndarray, vertices: np.ndarray,
                       where: str = "the mesh") -> MeshFit:
    """Least-squares identity of a FLAME-topology mesh, in metres or millimetres (detected).

    template: (V, 3) metres; shapedirs: (V, 3, S) identity basis; vertices: (V, 3) in FLAME's axes.
    Solves min |template + shapedirs beta - unit * vertices|^2 over beta (no alignment, see above).
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    if vertices.shape != template.shape:
        raise IdentityError(f"{where} has {len(vertices)} vertices; a FLAME head has {len(template)} "
                            "(the mesh must have FLAME's topology, in FLAME's vertex order)")
    scale = mesh_unit(vertices, where)
    basis = shapedirs.reshape(-1, shapedirs.shape[2])
    target = (scale * vertices - template).reshape(-1)
    betas = np.linalg.lstsq(basis, target, rcond=None)[0]
    distance = np.linalg.norm((basis @ betas - target).reshape(-1, 3), axis=1)
    return MeshFit(betas, float(np.sqrt(np.mean(distance ** 2))), float(distance.max()), scale)


def _coefficients(values: np.ndarray, where: str) -> np.ndarray:
    """(S,) or (1, S) finite numbers -> (S,) float64."""
    values = np.asarray(values)
    if values.dtype.kind not in "fiu" or values.ndim not in (1, 2) or values.ndim == 2 and len(values) != 1:
        raise IdentityError(f"{where} has shape {values.shape} ({values.dtype}), expected (S,) or (1, S) numbers")
    values = values.reshape(-1).astype(np.float64)
    if not np.isfinite(values).all():
        raise IdentityError(f"{where} has NaN or infinite values")
    return values


@guarded
def read_identity_code(path: str | Path) -> np.ndarray:
    """Shape coefficients (S,) float64 from MICA's ``identity.npy``, EMOCA's ``shape.npy`` or a DECA /
    SMIRK code file (``shape``, ``shapecode`` or ``shape_params``)."""
    path = Path(path)
    budget = Budget(SMALL)
    if path.suffix == ".npy":
        return _coefficients(safe_files.load_npy(path, SMALL, budget), path.name)
    if path.suffix not in CODE_SUFFIXES:
        raise IdentityError(f"{path.name}: not an identity file (expected .npy, {', '.join(CODE_SUFFIXES)}, "
                            ".ply or .obj)")
    codes = canonical_codes(read_code_file(path, budget, path.parent))
    key = next((k for k in ("shape", "shape_params") if k in codes), None)
    if key is None:
        raise IdentityError(f"{path.name}: no 'shape', 'shapecode' or 'shape_params' (found: "
                            f"{', '.join(sorted(codes)) or 'nothing'})")
    return _coefficients(codes[key], f"{path.name}: '{key}'")


@guarded
def read_identity_mesh(path: str | Path, template: np.ndarray, shapedirs: np.ndarray) -> MeshFit:
    """:func:`identity_from_mesh` of a ``.ply`` / ``.obj`` file."""
    path = Path(path)
    return identity_from_mesh(template, shapedirs, read_mesh_vertices(path), path.name)


def is_mesh_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in (".ply", ".obj")
