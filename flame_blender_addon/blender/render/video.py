"""Video through Blender's own FFmpeg (nothing outside Blender): the preview's PNG frames encoded as
H.264 MP4, and single frames of the footage decoded for compositing. Both use a temporary scene whose
sequencer holds the frames."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import bpy
import numpy as np

from ...core.errors import FlameError
from .. import compat
from .frames import load_rgba, render_scene


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



def decode_frame(video: Path, index: int) -> np.ndarray | None:
    """Frame ``index`` (0-based, decoding order) of a video as (H, W, 4) float32 pixels like
    :func:`.frames.load_rgba` (values as stored, rows bottom to top); None past the end."""
    scene = bpy.data.scenes.new("flame_decode")
    try:
        try:
            strip = compat.sequencer_strips(scene.sequence_editor_create()).new_movie("footage", str(video), 1, 1)
        except RuntimeError:
            raise FlameError(f"{video}: Blender cannot read this video") from None
        if not 0 <= index < compat.strip_duration(strip):
            return None
        render = scene.render
        render.resolution_x, render.resolution_y = strip.elements[0].orig_width, strip.elements[0].orig_height
        render.resolution_percentage = 100
        render.use_sequencer = True
        render.image_settings.file_format = "PNG"
        scene.view_settings.view_transform = "Standard"  # the footage's values, untouched
        scene.frame_start = scene.frame_end = index + 1
        with tempfile.TemporaryDirectory(prefix="flame-decode-") as folder:
            render.filepath = str(Path(folder) / "frame_")
            render_scene(scene, animation=True)  # write_still renders the context's scene, not this one
            return load_rgba(next(Path(folder).iterdir()))
    finally:
        bpy.data.scenes.remove(scene)
