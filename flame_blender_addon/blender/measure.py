"""Where Blender shows a head on the footage: points of the evaluated mesh projected through the scene
camera, in the pixels of the tracker's images (OpenCV's convention: origin at the top-left corner,
u to the right, v down). Used to measure an import against the tracker's detections
(``scripts/measure_import.py``) and by the tests that check imports are exact.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import bpy
import numpy as np

from ..core.retarget.geometry import barycentric_points


def camera_pixels(scene: bpy.types.Scene, points: np.ndarray) -> np.ndarray:
    """World points (N, 3) -> (N, 2) pixels through the scene camera at the current frame."""
    render = scene.render
    width = render.resolution_x * render.resolution_percentage / 100
    height = render.resolution_y * render.resolution_percentage / 100
    camera = scene.camera
    depsgraph = bpy.context.evaluated_depsgraph_get()
    projection = np.array(camera.calc_matrix_camera(depsgraph, x=round(width), y=round(height),
                                                    scale_x=render.pixel_aspect_x, scale_y=render.pixel_aspect_y))
    clip = np.c_[points, np.ones(len(points))] @ (projection @ np.linalg.inv(np.array(camera.matrix_world))).T
    ndc = clip[:, :2] / clip[:, 3:4]
    return np.stack([(ndc[:, 0] + 1) / 2 * width, (1 - ndc[:, 1]) / 2 * height], axis=1)


@contextmanager
def evaluated_mesh(obj: bpy.types.Object, depsgraph: bpy.types.Depsgraph) -> Iterator[bpy.types.Mesh]:
    """The depsgraph-evaluated mesh of a mesh object (pose, shape, expression, correctives), freed
    when the ``with`` block ends."""
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        yield mesh
    finally:
        evaluated.to_mesh_clear()


def mesh_vertices(mesh: bpy.types.Mesh) -> np.ndarray:
    """A mesh's vertices in its local coordinates: (V, 3) float64."""
    co = np.empty(3 * len(mesh.vertices), dtype=np.float32)
    mesh.vertices.foreach_get("co", co)
    return co.reshape(-1, 3).astype(np.float64)


def evaluated_world_vertices(obj: bpy.types.Object) -> np.ndarray:
    """The depsgraph-evaluated vertices of a mesh object in world space: (V, 3) float64."""
    with evaluated_mesh(obj, bpy.context.evaluated_depsgraph_get()) as mesh:
        co = mesh_vertices(mesh)
    world = np.array(obj.matrix_world)
    return co @ world[:3, :3].T + world[:3, 3]


def landmark_pixels(scene: bpy.types.Scene, mesh_obj: bpy.types.Object, face_idx: np.ndarray, bary: np.ndarray,
                    frames: Sequence[int]) -> np.ndarray:
    """Surface points given by faces (L,) and barycentric weights (L, 3), as Blender shows them through
    the scene camera at each scene frame: (T, L, 2) pixels. The scene's current frame is restored."""
    loops = np.empty(len(mesh_obj.data.loops), dtype=np.int32)  # the head's faces are triangles, in order
    mesh_obj.data.loops.foreach_get("vertex_index", loops)
    corners = loops.reshape(-1, 3)[np.asarray(face_idx)]  # (L, 3)
    current, out = scene.frame_current, np.empty((len(frames), len(face_idx), 2))
    try:
        for t, frame in enumerate(frames):
            scene.frame_set(int(frame))
            points = barycentric_points(evaluated_world_vertices(mesh_obj), corners, bary)
            out[t] = camera_pixels(scene, points)
    finally:
        scene.frame_set(current)
    return out
