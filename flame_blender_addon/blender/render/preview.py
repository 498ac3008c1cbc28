"""A preview render of a FLAME scene: PNG frames, optionally over the tracker's source frames or side by
side with them, and an MP4, with a progress callback (headless and in the UI)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import bpy

from ...core.errors import FlameError
from ..progress import Report
from .frames import composite_frames, render_frames
from .settings import RenderSettings, configure, frame_numbers, preview_lighting, restored_render_settings
from .sources import SourceFrames
from .video import encode_video


@dataclass(frozen=True)
class PreviewResult:
    """Files written by :func:`render_preview` and the measured time per frame (s)."""

    frames: list[Path]
    video: Path | None
    seconds_per_frame: float
    missing_sources: list[int]


def render_preview(context: bpy.types.Context, folder: Path, settings: RenderSettings, *,
                   video: Path | None = None, source: SourceFrames | None = None,
                   overlay: bool = False, side_by_side: bool = False,
                   report: Report = lambda f, m: None) -> PreviewResult:
    """Render the scene's camera view to ``folder``, optionally composite it with source frames and
    encode ``video``. Render settings are restored afterwards; temporary lights are removed.

    Progress: rendering takes 0-0.85 of ``report``'s range, compositing 0.85-0.95, encoding the rest.
    """
    scene = context.scene
    if (overlay or side_by_side) and source is None:
        raise FlameError("overlay and side-by-side need source frames: import a tracked sequence with its "
                         "footage, or give a video or a folder of frames")
    frames = frame_numbers(scene, settings.frames)
    settings = RenderSettings(**{**settings.__dict__, "transparent": settings.transparent or overlay})
    with restored_render_settings(scene), preview_lighting(context, settings.engine):
        configure(scene, settings)
        started = time.perf_counter()
        paths = render_frames(scene, folder, frames, lambda f, m: report(0.85 * f, m))
        per_frame = (time.perf_counter() - started) / len(frames)
    missing = []
    if overlay or side_by_side:
        missing = composite_frames(paths, frames, source, overlay, side_by_side,
                                   lambda f, m: report(0.85 + 0.1 * f, m))
    if video is not None:
        report(0.95, "encoding video")
        encode_video(paths, video, scene.render.fps / scene.render.fps_base)
    report(1.0, "done")
    return PreviewResult(paths, video, per_frame, missing)
