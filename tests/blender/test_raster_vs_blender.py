"""The tracker's torch renderer against Blender: the same posed demo head seen through the same
camera. Blender projects the vertices (``world_to_camera_view``) and casts a ray through every
pixel centre (``Scene.ray_cast``); the renderer (run by FLAME_TRACKER_PYTHON, tests/raster_maps.py)
must agree on projections, coverage, visible triangle, barycentrics and depth."""

import os
import subprocess
from pathlib import Path

import bpy
import numpy as np
import pytest
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Matrix, Vector

from flame_blender_addon.core import lbs, rotations
from flame_blender_addon.core.camera import CameraTrack, opencv_to_blender
from flame_blender_addon.demo import head as demo_head

H, W = 72, 96  # not square, so a swapped axis shows
MAPS = Path(__file__).resolve().parents[1] / "raster_maps.py"


def _scene():
    """Posed demo head (FLAME space), OpenCV camera (K, R, t) looking at it from the front-left."""
    model = demo_head.demo_model()
    aa = np.zeros((1, 5, 3))
    aa[0, 0], aa[0, 2] = [0.1, 0.35, 0.05], [0.25, 0.0, 0.0]
    expr = np.zeros((1, 100))
    expr[0, :6] = [0.8, 0.0, 0.5, 0.0, 0.6, 0.7]
    verts = lbs.forward(model, np.zeros(300), expr, rotations.axis_angle_to_matrix(aa)).vertices[0]
    R = rotations.axis_angle_to_matrix(np.array([np.pi - 0.1, 0.15, 0.0]))  # camera looks at the face
    t = np.array([0.005, -0.01, 0.62])
    K = np.array([[150.0, 0, 51.3], [0, 150.0, 34.6], [0, 0, 1]])
    return model, verts, K, R, t


def _blender_camera(K, R, t):
    bc = opencv_to_blender(CameraTrack(K[None], R[None], t[None], (H, W)))
    data = bpy.data.cameras.new("cam")
    data.lens, data.sensor_width, data.sensor_fit = bc.lens[0], bc.sensor_width, bc.sensor_fit
    data.shift_x, data.shift_y = bc.shift_x[0], bc.shift_y[0]
    cam = bpy.data.objects.new("cam", data)
    cam.matrix_world = Matrix(bc.cam2world[0].tolist())
    scene = bpy.context.scene
    scene.collection.objects.link(cam)
    scene.camera = cam
    scene.render.resolution_x, scene.render.resolution_y = bc.resolution
    scene.render.resolution_percentage = 100
    scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0
    return cam


def _ray_cast(cam, mesh_obj):
    """Blender's visible polygon (H, W) (-1 = none) and camera-space depth (H, W) per pixel centre."""
    scene = bpy.context.scene
    depsgraph = bpy.context.evaluated_depsgraph_get()
    tr, br, bl, tl = cam.data.view_frame(scene=scene)
    origin = cam.matrix_world.translation
    to_cam = cam.matrix_world.inverted()
    face = np.full((H, W), -1)
    depth = np.full((H, W), np.nan)
    hits = np.full((H, W, 3), np.nan)
    for y in range(H):
        for x in range(W):
            a, b = (x + 0.5) / W, (y + 0.5) / H
            local = tl.lerp(tr, a).lerp(bl.lerp(br, a), b)
            hit, location, _, index, obj, _ = scene.ray_cast(depsgraph, origin, (cam.matrix_world @ local) - origin)
            if hit and obj.name == mesh_obj.name:
                face[y, x], hits[y, x] = index, tuple(location)
                depth[y, x] = -(to_cam @ location).z
    return face, depth, hits


def _blender_pixels(cam, points):
    scene = bpy.context.scene
    ndc = np.array([tuple(world_to_camera_view(scene, cam, Vector(p)))[:2] for p in points])
    return np.stack([ndc[:, 0] * W, (1 - ndc[:, 1]) * H], axis=1)


@pytest.mark.skipif(not os.environ.get("FLAME_TRACKER_PYTHON"),
                    reason="FLAME_TRACKER_PYTHON (a Python with torch) not set; scripts/test.sh sets it")
def test_renderer_matches_blender_projection_and_ray_casts(tmp_path):
    model, verts, K, R, t = _scene()
    mesh = bpy.data.meshes.new("head")
    mesh.from_pydata(verts.tolist(), [], model.faces.tolist())
    obj = bpy.data.objects.new("head", mesh)
    bpy.context.scene.collection.objects.link(obj)
    cam = _blender_camera(K, R, t)

    np.savez(tmp_path / "in.npz", points=verts @ R.T + t, faces=model.faces, K=K, image_size=np.array([H, W]))
    run = subprocess.run([os.environ["FLAME_TRACKER_PYTHON"], str(MAPS), str(tmp_path / "in.npz"),
                          str(tmp_path / "out.npz")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    ours = np.load(tmp_path / "out.npz")

    # vertex projections
    proj_err = np.linalg.norm(_blender_pixels(cam, verts) - ours["uv"], axis=1)
    assert proj_err.max() < 0.01, f"vertex projection differs from Blender's by up to {proj_err.max():.4f} px"

    face_bl, depth_bl, hits = _ray_cast(cam, obj)
    face_ours = ours["face_map"]
    covered_bl, covered_ours = face_bl >= 0, face_ours >= 0
    assert covered_bl.sum() > 0.3 * H * W, "the head should fill a good part of the image"
    assert (covered_bl == covered_ours).mean() > 0.995, "coverage differs from Blender's ray casts"
    same = covered_bl & (face_bl == face_ours)
    assert same.sum() > 0.97 * (covered_bl & covered_ours).sum(), "visible triangle differs from Blender's"

    # our surface points (barycentrics) through Blender's camera land on their pixel centres
    ys, xs = np.nonzero(covered_ours)
    corners = verts[model.faces[face_ours[ys, xs]]]  # (N, 3, 3)
    points = np.einsum("nc,ncx->nx", ours["bary"][ys, xs], corners)
    centres = np.stack([xs + 0.5, ys + 0.5], axis=1)
    bary_err = np.linalg.norm(_blender_pixels(cam, points) - centres, axis=1)
    assert bary_err.max() < 0.01, f"barycentric map is off Blender's projection by up to {bary_err.max():.3f} px"
    # where both see the same triangle, our point is Blender's hit point and our depth its depth
    assert np.abs(points - hits[ys, xs])[same[ys, xs]].max() < 1e-4
    depth_err = np.abs(ours["depth"] - depth_bl)[same]
    assert depth_err.max() < 1e-5, f"depth differs from Blender's by up to {depth_err.max() * 1000:.3f} mm"

