"""The "FLAME" tab of the 3D viewport's sidebar, for the active head."""

from __future__ import annotations

import bpy

from . import head


class VIEW3D_PT_flame(bpy.types.Panel):
    bl_label = "FLAME Head"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "FLAME"

    def draw(self, context):
        layout = self.layout
        armature = head.find_head(context.active_object)
        col = layout.column(align=True)
        col.operator("flame.import_model", icon="IMPORT")
        col.operator("flame.add_demo_head", icon="USER")
        col.operator("flame.track_video", icon="TRACKER")
        if armature is None:
            layout.label(text="Select a FLAME head to edit it", icon="INFO")
            return
        props = armature.flame
        box = layout.box()
        box.label(text=f"{armature.name}: {props.model_name}", icon="ARMATURE_DATA")
        box.label(text=f"{props.version}, {props.n_shape} identity, {props.n_expr} expression")
        row = layout.row(align=True)
        row.operator("flame.import_sequence", icon="ANIM")
        row.operator("flame.export_sequence", icon="EXPORT", text="Export")
        if props.sequence_path:
            layout.label(text=f"Animation: {props.sequence_source}", icon="ACTION")
        row = layout.row(align=True)
        row.operator("flame.update_joints", icon="BONE_DATA")
        row.operator("flame.reset_pose", icon="LOOP_BACK")


class _SlidersPanel:
    """Sub-panel listing the first ``sliders_shown`` shape-key sliders of one kind (keyable)."""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "FLAME"
    bl_parent_id = "VIEW3D_PT_flame"
    bl_options = {"DEFAULT_CLOSED"}
    prefix = ""
    operators = ("", "")

    @classmethod
    def poll(cls, context):
        return head.find_head(context.active_object) is not None

    def draw(self, context):
        armature = head.find_head(context.active_object)
        layout = self.layout
        row = layout.row(align=True)
        row.operator(self.operators[0], icon="MOD_NOISE")
        row.operator(self.operators[1], icon="LOOP_BACK")
        layout.prop(armature.flame, "sliders_shown")
        blocks = armature.flame.mesh.data.shape_keys.key_blocks
        col = layout.column(align=True)
        names = [kb.name for kb in blocks
                 if head.is_coefficient_key(kb.name, self.prefix) and not kb.name.endswith(head.OVERFLOW_SUFFIX)]
        names = names[: armature.flame.sliders_shown]
        coefficients = head.coefficients_of(blocks, names, lambda n: blocks[n].value)
        for name, coefficient in zip(names, coefficients, strict=True):
            row = col.row(align=True)
            row.prop(blocks[name], "value", text=name, slider=True)
            if coefficient != blocks[name].value:  # beyond the slider: its overflow key holds the rest
                row.label(text=f"= {coefficient:.2f}")


class VIEW3D_PT_flame_pose(bpy.types.Panel):
    bl_label = "Pose"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "FLAME"
    bl_parent_id = "VIEW3D_PT_flame"

    @classmethod
    def poll(cls, context):
        return head.find_head(context.active_object) is not None

    def draw(self, context):
        armature = head.find_head(context.active_object)
        col = self.layout.column()
        for bone in armature.pose.bones:
            col.prop(bone, "rotation_quaternion", text=bone.name)
        col.prop(armature.pose.bones["root"], "location", text="Translation")


class VIEW3D_PT_flame_expression(_SlidersPanel, bpy.types.Panel):
    bl_label = "Expression"
    prefix = head.EXPR_PREFIX
    operators = ("flame.random_expression", "flame.reset_expression")


class VIEW3D_PT_flame_shape(_SlidersPanel, bpy.types.Panel):
    bl_label = "Identity"
    prefix = head.SHAPE_PREFIX
    operators = ("flame.random_shape", "flame.reset_shape")


CLASSES = (VIEW3D_PT_flame, VIEW3D_PT_flame_pose, VIEW3D_PT_flame_expression, VIEW3D_PT_flame_shape)
