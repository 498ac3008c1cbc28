"""``flame.track_video``: fit FLAME to a video in an external torch process, then import the result.

From the UI: ``invoke`` opens a file browser (a video, a folder of frames, an image or a landmarks
``.npz``) whose side panel holds the options; confirming starts the job as a modal operator that
streams the tracker's progress into the progress bar and status text; Esc cancels and kills the
process tree. Scripts and ``blender --background`` call ``execute``, which runs the same job
synchronously (modal operators get no timer events in background mode).
"""

from __future__ import annotations

import logging
from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from ..core import tracker_protocol as protocol
from ..core.formats.footage import IMAGE_SUFFIXES, find_footage, write_reference
from . import head, model_picker, preferences
from .help import section
from .operator_base import ModalFileJob
from .tracker_job import TrackerJob, template_argv, tracker_argv

log = logging.getLogger(__name__)

VIDEO_GLOB = "*.mp4;*.mov;*.avi;*.mkv;*.webm;*.m4v;*.png;*.jpg;*.jpeg;*.npz"

def _abspath(path: str) -> str:
    """A dialog's path made absolute (Blender's // prefix resolved); empty stays empty."""
    return bpy.path.abspath(path) if path else ""


def _model_items(self, context):
    return model_picker.enum_items("track", ("AUTO", "Selected head's model",
                                             "The selected head's model file, else the demo head"), context)


class FLAME_OT_track_video(ModalFileJob, ImportHelper, bpy.types.Operator):
    """Track a video, a folder of frames or landmarks with FLAME in an external process and import the result"""

    bl_idname = "flame.track_video"
    bl_label = "Track Video"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(name="Video", subtype="FILE_PATH",
                             description="A video, a folder of frames, one image, or a landmarks .npz")
    filter_glob: StringProperty(default=VIDEO_GLOB, options={"HIDDEN"})
    output_dir: StringProperty(name="Output folder", subtype="DIR_PATH",
                               description="Where the tracker writes; default: '<video>_flame' beside the video")
    model_choice: EnumProperty(name="Model", items=_model_items,
                               description="The FLAME model to fit (Model folder preference lists yours)")
    model_filepath: StringProperty(name="Model file", subtype="FILE_PATH",
                                   description="FLAME model to fit; when given, it overrides Model")
    landmarks_filepath: StringProperty(name="Landmarks", subtype="FILE_PATH",
                                       description="Precomputed landmarks (.npz) instead of detection")
    embedding_filepath: StringProperty(name="Embedding", subtype="FILE_PATH",
                                       description="Landmark embedding (.npz) matching the landmarks")
    focal: FloatProperty(name="Focal length (px)", default=0.0, min=0.0, description="0 estimates it")
    python: StringProperty(name="Python", subtype="FILE_PATH", options={"SKIP_SAVE"},
                           description="Overrides the preference: Python with torch for the tracker")
    command_template: StringProperty(name="Command", options={"SKIP_SAVE"},
                                     description="Overrides the preference: external tracker command template")
    device: EnumProperty(name="Device", items=(("PREFERENCE", "Preference", "The add-on preference's device"),)
                         + preferences.DEVICES, default="PREFERENCE")
    photometric: EnumProperty(
        name="Photometric stage", default="AUTO",
        description="Texture, lighting and a dense refinement after the landmark fit (slow without a GPU)",
        items=(("AUTO", "Automatic", "On when the tracker runs on a CUDA GPU"), ("ON", "On", ""), ("OFF", "Off", "")))
    per_frame_light: BoolProperty(name="Per-frame lighting", default=False,
                                  description="Fit one lighting per frame (smooth in time) instead of one for the "
                                              "clip, for footage whose light changes; the import animates it")
    texture_space_filepath: StringProperty(name="Texture space", subtype="FILE_PATH",
                                           description="Albedo model for the photometric stage (FLAME_texture.npz "
                                                       "layout); default: a free texture")
    uv_filepath: StringProperty(name="UVs", subtype="FILE_PATH",
                                description="OBJ with the model's UVs (FLAME's head_template.obj); the demo head "
                                            "has its own")

    # ------------------------------------------------------------------------------------ dialog
    def draw(self, context):
        props = self.properties
        col = section(self.layout, "Model", "track", icon="USER")
        model_picker.draw_choice(col, props)
        section(self.layout, "Tracker", icon="TRACKER", data=props, names=("device", "focal", "output_dir"))
        section(self.layout, "Landmarks (optional)", icon="POINTCLOUD_DATA", data=props,
                names=("landmarks_filepath", "embedding_filepath"))
        col = section(self.layout, "Photometric stage", icon="SHADING_TEXTURE", data=props, names=("photometric",))
        options = col.column()
        options.active = props.photometric != "OFF"  # greyed out, not hidden: they are not passed when Off
        for name in ("per_frame_light", "texture_space_filepath", "uv_filepath"):
            options.prop(props, name)

    # ----------------------------------------------------------------------------------- setup
    def _model_arg(self, context) -> str:
        model = model_picker.chosen_path(context, self.model_choice, self.model_filepath)
        if model:
            return model
        armature = head.find_head(context.active_object)
        return armature.flame.model_path if armature is not None and armature.flame.model_path else "demo"

    def _inputs(self) -> tuple[str, str]:
        """(video/folder/image, landmarks): a chosen ``.npz`` is landmarks."""
        source = _abspath(self.filepath)
        landmarks = _abspath(self.landmarks_filepath)
        if source.lower().endswith(".npz") and not landmarks:
            source, landmarks = "", source
        return source, landmarks

    def _start(self, context) -> TrackerJob | None:
        source, landmarks = self._inputs()
        for given, what in ((source, "video, folder or image"), (landmarks, "landmarks file")):
            if given and not Path(given).exists():
                self.report({"ERROR"}, f"{given}: no such {what}")
                return None
        if not (source or landmarks):
            self.report({"ERROR"}, "nothing to track: give a video, a folder of frames, an image or landmarks")
            return None
        named_after = Path(source or landmarks)
        output = Path(bpy.path.abspath(self.output_dir)) if self.output_dir else \
            named_after.with_name(f"{named_after.stem or named_after.name}_flame")
        prefs = preferences.get(context)
        template = self.command_template or (prefs.command_template if prefs else "")
        device = self.device if self.device != "PREFERENCE" else (prefs.device if prefs else "auto")
        model = self._model_arg(context)
        try:
            output.mkdir(parents=True, exist_ok=True)
            argv = template_argv(template, model=model, source=source, output=str(output)) if template else \
                tracker_argv(preferences.tracker_python(context, self.python), model=model, source=source,
                             output=str(output), device=device, focal=self.focal, landmarks=landmarks,
                             embedding=_abspath(self.embedding_filepath),
                             photometric=self.photometric, texture_space=_abspath(self.texture_space_filepath),
                             uv=_abspath(self.uv_filepath), per_frame_light=self.per_frame_light)
            self._output = output
            return TrackerJob(argv, output_dir=output)
        except (OSError, ValueError) as err:
            self.report({"ERROR"}, f"could not start the tracker: {err}")
            return None

    # ---------------------------------------------------------------------------------- finish
    def _finish(self, context, job: TrackerJob) -> set[str]:
        for line in job.logs:
            log.info("tracker: %s", line)
        if not job.succeeded():
            job.remove_staging()
            self.report({"ERROR"}, f"Tracking failed: {job.failure()}")
            return {"CANCELLED"}
        result = job.result.path if job.result else str(self._output)
        source, landmarks = self._inputs()
        self._reference_video(Path(result).parent if Path(result).is_file() else self._output, source)
        kwargs = {"filepath": result if Path(result).is_file() and result.endswith(".npz") else str(self._output),
                  "take_name": Path(source or landmarks).stem}
        if head.find_head(context.active_object) is None:  # a new head of the fitted model
            model = self._model_arg(context)
            if model == "demo":
                kwargs["model_choice"] = model_picker.DEMO
            else:
                kwargs["model_filepath"] = model
        try:
            bpy.ops.flame.import_sequence(**kwargs)
        except RuntimeError as err:  # the import reported an error; the scene is unchanged
            self.report({"ERROR"}, f"Tracking finished but its result could not be imported: {err}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Tracked {source or landmarks} -> {result}")
        return {"FINISHED"}

    def _reference_video(self, output: Path, source: str) -> None:
        """A tracked video comes along as the footage: reference it (frame id = video frame) unless
        the tracker left a footage reference or input frames of its own."""
        source = Path(bpy.path.abspath(source)) if source else None
        if source is None or not source.is_file() or source.suffix.lower() in IMAGE_SUFFIXES:
            return
        if find_footage(output)[0] is None:
            try:
                write_reference(output, "video", source)
            except OSError as err:
                self.report({"WARNING"}, f"{output}: could not reference the footage ({err.strerror or err})")

    def execute(self, context):
        job = self._start(context)
        if job is None:
            return {"CANCELLED"}
        return self.start_modal(context, job) if self._interactive else self._wait(context, job)

    # ----------------------------------------------------------------------- synchronous path
    def _wait(self, context, job: TrackerJob) -> set[str]:
        def show(message: protocol.Message) -> None:
            if message.type == protocol.PROGRESS:
                print(f"[tracker {100 * message.fraction:5.1f}%] {message.message or message.stage}", flush=True)
            elif message.type == protocol.LOG and message.level == "warning":
                self.report({"WARNING"}, message.message)

        try:
            job.wait(show)
        except KeyboardInterrupt:
            job.cancel()
            self.report({"ERROR"}, "Tracking cancelled")
            return {"CANCELLED"}
        return self._finish(context, job)

    # --------------------------------------------------------------------------- modal path
    def tick(self, context):
        job = self._job
        job.messages()
        self.show_progress(context, job.fraction, f"FLAME tracking {100 * job.fraction:.0f}%: {job.status}")
        if not job.finished:
            return {"RUNNING_MODAL"}
        job.messages()
        self.end_modal(context)
        return self._finish(context, job)

    def stop(self, context):
        self._job.cancel()
        self.report({"WARNING"}, "Tracking cancelled")
        return {"CANCELLED"}

CLASSES = (FLAME_OT_track_video,)
