"""The photometric stage's albedo and lighting, imported with a tracked sequence."""

import bpy
import numpy as np
import pytest
from texture_files import write_flame_texture
from tracker_files import metrical_frame, vhap_arrays, write_metrical_output

from flame_blender_addon.blender import appearance
from flame_blender_addon.core import sequence, sh_lighting
from flame_blender_addon.demo import surface as demo_surface


def _tracked_npz(tmp_path, rng):
    vt, ft = demo_surface.uv_layout()
    arrays = {k: v for k, v in vhap_arrays(rng, 3).items() if k != "static_offset"}
    light_from = np.array([0.6, -0.3, -0.74]) / np.linalg.norm([0.6, -0.3, -0.74])  # OpenCV camera frame
    sh = sh_lighting.from_light(light_from, np.array([1.4, 1.3, 1.2]), np.array([0.3, 0.3, 0.35]))
    albedo = rng.uniform(0.2, 0.9, (64, 64, 3)).astype(np.float32)
    path = tmp_path / "tracked_flame_params.npz"  # VHAP's keys and camera, plus the photometric stage's
    np.savez(path, **arrays, albedo=albedo, sh=sh, vt=vt, ft=ft)
    return path, albedo, light_from, vt, ft


def test_albedo_material_uvs_and_sh_lighting(tmp_path):
    bpy.ops.flame.add_demo_head()
    path, albedo, light_from, vt, ft = _tracked_npz(tmp_path, np.random.default_rng(0))
    assert bpy.ops.flame.import_sequence(filepath=str(path)) == {"FINISHED"}
    armature = bpy.context.view_layer.objects.active
    mesh = armature.flame.mesh.data

    uv = np.empty(2 * len(mesh.loops), dtype=np.float32)
    mesh.uv_layers["UVMap"].data.foreach_get("uv", uv)
    assert np.abs(uv.reshape(-1, 3, 2) - vt[ft]).max() < 1e-6

    image = next(n for n in mesh.materials[0].node_tree.nodes if n.type == "TEX_IMAGE").image
    assert image.packed_file is not None and tuple(image.size) == (64, 64)
    pixels = np.empty(64 * 64 * 4, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    assert np.array_equal(pixels.reshape(64, 64, 4)[::-1, :, :3], albedo)  # rows flipped, float

    assert image.colorspace_settings.name == "Non-Color"  # the tracker's raw values times its shading
    group = next(n for n in mesh.materials[0].node_tree.nodes if n.type == "GROUP")
    assert group.node_tree.name == "FLAME SH Shading"
    stored = np.array([tuple(group.inputs[f"SH {k}"].default_value) for k in range(9)])
    assert np.allclose(stored, dict(np.load(path))["sh"], atol=1e-6)
    transform = next(n for n in mesh.materials[0].node_tree.nodes if n.type == "VECT_TRANSFORM")
    assert (transform.convert_from, transform.convert_to) == ("WORLD", "CAMERA")


def _sh_at(material, frame: int) -> np.ndarray:
    """The SH (9, 3) the material's node group holds at a scene frame."""
    bpy.context.scene.frame_set(frame)
    group = appearance.sh_node(material)
    return np.array([tuple(group.inputs[f"SH {k}"].default_value) for k in range(9)])


def test_per_frame_lighting_is_keyed_on_the_sh_node(tmp_path):
    """``sh_frames`` (--per-frame-light): at each frame the node group holds that frame's SH."""
    bpy.ops.flame.add_demo_head()
    rng = np.random.default_rng(7)
    path = _tracked_npz(tmp_path, rng)[0]
    arrays = dict(np.load(path))
    sh_frames = arrays["sh"] + rng.normal(0, 0.3, (3, 9, 3))
    np.savez(path, **arrays, sh_frames=sh_frames)
    assert bpy.ops.flame.import_sequence(filepath=str(path), frame_start=10) == {"FINISHED"}
    material = bpy.context.view_layer.objects.active.flame.mesh.data.materials[0]
    scene_frames = 10 + sequence.read_sequence(path).frame_ids
    for i in (0, 2):
        assert np.allclose(_sh_at(material, int(scene_frames[i])), sh_frames[i], atol=1e-6)
    assert not np.allclose(sh_frames[0], sh_frames[2], atol=1e-2)


def test_metrical_per_frame_sh_is_keyed_and_kept_by_import_texture_space(tmp_path):
    """metrical-tracker checkpoints whose ``flame.sh`` differ per frame (e.g. our tracker's, whose SH turns
    with the head in FLAME space): keyed in FLAME space; Import Texture Space keeps the keys."""
    bpy.ops.flame.add_demo_head()
    armature = bpy.context.view_layer.objects.active
    rng = np.random.default_rng(8)
    frames = {i: metrical_frame(rng, i, n_shape=armature.flame.n_shape, n_expr=armature.flame.n_expr)
              for i in range(3)}
    for frame in frames.values():
        del frame["flame"]["tex"]  # lighting only
    root = write_metrical_output(tmp_path / "out", frames)
    assert bpy.ops.flame.import_sequence(filepath=str(root)) == {"FINISHED"}
    expected = [sh_lighting.from_metrical(frames[i]["flame"]["sh"][0]) for i in range(3)]
    mesh = armature.flame.mesh.data
    for i in (0, 2):
        assert np.allclose(_sh_at(mesh.materials[0], 1 + i), expected[i], atol=1e-5)
    space = tmp_path / "FLAME_texture.npz"
    write_flame_texture(space, rng, uvs=demo_surface.uv_layout())
    assert bpy.ops.flame.import_texture_space(filepath=str(space)) == {"FINISHED"}
    assert np.allclose(_sh_at(mesh.materials[0], 3), expected[2], atol=1e-5)


def test_sequences_without_appearance_add_no_material(tmp_path):
    bpy.ops.flame.add_demo_head()
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "tracked_flame_params.npz", **{k: v for k, v in vhap_arrays(rng, 3).items()
                                                          if k != "static_offset"})
    assert bpy.ops.flame.import_sequence(filepath=str(tmp_path / "tracked_flame_params.npz")) == {"FINISHED"}
    assert not bpy.context.view_layer.objects.active.flame.mesh.data.materials
    assert not any(o.type == "LIGHT" for o in bpy.context.scene.objects)


def test_track_video_dialog_offers_the_photometric_stage():
    from flame_blender_addon.blender import tracker_job

    props = bpy.ops.flame.track_video.get_rna_type().properties
    assert props["photometric"].default == "AUTO" and "texture_space_filepath" in props and "uv_filepath" in props
    base = dict(model="demo", source="v.mp4", output="out")
    assert tracker_job.tracker_argv("py", **base) == tracker_job.tracker_argv("py", **base, photometric="AUTO")
    argv = tracker_job.tracker_argv("py", **base, photometric="ON", texture_space="tex.npz", uv="head.obj")
    assert argv[-5:] == ["--photometric", "--texture-space", "tex.npz", "--uv", "head.obj"]
    assert tracker_job.tracker_argv("py", **base, photometric="OFF")[-1] == "--no-photometric"


def test_track_video_dialog_passes_per_frame_lighting(tmp_path, monkeypatch):
    """The dialog's Per-frame lighting reaches the tracker's command line (recorded, not run), only
    when the photometric stage can run."""
    from flame_blender_addon.blender import track_operator

    assert not bpy.ops.flame.track_video.get_rna_type().properties["per_frame_light"].default
    started = []

    def record(argv, **kwargs):
        started.append(argv)
        raise OSError("recorded, not started")

    monkeypatch.setattr(track_operator, "TrackerJob", record)
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"never decoded")
    runs = (("ON", False), ("ON", True), ("AUTO", True), ("OFF", True))
    for stage, per_frame in runs:
        with pytest.raises(RuntimeError, match="recorded, not started"):
            bpy.ops.flame.track_video(filepath=str(video), output_dir=str(tmp_path / "out"), python="/env/python",
                                      photometric=stage, per_frame_light=per_frame)
    assert ["--per-frame-light" in argv for argv in started] == [False, True, True, False]
    assert started[-1][-1] == "--no-photometric"


def _head_look(mesh: bpy.types.Mesh) -> tuple:
    return [uv.name for uv in mesh.uv_layers], [m.name if m else None for m in mesh.materials]


def test_bad_appearance_leaves_the_scene_and_the_head_as_they_were(tmp_path):
    from bl_helpers import scene_state

    bpy.ops.flame.add_demo_head()
    armature = bpy.context.view_layer.objects.active
    path, albedo, _, vt, ft = _tracked_npz(tmp_path, np.random.default_rng(2))
    arrays = dict(np.load(path))
    bad = {r"'sh' is \(4, 3\), expected \(9, 3\)": dict(sh=np.ones((4, 3))),
           r"'albedo' is \(64, 3\), expected \(H, W, 3\)": dict(albedo=albedo[0]),
           r"'ft' holds 0\.\.\d+, not indices of the 10 UVs of 'vt'": dict(vt=vt[:10]),
           r"'sh_frames' is \(3, 4, 3\), expected \(T, 9, 3\)": dict(sh_frames=np.ones((3, 4, 3))),
           "per-frame lighting for 2 frames, but the sequence has 3": dict(sh_frames=np.ones((2, 9, 3)))}
    for message, change in bad.items():
        np.savez(path, **{**arrays, **change})
        before, look = scene_state(), _head_look(armature.flame.mesh.data)
        with pytest.raises(RuntimeError, match=message):
            bpy.ops.flame.import_sequence(filepath=str(path))
        assert scene_state() == before, message
        assert _head_look(armature.flame.mesh.data) == look, message
        assert not armature.flame.takes, message


def test_rollback_removes_the_material_its_image_and_node_group(tmp_path):
    from bl_helpers import scene_state

    from flame_blender_addon.blender import appearance, transaction

    bpy.ops.flame.add_demo_head()
    mesh_obj = bpy.context.view_layer.objects.active.flame.mesh
    arrays = dict(np.load(_tracked_npz(tmp_path, np.random.default_rng(3))[0]))
    arrays["sh_frames"] = np.stack([arrays["sh"], 2 * arrays["sh"]])
    before = scene_state()
    with pytest.raises(RuntimeError, match="later step failed"), transaction.rollback_on_error(bpy.context):
        appearance.apply_appearance(bpy.context, mesh_obj, arrays, np.array([1.0, 2.0]), "look")
        assert bpy.data.actions  # the lighting's keys
        raise RuntimeError("later step failed")
    assert scene_state() == before
    assert not bpy.data.materials and not bpy.data.node_groups and not bpy.data.images and not bpy.data.actions
