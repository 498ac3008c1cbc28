"""Operators of the ``flame.*`` namespace. All inputs are properties, so scripts and
``blender --background`` can call them with no selection or UI state (``target`` names the head)."""

from __future__ import annotations

import logging
from pathlib import Path

import bpy
import numpy as np
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from ..core.errors import FlameError
from ..core.model import FlameModel, load_model
from ..core.sequence import fit_components, read_sequence, resample, write_metrical_checkpoints, write_sequence_npz
from . import head, sequence_export, sequence_import
from .progress import progress
from .transaction import rollback_on_error

log = logging.getLogger(__name__)


def _target_head(context: bpy.types.Context, target: str) -> bpy.types.Object | None:
    return head.find_head(bpy.data.objects.get(target) if target else context.active_object)


class _HeadOperator:
    """Mixin: ``target`` property and a poll that needs a FLAME head."""

    target: StringProperty(name="Target", description="FLAME head object (default: the active one)",
                           options={"SKIP_SAVE"})

    @classmethod
    def poll(cls, context):
        # Properties are unknown here, so a head anywhere in the scene will do (``target``).
        return head.find_head(context.active_object) is not None or any(
            head.find_head(obj) for obj in context.scene.objects if obj.type == "ARMATURE")

    def execute(self, context):
        armature = _target_head(context, self.target)
        if armature is None:
            self.report({"ERROR"}, f"'{self.target or 'active object'}' is not a FLAME head")
            return {"CANCELLED"}
        return self.run(context, armature)

    def run(self, context, armature: bpy.types.Object) -> set[str]:
        raise NotImplementedError


class _BuildOperator:
    """Mixin: component counts and the build itself, all-or-nothing."""

    n_shape: IntProperty(name="Identity components", default=300, min=0, max=300)
    n_expr: IntProperty(name="Expression components", default=100, min=0, max=100)

    def build(self, context, model: FlameModel, name: str):
        model = model.truncated(self.n_shape, self.n_expr)
        try:
            with rollback_on_error(context), progress(context, f"Building {name}") as report:
                armature = head.build_head(context, model, name, report)
        except FlameError as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        for warning in model.warnings:
            self.report({"WARNING"}, f"{model.name}: {warning}")
        self.report({"INFO"}, f"Built {armature.name} from {model.name} "
                              f"({model.n_shape} identity, {model.n_expr} expression components)")
        return {"FINISHED"}


class FLAME_OT_import_model(_BuildOperator, bpy.types.Operator):
    """Build a rigged FLAME head from your generic_model.pkl / flame2023.pkl (or a converted .npz)"""

    bl_idname = "flame.import_model"
    bl_label = "Import FLAME Model"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(name="File Path", subtype="FILE_PATH")
    filter_glob: StringProperty(default="*.pkl;*.npz", options={"HIDDEN"})

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        if not self.filepath:
            self.report({"ERROR"}, "No model file given: choose your generic_model.pkl or flame2023.pkl")
            return {"CANCELLED"}
        try:
            model = load_model(bpy.path.abspath(self.filepath))
        except FlameError as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        except OSError as err:
            self.report({"ERROR"}, f"{self.filepath}: cannot be read ({err.strerror or err})")
            return {"CANCELLED"}
        return self.build(context, model, "FLAME")


class FLAME_OT_add_demo_head(_BuildOperator, bpy.types.Operator):
    """Add the built-in procedural demo head (FLAME layout, no download needed)"""

    bl_idname = "flame.add_demo_head"
    bl_label = "FLAME Demo Head"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        from ..core import demo_head  # generated on demand: ~50 MB of arrays

        return self.build(context, demo_head.demo_model(), "FLAME_demo")


def _background_folder(path: Path) -> Path | None:
    """metrical-tracker's ``input/`` frames beside the ``checkpoint/`` folder, if present."""
    base = path if path.is_dir() else path.parent
    return next((p for p in (base / "input", base.parent / "input") if p.is_dir()), None)


class _HeadState:
    """What a sequence import changes on an existing head, to restore it if the import fails."""

    def __init__(self, armature: bpy.types.Object):
        self.armature = armature
        self.blocks = armature.flame.mesh.data.shape_keys.key_blocks
        self.values = np.empty(len(self.blocks), dtype=np.float32)
        self.blocks.foreach_get("value", self.values)
        self.joints = np.array([b.head_local for b in armature.data.bones])
        self.owners = [armature, armature.flame.mesh.data.shape_keys]
        self.actions = [o.animation_data.action if o.animation_data else None for o in self.owners]
        self.matrix = armature.matrix_world.copy()
        self.rotation_mode = armature.rotation_mode

    def restore(self, context) -> None:
        for owner, action in zip(self.owners, self.actions):
            if owner.animation_data:
                owner.animation_data.action = action
        for name in [kb.name for kb in self.blocks][len(self.values):]:
            self.armature.flame.mesh.shape_key_remove(self.blocks[name])
        self.blocks.foreach_set("value", self.values)
        head.set_rest_joints(context, self.armature, self.joints)
        self.armature.rotation_mode = self.rotation_mode
        self.armature.matrix_world = self.matrix


class FLAME_OT_import_sequence(_BuildOperator, bpy.types.Operator):
    """Import a tracked FLAME sequence (metrical-tracker, VHAP, GaussianAvatars, flame_sequence.npz)
    as keyframed animation of the active head, with the tracker's camera"""

    bl_idname = "flame.import_sequence"
    bl_label = "Import FLAME Sequence"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(name="File Path", subtype="FILE_PATH",
                             description="A metrical-tracker output or checkpoint folder, a .frame or .npz file")
    filter_glob: StringProperty(default="*.frame;*.npz", options={"HIDDEN"})
    target: StringProperty(name="Target", description="FLAME head to animate (default: the active one)",
                           options={"SKIP_SAVE"})
    model_filepath: StringProperty(name="Model", subtype="FILE_PATH",
                                   description="Build a new head from this FLAME model instead of animating one")
    eyelid_folder: StringProperty(name="Eyelid blendshapes", subtype="DIR_PATH",
                                  description="Folder with metrical-tracker's l_eyelid.npy / r_eyelid.npy")
    keep_identity: BoolProperty(name="Keep target identity", default=False,
                                description="Apply only the performance, keeping the head's own shape (retargeting)")
    fps: FloatProperty(name="Source fps", default=0.0, min=0.0,
                       description="Frame rate of the sequence; 0 uses the file's, or 25 (metrical-tracker)")
    target_fps: FloatProperty(name="Resample to fps", default=0.0, min=0.0,
                              description="Resample the performance to this frame rate; 0 keeps the source's")
    frame_start: IntProperty(name="Start frame", default=1, description="Scene frame of sequence frame 0")
    camera_mode: EnumProperty(name="Camera", items=sequence_import.CAMERA_MODES, default="MOVING_CAMERA")
    use_background: BoolProperty(name="Input frames as background", default=True,
                                 description="Show metrical-tracker's input/ frames behind the head in camera view")

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        path = Path(bpy.path.abspath(self.filepath))
        try:
            seq = read_sequence(path, fps=self.fps or None,
                                eyelid_blendshapes=bpy.path.abspath(self.eyelid_folder) if self.eyelid_folder else None)
            model = load_model(bpy.path.abspath(self.model_filepath)) if self.model_filepath else None
        except FlameError as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        armature = None if model else _target_head(context, self.target)
        if model is None and armature is None:
            self.report({"ERROR"}, "No FLAME head to animate: select one, or give a model file to build one")
            return {"CANCELLED"}
        state = _HeadState(armature) if armature else None
        try:
            with rollback_on_error(context), progress(context, "Importing sequence") as report:
                if model is not None:
                    armature = head.build_head(context, model.truncated(self.n_shape, self.n_expr), "FLAME",
                                               lambda f, m: report(0.3 * f, m))
                seq = fit_components(seq, armature.flame.n_shape, armature.flame.n_expr)
                background = _background_folder(path) if self.use_background else None
                if self.target_fps:
                    seq = resample(seq, self.target_fps)
                    if background is not None:  # an image sequence cannot change its rate
                        seq.warnings.append("resampled: the tracker's input frames are not used as background")
                        background = None
                sequence_import.apply_sequence(
                    context, armature, seq, frame_start=self.frame_start, keep_identity=self.keep_identity,
                    camera_mode=self.camera_mode,
                    background=background,
                    report=lambda f, m: report(0.3 + 0.7 * f, m))
        except Exception as err:  # the scene is restored either way; only surprises get a traceback
            if state:
                state.restore(context)
            if not isinstance(err, FlameError):
                log.exception("sequence import failed")
            self.report({"ERROR"}, str(err) if isinstance(err, FlameError) else f"Import failed: {err!r}")
            return {"CANCELLED"}
        for warning in seq.warnings:
            self.report({"WARNING"}, warning)
        self.report({"INFO"}, f"Imported {seq.n_frames} frames ({seq.source}) onto {armature.name}")
        return {"FINISHED"}


class FLAME_OT_export_sequence(_HeadOperator, bpy.types.Operator):
    """Write the head's animation (and the scene camera) as flame_sequence.npz or metrical-tracker checkpoints"""

    bl_idname = "flame.export_sequence"
    bl_label = "Export FLAME Sequence"
    bl_options = {"REGISTER"}

    filepath: StringProperty(name="File Path", subtype="FILE_PATH", default="flame_sequence.npz",
                             description="flame_sequence.npz file, or the output folder for checkpoints")
    format: EnumProperty(name="Format", default="NPZ", items=(
        ("NPZ", "flame_sequence.npz", "This add-on's format (VHAP key names, OpenCV camera)"),
        ("METRICAL", "metrical-tracker checkpoints", "<folder>/checkpoint/NNNNN.frame; needs a camera and no neck pose")))
    frame_start: IntProperty(name="Start frame", default=1, description="Scene frame that becomes sequence frame 0")

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def run(self, context, armature):
        path = Path(bpy.path.abspath(self.filepath))
        try:
            seq = sequence_export.read_performance(context, armature, frame_start=self.frame_start)
            if self.format == "NPZ":
                write_sequence_npz(path, seq)
            else:
                model = None
                if not np.allclose(seq.rotations[:, 0], np.eye(3)):  # the root pivot needs the joints
                    from ..core import demo_head

                    model = load_model(armature.flame.model_path) if armature.flame.model_path \
                        else demo_head.demo_model()
                for warning in write_metrical_checkpoints(path, seq, model):
                    self.report({"WARNING"}, warning)
        except FlameError as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        except OSError as err:
            self.report({"ERROR"}, f"{path}: cannot be written ({err.strerror or err})")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Wrote {seq.n_frames} frames to {path}")
        return {"FINISHED"}


class FLAME_OT_update_joints(_HeadOperator, bpy.types.Operator):
    """Move the joints to where FLAME regresses them for the current shape and expression"""

    bl_idname = "flame.update_joints"
    bl_label = "Update Joints"
    bl_options = {"REGISTER", "UNDO"}

    def run(self, context, armature):
        head.update_joints(context, armature)
        return {"FINISHED"}


class _CoefficientOperator(_HeadOperator):
    """Set identity or expression shape-key values to zero or to random N(0, strength^2) draws,
    then update the joints (FLAME's joints follow both)."""

    bl_options = {"REGISTER", "UNDO"}
    prefix = ""  # head.SHAPE_PREFIX or head.EXPR_PREFIX
    randomize = False

    strength: FloatProperty(name="Strength", default=1.0, min=0.0, max=3.0,
                            description="Standard deviation of the random coefficients")
    seed: IntProperty(name="Seed", default=0, min=0, description="0 draws a new random seed every time")

    def run(self, context, armature):
        blocks = armature.flame.mesh.data.shape_keys.key_blocks
        values = np.empty(len(blocks), dtype=np.float32)
        blocks.foreach_get("value", values)
        mask = np.array([kb.name.startswith(self.prefix) and kb.name[len(self.prefix):].isdigit()
                         for kb in blocks])
        if self.randomize:
            rng = np.random.default_rng(self.seed or None)
            values[mask] = np.clip(rng.normal(scale=self.strength, size=mask.sum()), -10, 10)
        else:
            values[mask] = 0.0
        blocks.foreach_set("value", values)
        head.update_joints(context, armature)
        return {"FINISHED"}


class FLAME_OT_random_shape(_CoefficientOperator, bpy.types.Operator):
    """Draw a random identity"""

    bl_idname, bl_label, prefix, randomize = "flame.random_shape", "Random Shape", head.SHAPE_PREFIX, True


class FLAME_OT_reset_shape(_CoefficientOperator, bpy.types.Operator):
    """Reset the identity to the mean head"""

    bl_idname, bl_label, prefix = "flame.reset_shape", "Reset Shape", head.SHAPE_PREFIX


class FLAME_OT_random_expression(_CoefficientOperator, bpy.types.Operator):
    """Draw a random expression"""

    bl_idname, bl_label, prefix, randomize = "flame.random_expression", "Random Expression", head.EXPR_PREFIX, True


class FLAME_OT_reset_expression(_CoefficientOperator, bpy.types.Operator):
    """Reset the expression to neutral"""

    bl_idname, bl_label, prefix = "flame.reset_expression", "Reset Expression", head.EXPR_PREFIX


class FLAME_OT_reset_pose(_HeadOperator, bpy.types.Operator):
    """Reset every joint rotation and the translation"""

    bl_idname = "flame.reset_pose"
    bl_label = "Reset Pose"
    bl_options = {"REGISTER", "UNDO"}

    def run(self, context, armature):
        for pose_bone in armature.pose.bones:
            pose_bone.rotation_quaternion = (1.0, 0.0, 0.0, 0.0)
            pose_bone.location = (0.0, 0.0, 0.0)
            pose_bone.scale = (1.0, 1.0, 1.0)
        return {"FINISHED"}


CLASSES = (
    FLAME_OT_import_model, FLAME_OT_add_demo_head, FLAME_OT_import_sequence, FLAME_OT_export_sequence, FLAME_OT_update_joints,
    FLAME_OT_random_shape, FLAME_OT_reset_shape, FLAME_OT_random_expression,
    FLAME_OT_reset_expression, FLAME_OT_reset_pose,
)
