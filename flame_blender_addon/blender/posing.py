"""Posing helpers behind the panel: Euler-degree sliders over the bones' quaternions, and the
correctives toggle. Nothing here is stored: the quaternions and the drivers stay the rig's state."""

from __future__ import annotations

import math

import bpy
from mathutils import Euler

from .head import POSE_PREFIX, zero_keys

EULER_ORDER = "XYZ"  # FLAME axes: X nods (or opens the jaw), Y turns, Z tilts


def _pose_bone(props, bone: str) -> bpy.types.PoseBone | None:
    armature = props.id_data
    pose = armature.pose if armature.type == "ARMATURE" and props.is_head else None
    return pose.bones.get(bone) if pose is not None else None


def euler_slider(bone: str, soft_degrees: float) -> dict:
    """Keyword arguments of a display-only FloatVectorProperty showing ``bone``'s rotation as Euler
    angles (``EULER_ORDER``, FLAME axes); setting it writes the bone's quaternion."""

    def get(props) -> tuple[float, float, float]:
        pose_bone = _pose_bone(props, bone)
        if pose_bone is None:
            return (0.0, 0.0, 0.0)
        return tuple(pose_bone.rotation_quaternion.normalized().to_euler(EULER_ORDER))

    def set_(props, value) -> None:
        pose_bone = _pose_bone(props, bone)
        if pose_bone is not None:
            pose_bone.rotation_quaternion = Euler(value, EULER_ORDER).to_quaternion()

    limit = math.radians(soft_degrees)
    return {"size": 3, "subtype": "EULER", "unit": "ROTATION", "get": get, "set": set_, "options": set(),
            "soft_min": -limit, "soft_max": limit, "step": 100,
            "description": f"Rotation of the '{bone}' bone in degrees (X nods or opens, Y turns, Z tilts); "
                           "it edits the bone's quaternion"}


def corrective_drivers(props) -> list[bpy.types.FCurve]:
    """The drivers of the ``pose*`` corrective shape keys of a head ([] for other objects)."""
    mesh = props.mesh if props.is_head else None
    key = mesh.data.shape_keys if mesh is not None and mesh.type == "MESH" else None
    if key is None or key.animation_data is None:
        return []
    prefix = f'key_blocks["{POSE_PREFIX}'
    return [fc for fc in key.animation_data.drivers if fc.data_path.startswith(prefix)]


def correctives_on(props) -> bool:
    drivers = corrective_drivers(props)
    return bool(drivers) and not all(fc.mute for fc in drivers)


def set_correctives(props, value: bool) -> None:
    """Mute (``value`` False) or unmute the corrective drivers; muted keys rest at 0."""
    drivers = corrective_drivers(props)
    for fc in drivers:
        fc.mute = not value
    if drivers and not value:
        zero_keys(props.mesh, lambda name: name.startswith(POSE_PREFIX))
    if drivers:
        props.mesh.data.shape_keys.update_tag()
        props.id_data.update_tag()
