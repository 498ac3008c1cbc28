"""The "FLAME" tab of the 3D viewport's sidebar, for the active head. Each section has a "?" how-to."""

from __future__ import annotations

import bpy

from . import head, model_picker, preferences
from .help import help_button


class FLAME_MT_build_head(bpy.types.Menu):
    """The model picker: models found in the Model folder preference, the demo head, any file."""

    bl_label = "Build Head"
    bl_idname = "FLAME_MT_build_head"

    def draw(self, context):
        layout = self.layout
        models = model_picker.found_models(context)
        for model in models:
            layout.operator("flame.import_model", text=model.label, icon="USER").filepath = str(model.path)
        if not models:
            layout.label(text="No Model folder set (or no FLAME files in it)", icon="INFO")
        layout.operator("preferences.addon_show", text="Set Model Folder...",
                        icon="PREFERENCES").module = preferences.ADDON_PACKAGE
        layout.separator()
        layout.operator("flame.add_demo_head", text="Demo Head", icon="USER")
        layout.operator("flame.import_model", text="Other Model File...", icon="FILE_FOLDER")


class _FlamePanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "FLAME"
    topic = ""  # help.TOPICS key of the "?" in the header

    def draw_header_preset(self, context):
        help_button(self.layout, self.topic)


class _HeadPanel(_FlamePanel):
    """A sub-panel shown when a head is active."""

    bl_parent_id = "VIEW3D_PT_flame"

    @classmethod
    def poll(cls, context):
        return head.find_head(context.active_object) is not None


class VIEW3D_PT_flame(_FlamePanel, bpy.types.Panel):
    bl_label = "FLAME Head"
    topic = "head"

    def draw(self, context):
        layout = self.layout
        armature = head.find_head(context.active_object)
        row = layout.row(align=True)
        row.menu(FLAME_MT_build_head.bl_idname, icon="IMPORT")
        row.operator("flame.track_video", icon="TRACKER")
        if armature is None:
            layout.label(text="Select a FLAME head to edit it", icon="INFO")
            return
        props = armature.flame
        box = layout.box()
        box.label(text=f"{armature.name}: {props.model_name}", icon="ARMATURE_DATA")
        edition = head.edition_of(armature)
        box.label(text=f"{edition.name}, {props.n_shape} identity, {props.n_expr} expression")
        box.label(text=f"Licence: {edition.licence}", icon="ERROR" if edition.commercial is False else "INFO")
        row = box.row(align=True)
        row.operator("flame.import_assets", text="Assets", icon="GROUP_VERTEX")
        row.operator("flame.delete_head", icon="TRASH")


class VIEW3D_PT_flame_animation(_HeadPanel, bpy.types.Panel):
    bl_label = "Animation"
    topic = "animation"

    def draw(self, context):
        layout = self.layout
        props = head.find_head(context.active_object).flame
        row = layout.row(align=True)
        row.operator("flame.import_sequence", icon="ANIM", text="Import Take")
        row.operator("flame.export_sequence", icon="EXPORT", text="Export")
        col = layout.column(align=True)
        for i, take in enumerate(props.takes):
            active = i == props.active_take
            op = col.operator("flame.switch_take", text=take.name, depress=active,
                              icon="PLAY" if active else "ACTION")
            op.take = take.name
        if not props.takes:
            layout.label(text="No takes yet: import or track a sequence", icon="INFO")
        elif 0 <= props.active_take < len(props.takes):
            take = props.takes[props.active_take]
            layout.label(text=f"{take.sequence_source or 'animation'}, frames {take.frame_start}-{take.frame_end}")
        layout.operator("flame.clear_animation", icon="X")


class VIEW3D_PT_flame_pose(_HeadPanel, bpy.types.Panel):
    bl_label = "Pose"
    topic = "pose"

    def draw(self, context):
        props = head.find_head(context.active_object).flame
        layout = self.layout
        layout.prop(props, "use_correctives")
        col = layout.column()
        for name in ("neck_rotation", "jaw_rotation", "eye_l_rotation", "eye_r_rotation"):
            col.prop(props, name)
        row = layout.row(align=True)
        row.operator("flame.reset_pose", icon="LOOP_BACK")
        row.operator("flame.update_joints", icon="BONE_DATA")


class _SlidersPanel(_HeadPanel):
    """Sub-panel listing the first ``sliders_shown`` shape-key sliders of one kind (keyable)."""

    bl_options = {"DEFAULT_CLOSED"}
    prefix = ""
    operators = ("", "")

    def draw(self, context):
        armature = head.find_head(context.active_object)
        layout = self.layout
        row = layout.row(align=True)
        row.operator(self.operators[0], icon="MOD_NOISE")
        row.operator(self.operators[1], icon="LOOP_BACK")
        if self.prefix == head.SHAPE_PREFIX:
            layout.operator("flame.import_identity", icon="IMPORT", text="Import Identity...")
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


class VIEW3D_PT_flame_expression(_SlidersPanel, bpy.types.Panel):
    bl_label = "Expression"
    topic = "expression"
    prefix = head.EXPR_PREFIX
    operators = ("flame.random_expression", "flame.reset_expression")


class VIEW3D_PT_flame_shape(_SlidersPanel, bpy.types.Panel):
    bl_label = "Identity"
    topic = "identity"
    prefix = head.SHAPE_PREFIX
    operators = ("flame.random_shape", "flame.reset_shape")


CLASSES = (FLAME_MT_build_head, VIEW3D_PT_flame, VIEW3D_PT_flame_animation, VIEW3D_PT_flame_pose,
           VIEW3D_PT_flame_expression, VIEW3D_PT_flame_shape)
PANELS = CLASSES[1:]
