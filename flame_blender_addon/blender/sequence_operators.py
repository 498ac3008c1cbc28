"""Operators for tracked sequences: ``flame.import_sequence`` and ``flame.export_sequence``."""

from __future__ import annotations

import os
from pathlib import Path

import bpy
import numpy as np
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from ..core.errors import FlameError
from ..core.formats.assets import find_assets
from ..core.formats.footage import find_footage
from ..core.formats.metrical import write_metrical_checkpoints
from ..core.formats.npz import write_sequence_npz
from ..core.model import load_model
from ..core.sequence import fit_components, read_sequence, resample, scene_frames
from . import appearance, head, model_picker, preferences, sequence_export, sequence_import, texture_space
from .help import section
from .operator_base import HeadOperator, reports_errors
from .operators import _BuildOperator
from .progress import progress
from .transaction import rollback_on_error


def _head_model_items(self, context):
    return model_picker.enum_items("import_sequence", ("TARGET", "Animate the head",
                                                       "Animate the head chosen above"), context)


class FLAME_OT_import_sequence(_BuildOperator, ImportHelper, bpy.types.Operator):
    """Import a tracked FLAME sequence as a take of keyframed animation on the head, with its camera"""

    bl_idname = "flame.import_sequence"
    bl_label = "Import FLAME Sequence"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(name="File Path", subtype="FILE_PATH",
                             description="A tracker output (folder, .frame or .npz file), or a folder of DECA, "
                                         "EMOCA or SMIRK outputs")
    filter_glob: StringProperty(default="*.frame;*.npz;*.npy;*.pkl;*.pt", options={"HIDDEN"})
    target: StringProperty(name="Head", description="FLAME head to animate (default: the active one)",
                           options={"SKIP_SAVE"})
    take_name: StringProperty(name="Take", options={"SKIP_SAVE"},
                              description="Name of the new take (default: the file's name); earlier takes are kept")
    model_choice: EnumProperty(name="Head from", items=_head_model_items,
                               description="Animate the head, or build a new one from a model first")
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
    texture_space_filepath: StringProperty(
        name="Texture space", subtype="FILE_PATH",
        description="For metrical-tracker's texture coefficients: FLAME_albedo_from_BFM.npz or FLAME_texture.npz "
                    "(default: one beside the head's model or in the Model folder)")
    use_background: BoolProperty(name="Footage as background", default=True,
                                 description="Show the tracked footage (metrical-tracker's input/ frames, or the "
                                             "video source.json names) behind the head in camera view")

    def draw(self, context):
        props = self.properties
        col = section(self.layout, "Head", "animation", icon="ARMATURE_DATA")
        col.prop(props, "take_name")
        model_picker.draw_choice(col, props)
        if props.model_choice == "TARGET":
            col.prop_search(props, "target", context.scene, "objects", icon="OUTLINER_OB_ARMATURE")
            col.prop(props, "keep_identity")
        else:
            col.prop(props, "n_shape")
            col.prop(props, "n_expr")
        col.prop(props, "eyelid_folder")
        section(self.layout, "Timing", icon="TIME", data=props, names=("frame_start", "fps", "target_fps"))
        section(self.layout, "Camera", icon="CAMERA_DATA", data=props, names=("camera_mode", "use_background"))
        section(self.layout, "Appearance", "appearance", icon="MATERIAL", data=props, names=("texture_space_filepath",))

    def _model(self, context):
        path = model_picker.chosen_path(context, self.model_choice, self.model_filepath)
        if path == "demo":
            from ..demo import head as demo_head  # generated on demand: ~50 MB of arrays

            return demo_head.demo_model()
        return load_model(path) if path else None

    def _texture_space(self, context, armature) -> Path | None:
        if self.texture_space_filepath:
            return Path(bpy.path.abspath(self.texture_space_filepath))
        model = Path(bpy.path.abspath(armature.flame.model_path)).parent if armature.flame.model_path else None
        found = (find_assets(f).texture for f in (model, preferences.model_folder(context)) if f is not None)
        return next((p for p in found if p is not None), None)

    @reports_errors
    def execute(self, context):
        path = Path(bpy.path.abspath(self.filepath))
        seq = read_sequence(path, fps=self.fps or None,
                            eyelid_blendshapes=bpy.path.abspath(self.eyelid_folder) if self.eyelid_folder else None)
        model = self._model(context)
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
            # the scene frames of the sequence's own frames, which per-frame lighting is keyed at
            light_frames = self.frame_start + seq.frame_ids * (self.target_fps / seq.fps if self.target_fps else 1.0)
            if self.target_fps:
                seq = resample(seq, self.target_fps)
                if footage is not None:  # the footage's frames cannot change their rate
                    seq.warnings.append("resampled: the footage is not used as the camera background")
                    footage = None
            notes = sequence_import.apply_sequence(
                context, armature, seq, frame_start=self.frame_start, keep_identity=self.keep_identity,
                camera_mode=self.camera_mode, footage=footage, take=self.take_name,
                report=lambda f, m: report(0.3 + 0.7 * f, m))
            look = appearance.read_appearance(path)  # albedo and lighting of the photometric stage
            if look is not None:
                appearance.apply_appearance(context, armature.flame.mesh, look, light_frames)
            elif seq.appearance:  # metrical-tracker's texture coefficients and lighting
                notes += texture_space.apply_tracked_look(context, armature.flame.mesh, seq.appearance,
                                                          self._texture_space(context, armature), light_frames)
        for warning in repairs + seq.warnings:
            self.report({"WARNING"}, warning)
        take = armature.flame.takes[armature.flame.active_take].name
        self.report({"INFO"}, "; ".join([f"Imported {seq.n_frames} frames ({seq.source}) onto {armature.name} "
                                         f"as take '{take}'", *notes]))
        return {"FINISHED"}


SEQUENCE_FILE = "flame_sequence.npz"


def sequence_target(filepath: str, file_format: str) -> str:
    """Where an export goes: NPZ writes a ``.npz`` file (``flame_sequence.npz`` when no name is given),
    METRICAL a folder of checkpoints, named like the file without ``.npz``."""
    folder, name = os.path.split(filepath)
    stem = name[:-4] if name.lower().endswith(".npz") else name
    if file_format == "NPZ":
        return os.path.join(folder, f"{stem}.npz" if stem else SEQUENCE_FILE)
    return os.path.join(folder, stem or SEQUENCE_FILE[:-4])


class FLAME_OT_export_sequence(HeadOperator, ExportHelper, bpy.types.Operator):
    """Write the head's animation and camera as flame_sequence.npz or metrical-tracker checkpoints"""

    bl_idname = "flame.export_sequence"
    bl_label = "Export FLAME Sequence"
    bl_options = {"REGISTER"}

    filename_ext = ".npz"
    check_extension = None  # check() below names the file or folder per format
    filepath: StringProperty(name="File Path", subtype="FILE_PATH", default=SEQUENCE_FILE,
                             description="flame_sequence.npz file, or the output folder for checkpoints")
    filter_glob: StringProperty(default="*.npz", options={"HIDDEN"})
    format: EnumProperty(name="Format", default="NPZ", items=(
        ("NPZ", "flame_sequence.npz", "This add-on's format (VHAP key names, OpenCV camera)"),
        ("METRICAL", "metrical-tracker checkpoints",
         "<folder>/checkpoint/NNNNN.frame; needs a camera and no neck pose")))
    frame_start: IntProperty(name="Start frame", default=1, description="Scene frame that becomes sequence frame 0")

    def invoke(self, context, event):
        if self.filepath in ("", SEQUENCE_FILE) and bpy.data.filepath:
            self.filepath = os.path.join(os.path.dirname(bpy.data.filepath), SEQUENCE_FILE)
        self.check(context)
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def check(self, context):
        target = sequence_target(self.filepath, self.format)
        changed = target != self.filepath
        self.filepath = target
        return changed

    def draw(self, context):
        props = self.properties
        col = section(self.layout, "Head", "export", icon="ARMATURE_DATA")
        col.prop_search(props, "target", context.scene, "objects", icon="OUTLINER_OB_ARMATURE")
        section(self.layout, "Output", icon="EXPORT", data=props, names=("format", "frame_start"))

    def run(self, context, armature):
        path = Path(bpy.path.abspath(sequence_target(self.filepath, self.format)))
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
