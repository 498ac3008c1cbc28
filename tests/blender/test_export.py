"""Engine exports of an animated head, each verified by importing it back into an empty scene:
vertex count, shape keys / morph targets, frame count and world-space vertices within 1e-4 m."""

import json
import struct

import bpy
import numpy as np
import pytest
from bl_helpers import evaluated_vertices, fbx_contents, scene_state

from flame_blender_addon.blender import export, head, sequence_import
from flame_blender_addon.core.errors import FlameError
from flame_blender_addon.core.evaluation import sequence_vertices
from flame_blender_addon.demo.head import demo_model
from flame_blender_addon.demo.performance import demo_performance

N_SHAPE, N_EXPR, N_POSE = 5, 20, 36
WINDOW = slice(46, 58)  # 1.84-2.28 s of the performance: speech, the head turned, a glance down
N_FRAMES = WINDOW.stop - WINDOW.start
CHECKED = (1, 6, N_FRAMES)  # scene frames compared with the source
FPS = 25


def world_vertices(obj) -> np.ndarray:
    M = np.array(obj.matrix_world)
    return evaluated_vertices(obj) @ M[:3, :3].T + M[:3, 3]


def sample(obj, frames) -> dict[int, np.ndarray]:
    out = {}
    for frame in frames:
        bpy.context.scene.frame_set(frame)
        out[frame] = world_vertices(obj)
    return out


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """The demo head (5 identity, 20 expression keys, live correctives) performing 12 frames, every
    format exported; the source's world vertices at the checked frames, with and without correctives."""
    bpy.ops.wm.read_homefile(use_empty=True)
    model = demo_model().truncated(N_SHAPE, N_EXPR)
    armature = head.build_head(bpy.context, model, "FLAME_demo")
    seq = demo_performance(n_shape=N_SHAPE, n_expr=N_EXPR).take(WINDOW)
    sequence_import.apply_sequence(bpy.context, armature, seq, frame_start=1 - WINDOW.start)
    mesh = armature.flame.mesh
    vertices = sample(mesh, CHECKED)
    pose_keys = [kb for kb in mesh.data.shape_keys.key_blocks if kb.name.startswith(head.POSE_PREFIX)]
    for kb in pose_keys:
        kb.mute = True
    without_correctives = sample(mesh, CHECKED)
    for kb in pose_keys:
        kb.mute = False
    folder = tmp_path_factory.mktemp("exports")
    before = scene_state() | {"frame": bpy.context.scene.frame_current}
    written = export.export_all(bpy.context, armature, folder, "head")
    after = scene_state() | {"frame": bpy.context.scene.frame_current}
    return {"folder": folder, "written": written, "vertices": vertices, "flat": without_correctives,
            "model": model, "seq": seq, "scene_before": before, "scene_after": after}


def import_fresh(load) -> None:
    """An empty scene at the source's frame rate (importers map seconds to frames with it), then ``load``."""
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.context.scene.render.fps = FPS
    load()


def head_mesh():
    return next(o for o in bpy.context.scene.objects if o.type == "MESH" and len(o.data.vertices) > 1000)


def assert_matches_source(source, mesh, frames=CHECKED) -> None:
    for frame in frames:
        bpy.context.scene.frame_set(frame)
        error = np.abs(world_vertices(mesh) - source["vertices"][frame]).max()
        assert error < 1e-4, f"frame {frame}: {error:.3g} m"


def unclamp_shape_keys(mesh) -> None:
    """Importers create 0..1 sliders, which clamp the signed FLAME weights (values are clamped to
    the slider range); the files themselves hold the signed values."""
    for kb in mesh.data.shape_keys.key_blocks:
        kb.slider_min, kb.slider_max = -10.0, 10.0


def glb_json(path) -> dict:
    data = path.read_bytes()
    assert data[:4] == b"glTF"
    length = struct.unpack_from("<I", data, 12)[0]
    return json.loads(data[20:20 + length])


def test_correctives_are_exercised_and_the_scene_is_left_as_it_was(source):
    worst = max(np.abs(source["vertices"][f] - source["flat"][f]).max() for f in CHECKED)
    assert worst > 1e-3, "the checked frames must depend on the driven correctives"
    assert source["scene_after"] == source["scene_before"]
    assert {k: len(v) for k, v in source["written"].items()} == {
        "fbx_unreal": 1, "fbx_unity": 1, "glb": 1, "abc": 1, "usd": 1, "obj": N_FRAMES, "ply": N_FRAMES}


@pytest.mark.parametrize("preset, unit_scale, root_scale", [("unreal", 1.0, 100.0), ("unity", 100.0, 1.0)])
def test_fbx_round_trip(source, preset, unit_scale, root_scale):
    path = source["folder"] / f"head_{preset}.fbx"
    file_unit, models, vertices = fbx_contents(path)
    assert file_unit == unit_scale  # centimetres / metres
    np.testing.assert_allclose(vertices, source["model"].v_template, atol=1e-6)  # FLAME's own frame
    for name in ("FLAME_demo", "FLAME_demo_mesh"):  # Y-up roots without rotation
        np.testing.assert_allclose(models[name].get(b"Lcl Rotation", [0, 0, 0]), 0.0, atol=1e-4)
        np.testing.assert_allclose(models[name].get(b"Lcl Scaling", [1, 1, 1]), root_scale)
    # FBX's importer shifts animation by one frame unless told otherwise
    import_fresh(lambda: bpy.ops.import_scene.fbx(filepath=str(path), anim_offset=0.0))
    armature = next(o for o in bpy.context.scene.objects if o.type == "ARMATURE")
    mesh = head_mesh()
    assert sorted(b.name for b in armature.data.bones) == sorted(("root", "neck", "jaw", "eye.L", "eye.R"))
    assert len(mesh.data.vertices) == 5023
    assert len(mesh.data.shape_keys.key_blocks) == 1 + N_SHAPE + N_EXPR + N_POSE
    for owner in (armature, mesh.data.shape_keys):
        assert tuple(owner.animation_data.action.frame_range) == (1.0, N_FRAMES)
    unclamp_shape_keys(mesh)
    assert_matches_source(source, mesh)


def test_gltf_round_trip(source):
    path = source["folder"] / "head.glb"
    gltf = glb_json(path)
    assert len(gltf["skins"]) == 1 and len(gltf["skins"][0]["joints"]) == 5
    (mesh_json,) = gltf["meshes"]
    assert {len(p["targets"]) for p in mesh_json["primitives"]} == {N_SHAPE + N_EXPR + N_POSE}
    (animation,) = gltf["animations"]
    assert {gltf["accessors"][s["input"]]["count"] for s in animation["samplers"]} == {N_FRAMES}
    assert "weights" in {c["target"]["path"] for c in animation["channels"]}
    import_fresh(lambda: bpy.ops.import_scene.gltf(filepath=str(path)))
    mesh = head_mesh()
    assert len(mesh.data.vertices) == 5023
    assert len(mesh.data.shape_keys.key_blocks) == 1 + N_SHAPE + N_EXPR + N_POSE
    unclamp_shape_keys(mesh)
    assert_matches_source(source, mesh)


@pytest.mark.parametrize("name, load", [
    ("head.abc", lambda path: bpy.ops.wm.alembic_import(filepath=path, set_frame_range=True)),
    ("head.usd", lambda path: bpy.ops.wm.usd_import(filepath=path, set_frame_range=True)),
])
def test_baked_vertex_animation_round_trip(source, name, load):
    import_fresh(lambda: load(str(source["folder"] / name)))
    mesh = head_mesh()
    assert len(mesh.data.vertices) == 5023
    assert mesh.data.shape_keys is None  # correctives and expressions are in the vertices
    scene = bpy.context.scene
    assert (scene.frame_start, scene.frame_end) == (1, N_FRAMES)
    assert_matches_source(source, mesh)


@pytest.mark.parametrize("kind, load", [
    ("obj", lambda path: bpy.ops.wm.obj_import(filepath=path, **export.FRAME_AXES)),
    ("ply", lambda path: bpy.ops.wm.ply_import(filepath=path, **export.FRAME_AXES)),
])
def test_mesh_per_frame_round_trip(source, kind, load):
    files = source["written"][kind]
    assert [p.name for p in files] == [f"head_{f:04d}.{kind}" for f in range(1, N_FRAMES + 1)]
    for frame in CHECKED:
        import_fresh(lambda path=str(files[frame - 1]): load(path))
        mesh = head_mesh()
        assert len(mesh.data.vertices) == 5023 and mesh.data.shape_keys is None
        error = np.abs(world_vertices(mesh) - source["vertices"][frame]).max()
        assert error < 1e-4, f"{files[frame - 1].name}: {error:.3g} m"


def test_obj_frames_hold_flame_space_vertices(source):
    """With the head at the origin, the OBJ files are FLAME's own frame: they match the numpy reference."""
    reference = sequence_vertices(source["model"], source["seq"], slice(0, N_FRAMES, 5))
    for ref, path in zip(reference, source["written"]["obj"][::5], strict=True):
        lines = [line.split()[1:4] for line in path.read_text().splitlines() if line.startswith("v ")]
        np.testing.assert_allclose(np.array(lines, dtype=np.float64), ref, atol=1e-5)


def test_operators_export_the_active_head_and_refuse_other_objects(tmp_path):
    bpy.ops.flame.add_demo_head(n_shape=2, n_expr=2)
    target = bpy.context.view_layer.objects.active.name
    bpy.context.scene.frame_end = 3
    assert bpy.ops.flame.export_gltf(filepath=str(tmp_path / "a.glb")) == {"FINISHED"}
    assert bpy.ops.flame.export_fbx(filepath=str(tmp_path / "a.fbx"), preset="UNITY", target=target) == {"FINISHED"}
    assert bpy.ops.flame.export_mesh_frames(filepath=str(tmp_path / "m.ply"), file_format="PLY") == {"FINISHED"}
    assert (tmp_path / "a.glb").is_file() and (tmp_path / "a.fbx").is_file()
    assert sorted(p.name for p in tmp_path.glob("m_*.ply")) == ["m_0001.ply", "m_0002.ply", "m_0003.ply"]
    camera = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
    bpy.context.collection.objects.link(camera)
    with pytest.raises(RuntimeError, match="'cam' is not a FLAME head"):
        bpy.ops.flame.export_usd(filepath=str(tmp_path / "a.usd"), target="cam")
    with pytest.raises(FlameError, match="unknown export format"):
        export.export_all(bpy.context, bpy.data.objects[target], tmp_path, formats=("fbx",))
