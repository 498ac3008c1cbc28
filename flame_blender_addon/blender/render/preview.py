"""A preview render of a FLAME scene: PNG frames, optionally over the tracker's source frames or side by
side with them, and an MP4, with a progress callback (headless and in the UI).

:class:`PreviewJob` renders one frame per :meth:`~PreviewJob.step`, so the modal operator can show
progress and stop between frames; :func:`render_preview` runs a job to its end.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, replace
from pathlib import Path

import bpy

from ...core.errors import FlameError
from ..progress import Report
from .frames import composite_frames, kept_frame_and_output, render_frame
from .settings import RenderSettings, configure, frame_numbers, preview_lighting, restored_render_settings
from .sources import SourceFrames
from .video import encode_video

RENDER_SHARE = 0.85  # of the progress range; compositing takes 0.85-0.95, encoding the rest


@dataclass(frozen=True)
class PreviewResult:
    """Files written by :func:`render_preview` and the measured time per frame (s)."""

    frames: list[Path]
    video: Path | None
    seconds_per_frame: float
    missing_sources: list[int]


class PreviewJob:
    """A preview render in steps. Creating it sets the scene up for rendering (settings, temporary
    lights); :meth:`finish` or :meth:`cancel` puts everything back."""

    def __init__(self, context: bpy.types.Context, folder: Path, settings: RenderSettings, *,
                 video: Path | None = None, source: SourceFrames | None = None,
                 overlay: bool = False, side_by_side: bool = False):
        scene = context.scene
        if (overlay or side_by_side) and source is None:
            raise FlameError("overlay and side-by-side need source frames: import a tracked sequence with its "
                             "footage, or give a video or a folder of frames")
        self.scene, self.folder, self.video = scene, folder, video
        self.source, self.overlay, self.side_by_side = source, overlay, side_by_side
        self.frames = frame_numbers(scene, settings.frames)
        self.paths: list[Path] = []
        self._seconds = 0.0
        self._restore = contextlib.ExitStack()
        try:
            self._restore.enter_context(restored_render_settings(scene))
            self._restore.enter_context(preview_lighting(context, settings.engine))
            self._restore.enter_context(kept_frame_and_output(scene))
            configure(scene, replace(settings, transparent=settings.transparent or overlay))
        except BaseException:
            self._restore.close()
            raise

    @property
    def done(self) -> bool:
        return len(self.paths) == len(self.frames)

    @property
    def fraction(self) -> float:
        """Share of the frames rendered, in [0, 1]."""
        return len(self.paths) / len(self.frames)

    def step(self) -> int:
        """Render the next frame; returns its scene frame number."""
        frame = self.frames[len(self.paths)]
        started = time.perf_counter()
        self.paths.append(render_frame(self.scene, self.folder, frame))
        self._seconds += time.perf_counter() - started
        return frame

    def cancel(self) -> None:
        """Stop: restore the scene (the frames rendered so far stay on disk)."""
        self._restore.close()

    def finish(self, report: Report = lambda f, m: None) -> PreviewResult:
        """Restore the scene, then composite with the source frames and encode the video."""
        self._restore.close()
        missing = []
        if self.overlay or self.side_by_side:
            missing = composite_frames(self.paths, self.frames, self.source, self.overlay, self.side_by_side,
                                       lambda f, m: report(RENDER_SHARE + 0.1 * f, m))
        if self.video is not None:
            report(0.95, "encoding video")
            encode_video(self.paths, self.video, self.scene.render.fps / self.scene.render.fps_base)
        report(1.0, "done")
        return PreviewResult(self.paths, self.video, self._seconds / max(len(self.paths), 1), missing)


def run_to_end(job: PreviewJob, report: Report = lambda f, m: None) -> PreviewResult:
    """Render every frame of ``job`` and finish it (restores the scene on failure too).

    Progress: rendering takes 0-0.85 of ``report``'s range, compositing 0.85-0.95, encoding the rest.
    """
    try:
        while not job.done:
            frame = job.step()
            report(RENDER_SHARE * job.fraction, f"frame {frame}")
    except BaseException:
        job.cancel()
        raise
    return job.finish(report)


def render_preview(context: bpy.types.Context, folder: Path, settings: RenderSettings, *,
                   video: Path | None = None, source: SourceFrames | None = None,
                   overlay: bool = False, side_by_side: bool = False,
                   report: Report = lambda f, m: None) -> PreviewResult:
    """Render the scene's camera view to ``folder``, optionally composite it with source frames and
    encode ``video`` (:func:`run_to_end`). Render settings are restored afterwards; temporary lights
    are removed."""
    return run_to_end(PreviewJob(context, folder, settings, video=video, source=source, overlay=overlay,
                                 side_by_side=side_by_side), report)
