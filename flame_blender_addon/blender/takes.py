"""Takes: every sequence import onto a head is a named take, and earlier takes are never lost.

A take (:class:`.properties.FlameTake`) holds the performance's actions (bones, expression, the
camera's motion), the camera data of its tracker (lens, background frames), the identity and
rest joints it was imported with, and the scene timing. The holding pointers keep them alive in a
saved .blend, and :func:`activate` puts a take back on the head. The head's camera *object* is one
per head and reused by every take.
"""

from __future__ import annotations

import bpy
import numpy as np
from mathutils import Matrix

from ..core.errors import FlameError
from . import compat, head
from .assets import landmark_objects, node_groups

ROLES = ("head", "expression", "camera")  # take.<role>_action, on: armature, shape keys, camera object


def _owners(armature: bpy.types.Object) -> dict[str, bpy.types.ID | None]:
    camera = head_camera(armature)
    return {"head": armature, "expression": armature.flame.mesh.data.shape_keys, "camera": camera}


def _take_actions(take) -> list[bpy.types.Action]:
    return [a for a in (take.head_action, take.expression_action, take.camera_action) if a is not None]


def _held(armature: bpy.types.Object) -> set[int]:
    """Pointers of the actions and camera data that the head's takes hold."""
    return {id_.as_pointer() for t in armature.flame.takes for id_ in [*_take_actions(t), t.camera_data] if id_}


def head_camera(armature: bpy.types.Object) -> bpy.types.Object | None:
    """The head's camera object, if it still exists in some scene."""
    camera = armature.flame.camera
    return camera if camera is not None and camera.users_scene else None


def unique_name(armature: bpy.types.Object, name: str) -> str:
    """``name``, or ``name.001``, ``name.002`` ... if the head already has a take of that name."""
    taken = {take.name for take in armature.flame.takes}
    candidate, i = name or "Take", 0
    while candidate in taken:
        i += 1
        candidate = f"{name or 'Take'}.{i:03d}"
    return candidate


def record(context: bpy.types.Context, armature: bpy.types.Object, name: str, camera_mode: str,
           base_matrix: Matrix) -> bpy.types.PropertyGroup:
    """Store what is on the head now as a new take ``name`` (made unique) and make it the active one.
    Its actions and camera data are named after it, except those an earlier take holds: they keep
    that take's names.

    ``camera_mode``: as imported ('NONE' when no camera was made); ``base_matrix``: the head object's
    transform when no take moves it."""
    props = armature.flame
    held = _held(armature)
    take = props.takes.add()
    take.name = unique_name(armature, name)
    for role, owner in _owners(armature).items():
        action = compat.action_of(owner)
        if action is not None and action.as_pointer() not in held:
            action.name = f"{armature.name}.{take.name}.{role}"
        setattr(take, f"{role}_action", action)
    camera = head_camera(armature)
    take.camera_mode = camera_mode if camera is not None else "NONE"
    if take.camera_mode != "NONE":
        take.camera_data = camera.data
        if camera.data.as_pointer() not in held:
            camera.data.name = f"{armature.name}.{take.name}"
    take.base_matrix = [v for row in base_matrix for v in row]
    scene = context.scene
    take.frame_start, take.frame_end = scene.frame_start, scene.frame_end
    take.fps, take.fps_base = scene.render.fps, scene.render.fps_base
    take.resolution = scene.render.resolution_x, scene.render.resolution_y
    take.sequence_path, take.sequence_source = props.sequence_path, props.sequence_source
    _store_identity(take, armature)
    props.active_take = len(props.takes) - 1
    return take


def _store_identity(take, armature: bpy.types.Object) -> None:
    take["shape"] = head.coefficient_values(armature)[0].tolist()
    take["rest_joints"] = np.array([b.head_local for b in armature.data.bones]).ravel().tolist()


def update_identity(armature: bpy.types.Object) -> None:
    """Store the head's identity and rest joints in its active take (after a new identity was set), so
    that switching takes keeps it."""
    props = armature.flame
    if 0 <= props.active_take < len(props.takes):
        _store_identity(props.takes[props.active_take], armature)


def has_animation(armature: bpy.types.Object) -> bool:
    """Whether the head (bones, shape keys) or its camera is animated now."""
    return any(compat.action_of(owner) is not None for owner in _owners(armature).values())


def stash(context: bpy.types.Context, armature: bpy.types.Object) -> None:
    """Before a new take: keep animation made by hand as a take of its own, then take every action
    off the head and its camera and put the head object back where no take moves it.

    The hand-made take ('Before import') holds what is on the head now: the hand-made actions, named
    after it, and the actions and camera of the active take still on the head, which keep its names."""
    props = armature.flame
    held = _held(armature)
    owners = _owners(armature)
    active = props.takes[props.active_take] if 0 <= props.active_take < len(props.takes) else None
    if any(a is not None and a.as_pointer() not in held for a in map(compat.action_of, owners.values())):
        camera_mode, base = (active.camera_mode, _base_matrix(active)) if active else ("NONE", armature.matrix_world)
        record(context, armature, "Before import", camera_mode, base.copy())
    if active is not None:
        armature.matrix_world = _base_matrix(active)
    for owner in owners.values():
        if owner is not None:
            compat.assign_action(owner, None)


def _base_matrix(take) -> Matrix:
    return Matrix(np.reshape(take.base_matrix, (4, 4)).tolist())


def find(armature: bpy.types.Object, name: str) -> int:
    """Index of the take ``name``, or FlameError."""
    index = armature.flame.takes.find(name)
    if index < 0:
        names = ", ".join(t.name for t in armature.flame.takes) or "none"
        raise FlameError(f"'{armature.name}' has no take '{name}' (takes: {names})")
    return index


def activate(context: bpy.types.Context, armature: bpy.types.Object, index: int) -> None:
    """Put take ``index`` back on the head: its actions, identity, rest joints, camera and timing."""
    props = armature.flame
    take = props.takes[index]
    owners = _owners(armature)
    for role, owner in owners.items():
        if owner is not None:
            compat.assign_action(owner, getattr(take, f"{role}_action"))
    if "shape" in take:
        head.set_shape(props.mesh, np.asarray(take["shape"], dtype=np.float64))
    if "rest_joints" in take:
        head.set_rest_joints(context, armature, np.reshape(take["rest_joints"], (-1, 3)))
    camera = owners["camera"]
    if take.camera_mode != "STATIC_CAMERA":
        armature.matrix_world = _base_matrix(take)
    if camera is not None and take.camera_mode != "NONE":
        camera.data = take.camera_data or camera.data
        if take.camera_mode == "MOVING_CAMERA":
            camera.parent, camera.matrix_parent_inverse = armature, Matrix.Identity(4)
        else:
            camera.parent, camera.matrix_world = None, _base_matrix(take)
        context.scene.camera = camera
    scene = context.scene
    scene.frame_start, scene.frame_end = take.frame_start, take.frame_end
    scene.render.fps, scene.render.fps_base = take.fps, take.fps_base
    scene.render.resolution_x, scene.render.resolution_y = take.resolution
    props.sequence_path, props.sequence_source = take.sequence_path, take.sequence_source
    props.active_take = index
    scene.frame_set(scene.frame_current)


def remove(armature: bpy.types.Object, index: int) -> None:
    """Forget take ``index``; its actions and camera data are deleted when nothing else uses them."""
    props = armature.flame
    take = props.takes[index]
    actions = _take_actions(take)
    data = take.camera_data
    for owner in _owners(armature).values():  # taken off the head, if it is on now
        if owner is not None and compat.action_of(owner) in actions:
            compat.assign_action(owner, None)
    props.takes.remove(index)
    if props.active_take >= index:
        props.active_take = props.active_take - 1 if props.active_take > index else -1
    unused = [a for a in actions if a.users == 0]
    if data is not None and data.users == 0:
        unused += [data] + [a for a in [compat.action_of(data)] if a is not None and a.users == 1]
    bpy.data.batch_remove(unused)


def owned_ids(armature: bpy.types.Object) -> list[bpy.types.ID]:
    """Every datablock a head made: its objects and their data, its camera and every take's camera
    data, their background images, and every action of its takes or on it now."""
    props = armature.flame
    mesh = props.mesh
    cameras = [t.camera_data for t in props.takes if t.camera_data is not None]
    objects = [armature, mesh, props.camera]
    cameras += [props.camera.data] if props.camera is not None else []
    key = mesh.data.shape_keys if mesh is not None else None
    ids = [o for o in objects if o is not None] + [o.data for o in objects[:2] if o is not None] + cameras
    ids += [key] if key is not None else []
    animated = [armature, props.camera, key, *cameras]
    ids += [a for t in props.takes for a in _take_actions(t)]
    ids += [a for a in map(compat.action_of, animated) if a is not None]
    ids += [bg.image for data in cameras for bg in data.background_images if bg.image is not None]
    ids += [id_ for obj in landmark_objects(armature) for id_ in (obj, obj.data, *node_groups(obj))]
    return list({id_.as_pointer(): id_ for id_ in ids}.values())
