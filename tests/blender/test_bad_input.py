"""Bad model files give a clear report, and a failed import leaves the scene exactly as it was."""

import pickle

import bpy
import legacy_pickle
import numpy as np
import pytest
from bl_helpers import scene_state
from synthetic_model import random_model_arrays

from flame_blender_addon.blender import head
from flame_blender_addon.core.errors import FlameError


@pytest.fixture
def populated_scene(small_model_file):
    """A scene that already holds a head, a cube in edit-free object mode and a selection."""
    bpy.ops.flame.import_model(filepath=str(small_model_file), n_shape=5, n_expr=5)
    bpy.ops.mesh.primitive_cube_add()
    return scene_state()


def _files(tmp_path):
    arrays = random_model_arrays(n_verts=50, n_faces=60, seed=1)
    good = legacy_pickle.dumps_flame(arrays)
    (tmp_path / "truncated.pkl").write_bytes(good[: len(good) // 3])
    (tmp_path / "foreign.pkl").write_bytes(pickle.dumps({"hello": np.zeros(3)}, protocol=2))
    wrong = dict(arrays, weights=arrays["weights"][:10])
    legacy_pickle.write_flame_pickle(tmp_path / "wrong_shape.pkl", wrong)
    (tmp_path / "hostile.pkl").write_bytes(b"cos\nsystem\n(S'touch PWNED'\ntR.")
    return {
        "missing.pkl": "file not found",
        "truncated.pkl": "truncated or damaged",
        "foreign.pkl": "missing key 'v_template'",
        "wrong_shape.pkl": r"'weights' has shape \(10, 5\), expected \(50, 5\)",
        "hostile.pkl": "refused to load 'os.system'",
    }


def test_bad_files_report_and_leave_scene_unchanged(populated_scene, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, message in _files(tmp_path).items():
        with pytest.raises(RuntimeError, match=message):
            bpy.ops.flame.import_model(filepath=str(tmp_path / name))
        assert scene_state() == populated_scene, name
    assert not (tmp_path / "PWNED").exists()


def test_failure_half_way_through_the_build_is_rolled_back(populated_scene, small_model_file, monkeypatch):
    def fail(*args):
        raise FlameError("simulated failure after the mesh, shape keys and armature exist")

    monkeypatch.setattr(head, "_add_corrective_drivers", fail)
    with pytest.raises(RuntimeError, match="simulated failure"):
        bpy.ops.flame.import_model(filepath=str(small_model_file))
    assert scene_state() == populated_scene


def test_empty_path_is_explained():
    with pytest.raises(RuntimeError, match="No model file given"):
        bpy.ops.flame.import_model(filepath="")
    assert not bpy.data.objects


def test_head_operators_share_one_poll_that_says_why(tmp_path):
    for op in (bpy.ops.flame.update_joints, bpy.ops.flame.reset_pose, bpy.ops.flame.export_gltf,
               bpy.ops.flame.export_sequence):
        assert not op.poll()
        with pytest.raises(RuntimeError, match="Needs a FLAME head: select one, or add one"):
            op()
    bpy.ops.flame.add_demo_head(n_shape=2, n_expr=2)
    armature = bpy.context.view_layer.objects.active
    camera = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
    bpy.context.collection.objects.link(camera)
    bpy.context.view_layer.objects.active = camera  # a head elsewhere in the scene: ``target`` names it
    for op in (bpy.ops.flame.update_joints, bpy.ops.flame.export_gltf):
        assert op.poll()
    assert bpy.ops.flame.export_gltf(filepath=str(tmp_path / "h.glb"), target=armature.name) == {"FINISHED"}


def test_unexpected_errors_are_reported_and_logged(populated_scene, small_model_file, monkeypatch, caplog):
    def bug(*args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(head, "_add_corrective_drivers", bug)
    with pytest.raises(RuntimeError, match=r"Import FLAME Model failed: ZeroDivisionError\('a bug'\)"):
        bpy.ops.flame.import_model(filepath=str(small_model_file))
    assert scene_state() == populated_scene
    assert "FLAME_OT_import_model failed" in caplog.text and "ZeroDivisionError" in caplog.text
