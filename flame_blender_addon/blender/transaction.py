"""All-or-nothing scene edits: a failed import leaves no half-built datablocks behind, the scene's settings
(frame rate, range and current frame, render resolution, camera) and an existing head it changed as they
were. The one rollback mechanism of the add-on's operators."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import bpy
import numpy as np

# The ID collections an import can add to; new members are removed if the block fails.
_COLLECTIONS = ("objects", "meshes", "armatures", "shape_keys", "actions", "cameras", "images",
                "collections", "materials", "node_groups", "movieclips", "worlds", "lights")


# Scene settings an import sets (sequence_import: frame rate and range, render size, scene camera;
# appearance: the world).
_SCENE_SETTINGS = ("render.fps", "render.fps_base", "render.resolution_x", "render.resolution_y",
                   "render.resolution_percentage", "render.pixel_aspect_x", "render.pixel_aspect_y",
                   "frame_start", "frame_end", "frame_current", "camera", "world")


def _snapshot() -> dict[str, set[int]]:
    return {name: {id_.as_pointer() for id_ in getattr(bpy.data, name)} for name in _COLLECTIONS}


def _owner(scene: bpy.types.Scene, path: str) -> tuple[object, str]:
    *parents, attribute = path.split(".")
    return functools.reduce(getattr, parents, scene), attribute


class _SceneState:
    """The values of :data:`_SCENE_SETTINGS` of a scene."""

    def __init__(self, scene: bpy.types.Scene):
        self.scene = scene
        self.values = {path: getattr(*_owner(scene, path)) for path in _SCENE_SETTINGS}

    def restore(self) -> None:
        for _ in range(2):  # frame_start and frame_end clamp each other: the second pass lands
            for path, value in self.values.items():
                setattr(*_owner(self.scene, path), value)


class _HeadState:
    """What an import can change on an existing head: shape key values (and added keys), rest joints,
    actions, the armature object's transform, its takes and its camera object."""

    def __init__(self, armature: bpy.types.Object):
        self.armature = armature
        self.n_takes, self.active_take = len(armature.flame.takes), armature.flame.active_take
        self.camera = armature.flame.camera
        self.camera_state = _camera_state(self.camera) if self.camera is not None else None
        self.blocks = armature.flame.mesh.data.shape_keys.key_blocks
        self.values = np.empty(len(self.blocks), dtype=np.float32)
        self.blocks.foreach_get("value", self.values)
        self.joints = np.array([b.head_local for b in armature.data.bones])
        self.owners = [armature, armature.flame.mesh.data.shape_keys]
        self.actions = [o.animation_data.action if o.animation_data else None for o in self.owners]
        self.matrix = armature.matrix_world.copy()
        self.rotation_mode = armature.rotation_mode
        self.bone_modes = {b.name: b.rotation_mode for b in armature.pose.bones}

    def restore(self, context: bpy.types.Context) -> None:
        from .head import set_rest_joints  # head uses this module's active_in_mode

        for owner, action in zip(self.owners, self.actions, strict=True):
            if owner.animation_data:
                owner.animation_data.action = action
        for name in [kb.name for kb in self.blocks][len(self.values):]:
            self.armature.flame.mesh.shape_key_remove(self.blocks[name])
        self.blocks.foreach_set("value", self.values)
        set_rest_joints(context, self.armature, self.joints)
        self.armature.rotation_mode = self.rotation_mode
        self.armature.matrix_world = self.matrix
        for bone in self.armature.pose.bones:
            bone.rotation_mode = self.bone_modes.get(bone.name, bone.rotation_mode)
        props = self.armature.flame
        while len(props.takes) > self.n_takes:
            props.takes.remove(len(props.takes) - 1)
        props.active_take, props.camera = self.active_take, self.camera
        if self.camera_state is not None:
            data, parent, parent_inverse, matrix, action = self.camera_state
            self.camera.data, self.camera.parent, self.camera.matrix_parent_inverse = data, parent, parent_inverse
            self.camera.matrix_world = matrix
            if self.camera.animation_data or action is not None:
                (self.camera.animation_data or self.camera.animation_data_create()).action = action


def _camera_state(camera: bpy.types.Object) -> tuple:
    action = camera.animation_data.action if camera.animation_data else None
    return camera.data, camera.parent, camera.matrix_parent_inverse.copy(), camera.matrix_world.copy(), action


@contextlib.contextmanager
def rollback_on_error(context: bpy.types.Context, edited_head: bpy.types.Object | None = None) -> Iterator[None]:
    """Run a block that creates datablocks; if it raises, delete every datablock it created, restore
    the scene's settings (:data:`_SCENE_SETTINGS`), ``edited_head`` (an existing FLAME armature the
    block changes, see :class:`_HeadState`), the active object, selection and mode, and re-raise."""
    before = _snapshot()
    scene_state = _SceneState(context.scene)
    head_state = _HeadState(edited_head) if edited_head is not None else None
    active = context.view_layer.objects.active
    selected = [o for o in context.view_layer.objects if o.select_get()]
    try:
        yield
    except BaseException:
        if context.object is not None and context.object.mode != "OBJECT":
            bpy.ops.object.mode_set(mode="OBJECT")
        scene_state.restore()  # first: the scene's camera may be one the block created
        if head_state is not None:  # first too: the head's camera may hold camera data made by the block
            head_state.restore(context)
        created = [id_ for name in _COLLECTIONS for id_ in getattr(bpy.data, name)
                   if id_.as_pointer() not in before[name]]
        bpy.data.batch_remove(created)
        for obj in context.view_layer.objects:
            if obj is not None:  # bases of objects just removed can linger until the layer syncs
                obj.select_set(obj in selected)
        context.view_layer.objects.active = active
        raise


@contextlib.contextmanager
def active_in_mode(context: bpy.types.Context, obj: bpy.types.Object, mode: str) -> Iterator[None]:
    """Make ``obj`` active in ``mode`` for the block, then restore the previous active object and mode."""
    previous = context.view_layer.objects.active
    previous_mode = previous.mode if previous is not None else "OBJECT"
    if previous is not None and previous_mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode=mode)
    try:
        yield
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
        context.view_layer.objects.active = previous
        if previous is not None and previous_mode != "OBJECT":
            bpy.ops.object.mode_set(mode=previous_mode)
