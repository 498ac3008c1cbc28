"""The preview video: PNG frames encoded as H.264 MP4 by Blender's own FFmpeg (nothing outside Blender)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import bpy

from ...core.errors import FlameError
from .. import compat
from .frames import render_scene


def encode_video(paths: Sequence[Path], filepath: Path, fps: float) -> Path:
    """Encode PNG frames (same size, in order) as an H.264 MP4 with Blender's FFmpeg.

    Uses a temporary scene whose sequencer holds the frames as one image strip; H.264 needs even
    sizes, so an odd last row/column is cropped. The temporary scene is removed afterwards.
    """
    if not paths:
        raise FlameError("no frames to encode")
    first = bpy.data.images.load(str(paths[0]), check_existing=False)
    width, height = first.size
    bpy.data.images.remove(first)
    scene = bpy.data.scenes.new("flame_encode")
    try:
        strip = compat.sequencer_strips(scene.sequence_editor_create()).new_image("frames", str(paths[0]), 1, 1)
        for path in paths[1:]:
            strip.elements.append(path.name)
        render = scene.render
        render.resolution_x, render.resolution_y = width - width % 2, height - height % 2
        render.resolution_percentage = 100
        render.fps = max(1, round(fps))
        render.fps_base = render.fps / fps
        compat.set_video_output(render.image_settings)
        render.ffmpeg.format, render.ffmpeg.codec = "MPEG4", "H264"
        render.ffmpeg.constant_rate_factor, render.ffmpeg.ffmpeg_preset = "MEDIUM", "REALTIME"
        render.use_sequencer = True
        scene.frame_start, scene.frame_end = 1, len(paths)
        render.filepath = str(filepath)
        render_scene(scene, animation=True)
    finally:
        bpy.data.scenes.remove(scene)
    if not filepath.is_file():
        raise FlameError(f"{filepath}: the video encoder wrote nothing")
    return filepath

