"""Operators for tracked sequences: ``flame.import_sequence`` and ``flame.export_sequence``."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from ..core.errors import FlameError
from ..core.formats.footage import find_footage
from ..core.formats.metrical import write_metrical_checkpoints
from ..core.formats.npz import write_sequence_npz
from ..core.model import load_model
from ..core.sequence import fit_components, read_sequence, resample, scene_frames
from . import head, sequence_export, sequence_import
from .operator_base import HeadOperator, reports_errors
from .operators import _BuildOperator
from .progress import progress
from .transaction import rollback_on_error


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
    use_background: BoolProperty(name="Footage as background", default=True,
                                 description="Show the tracked footage (metrical-tracker's input/ frames, or the "
                                             "video source.json names) behind the head in camera view")

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    @reports_errors
    def execute(self, context):
        path = Path(bpy.path.abspath(self.filepath))
        seq = read_sequence(path, fps=self.fps or None,
                            eyelid_blendshapes=bpy.path.abspath(self.eyelid_folder) if self.eyelid_folder else None)
        model = load_model(bpy.path.abspath(self.model_filepath)) if self.model_filepath else None
        armature = None if model else head.target_head(context, self.target)
        if model is None and armature is None:
            raise FlameError("No FLAME head to animate: select one, or give a model file to build one")
        scene_frames(seq, self.frame_start, self.target_fps or None)  # checked before anything changes
        if armature is not None:
            head.check_head(armature)
        with rollback_on_error(context, edited_head=armature), progress(context, "Importing sequence") as report:
            repairs = head.repair_head(armature) if model is None else []
            if model is not None:
                armature = head.build_head(context, model.truncated(self.n_shape, self.n_expr), "FLAME",
                                           lambda f, m: report(0.3 * f, m))
            seq = fit_components(seq, armature.flame.n_shape, armature.flame.n_expr)
            footage = None
            if self.use_background:
                footage, footage_warnings = find_footage(path)
                seq.warnings += footage_warnings
            if self.target_fps:
                seq = resample(seq, self.target_fps)
                if footage is not None:  # the footage's frames cannot change their rate
                    seq.warnings.append("resampled: the footage is not used as the camera background")
                    footage = None
            notes = sequence_import.apply_sequence(
                context, armature, seq, frame_start=self.frame_start, keep_identity=self.keep_identity,
                camera_mode=self.camera_mode, footage=footage,
                report=lambda f, m: report(0.3 + 0.7 * f, m))
        for warning in repairs + seq.warnings:
            self.report({"WARNING"}, warning)
        self.report({"INFO"}, "; ".join([f"Imported {seq.n_frames} frames ({seq.source}) onto {armature.name}",
                                         *notes]))
        return {"FINISHED"}


class FLAME_OT_export_sequence(HeadOperator, bpy.types.Operator):
    """Write the head's animation (and the scene camera) as flame_sequence.npz or metrical-tracker checkpoints"""

    bl_idname = "flame.export_sequence"
    bl_label = "Export FLAME Sequence"
    bl_options = {"REGISTER"}

    filepath: StringProperty(name="File Path", subtype="FILE_PATH", default="flame_sequence.npz",
                             description="flame_sequence.npz file, or the output folder for checkpoints")
    format: EnumProperty(name="Format", default="NPZ", items=(
        ("NPZ", "flame_sequence.npz", "This add-on's format (VHAP key names, OpenCV camera)"),
        ("METRICAL", "metrical-tracker checkpoints",
         "<folder>/checkpoint/NNNNN.frame; needs a camera and no neck pose")))
    frame_start: IntProperty(name="Start frame", default=1, description="Scene frame that becomes sequence frame 0")

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def run(self, context, armature):
        path = Path(bpy.path.abspath(self.filepath))
        seq = sequence_export.read_performance(context, armature, frame_start=self.frame_start)
        if self.format == "NPZ":
            write_sequence_npz(path, seq)
        else:
            model = None
            if not np.allclose(seq.rotations[:, 0], np.eye(3)):  # the root pivot needs the joints
                from ..demo import head as demo_head

                model = load_model(armature.flame.model_path) if armature.flame.model_path \
                    else demo_head.demo_model()
            for warning in write_metrical_checkpoints(path, seq, model):
                self.report({"WARNING"}, warning)
        self.report({"INFO"}, f"Wrote {seq.n_frames} frames to {path}")
        return {"FINISHED"}


CLASSES = (FLAME_OT_import_sequence, FLAME_OT_export_sequence)
