"""``flame.render_preview``, under *Render* in the top bar."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from ...core.errors import FlameError
from ..operator_base import reports_errors
from ..progress import progress
from .preview import render_preview
from .settings import DEVICES, ENGINES, RenderSettings
from .sources import camera_background_frames


class FLAME_OT_render_preview(bpy.types.Operator):
    """Render the scene camera's view as PNG frames and an MP4 preview, optionally over the tracker's
    source frames (shows progress; blocks the interface until done)"""

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

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    @reports_errors
    def execute(self, context):
        if not self.directory:
            raise FlameError("No output folder given")
        folder = Path(bpy.path.abspath(self.directory))
        settings = RenderSettings(engine=self.engine, samples=self.samples, device=self.device)
        with progress(context, "Rendering preview") as report:
            result = render_preview(context, folder, settings,
                                    video=folder / "preview.mp4" if self.use_video else None,
                                    source=camera_background_frames(context.scene), overlay=self.overlay,
                                    side_by_side=self.side_by_side, report=report)
        if result.missing_sources:
            self.report({"WARNING"}, f"{len(result.missing_sources)} frames had no source frame")
        self.report({"INFO"}, f"Rendered {len(result.frames)} frames to {folder} "
                              f"({result.seconds_per_frame:.2f} s/frame)")
        return {"FINISHED"}


CLASSES = (FLAME_OT_render_preview,)


def menu_render(self, context):
    """Render menu entry."""
    self.layout.operator(FLAME_OT_render_preview.bl_idname, text="FLAME Preview (.png/.mp4)")
