"""Source frames for the preview's overlay and side-by-side: scene frame -> the footage's pixels.

A tracked import makes the footage the camera's background (an image sequence, or a movie clip for
a video; :func:`..sequence_import.apply_sequence`), so the render finds it there. On the command
line ``--source`` names it instead: a tracker output, a folder of numbered images or a video.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import bpy
import numpy as np

from ...core.errors import FlameError
from ...core.formats.footage import Footage, find_footage
from ...core.formats.per_frame import numbered_images
from .frames import load_rgba
from .video import decode_frame

SourceFrames = Callable[[int], np.ndarray | None]
"""scene frame -> (H, W, 4) float32 pixels of its source frame (as :func:`.frames.load_rgba`), or None"""


def _images(lookup: Callable[[int], Path | None]) -> SourceFrames:
    def pixels(frame: int) -> np.ndarray | None:
        path = lookup(frame)
        return None if path is None else load_rgba(path)

    return pixels


def video_frames(video: Path, first_scene_frame: int) -> SourceFrames:
    """Scene frame ``first_scene_frame + i`` shows the video's frame i (0-based)."""
    return lambda frame: decode_frame(video, frame - first_scene_frame) if frame >= first_scene_frame else None


def footage_frames(footage: Footage, frame_start: int) -> SourceFrames:
    """Scene frame ``frame_start + f`` shows the footage's frame for sequence frame id f."""
    if footage.kind == "video":
        return video_frames(footage.path, frame_start - footage.frame_offset)
    files = numbered_images(footage.path)
    return _images(lambda frame: files.get(frame - frame_start + footage.frame_offset))


def camera_background_frames(scene: bpy.types.Scene) -> SourceFrames | None:
    """The footage a tracked import set as the scene camera's background (a movie clip or an image
    sequence), mapped to scene frames as Blender shows it; None without one."""
    camera = scene.camera
    if camera is None or camera.type != "CAMERA":
        return None
    for bg in camera.data.background_images:
        if bg.source == "MOVIE_CLIP" and bg.clip is not None:
            return video_frames(Path(bpy.path.abspath(bg.clip.filepath)), bg.clip.frame_start)
        if bg.source == "IMAGE" and bg.image is not None and bg.image.source == "SEQUENCE":
            files = numbered_images(Path(bpy.path.abspath(bg.image.filepath)).parent)
            user = bg.image_user

            def lookup(frame: int, files=files, user=user) -> Path | None:
                index = min(max(frame - user.frame_start + 1, 1), user.frame_duration)
                return files.get(index + user.frame_offset)

            return _images(lookup)
    return None


def given_frames(path: Path, frame_start: int) -> SourceFrames:
    """Footage named by the user, its first frame (sequence frame 0) at scene frame ``frame_start``: a
    tracker output folder (its footage reference or ``input/`` frames), a folder of numbered images
    (the lowest number first) or a video file."""
    if not path.exists():
        raise FlameError(f"{path}: no such folder of frames or video")
    if not path.is_dir():
        return video_frames(path, frame_start)
    footage, _ = find_footage(path)
    if footage is None:
        files = numbered_images(path)
        if not files:
            raise FlameError(f"{path}: no numbered .png/.jpg frames and no tracker footage found")
        footage = Footage("images", path, min(files))
    return footage_frames(footage, frame_start)
