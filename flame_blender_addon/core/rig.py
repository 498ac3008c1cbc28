"""Rig maths shared by the Blender builder and the sequence importer (numpy only).

Contract: every bone rests at its joint with identity orientation in armature space (FLAME
axes), so a pose bone's quaternion *is* the FLAME joint rotation and the root bone's location
*is* FLAME's translation. The armature object carries the Y-up -> Z-up rotation.
"""

from __future__ import annotations

import numpy as np

from .errors import FlameError
from .model import JOINT_NAMES, PARENTS

# FLAME (+Y up, +Z forward) -> Blender (+Z up, face looking along -Y): +90 degrees about X.
FLAME_TO_BLENDER = np.array([[1.0, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]])

BONE_LENGTHS = (0.04, 0.04, 0.03, 0.015, 0.015)

# Blender clamps a shape key's value to its slider range, at most [-10, 10]. A coefficient beyond it
# keeps 10 (or -10) on its own key and puts the rest on an overflow key whose offset is
# OVERFLOW_SCALE times the component's: coefficient = key value + OVERFLOW_SCALE * overflow value.
SLIDER_LIMIT = 10.0
OVERFLOW_SCALE = 10.0

# (R - I)[row, col] of a rotation given as a quaternion (w, x, y, z), normalised inside so the value
# is exact for any non-zero quaternion (Blender normalises before posing, too).
_ENTRY = {
    (0, 0): "-2*(y*y+z*z)", (0, 1): "2*(x*y-w*z)", (0, 2): "2*(x*z+w*y)",
    (1, 0): "2*(x*y+w*z)", (1, 1): "-2*(x*x+z*z)", (1, 2): "2*(y*z-w*x)",
    (2, 0): "2*(x*z-w*y)", (2, 1): "2*(y*z+w*x)", (2, 2): "-2*(x*x+y*y)",
}


def corrective_drivers() -> list[tuple[str, str]]:
    """The 36 pose-corrective drivers: (bone name, simple expression in w, x, y, z), k = 9(j-1)+3r+c."""
    return [(JOINT_NAMES[j], f"{_ENTRY[(r, c)]}/(w*w+x*x+y*y+z*z)")
            for j in range(1, len(JOINT_NAMES)) for r in range(3) for c in range(3)]


def bone_tails(heads: np.ndarray) -> np.ndarray:
    """heads: (J, 3) joint positions -> tails (J, 3) along +Y, so rest orientations are identity."""
    return heads + np.outer(BONE_LENGTHS, [0.0, 1.0, 0.0])


def bone_locations(rotations: np.ndarray, joint_shift: np.ndarray, translation: np.ndarray | None = None) -> np.ndarray:
    """Pose-bone locations that make a rig resting at joints J0 reproduce joints J0 + d exactly.

    rotations: (T, J, 3, 3) local rotations; joint_shift: (T, J, 3) d = J(t) - J0;
    translation: (T, 3) FLAME translation, added to the root. Returns (T, J, 3) = (I - R_j) d_j,
    plus translation on the root. The parents' terms cancel, so no hierarchy correction is needed.
    """
    loc = joint_shift - np.einsum("tjrc,tjc->tjr", rotations, joint_shift)
    if translation is not None:
        loc[:, 0] += translation
    return loc


def split_for_sliders(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients (...) -> (key values, overflow key values), both within the slider range, with
    ``values = keys + OVERFLOW_SCALE * overflow`` exactly. The overflow is zero within +-SLIDER_LIMIT."""
    values = np.asarray(values, dtype=np.float64)
    keys = np.clip(values, -SLIDER_LIMIT, SLIDER_LIMIT)
    overflow = (values - keys) / OVERFLOW_SCALE
    if values.size and np.abs(overflow).max() > SLIDER_LIMIT:
        limit = SLIDER_LIMIT * (1 + OVERFLOW_SCALE)
        raise FlameError(f"a coefficient of {np.abs(values).max():.4g} is beyond the +-{limit:g} a FLAME head "
                         "can hold (no real fit comes near it)")
    return keys, overflow


def parent_names() -> list[str | None]:
    """Parent bone name per bone, None for the root."""
    return [None if p < 0 else JOINT_NAMES[p] for p in PARENTS]
