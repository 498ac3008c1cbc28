"""The rigged head: structure, naming contract and exactness against the numpy reference."""

import bpy
import numpy as np
import pytest
from bl_helpers import evaluated_vertices

from flame_blender_addon.core import lbs, rotations
from flame_blender_addon.core.model import JOINT_NAMES, load_model


@pytest.fixture
def flame_sized(flame_sized_model_file):
    assert bpy.ops.flame.import_model(filepath=str(flame_sized_model_file)) == {"FINISHED"}
    return bpy.context.view_layer.objects.active, load_model(flame_sized_model_file)


def set_configuration(armature, shape, expr, quats, translation):
    """Drive the head purely through the documented naming contract."""
    blocks = armature.flame.mesh.data.shape_keys.key_blocks
    for i, value in enumerate(shape):
        blocks[f"shape{i:03d}"].value = value
    for i, value in enumerate(expr):
        blocks[f"exp{i:03d}"].value = value
    for name, q in zip(JOINT_NAMES, quats, strict=True):
        armature.pose.bones[name].rotation_quaternion = q
    armature.pose.bones["root"].location = translation


def test_evaluated_mesh_equals_reference_for_random_configurations(flame_sized):
    armature, model = flame_sized
    rng = np.random.default_rng(2024)
    worst = 0.0
    for _ in range(20):
        shape, expr = rng.normal(0, 1.5, 300), rng.normal(0, 1.5, 100)
        axis = rng.normal(size=(5, 3))
        axis /= np.linalg.norm(axis, axis=1, keepdims=True)
        aa = axis * rng.uniform(0, np.radians(60), (5, 1))
        translation = rng.normal(0, 0.05, 3)
        set_configuration(armature, shape, expr, rotations.axis_angle_to_quaternion(aa), translation)
        assert bpy.ops.flame.update_joints() == {"FINISHED"}
        reference = lbs.forward(model, shape, expr[None], rotations.axis_angle_to_matrix(aa)[None],
                                translation[None]).vertices[0]
        worst = max(worst, np.abs(evaluated_vertices(armature.flame.mesh) - reference).max())
    assert worst < 1e-5, f"max vertex error {worst:.3g} m"


def test_rig_structure_and_naming_contract(small_model_file):
    assert bpy.ops.flame.import_model(filepath=str(small_model_file), n_shape=20, n_expr=10) == {"FINISHED"}
    armature = bpy.context.view_layer.objects.active
    model = load_model(small_model_file)
    assert armature.type == "ARMATURE" and armature.flame.is_head
    assert [b.name for b in armature.data.bones] == list(JOINT_NAMES)
    assert [b.parent.name if b.parent else None for b in armature.data.bones] == [None, "root", "neck", "neck", "neck"]
    for bone, joint in zip(armature.data.bones, model.rest_joints(), strict=True):
        np.testing.assert_allclose(np.array(bone.matrix_local)[:3, :3], np.eye(3), atol=1e-6)
        np.testing.assert_allclose(bone.head_local, joint, atol=1e-6)
    assert all(pb.rotation_mode == "QUATERNION" for pb in armature.pose.bones)
    np.testing.assert_allclose(np.array(armature.matrix_world)[:3, :3],
                               [[1, 0, 0], [0, 0, -1], [0, 1, 0]], atol=1e-6)

    mesh = armature.flame.mesh
    assert mesh.parent == armature and mesh.modifiers["Armature"].object == armature
    names = [kb.name for kb in mesh.data.shape_keys.key_blocks]
    assert names == (["Basis"] + [f"shape{i:03d}" for i in range(20)] + [f"exp{i:03d}" for i in range(10)]
                     + [f"pose{k:02d}" for k in range(36)])
    blocks = mesh.data.shape_keys.key_blocks
    assert (blocks["shape000"].slider_min, blocks["exp009"].slider_max) == (-10, 10)
    drivers = mesh.data.shape_keys.animation_data.drivers
    assert len(drivers) == 36 and all(fc.driver.is_simple_expression for fc in drivers)
    assert {v.targets[0].data_path for v in drivers[35].driver.variables} == {
        f'pose.bones["eye.R"].rotation_quaternion[{i}]' for i in range(4)}
    weights = np.zeros((model.n_verts, 5))
    for v in mesh.data.vertices:  # reading back for the test only
        for g in v.groups:
            weights[v.index, g.group] = g.weight
    np.testing.assert_allclose(weights, model.weights, atol=1e-6)
    props = armature.flame
    assert (props.model_name, props.n_shape, props.n_expr) == ("generic_model.pkl", 20, 10)
    assert props.model_sha256 == model.sha256 and props.edition == "flame2017_2020"


def test_drivers_work_without_python_after_reload(small_model_file, tmp_path):
    bpy.ops.flame.import_model(filepath=str(small_model_file))
    armature = bpy.context.view_layer.objects.active
    armature.pose.bones["jaw"].rotation_quaternion = rotations.axis_angle_to_quaternion(np.array([0.5, 0.1, 0.0]))
    expected = evaluated_vertices(armature.flame.mesh)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "head.blend"))
    bpy.context.preferences.filepaths.use_scripts_auto_execute = False
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "head.blend"), load_ui=False)
    mesh = bpy.data.objects["FLAME_mesh"]
    np.testing.assert_allclose(evaluated_vertices(mesh), expected, atol=1e-7)
    assert abs(mesh.data.shape_keys.key_blocks["pose09"].value) > 1e-3  # jaw correctives are live


def test_update_joints_follows_shape_and_expression(small_model_file):
    bpy.ops.flame.import_model(filepath=str(small_model_file))
    armature = bpy.context.view_layer.objects.active
    model = load_model(small_model_file)
    assert bpy.ops.flame.random_shape(seed=3) == {"FINISHED"}
    assert bpy.ops.flame.random_expression(seed=4, strength=2.0) == {"FINISHED"}
    blocks = armature.flame.mesh.data.shape_keys.key_blocks
    shape = np.array([blocks[f"shape{i:03d}"].value for i in range(300)])
    expr = np.array([blocks[f"exp{i:03d}"].value for i in range(100)])
    assert np.std(shape) > 0.5 and np.std(expr) > 1.0
    heads = np.array([b.head_local for b in armature.data.bones])
    np.testing.assert_allclose(heads, model.rest_joints(shape, expr), atol=1e-6)
    assert np.abs(heads - model.rest_joints()).max() > 1e-3

    bpy.ops.flame.reset_shape()
    bpy.ops.flame.reset_expression()
    assert not any(blocks[f"shape{i:03d}"].value for i in range(300))
    assert not any(blocks[f"exp{i:03d}"].value for i in range(100))
    np.testing.assert_allclose([b.head_local for b in armature.data.bones], model.rest_joints(), atol=1e-6)


def test_reset_pose(small_model_file):
    bpy.ops.flame.import_model(filepath=str(small_model_file))
    armature = bpy.context.view_layer.objects.active
    armature.pose.bones["jaw"].rotation_quaternion = (0.9, 0.3, 0.1, 0.0)
    armature.pose.bones["root"].location = (0.1, 0.2, 0.3)
    assert bpy.ops.flame.reset_pose() == {"FINISHED"}
    assert tuple(armature.pose.bones["jaw"].rotation_quaternion) == (1, 0, 0, 0)
    assert tuple(armature.pose.bones["root"].location) == (0, 0, 0)


def test_operators_accept_a_target_by_name(small_model_file):
    bpy.ops.flame.import_model(filepath=str(small_model_file))
    armature = bpy.context.view_layer.objects.active
    bpy.context.view_layer.objects.active = None
    assert bpy.ops.flame.random_expression(target=armature.name, seed=1) == {"FINISHED"}
    assert armature.flame.mesh.data.shape_keys.key_blocks["exp000"].value != 0


def test_a_new_head_is_neutral():
    """Blender 5.0 starts new shape keys at 1.0; the head's keys must start at 0 (the mean head)."""
    bpy.ops.flame.add_demo_head(n_shape=3, n_expr=3)
    blocks = bpy.context.view_layer.objects.active.flame.mesh.data.shape_keys.key_blocks
    assert all(kb.value == 0.0 for kb in blocks[1:] if not kb.name.startswith("pose"))
