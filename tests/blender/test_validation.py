"""Validation before change: what a scene cannot hold is refused before it is touched, a failed import
restores the scene's settings too, an edited head is repaired with a warning or refused, and
track_video takes back the head it made for a result that cannot be imported."""

import sys
from pathlib import Path

import bpy
import numpy as np
import pytest
from bl_helpers import scene_state

from flame_blender_addon.blender import sequence_import
from flame_blender_addon.core.errors import FlameError

FAKE = f"{sys.executable} {Path(__file__).resolve().parents[1] / 'fake_tracker.py'} --output {{output}}"


def own_npz(path: Path, frame_ids=(0, 1, 2), fps=30.0, image_size=(480, 640)) -> Path:
    """A flame_sequence.npz with a camera: 5 expression components, zero pose."""
    T = len(frame_ids)
    np.savez(path, expr=np.linspace(0, 1, 5 * T).reshape(T, 5), fps=np.array(fps),
             frame_ids=np.array(frame_ids, dtype=np.int64), K=np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]]),
             cam_R=np.diag([1.0, -1.0, -1.0]), cam_t=np.array([0, 0, 1.0]), image_size=np.array(image_size))
    return path


@pytest.fixture
def head_scene(small_model_file):
    """A head in a scene whose settings differ from anything an import would set."""
    bpy.ops.flame.import_model(filepath=str(small_model_file), n_shape=5, n_expr=5)
    scene = bpy.context.scene
    scene.render.fps, scene.render.resolution_x, scene.render.resolution_y = 24, 1000, 700
    scene.frame_start, scene.frame_end, scene.frame_current = 10, 20, 12
    return bpy.context.view_layer.objects.active


def key_values(armature):
    return [kb.value for kb in armature.flame.mesh.data.shape_keys.key_blocks]


@pytest.mark.parametrize("options, npz, message", [
    ({}, {"frame_ids": (2**31, 2**31 + 1)}, r"land on scene frames 2147483649\.\.2147483650"),
    ({"frame_start": -5}, {}, r"land on scene frames -5\.\.-3"),
    ({}, {"fps": 1e-9}, "fps is 1e-09, expected 0.01 to 1000"),
    ({}, {"fps": 1e9}, "fps is 1e\\+09"),
    ({"fps": 5000.0}, {}, "fps is 5000"),
    ({"target_fps": 1e9}, {}, "the fps to resample to is 1e\\+09"),
    ({"target_fps": 999.0}, {"frame_ids": (0, 9000)}, "299,701 frames at 999 fps: more than the 100,000"),
    ({}, {"image_size": (65536, 65536)}, r"'image_size' is \[65536, 65536\], expected \[H, W\]: two whole numbers "
                                         "of 16 to 16384 pixels"),
    ({}, {"image_size": (4, 4)}, r"'image_size' is \[4, 4\]"),
], ids=["ids-2**31", "negative-frames", "fps-1e-9", "fps-1e9", "fps-option", "target-fps-1e9", "resample-count",
        "image-65536", "image-4"])
def test_what_a_scene_cannot_hold_is_refused_before_anything_changes(head_scene, tmp_path, options, npz, message):
    path = own_npz(tmp_path / "flame_sequence.npz", **npz)
    before, values = scene_state(), key_values(head_scene)
    with pytest.raises(RuntimeError, match=message):
        bpy.ops.flame.import_sequence(filepath=str(path), target=head_scene.name, **options)
    assert scene_state() == before
    assert key_values(head_scene) == values


def test_a_failure_after_the_whole_import_restores_the_scene_settings(head_scene, tmp_path, monkeypatch):
    apply = sequence_import.apply_sequence

    def apply_then_fail(*args, **kwargs):
        apply(*args, **kwargs)
        assert bpy.context.scene.render.fps == 30 and bpy.context.scene.camera is not None
        raise FlameError("simulated failure after the keys, camera, resolution and frame rate were set")

    monkeypatch.setattr(sequence_import, "apply_sequence", apply_then_fail)
    before, values = scene_state(), key_values(head_scene)
    with pytest.raises(RuntimeError, match="simulated failure"):
        bpy.ops.flame.import_sequence(filepath=str(own_npz(tmp_path / "flame_sequence.npz")))
    assert scene_state() == before
    assert key_values(head_scene) == values


def test_a_renamed_bone_is_refused_not_duplicated(head_scene, tmp_path):
    head_scene.data.bones["jaw"].name = "Jaw"
    before = scene_state()
    with pytest.raises(RuntimeError, match=r"bone\(s\) jaw missing \(renamed to Jaw\?\); rename them back"):
        bpy.ops.flame.import_sequence(filepath=str(own_npz(tmp_path / "flame_sequence.npz")))
    assert scene_state() == before
    assert sorted(b.name for b in head_scene.data.bones) == ["Jaw", "eye.L", "eye.R", "neck", "root"]
    with pytest.raises(RuntimeError, match=r"bone\(s\) jaw missing"):
        bpy.ops.flame.random_expression(seed=1)


def test_a_deleted_expression_key_is_refused_not_silently_dropped(head_scene, tmp_path):
    mesh = head_scene.flame.mesh
    mesh.shape_key_remove(mesh.data.shape_keys.key_blocks["exp002"])
    before = scene_state()
    with pytest.raises(RuntimeError, match=r"shape key\(s\) exp002 missing \(1 in all; deleted or renamed\?\)"):
        bpy.ops.flame.import_sequence(filepath=str(own_npz(tmp_path / "flame_sequence.npz")))
    assert scene_state() == before


def test_an_euler_bone_is_repaired_with_a_warning(head_scene, tmp_path, capfd):
    head_scene.pose.bones["jaw"].rotation_mode = "XYZ"
    assert bpy.ops.flame.import_sequence(filepath=str(own_npz(tmp_path / "flame_sequence.npz"))) == {"FINISHED"}
    assert head_scene.pose.bones["jaw"].rotation_mode == "QUATERNION"
    assert "bone 'jaw' was set to XYZ rotation; set back to quaternion" in capfd.readouterr().out


def test_a_failed_import_puts_an_euler_bone_back(head_scene, tmp_path, monkeypatch):
    head_scene.pose.bones["jaw"].rotation_mode = "XYZ"

    def fail(*args, **kwargs):
        raise FlameError("simulated failure after the repair")

    monkeypatch.setattr(sequence_import, "apply_sequence", fail)
    with pytest.raises(RuntimeError, match="simulated failure"):
        bpy.ops.flame.import_sequence(filepath=str(own_npz(tmp_path / "flame_sequence.npz")))
    assert head_scene.pose.bones["jaw"].rotation_mode == "XYZ"


def test_track_video_takes_back_the_demo_head_it_made_for_an_unimportable_result(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"not decoded by the stand-in tracker")
    before = scene_state()
    with pytest.raises(RuntimeError, match="could not be imported: .*fps is -5"):
        bpy.ops.flame.track_video(filepath=str(video), output_dir=str(tmp_path / "out"),
                                  command_template=FAKE + " --frames 4 --fps -5")
    assert scene_state() == before
    assert not bpy.data.armatures and not bpy.data.meshes
