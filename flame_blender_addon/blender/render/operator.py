"""``flame.render_preview``, under *Render* in the top bar.

From the UI it runs as a modal operator: one frame per timer event, a progress bar and status text,
and Esc stops between frames (the frames rendered so far stay). Scripts and ``--background`` render
synchronously.
"""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from ...core.errors import FlameError
from ..help import section
from ..operator_base import ModalFileJob, reports_errors
from ..progress import progress
from .preview import RENDER_SHARE, PreviewJob, run_to_end
from .settings import DEVICES, ENGINES, RenderSettings
from .sources import camera_background_frames


class FLAME_OT_render_preview(ModalFileJob, bpy.types.Operator):
    """Render the scene camera's view as PNG frames and an MP4 preview, optionally over the source frames"""

    bl_idname = "flame.render_preview"
    bl_label = "Render FLAME Preview"
    bl_options = {"REGISTER"}

    directory: StringProperty(name="Output folder", subtype="DIR_PATH")
    engine: EnumProperty(name="Engine", items=ENGINES, default="WORKBENCH")
    device: EnumProperty(name="Device", items=DEVICES, default="CPU")
    samples: IntProperty(name="Samples", default=1, min=1, max=4096,
                         description="Samples per pixel (Workbench: anti-aliasing samples, 1 = off)")
    use_video: BoolProperty(name="MP4 video", default=True)
    overlay: BoolProperty(name="Overlay on source frames", default=False,
                          description="Composite the head over the tracked footage (the camera background)")
    side_by_side: BoolProperty(name="Side by side", default=False,
                               description="Source frame on the left, render on the right")

    timer_seconds = 0.05

    @classmethod
    def poll(cls, context):
        if context.scene is not None and context.scene.camera is not None:
            return True
        cls.poll_message_set("The scene has no camera: import a tracked sequence, or add a camera")
        return False

    def draw(self, context):
        props = self.properties
        col = section(self.layout, "Render", "export", icon="RENDER_STILL")
        col.prop(props, "engine")
        if props.engine == "CYCLES":
            col.prop(props, "device")
        col.prop(props, "samples")
        section(self.layout, "Output", icon="FILE_MOVIE", data=props, names=("use_video", "overlay", "side_by_side"))

    def _job_for(self, context) -> PreviewJob:
        if not self.directory:
            raise FlameError("No output folder given")
        folder = Path(bpy.path.abspath(self.directory))
        return PreviewJob(context, folder, RenderSettings(engine=self.engine, samples=self.samples, device=self.device),
                          video=folder / "preview.mp4" if self.use_video else None,
                          source=camera_background_frames(context.scene), overlay=self.overlay,
                          side_by_side=self.side_by_side)

    @reports_errors
    def execute(self, context):
        job = self._job_for(context)
        if self._interactive:
            return self.start_modal(context, job)
        with progress(context, "Rendering preview") as report:
            return self._done(run_to_end(job, report))

    def _done(self, result) -> set[str]:
        if result.missing_sources:
            self.report({"WARNING"}, f"{len(result.missing_sources)} frames had no source frame")
        self.report({"INFO"}, f"Rendered {len(result.frames)} frames to {result.frames[0].parent} "
                              f"({result.seconds_per_frame:.2f} s/frame)")
        return {"FINISHED"}

    # --------------------------------------------------------------------------- modal path
    @reports_errors
    def tick(self, context):
        job = self._job
        try:
            if not job.done:
                frame = job.step()
                self.show_progress(context, RENDER_SHARE * job.fraction,
                                   f"FLAME preview: frame {frame} ({len(job.paths)} of {len(job.frames)})")
                return {"RUNNING_MODAL"}
            result = job.finish(lambda f, m: context.window_manager.progress_update(int(1000 * f)))
        except BaseException:
            job.cancel()
            self.end_modal(context)
            raise
        self.end_modal(context)
        return self._done(result)

    def stop(self, context):
        job = self._job
        job.cancel()
        self.report({"WARNING"}, f"Preview stopped after {len(job.paths)} of {len(job.frames)} frames")
        return {"CANCELLED"}

CLASSES = (FLAME_OT_render_preview,)
