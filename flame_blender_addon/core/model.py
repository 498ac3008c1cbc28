"""Loading FLAME model files (``generic_model.pkl``, ``flame2023*.pkl``, converted ``.npz``).

The files are decoded by :mod:`.formats.model_file`; the result is a :class:`FlameModel` of dense
float64 numpy arrays, validated key by key, so that a bad file fails here with a message naming the
key, before anything is built in Blender.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import safe_files
from .editions import detect_edition
from .errors import ModelLoadError, guarded
from .formats.model_file import read_model_file
from .limits import LARGE

N_VERTS, N_FACES = 5023, 9976  # FLAME's mesh
N_COMPONENTS = 400  # columns of the released models' ``shapedirs``
N_SHAPE_MAX = 300  # identity columns come first in ``shapedirs``; expression columns follow
N_JOINTS = 5
N_POSE_FEATURES = 9 * (N_JOINTS - 1)
JOINT_NAMES = ("root", "neck", "jaw", "eye.L", "eye.R")  # FLAME joint order 0..4
PARENTS = (-1, 0, 1, 1, 1)


def kintree_table() -> np.ndarray:
    """FLAME's (2, 5) ``kintree_table`` as the model files store it, with the uint32 root sentinel."""
    return np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.uint32)


@dataclass(frozen=True)
class FlameModel:
    """A FLAME model as dense arrays (V vertices, F faces, J = 5 joints).

    v_template: (V, 3) float64, metres, FLAME axes (+X subject's left, +Y up, +Z forward)
    faces: (F, 3) int32, 0-based triangles
    shapedirs: (V, 3, S) float64 identity basis
    exprdirs: (V, 3, E) float64 expression basis
    posedirs: (V, 3, 36) float64 pose correctives, feature k = 9 (j - 1) + 3 row + col
    J_regressor: (J, V) float64
    weights: (V, J) float64 skinning weights
    parents: (J,) int64, root = -1
    """

    v_template: np.ndarray
    faces: np.ndarray
    shapedirs: np.ndarray
    exprdirs: np.ndarray
    posedirs: np.ndarray
    J_regressor: np.ndarray
    weights: np.ndarray
    parents: np.ndarray
    name: str = "FLAME"
    sha256: str = ""
    edition: str = "unknown"  # an id of :data:`.editions.EDITIONS`
    path: str = ""
    warnings: tuple[str, ...] = field(default=())

    @property
    def n_verts(self) -> int:
        return self.v_template.shape[0]

    @property
    def n_shape(self) -> int:
        return self.shapedirs.shape[2]

    @property
    def n_expr(self) -> int:
        return self.exprdirs.shape[2]

    def truncated(self, n_shape: int | None = None, n_expr: int | None = None) -> FlameModel:
        """The same model keeping the first ``n_shape`` identity and ``n_expr`` expression components."""
        s = self.n_shape if n_shape is None else max(0, min(n_shape, self.n_shape))
        e = self.n_expr if n_expr is None else max(0, min(n_expr, self.n_expr))
        return FlameModel(**{**self.__dict__, "shapedirs": self.shapedirs[:, :, :s],
                             "exprdirs": self.exprdirs[:, :, :e]})

    def rest_joints(self, shape: np.ndarray | None = None, expr: np.ndarray | None = None) -> np.ndarray:
        """Joints regressed from the shaped, expressed, unposed mesh. shape: (S,), expr: (E,) -> (J, 3)."""
        v = self.v_template.copy()
        if shape is not None and len(shape):
            v += self.shapedirs[:, :, : len(shape)] @ np.asarray(shape, dtype=np.float64)
        if expr is not None and len(expr):
            v += self.exprdirs[:, :, : len(expr)] @ np.asarray(expr, dtype=np.float64)
        return self.J_regressor @ v

    def joint_basis(self) -> np.ndarray:
        """Joints as a linear function of [1, shape, expr]: (1 + S + E, J, 3).

        ``joints = basis[0] + tensordot(coeffs, basis[1:], 1)``; lets Blender update joints from shape
        key values without the model file or evaluating the mesh.
        """
        dirs = np.concatenate([self.shapedirs, self.exprdirs], axis=2)  # (V, 3, S+E)
        return np.concatenate([(self.J_regressor @ self.v_template)[None],
                               np.einsum("jv,vck->kjc", self.J_regressor, dirs)], axis=0)


def _array(raw: Mapping[str, Any], key: str, name: str, dtype: Any, ndim: int) -> np.ndarray:
    if key not in raw:
        found = ", ".join(sorted(map(str, raw))) or "nothing"
        raise ModelLoadError(f"{name}: missing key '{key}' (found: {found}); is this a FLAME model?")
    try:
        arr = np.asarray(raw[key], dtype=dtype)
    except (TypeError, ValueError):
        raise ModelLoadError(f"{name}: '{key}' is not a numeric array") from None
    if arr.ndim != ndim:
        raise ModelLoadError(f"{name}: '{key}' has shape {arr.shape}, expected {ndim} dimensions")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ModelLoadError(f"{name}: '{key}' contains NaN or infinite values")
    return arr


def model_from_arrays(raw: Mapping[str, Any], name: str = "FLAME", sha256: str = "") -> FlameModel:
    """Validate a FLAME key -> array mapping and build the model. Raises ModelLoadError."""
    v_template = _array(raw, "v_template", name, np.float64, 2)
    V = v_template.shape[0]
    if v_template.shape[1] != 3 or V < 3:
        raise ModelLoadError(f"{name}: 'v_template' has shape {v_template.shape}, expected (V, 3)")
    faces = _array(raw, "f", name, np.int64, 2)
    if faces.shape[1] != 3 or len(faces) == 0:
        raise ModelLoadError(f"{name}: 'f' has shape {faces.shape}, expected (F, 3) triangles")
    if faces.size and (faces.min() < 0 or faces.max() >= V):
        raise ModelLoadError(f"{name}: 'f' indexes vertex {faces.max()}, but there are only {V}")
    shapedirs = _array(raw, "shapedirs", name, np.float64, 3)
    if shapedirs.shape[:2] != (V, 3) or shapedirs.shape[2] <= N_SHAPE_MAX:
        raise ModelLoadError(f"{name}: 'shapedirs' has shape {shapedirs.shape}, expected ({V}, 3, K) "
                             f"with {N_SHAPE_MAX} identity then expression components")
    posedirs = _array(raw, "posedirs", name, np.float64, 3)
    if posedirs.shape != (V, 3, N_POSE_FEATURES):
        raise ModelLoadError(f"{name}: 'posedirs' has shape {posedirs.shape}, "
                             f"expected ({V}, 3, {N_POSE_FEATURES})")
    J_regressor = _array(raw, "J_regressor", name, np.float64, 2)
    if J_regressor.shape != (N_JOINTS, V):
        raise ModelLoadError(f"{name}: 'J_regressor' has shape {J_regressor.shape}, expected ({N_JOINTS}, {V})")
    weights = _array(raw, "weights", name, np.float64, 2)
    if weights.shape != (V, N_JOINTS):
        raise ModelLoadError(f"{name}: 'weights' has shape {weights.shape}, expected ({V}, {N_JOINTS})")
    kintree = _array(raw, "kintree_table", name, np.int64, 2)
    if kintree.shape != (2, N_JOINTS):
        raise ModelLoadError(f"{name}: 'kintree_table' has shape {kintree.shape}, expected (2, {N_JOINTS})")
    parents = kintree[0].copy()
    parents[0] = -1
    if tuple(parents) != PARENTS or tuple(kintree[1]) != tuple(range(N_JOINTS)):
        raise ModelLoadError(f"{name}: 'kintree_table' parents {tuple(parents)} are not FLAME's {PARENTS}")

    warnings = []
    row_sums = J_regressor.sum(axis=1)
    if np.any(np.abs(row_sums - 1) > 1e-3):
        warnings.append(f"J_regressor rows sum to {np.round(row_sums, 4).tolist()}, not 1")
    joints = J_regressor @ v_template
    if not joints[3, 0] > joints[4, 0]:
        warnings.append("eye joints look mirrored: joint 3 (left eye) should have larger x than joint 4")
    bs_style = raw.get("bs_style")
    if bs_style is not None and str(bs_style) != "lbs":
        raise ModelLoadError(f"{name}: bs_style is '{bs_style}', only 'lbs' is supported")
    return FlameModel(
        v_template=v_template, faces=faces.astype(np.int32), shapedirs=shapedirs[:, :, :N_SHAPE_MAX],
        exprdirs=shapedirs[:, :, N_SHAPE_MAX:], posedirs=posedirs, J_regressor=J_regressor,
        weights=weights, parents=parents, name=name, sha256=sha256, edition=detect_edition(name).id,
        warnings=tuple(warnings))


@guarded
def load_model(path: str | Path) -> FlameModel:
    """Load and validate a FLAME ``.pkl`` (any release, chumpy or not) or ``.npz`` model file.

    Only FlameError leaves: ModelLoadError for wrong content, FileFormatError, LimitError,
    FileAccessError, UnsafePickleError.
    """
    path = Path(path)
    data = safe_files.read_bytes(path, LARGE)
    model = model_from_arrays(read_model_file(path.name, data), name=path.name,
                              sha256=hashlib.sha256(data).hexdigest())
    return dataclasses.replace(model, path=str(path.resolve()), edition=detect_edition(path.absolute()).id)
