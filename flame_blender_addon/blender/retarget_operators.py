"""Retarget operators and the "Retarget" sub-panel: a FLAME head <-> the user's own character.

All take the character's mesh object by name (``mesh``; default: the panel's character, else the
active mesh) and, where a head is involved, ``target`` (default: the active head). Each is one undo
step, works under ``blender --background`` and leaves the scene unchanged when it fails.
"""

from __future__ import annotations

import bpy
from bpy.props import FloatProperty, IntProperty, PointerProperty, StringProperty

from . import head, retarget
from .operator_base import HeadOperator, reports_errors
from .progress import progress
from .transaction import rollback_on_error

LOOSE_FIT = 0.5  # a fit whose RMS is over this share of Max RMS is reported as loose (human heads: under 0.3)


def _is_character(_self, obj: bpy.types.Object) -> bool:
    return obj.type == "MESH" and not (obj.parent is not None and obj.parent.type == "ARMATURE"
                                       and obj.parent.flame.mesh == obj)


class FlameRetargetSettings(bpy.types.PropertyGroup):
    """Per-scene choices of the Retarget panel."""

    character: PointerProperty(name="Character", type=bpy.types.Object, poll=_is_character,
                               description="Your character's mesh (any topology, units and key set)")
    head_bone: StringProperty(name="Head bone", description="Bone of the character's armature that takes "
                                                            "the head's rigid motion (empty: the object)")
    eye_bone_left: StringProperty(name="Left eye bone", description="Bone for the subject's left eye")
    eye_bone_right: StringProperty(name="Right eye bone", description="Bone for the subject's right eye")


class _MeshOperator:
    """Mixin: the character mesh by name, errors reported as one line and CANCELLED, all-or-nothing."""

    bl_options = {"REGISTER", "UNDO"}
    label = ""

    mesh: StringProperty(name="Character", description="The character's mesh object (default: the panel's "
                                                       "character, else the active mesh)", options={"SKIP_SAVE"})

    def character_name(self, context) -> str:
        if self.mesh:
            return self.mesh
        chosen = context.scene.flame_retarget.character
        if chosen is not None:
            return chosen.name
        active = context.active_object
        return active.name if active is not None and _is_character(None, active) else ""

    def guarded(self, context, work, armature: bpy.types.Object | None = None) -> set[str]:
        """Run ``work(character, report)``; if it fails, the scene, ``armature`` (the head), the character
        and its own armature are as they were."""
        obj = retarget.character(self.character_name(context))
        edited = [obj] + [rig for rig in (retarget.character_rig(obj),) if rig is not None]
        with rollback_on_error(context, edited_head=armature, edited=edited), progress(context, self.label) as report:
            message = work(obj, report)
        self.report({"INFO"}, message)
        return {"FINISHED"}


class _RetargetOperator(_MeshOperator, HeadOperator):
    """Mixin: a FLAME head (``target``) and a character (``mesh``)."""

    def run(self, context, armature):
        return self.guarded(context, lambda obj, report: self.work(context, armature, obj, report), armature)

    def work(self, context, armature, obj, report) -> str:
        raise NotImplementedError


class _FrameRange:
    frame_start: IntProperty(name="Start", default=-1, min=-1, description="First frame (-1: the scene's)")
    frame_end: IntProperty(name="End", default=-1, min=-1, description="Last frame (-1: the scene's)")

    def frames(self, context) -> tuple[int, int]:
        scene = context.scene
        return (scene.frame_start if self.frame_start < 0 else self.frame_start,
                scene.frame_end if self.frame_end < 0 else self.frame_end)


class _Bones:
    head_bone: StringProperty(name="Head bone", description="Character's bone for the rigid head motion")
    eye_bone_left: StringProperty(name="Left eye bone")
    eye_bone_right: StringProperty(name="Right eye bone")

    def bones(self, context) -> tuple[str, tuple[str, str]]:
        settings = context.scene.flame_retarget
        return (self.head_bone or settings.head_bone,
                (self.eye_bone_left or settings.eye_bone_left, self.eye_bone_right or settings.eye_bone_right))


class FLAME_OT_fit_to_mesh(_RetargetOperator, bpy.types.Operator):
    """Fit the FLAME head to your character's head (placement, scale, identity) and bind the character to it"""

    bl_idname, bl_label, label = "flame.fit_to_mesh", "Fit to Mesh", "Fitting FLAME"

    n_shape: IntProperty(name="Identity components", default=100, min=0, max=300)
    max_rms: FloatProperty(name="Max RMS", default=0.01, min=1e-4, max=0.1, unit="LENGTH",
                           description="Give up when the fit's RMS distance (FLAME scale) stays above this")

    def work(self, context, armature, obj, report) -> str:
        fit = retarget.fit(context, armature, obj, self.n_shape, self.max_rms, report)
        if fit.rms_m > LOOSE_FIT * self.max_rms:
            self.report({"WARNING"}, f"loose fit: RMS {fit.rms_m * 1000:.1f} mm (FLAME scale) is over "
                        f"{LOOSE_FIT:.0%} of Max RMS; is '{obj.name}' a human head? Landmark hints may help")
        hints = f", {fit.n_landmarks} landmark hints" if fit.n_landmarks else ""
        return (f"Fitted {armature.name} to {obj.name}: RMS {fit.rms:.4g} / p99 {fit.p99:.4g} (character units), "
                f"{fit.rms_m * 1000:.2f} / {fit.p99_m * 1000:.2f} mm (FLAME) over the {100 * fit.counted:.0f}% "
                f"of its vertices on the head{hints}")


class FLAME_OT_transfer_rig(_RetargetOperator, bpy.types.Operator):
    """Make the fitted character follow the FLAME head: skin weights, Armature modifier, driven expression keys"""

    bl_idname, bl_label, label = "flame.transfer_rig", "Transfer Rig", "Transferring the rig"

    def work(self, context, armature, obj, report) -> str:
        n = retarget.transfer_rig(context, armature, obj, report)
        return f"{obj.name} follows {armature.name}: 5 vertex groups, {n} driven shape keys"


class FLAME_OT_retarget_to_shape_keys(_FrameRange, _Bones, _RetargetOperator, bpy.types.Operator):
    """Key your character's own shape keys (ARKit or any set) from the FLAME head's performance"""

    bl_idname, bl_label, label = "flame.retarget_to_shape_keys", "FLAME → Character Keys", "Retargeting"

    def work(self, context, armature, obj, report) -> str:
        start, end = self.frames(context)
        head_bone, eyes = self.bones(context)
        weights = retarget.retarget_to_keys(context, armature, obj, start, end, head_bone, eyes, report)
        return f"Keyed {weights.shape[1]} shape keys of {obj.name} over {weights.shape[0]} frames"


class FLAME_OT_retarget_from_shape_keys(_FrameRange, _RetargetOperator, bpy.types.Operator):
    """Key the FLAME head's expression and jaw from your character's shape-key animation"""

    bl_idname, bl_label, label = "flame.retarget_from_shape_keys", "Character Keys → FLAME", "Retargeting"

    def work(self, context, armature, obj, report) -> str:
        start, end = self.frames(context)
        expr, _ = retarget.retarget_from_keys(context, armature, obj, start, end, report)
        return f"Keyed {armature.name}'s expression and jaw over {len(expr)} frames"


class FLAME_OT_import_livelink(_Bones, _MeshOperator, bpy.types.Operator):
    """Key your character's ARKit shape keys from a Live Link Face (iPhone) CSV take"""

    bl_idname, bl_label, label = "flame.import_livelink", "Import Live Link Face CSV", "Importing take"

    filepath: StringProperty(name="File Path", subtype="FILE_PATH")
    filter_glob: StringProperty(default="*.csv", options={"HIDDEN"})
    frame_start: IntProperty(name="Start frame", default=1)

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    @reports_errors
    def execute(self, context):
        def work(obj, report) -> str:
            head_bone, eyes = self.bones(context)
            take = retarget.import_livelink(context, obj, bpy.path.abspath(self.filepath), self.frame_start,
                                            head_bone, eyes)
            return f"Keyed {obj.name} from {len(take.times)} samples at {take.fps:g} fps"
        if not self.filepath:
            self.report({"ERROR"}, "No Live Link Face CSV given")
            return {"CANCELLED"}
        return self.guarded(context, work)


class FLAME_OT_export_livelink(_FrameRange, _MeshOperator, bpy.types.Operator):
    """Write your character's ARKit shape-key animation as a Live Link Face CSV (Unreal, iPhone tools)"""

    bl_idname, bl_label, label = "flame.export_livelink", "Export Live Link Face CSV", "Exporting take"
    bl_options = {"REGISTER"}

    filepath: StringProperty(name="File Path", subtype="FILE_PATH")
    filter_glob: StringProperty(default="*.csv", options={"HIDDEN"})

    def invoke(self, context, event):
        if not self.filepath:
            self.filepath = "take.csv"
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    @reports_errors
    def execute(self, context):
        if not self.filepath:
            self.report({"ERROR"}, "No CSV file path given")
            return {"CANCELLED"}
        start, end = self.frames(context)
        return self.guarded(context, lambda obj, report: (
            f"Wrote {retarget.export_livelink(context, obj, self.filepath, start, end)} rows to {self.filepath}"))


class VIEW3D_PT_flame_retarget(bpy.types.Panel):
    bl_label = "Retarget"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "FLAME"
    bl_parent_id = "VIEW3D_PT_flame"
    bl_options = {"DEFAULT_CLOSED"}

    @classmethod
    def poll(cls, context):
        return head.find_head(context.active_object) is not None

    def draw(self, context):
        layout = self.layout
        settings = context.scene.flame_retarget
        layout.prop(settings, "character")
        obj = settings.character
        name = obj.name if obj is not None else ""
        col = layout.column(align=True)
        col.enabled = obj is not None
        col.operator(FLAME_OT_fit_to_mesh.bl_idname, icon="SNAP_FACE").mesh = name
        if obj is not None and retarget.PROP_RMS_M in obj:
            col.label(text=f"Fit RMS {obj[retarget.PROP_RMS_M] * 1000:.2f} mm, "
                           f"p99 {obj[retarget.PROP_P99_M] * 1000:.2f} mm (FLAME)", icon="INFO")
        col.operator(FLAME_OT_transfer_rig.bl_idname, icon="ARMATURE_DATA").mesh = name
        row = col.row(align=True)
        row.operator(FLAME_OT_retarget_to_shape_keys.bl_idname, text="To Keys", icon="SHAPEKEY_DATA").mesh = name
        row.operator(FLAME_OT_retarget_from_shape_keys.bl_idname, text="From Keys", icon="USER").mesh = name
        box = layout.box()
        box.prop(settings, "head_bone")
        box.prop(settings, "eye_bone_left")
        box.prop(settings, "eye_bone_right")
        row = layout.row(align=True)
        row.enabled = obj is not None
        row.operator(FLAME_OT_import_livelink.bl_idname, text="Live Link In", icon="IMPORT").mesh = name
        row.operator(FLAME_OT_export_livelink.bl_idname, text="Live Link Out", icon="EXPORT").mesh = name


CLASSES = (FlameRetargetSettings, FLAME_OT_fit_to_mesh, FLAME_OT_transfer_rig, FLAME_OT_retarget_to_shape_keys,
           FLAME_OT_retarget_from_shape_keys, FLAME_OT_import_livelink, FLAME_OT_export_livelink,
           VIEW3D_PT_flame_retarget)


def register_properties() -> None:
    bpy.types.Scene.flame_retarget = PointerProperty(type=FlameRetargetSettings)


def unregister_properties() -> None:
    if hasattr(bpy.types.Scene, "flame_retarget"):
        del bpy.types.Scene.flame_retarget
