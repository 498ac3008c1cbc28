"""Operators on a head's takes and on the head as a whole: switch take, clear animation, delete head."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, StringProperty

from . import compat, head, takes
from .operator_base import HeadOperator, heads_in_reach, poll_head
from .sequence_import import EYELID_KEYS


class FLAME_OT_switch_take(HeadOperator, bpy.types.Operator):
    """Put this take's animation, identity, camera and timing back on the head"""

    bl_idname = "flame.switch_take"
    bl_label = "Switch Take"
    bl_options = {"REGISTER", "UNDO"}

    take: StringProperty(name="Take", description="Name of the take to show")

    @classmethod
    def poll(cls, context):
        if not poll_head(cls, context):
            return False
        if any(len(a.flame.takes) for a in heads_in_reach(context)):
            return True
        cls.poll_message_set("The head has no takes yet: import a sequence (File > Import > FLAME Sequence)")
        return False

    def run(self, context, armature):
        takes.activate(context, armature, takes.find(armature, self.take))
        return {"FINISHED"}


class FLAME_OT_clear_animation(HeadOperator, bpy.types.Operator):
    """Remove the head's current take (or every take) and return it to its rest pose"""

    bl_idname = "flame.clear_animation"
    bl_label = "Clear Animation"
    bl_options = {"REGISTER", "UNDO"}

    all_takes: BoolProperty(name="All takes", default=False,
                            description="Remove every take of the head, not only the current one")

    @classmethod
    def poll(cls, context):
        if not poll_head(cls, context):
            return False
        if any(a.flame.takes or takes.has_animation(a) for a in heads_in_reach(context)):
            return True
        cls.poll_message_set("The head has no animation to clear")
        return False

    def run(self, context, armature):
        props = armature.flame
        indices = range(len(props.takes)) if self.all_takes else \
            [props.active_take] if 0 <= props.active_take < len(props.takes) else []
        for index in sorted(indices, reverse=True):
            takes.remove(armature, index)
        camera = takes.head_camera(armature)
        for owner in (armature, props.mesh.data.shape_keys, camera):  # animation made by hand, too
            action = compat.action_of(owner)
            if action is None:
                continue
            compat.assign_action(owner, None)
            if action.users == 0:
                bpy.data.actions.remove(action)
        head.rest_bones(armature)  # rest pose: expression and eyelids at zero too, the identity stays
        head.zero_keys(props.mesh, lambda name: name.startswith(head.EXPR_PREFIX) or name in EYELID_KEYS)
        props.active_take = -1
        props.sequence_path = props.sequence_source = ""
        context.scene.frame_set(context.scene.frame_current)
        self.report({"INFO"}, f"Cleared the animation of {armature.name}; {len(props.takes)} takes left")
        return {"FINISHED"}


class FLAME_OT_delete_head(HeadOperator, bpy.types.Operator):
    """Delete the head with everything it made: mesh, camera, takes' actions and background frames"""

    bl_idname = "flame.delete_head"
    bl_label = "Delete Head"
    bl_options = {"REGISTER", "UNDO"}

    def invoke(self, context, event):
        return context.window_manager.invoke_confirm(self, event)

    def run(self, context, armature):
        name = armature.name
        if context.object is not None and context.object.mode != "OBJECT":
            bpy.ops.object.mode_set(mode="OBJECT")
        owned = takes.owned_ids(armature)
        keys = {id_.as_pointer() for id_ in owned}
        users = bpy.data.user_map(subset=owned)
        # what another object still uses (a shared action or image) stays
        gone = [id_ for id_ in owned if all(u.as_pointer() in keys for u in users.get(id_, ()))
                or isinstance(id_, bpy.types.Object)]
        bpy.data.batch_remove(gone)
        self.report({"INFO"}, f"Deleted {name} and {len(gone) - 1} datablocks it made")
        return {"FINISHED"}


CLASSES = (FLAME_OT_switch_take, FLAME_OT_clear_animation, FLAME_OT_delete_head)
