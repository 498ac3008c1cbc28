"""Posing from the panel (Euler sliders over the quaternions, the correctives toggle), per-format file
names in the export dialogs, and the watertight closed mesh for 3-D printing."""

import math

import bpy
import numpy as np
import pytest
from bl_helpers import OperatorDouble, evaluated_vertices, write_take
from mathutils import Euler, Quaternion

from flame_blender_addon.blender import head
from flame_blender_addon.core import rig
from flame_blender_addon.core.closed_mesh import is_watertight
from flame_blender_addon.core.formats.mesh_file import STL_TRIANGLE


@pytest.fixture(scope="module")
def demo_arrays():
    from flame_blender_addon.demo.head import demo_model

    return demo_model().truncated(2, 5)


@pytest.fixture
def demo(demo_arrays):
    return head.build_head(bpy.context, demo_arrays, "FLAME_demo")


def test_euler_sliders_read_and_write_the_bone_quaternions(demo):
    props = demo.flame
    props.jaw_rotation = (math.radians(20), 0.0, 0.0)
    np.testing.assert_allclose(demo.pose.bones["jaw"].rotation_quaternion,
                               (math.cos(math.radians(10)), math.sin(math.radians(10)), 0, 0), atol=1e-6)
    neck = (0.1, -0.3, 0.05)
    props.neck_rotation = neck
    np.testing.assert_allclose(demo.pose.bones["neck"].rotation_quaternion, Euler(neck, "XYZ").to_quaternion(),
                               atol=1e-6)
    np.testing.assert_allclose(props.neck_rotation, neck, atol=1e-6)
    demo.pose.bones["eye.L"].rotation_quaternion = Quaternion((0, 1, 0), 0.2)  # keyed or scripted quaternions
    np.testing.assert_allclose(props.eye_l_rotation, (0, 0.2, 0), atol=1e-6)
    assert all(demo.pose.bones[b].rotation_mode == "QUATERNION" for b in ("neck", "jaw", "eye.L"))
    rna = props.bl_rna.properties
    assert not rna["neck_rotation"].is_animatable and rna["neck_rotation"].subtype == "EULER"
    assert bpy.data.objects.new("empty", None).flame.jaw_rotation[:] == (0, 0, 0)  # not a head: inert


def test_correctives_toggle_mutes_the_pose_drivers(demo):
    props = demo.flame
    props.jaw_rotation = (math.radians(25), 0.0, 0.0)
    props.neck_rotation = (0.2, 0.3, 0.0)
    bpy.context.view_layer.update()
    with_correctives = evaluated_vertices(props.mesh)
    blocks = props.mesh.data.shape_keys.key_blocks
    assert props.use_correctives and any(abs(kb.value) > 1e-3 for kb in blocks if kb.name.startswith("pose"))
    props.use_correctives = False
    bpy.context.view_layer.update()
    assert not props.use_correctives and all(kb.value == 0 for kb in blocks if kb.name.startswith("pose"))
    without = evaluated_vertices(props.mesh)
    assert np.abs(without - with_correctives).max() > 1e-4
    props.use_correctives = True
    bpy.context.view_layer.update()
    np.testing.assert_allclose(evaluated_vertices(props.mesh), with_correctives, atol=1e-6)


def test_export_dialogs_name_the_file_for_the_format(tmp_path):
    double = OperatorDouble(bpy.types.FLAME_OT_export_sequence, filepath=str(tmp_path / "flame_sequence.npz"))
    assert double.check(bpy.context) is False
    double.format = "METRICAL"
    assert double.check(bpy.context) is True and double.filepath == str(tmp_path / "flame_sequence")
    double.format = "NPZ"
    assert double.check(bpy.context) is True and double.filepath == str(tmp_path / "flame_sequence.npz")
    double.filepath = str(tmp_path) + "/"
    double.check(bpy.context)
    assert double.filepath == str(tmp_path / "flame_sequence.npz")
    mesh = OperatorDouble(bpy.types.FLAME_OT_export_closed_mesh, filepath=str(tmp_path / "head.stl"),
                          file_format="OBJ")
    assert mesh.check(bpy.context) is True and mesh.filepath == str(tmp_path / "head.obj")


def test_metrical_export_with_the_default_name_makes_no_npz_folder(small_model_file, tmp_path):
    bpy.ops.flame.import_model(filepath=str(small_model_file), n_shape=10, n_expr=10)
    bpy.ops.flame.import_sequence(filepath=str(write_take(tmp_path / "take.npz", 3)))
    out = tmp_path / "out"
    out.mkdir()
    bpy.ops.flame.export_sequence(filepath=str(out / "flame_sequence.npz"), format="METRICAL")
    assert [p.name for p in out.iterdir()] == ["flame_sequence"]
    assert len(list((out / "flame_sequence" / "checkpoint").glob("*.frame"))) == 3


def read_obj(path):
    lines = path.read_text().splitlines()
    v = np.array([[float(x) for x in line.split()[1:]] for line in lines if line.startswith("v ")])
    f = np.array([[int(x) - 1 for x in line.split()[1:]] for line in lines if line.startswith("f ")])
    return v, f


def test_closed_mesh_is_watertight_and_matches_the_evaluated_head(demo, tmp_path):
    demo.flame.jaw_rotation = (math.radians(15), 0.0, 0.0)
    demo.flame.neck_rotation = (0.1, 0.4, 0.0)
    bpy.context.view_layer.update()
    evaluated = evaluated_vertices(demo.flame.mesh)
    assert bpy.ops.flame.export_closed_mesh(filepath=str(tmp_path / "head.obj")) == {"FINISHED"}
    vertices, faces = read_obj(tmp_path / "head.obj")
    assert is_watertight(faces) and len(faces) > len(demo.flame.mesh.data.polygons)
    np.testing.assert_allclose(vertices[: len(evaluated)], evaluated * 1000.0, atol=2e-3)  # mm, 6 decimals

    assert bpy.ops.flame.export_closed_mesh(filepath=str(tmp_path / "head.stl"), units="CM") == {"FINISHED"}
    data = (tmp_path / "head.stl").read_bytes()
    triangles = np.frombuffer(data, STL_TRIANGLE, int(np.frombuffer(data, "<u4", 1, 80)[0]), 84)
    assert len(data) == 84 + 50 * len(faces) and len(triangles) == len(faces)
    expected = (vertices / 10.0) @ rig.FLAME_TO_BLENDER[:3, :3].T  # Z up, centimetres
    np.testing.assert_allclose(triangles["corners"], expected[faces], atol=1e-4)
    normals = np.cross(expected[faces[:, 1]] - expected[faces[:, 0]], expected[faces[:, 2]] - expected[faces[:, 0]])
    assert np.all(np.einsum("fc,fc->f", triangles["normal"], normals) >= 0)
