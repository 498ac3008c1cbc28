"""All-or-nothing scene edits: a failed import leaves no half-built datablocks behind, and an existing head
it changed as it was. The one rollback mechanism of the add-on's operators."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import bpy
import numpy as np

# The ID collections an import can add to; new members are removed if the block fails.
_COLLECTIONS = ("objects", "meshes", "armatures", "shape_keys", "actions", "cameras", "images",
                "collections", "materials", "node_groups", "movieclips")


def _snapshot() -> dict[str, set[int]]:
    return {name: {id_.as_pointer() for id_ in getattr(bpy.data, name)} for name in _COLLECTIONS}


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
    ``edited_head`` (an existing FLAME armature the block changes, see :class:`_HeadState`), the
    active object, selection and mode, and re-raise."""
    before = _snapshot()
    head_state = _HeadState(edited_head) if edited_head is not None else None
    active = context.view_layer.objects.active
    selected = [o for o in context.view_layer.objects if o.select_get()]
    try:
        yield
    except BaseException:
        if context.object is not None and context.object.mode != "OBJECT":
            bpy.ops.object.mode_set(mode="OBJECT")
        if head_state is not None:  # first: the head's camera may hold camera data made by the block
            head_state.restore(context)
        created = [id_ for name in _COLLECTIONS for id_ in getattr(bpy.data, name)
                   if id_.as_pointer() not in before[name]]
        bpy.data.batch_remove(created)
        for obj in context.view_layer.objects:
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
