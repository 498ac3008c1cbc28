"""FBX and glTF exports of an animated head, verified by importing them back into Blender."""

import sys
from pathlib import Path

import bpy
import numpy as np
import pytest
from bl_helpers import evaluated_vertices

from flame_blender_addon.blender import head, sequence_import
from flame_blender_addon.core.demo_head import demo_model
from flame_blender_addon.core.performance import demo_performance

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import flame_cli  # noqa: E402

FRAMES = (1, 3, 6)


def world_vertices(obj) -> np.ndarray:
    M = np.array(obj.matrix_world)
    return evaluated_vertices(obj) @ M[:3, :3].T + M[:3, 3]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The demo head with 6 frames of its performance (live correctives), exported; world vertices."""
    bpy.ops.wm.read_homefile(use_empty=True)
    armature = head.build_head(bpy.context, demo_model().truncated(5, 20), "FLAME_demo")
    sequence_import.apply_sequence(bpy.context, armature, demo_performance(n_shape=5, n_expr=20).take(slice(0, 6)))
    source = {}
    for frame in FRAMES:
        bpy.context.scene.frame_set(frame)
        source[frame] = world_vertices(armature.flame.mesh)
    folder = tmp_path_factory.mktemp("exports")
    flame_cli.export_head(bpy, folder, ["fbx", "glb"])
    return folder, source


@pytest.mark.parametrize("name, load", [
    # FBX's importer shifts animation by one frame unless told otherwise
    ("head_unity.fbx", lambda path: bpy.ops.import_scene.fbx(filepath=path, anim_offset=0.0)),
    ("head.glb", lambda path: bpy.ops.import_scene.gltf(filepath=path)),
])
def test_reimported_animation_matches_the_source(exported, name, load):
    folder, source = exported
    bpy.context.scene.render.fps = 25  # importers map seconds to frames at the scene's rate
    load(str(folder / name))
    mesh = next(o for o in bpy.context.scene.objects if o.type == "MESH")
    blocks = mesh.data.shape_keys.key_blocks
    assert len(mesh.data.vertices) == 5023
    assert len(blocks) == 1 + 5 + 20 + 36
    for kb in blocks:  # importers create 0..1 sliders, which would clamp the signed FLAME weights
        kb.slider_min, kb.slider_max = -10.0, 10.0
    ends = [a.frame_range[1] for a in bpy.data.actions]
    assert max(ends) == pytest.approx(6.0)
    for frame in FRAMES:
        bpy.context.scene.frame_set(frame)
        error = np.abs(world_vertices(mesh) - source[frame]).max()
        assert error < 1e-4, f"{name} frame {frame}: {error:.3g} m"


def test_unreal_fbx_is_scaled_by_100(exported):
    folder, source = exported
    bpy.context.scene.render.fps = 25
    bpy.ops.import_scene.fbx(filepath=str(folder / "head_unreal.fbx"), anim_offset=0.0)
    mesh = next(o for o in bpy.context.scene.objects if o.type == "MESH")
    for kb in mesh.data.shape_keys.key_blocks:
        kb.slider_min, kb.slider_max = -10.0, 10.0
    bpy.context.scene.frame_set(3)
    np.testing.assert_allclose(world_vertices(mesh), 100 * source[3], atol=1e-2)
