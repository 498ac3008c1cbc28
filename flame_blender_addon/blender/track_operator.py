"""``flame.track_video``: fit FLAME to a video in an external torch process, then import the result.

Interactive: a modal operator streams the tracker's progress into the progress bar and status
text; ESC cancels and kills the process tree. Background (``blender --background``, scripts): the
same job runs synchronously, because modal operators get no timer events there.
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

import bpy
from bpy.props import EnumProperty, FloatProperty, StringProperty

from ..core import tracker_protocol as protocol
from ..core.formats.footage import IMAGE_SUFFIXES, find_footage, write_reference
from . import head, preferences
from .tracker_job import TrackerJob, template_argv, tracker_argv
from .transaction import rollback_on_error

log = logging.getLogger(__name__)


class FLAME_OT_track_video(bpy.types.Operator):
    """Track a video (or frames folder, or image) with FLAME in an external process and import it"""

    bl_idname = "flame.track_video"
    bl_label = "Track Video"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(name="Video", subtype="FILE_PATH",
                             description="A video file, a folder of frames, or one image")
    output_dir: StringProperty(name="Output folder", subtype="DIR_PATH",
                               description="Where the tracker writes; default: '<video>_flame' beside the video")
    model_filepath: StringProperty(name="Model", subtype="FILE_PATH",
                                   description="FLAME model to fit; default: the active head's model, "
                                               "else the demo head")
    landmarks_filepath: StringProperty(name="Landmarks", subtype="FILE_PATH",
                                       description="Precomputed landmarks (.npz) instead of detection")
    embedding_filepath: StringProperty(name="Embedding", subtype="FILE_PATH",
                                       description="Landmark embedding (.npz) matching the landmarks")
    focal: FloatProperty(name="Focal length (px)", default=0.0, min=0.0, description="0 estimates it")
    python: StringProperty(name="Python", subtype="FILE_PATH", options={"SKIP_SAVE"},
                           description="Overrides the preference: Python with torch for the tracker")
    command_template: StringProperty(name="Command", options={"SKIP_SAVE"},
                                     description="Overrides the preference: external tracker command template")
    device: EnumProperty(name="Device", items=(("PREFERENCE", "Preference", ""),) + preferences.DEVICES,
                         default="PREFERENCE")

    _job: TrackerJob | None = None
    _timer = None

    # ----------------------------------------------------------------------------------- setup
    def _model_arg(self, context) -> str:
        if self.model_filepath:
            return bpy.path.abspath(self.model_filepath)
        armature = head.find_head(context.active_object)
        if armature is not None and armature.flame.model_path:
            return armature.flame.model_path
        return "demo"

    def _start(self, context) -> TrackerJob | None:
        source = bpy.path.abspath(self.filepath) if self.filepath else ""
        landmarks = bpy.path.abspath(self.landmarks_filepath) if self.landmarks_filepath else ""
        for given, what in ((source, "video, folder or image"), (landmarks, "landmarks file")):
            if given and not Path(given).exists():
                self.report({"ERROR"}, f"{given}: no such {what}")
                return None
        if not (source or landmarks):
            self.report({"ERROR"}, "nothing to track: give a video, a folder of frames, an image or landmarks")
            return None
        named_after = Path(source or landmarks)
        output = Path(bpy.path.abspath(self.output_dir)) if self.output_dir else \
            named_after.with_name(f"{named_after.stem}_flame")
        prefs = preferences.get(context)
        template = self.command_template or (prefs.command_template if prefs else "")
        python = self.python or (prefs.python if prefs else "") or shutil.which("python3") or sys.executable
        device = self.device if self.device != "PREFERENCE" else (prefs.device if prefs else "auto")
        model = self._model_arg(context)
        try:
            output.mkdir(parents=True, exist_ok=True)
            argv = template_argv(template, model=model, source=source, output=str(output)) if template else \
                tracker_argv(python, model=model, source=source, output=str(output), device=device, focal=self.focal,
                             landmarks=landmarks,
                             embedding=bpy.path.abspath(self.embedding_filepath) if self.embedding_filepath else "")
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
        self._reference_video(Path(result).parent if Path(result).is_file() else self._output)
        armature = head.find_head(context.active_object)
        kwargs = {"filepath": result if Path(result).is_file() and result.endswith(".npz") else str(self._output)}
        try:  # a demo head made for the result goes again if the result cannot be imported
            with rollback_on_error(context):
                if armature is None:
                    model = self._model_arg(context)
                    if model == "demo":
                        bpy.ops.flame.add_demo_head()
                    else:
                        kwargs["model_filepath"] = model
                bpy.ops.flame.import_sequence(**kwargs)
        except RuntimeError as err:  # the import reported an error; the scene is as it was
            self.report({"ERROR"}, f"Tracking finished but its result could not be imported: {err}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Tracked {self.filepath} -> {result}")
        return {"FINISHED"}

    def _reference_video(self, output: Path) -> None:
        """A tracked video comes along as the footage: reference it (frame id = video frame) unless
        the tracker left a footage reference or input frames of its own."""
        source = Path(bpy.path.abspath(self.filepath)) if self.filepath else None
        if source is None or not source.is_file() or source.suffix.lower() in IMAGE_SUFFIXES:
            return
        if find_footage(output)[0] is None:
            try:
                write_reference(output, "video", source)
            except OSError as err:
                self.report({"WARNING"}, f"{output}: could not reference the footage ({err.strerror or err})")

    # ----------------------------------------------------------------------- synchronous path
    def execute(self, context):
        job = self._start(context)
        if job is None:
            return {"CANCELLED"}

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
    def invoke(self, context, event):
        if bpy.app.background:
            return self.execute(context)
        self._job = self._start(context)
        if self._job is None:
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.2, window=context.window)
        wm.progress_begin(0, 1000)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def _cleanup(self, context) -> None:
        wm = context.window_manager
        wm.event_timer_remove(self._timer)
        wm.progress_end()
        context.workspace.status_text_set(None)

    def modal(self, context, event):
        job = self._job
        if event.type == "ESC":
            job.cancel()
            self._cleanup(context)
            self.report({"WARNING"}, "Tracking cancelled")
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        job.messages()
        context.window_manager.progress_update(int(1000 * job.fraction))
        context.workspace.status_text_set(f"FLAME tracking {100 * job.fraction:.0f}%: {job.status} (Esc to cancel)")
        if not job.finished:
            return {"RUNNING_MODAL"}
        job.messages()
        self._cleanup(context)
        return self._finish(context, job)


CLASSES = (FLAME_OT_track_video,)
