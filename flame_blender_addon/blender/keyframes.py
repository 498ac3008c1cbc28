"""Bulk keyframe writing: one ``keyframe_points.add`` + ``foreach_set`` per F-curve, linear keys."""

from __future__ import annotations

from collections.abc import Iterable

import bpy
import numpy as np

from . import compat

LINEAR = 1  # Keyframe.interpolation enum value of 'LINEAR'


def write_channels(owner: bpy.types.ID, action_name: str, frames: np.ndarray,
                   channels: Iterable[tuple[str, int, np.ndarray]]) -> bpy.types.Action:
    """Key every channel of ``owner`` at ``frames`` (T,) in a new action assigned to it.

    channels: (data_path, array_index, values (T,)). Returns the action.
    """
    frames = np.asarray(frames, dtype=np.float32)
    action, fcurves = compat.new_action(owner, action_name)
    co = np.empty((len(frames), 2), dtype=np.float32)
    co[:, 0] = frames
    interpolation = np.full(len(frames), LINEAR, dtype=np.int32)
    for data_path, index, values in channels:
        fc = fcurves.new(data_path, index=index)
        fc.keyframe_points.add(len(frames))
        co[:, 1] = values
        fc.keyframe_points.foreach_set("co", co.ravel())
        fc.keyframe_points.foreach_set("interpolation", interpolation)
        fc.update()
    return action


def set_scene_timing(scene: bpy.types.Scene, fps: float, first: int, last: int) -> None:
    """The scene plays ``fps`` (as Blender holds it: a whole ``fps`` of at least 1 and ``fps_base``) over
    frames ``first..last``."""
    scene.render.fps = max(1, round(fps))
    scene.render.fps_base = scene.render.fps / fps
    scene.frame_start, scene.frame_end = first, last


def sample_channels(action: bpy.types.Action, frames: np.ndarray) -> dict[tuple[str, int], np.ndarray]:
    """Evaluate every F-curve of ``action`` at ``frames``: {(data_path, index): values (T,)}."""
    return {(fc.data_path, fc.array_index): np.array([fc.evaluate(f) for f in frames])
            for fc in compat.action_fcurves(action)}
