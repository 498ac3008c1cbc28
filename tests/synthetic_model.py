"""Random FLAME-format models for tests and benchmarks (not a face; see ``flame_blender_addon.demo.head`` for one).

The arrays have FLAME's keys, layout and realistic magnitudes: FLAME-sized by default (5023
vertices, 9976 faces, 400 components, 36 correctives, 5 joints), smaller on request.
"""

from __future__ import annotations

import numpy as np

from flame_blender_addon.core.model import (
    N_COMPONENTS,
    N_FACES,
    N_JOINTS,
    N_POSE_FEATURES,
    N_SHAPE_MAX,
    N_VERTS,
    kintree_table,
)


def random_model_arrays(n_verts: int = N_VERTS, n_faces: int = N_FACES,
                        n_components: int = N_COMPONENTS, seed: int = 0,
                        joint_spread: float = 1.0) -> dict[str, np.ndarray]:
    """A dict in FLAME's pickle layout (``v_template``, ``f``, ``shapedirs``, ``posedirs``, ...).

    Vertices lie on a head-sized ellipsoid (metres); blendshapes are a few millimetres per unit;
    skin weights are sparse and sum to one; each joint regresses from a few dozen vertices, the
    eyes from opposite sides so joint 3 has positive x. ``joint_spread`` scales how far expression
    components move the joints (real models: millimetres to centimetres).
    """
    if n_components <= N_SHAPE_MAX:
        raise ValueError(f"need more than {N_SHAPE_MAX} components (identity then expression)")
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=(n_verts, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    v_template = direction * np.array([0.08, 0.11, 0.09])
    faces = _random_triangles(rng, n_verts, n_faces)
    decay = 1.0 / (1.0 + np.arange(n_components) % N_SHAPE_MAX / 30.0)
    shapedirs = rng.normal(scale=2e-3, size=(n_verts, 3, n_components)) * decay
    posedirs = rng.normal(scale=1e-3, size=(n_verts, 3, N_POSE_FEATURES))

    weights = rng.random((n_verts, N_JOINTS)) ** 4  # mostly one or two dominant joints
    weights /= weights.sum(axis=1, keepdims=True)

    J_regressor = np.zeros((N_JOINTS, n_verts))
    groups = [np.flatnonzero(v_template[:, 1] < -0.05), np.flatnonzero(v_template[:, 1] < 0.0),
              np.flatnonzero(v_template[:, 2] > 0.03), np.flatnonzero(v_template[:, 0] > 0.03),
              np.flatnonzero(v_template[:, 0] < -0.03)]
    for j, group in enumerate(groups):
        chosen = rng.choice(group, size=min(32, len(group)), replace=False)
        J_regressor[j, chosen] = rng.random(len(chosen)) + 0.5
        J_regressor[j] /= J_regressor[j].sum()
    shapedirs[:, :, N_SHAPE_MAX:] *= joint_spread
    return {
        "v_template": v_template, "f": faces.astype(np.uint32), "shapedirs": shapedirs,
        "posedirs": posedirs, "J_regressor": J_regressor, "weights": weights,
        "kintree_table": kintree_table(), "J": J_regressor @ v_template,
        "bs_style": "lbs", "bs_type": "lrotmin",
    }


def _random_triangles(rng: np.random.Generator, n_verts: int, n_faces: int) -> np.ndarray:
    """n_faces triangles with three distinct corners each. -> (n_faces, 3) int64."""
    a = rng.integers(0, n_verts, n_faces)
    b = (a + rng.integers(1, n_verts, n_faces)) % n_verts
    c = rng.integers(0, n_verts, n_faces)
    bad = (c == a) | (c == b)
    while bad.any():
        c[bad] = rng.integers(0, n_verts, bad.sum())
        bad = (c == a) | (c == b)
    return np.stack([a, b, c], axis=1)
