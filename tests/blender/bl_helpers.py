"""Helpers for Blender-tier tests (imported by name; tests/ has no packages)."""

import bpy
import numpy as np


def evaluated_vertices(obj) -> np.ndarray:
    """The depsgraph-evaluated mesh of ``obj`` in its local coordinates: (V, 3) float64."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    co = np.empty(3 * len(mesh.vertices), dtype=np.float32)
    mesh.vertices.foreach_get("co", co)
    evaluated.to_mesh_clear()
    return co.reshape(-1, 3).astype(np.float64)


def scene_state() -> dict:
    """Names of every datablock that an import could create, mode and active object, and the scene
    settings an import sets (frame rate, range and current frame, render size, camera)."""
    names = {c: sorted(i.name for i in getattr(bpy.data, c)) for c in (
        "objects", "meshes", "armatures", "shape_keys", "actions", "cameras", "images", "collections",
        "materials")}
    active = bpy.context.view_layer.objects.active
    scene, render = bpy.context.scene, bpy.context.scene.render
    settings = (render.fps, render.fps_base, render.resolution_x, render.resolution_y, render.resolution_percentage,
                render.pixel_aspect_x, render.pixel_aspect_y, scene.frame_start, scene.frame_end, scene.frame_current,
                scene.camera.name if scene.camera else None)
    return {**names, "active": active.name if active else None, "mode": bpy.context.mode, "scene": settings}
