"""Tracked sequences as keyframed animation: every frame exact, and the tracker's camera with it."""

import bpy
import legacy_pickle
import numpy as np
import pytest
from bl_helpers import evaluated_vertices, scene_state
from bpy_extras.object_utils import world_to_camera_view
from synthetic_model import random_model_arrays
from tracker_files import metrical_frame, vhap_arrays, write_metrical_output

from flame_blender_addon.core.camera import project_opencv
from flame_blender_addon.core.evaluation import sequence_vertices
from flame_blender_addon.core.model import load_model
from flame_blender_addon.core.sequence import fit_components, read_sequence

FRAME_IDS = [0, 1, 2, 3, 5, 6, 7, 9]  # gaps at 4 and 8: keyed at their true numbers


@pytest.fixture(scope="module")
def model_and_eyelids(tmp_path_factory):
    """A FLAME-sized model where the eyelid region is skinned to the neck only (as in FLAME), and
    eyelid blendshapes in metrical-tracker's l_eyelid.npy / r_eyelid.npy layout."""
    folder = tmp_path_factory.mktemp("model")
    arrays = random_model_arrays(seed=11, joint_spread=4.0)
    rng = np.random.default_rng(0)
    lids = rng.choice(5023, size=(2, 400), replace=False)
    arrays["weights"][lids.ravel()] = [0, 1, 0, 0, 0]
    dirs = np.zeros((2, 5023, 3))
    for k in range(2):
        dirs[k, lids[k], 1] = -rng.uniform(0.002, 0.009, 400)
        np.save(folder / ("l_eyelid.npy", "r_eyelid.npy")[k], dirs[k])
    path = legacy_pickle.write_flame_pickle(folder / "generic_model.pkl", arrays)
    return path, folder


@pytest.fixture(scope="module")
def metrical_output(tmp_path_factory):
    rng = np.random.default_rng(5)
    shape = rng.normal(size=300)
    frames = {i: metrical_frame(rng, i, shape=shape) for i in FRAME_IDS}
    for frame in frames.values():
        frame["flame"]["jaw"][:] = np.r_[1, 0, 0, 0, np.cos(0.3), np.sin(0.3)] + rng.normal(0, 0.05, 6)
    return write_metrical_output(tmp_path_factory.mktemp("metrical") / "actor", frames), frames


def projected_through_scene_camera(mesh_obj, vertices_local):
    scene = bpy.context.scene
    W, H = scene.render.resolution_x, scene.render.resolution_y
    world = np.array(mesh_obj.matrix_world)
    pts = vertices_local @ world[:3, :3].T + world[:3, 3]
    from mathutils import Vector
    ndc = np.array([tuple(world_to_camera_view(scene, scene.camera, Vector(p)))[:2] for p in pts[::25]])
    return np.stack([ndc[:, 0] * W, (1 - ndc[:, 1]) * H], axis=1)


def check_frames(armature, reference, cameras, frame_ids, frame_start=1):
    """Max vertex error (m) and max projection error (px) over all frames."""
    mesh_obj = armature.flame.mesh
    worst_v, worst_px = 0.0, 0.0
    for i, frame_id in enumerate(frame_ids):
        bpy.context.scene.frame_set(frame_start + frame_id)
        verts = evaluated_vertices(mesh_obj)
        worst_v = max(worst_v, np.abs(verts - reference[i]).max())
        if cameras is not None:
            K, R, t = cameras[i]
            expected = project_opencv(reference[i][::25], K, R, t)
            worst_px = max(worst_px, np.abs(projected_through_scene_camera(mesh_obj, verts) - expected).max())
    return worst_v, worst_px


def test_metrical_tracker_sequence_is_exact(model_and_eyelids, metrical_output):
    model_path, eyelid_folder = model_and_eyelids
    output, frames = metrical_output
    result = bpy.ops.flame.import_sequence(filepath=str(output), model_filepath=str(model_path),
                                           eyelid_folder=str(eyelid_folder))
    assert result == {"FINISHED"}
    armature = bpy.context.view_layer.objects.active
    model = load_model(model_path)
    seq = fit_components(read_sequence(output, eyelid_blendshapes=eyelid_folder), 300, 100)
    reference = sequence_vertices(model, seq)
    assert np.abs(reference - sequence_vertices(model, seq, eyelid_dirs=np.zeros((2, 5023, 3)))).max() > 1e-3
    cams = [(f["opencv"]["K"][0], f["opencv"]["R"][0], f["opencv"]["t"][0]) for f in frames.values()]
    worst_v, worst_px = check_frames(armature, reference, cams, FRAME_IDS)
    assert worst_v < 1e-5, f"vertex error {worst_v:.3g} m"
    assert worst_px < 0.01, f"projection error {worst_px:.3g} px"

    scene = bpy.context.scene
    assert (scene.render.fps, scene.frame_start, scene.frame_end) == (25, 1, 10)
    assert (scene.render.resolution_x, scene.render.resolution_y) == (512, 512)
    assert scene.camera.parent == armature
    assert armature.flame.sequence_source == "metrical-tracker"


def test_vhap_sequence_with_static_offsets_and_non_square_camera(model_and_eyelids, tmp_path):
    model_path, _ = model_and_eyelids
    rng = np.random.default_rng(8)
    arrays = vhap_arrays(rng, 6, image_size=(480, 640))
    np.savez(tmp_path / "tracked_flame_params_30.npz", **arrays)
    assert bpy.ops.flame.import_sequence(filepath=str(tmp_path / "tracked_flame_params_30.npz"),
                                         model_filepath=str(model_path)) == {"FINISHED"}
    armature = bpy.context.view_layer.objects.active
    seq = read_sequence(tmp_path / "tracked_flame_params_30.npz")
    reference = sequence_vertices(load_model(model_path), seq)
    H, W = 480, 640
    f = float(arrays["focal_length"][0]) * max(H, W)
    K = np.array([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]])
    vhap_camera = (K, np.diag([1.0, -1.0, -1.0]), np.array([0.0, 0.0, 1.0]))  # OpenGL [I | (0, 0, -1)]
    worst_v, worst_px = check_frames(armature, reference, [vhap_camera] * 6, range(6))
    assert worst_v < 1e-5 and worst_px < 0.01, (worst_v, worst_px)
    assert armature.flame.mesh.data.shape_keys.key_blocks["static_offset"].value == 1.0


def test_static_camera_mode_keeps_projections(model_and_eyelids, metrical_output):
    model_path, eyelid_folder = model_and_eyelids
    output, frames = metrical_output
    assert bpy.ops.flame.import_sequence(filepath=str(output), model_filepath=str(model_path),
                                         eyelid_folder=str(eyelid_folder), camera_mode="STATIC_CAMERA",
                                         frame_start=101) == {"FINISHED"}
    armature = bpy.context.view_layer.objects.active
    camera = bpy.context.scene.camera
    assert camera.parent is None and camera.animation_data is None
    seq = fit_components(read_sequence(output, eyelid_blendshapes=eyelid_folder), 300, 100)
    reference = sequence_vertices(load_model(model_path), seq)
    cams = [(f["opencv"]["K"][0], f["opencv"]["R"][0], f["opencv"]["t"][0]) for f in frames.values()]
    worst_v, worst_px = check_frames(armature, reference, cams, FRAME_IDS, frame_start=101)
    assert worst_v < 1e-5 and worst_px < 0.01, (worst_v, worst_px)


def test_keep_identity_retargets_onto_another_head(model_and_eyelids, metrical_output):
    model_path, _ = model_and_eyelids
    output, _ = metrical_output
    bpy.ops.flame.import_model(filepath=str(model_path))
    bpy.ops.flame.random_shape(seed=9)
    armature = bpy.context.view_layer.objects.active
    blocks = armature.flame.mesh.data.shape_keys.key_blocks
    shape_before = [blocks[f"shape{i:03d}"].value for i in range(300)]
    assert bpy.ops.flame.import_sequence(filepath=str(output), keep_identity=True,
                                         camera_mode="NONE") == {"FINISHED"}
    assert [blocks[f"shape{i:03d}"].value for i in range(300)] == shape_before
    seq = read_sequence(output)
    bpy.context.scene.frame_set(1 + FRAME_IDS[3])
    np.testing.assert_allclose(blocks["exp007"].value, seq.expr[3, 7], atol=1e-6)
    assert bpy.context.scene.camera is None


def test_bad_sequence_leaves_head_and_scene_untouched(model_and_eyelids, metrical_output, tmp_path):
    model_path, _ = model_and_eyelids
    output, frames = metrical_output
    bpy.ops.flame.import_model(filepath=str(model_path), n_shape=10, n_expr=10)
    bpy.ops.flame.random_expression(seed=2)
    armature = bpy.context.view_layer.objects.active
    blocks = armature.flame.mesh.data.shape_keys.key_blocks
    before, values = scene_state(), [kb.value for kb in blocks]
    heads = [tuple(b.head_local) for b in armature.data.bones]

    broken = write_metrical_output(tmp_path / "broken", {0: frames[0], 1: frames[1]})
    (broken / "checkpoint" / "00001.frame").write_bytes(b"PK\x03\x04 not really a zip")
    nan_frame = {k: v for k, v in frames[2].items()}
    nan_frame["flame"] = dict(frames[2]["flame"], exp=np.full((1, 100), np.nan, dtype=np.float32))
    nans = write_metrical_output(tmp_path / "nans", {0: frames[0], 1: nan_frame})
    for path, message in ((broken, "00001.frame"), (nans, "NaN"), (tmp_path / "nothing", "no such file")):
        with pytest.raises(RuntimeError, match=message):
            bpy.ops.flame.import_sequence(filepath=str(path))
        assert scene_state() == before
        assert [kb.value for kb in blocks] == values
        assert [tuple(b.head_local) for b in armature.data.bones] == heads


def test_failure_while_keying_restores_the_head(model_and_eyelids, metrical_output, monkeypatch):
    from flame_blender_addon.blender import sequence_import
    from flame_blender_addon.core.errors import FlameError

    model_path, _ = model_and_eyelids
    output, _ = metrical_output
    bpy.ops.flame.import_model(filepath=str(model_path), n_shape=10, n_expr=10)
    armature = bpy.context.view_layer.objects.active
    blocks = armature.flame.mesh.data.shape_keys.key_blocks
    before, values = scene_state(), [kb.value for kb in blocks]

    def fail(*args, **kwargs):
        raise FlameError("simulated failure after identity and keys were written")

    monkeypatch.setattr(sequence_import, "_add_camera", fail)
    with pytest.raises(RuntimeError, match="simulated failure"):
        bpy.ops.flame.import_sequence(filepath=str(output))
    assert scene_state() == before
    assert [kb.value for kb in blocks] == values
    assert armature.animation_data is None or armature.animation_data.action is None


def _sequences_equal(a, b):
    np.testing.assert_array_equal(a.frame_ids, b.frame_ids)
    np.testing.assert_allclose(a.shape, b.shape, atol=1e-6)
    np.testing.assert_allclose(a.expr, b.expr, atol=1e-6)
    np.testing.assert_allclose(a.rotations, b.rotations, atol=1e-6)
    np.testing.assert_allclose(a.translation, b.translation, atol=1e-6)
    np.testing.assert_allclose(a.eyelids, b.eyelids, atol=1e-6)
    np.testing.assert_allclose(a.camera.K, b.camera.K, rtol=1e-5)
    np.testing.assert_allclose(a.camera.R, b.camera.R, atol=1e-5)
    np.testing.assert_allclose(a.camera.t, b.camera.t, atol=1e-6)


@pytest.mark.parametrize("camera_mode", ["MOVING_CAMERA", "STATIC_CAMERA"])
def test_export_round_trips_through_both_formats(model_and_eyelids, metrical_output, tmp_path, camera_mode):
    model_path, eyelid_folder = model_and_eyelids
    output, _ = metrical_output
    bpy.ops.flame.import_sequence(filepath=str(output), model_filepath=str(model_path),
                                  eyelid_folder=str(eyelid_folder), camera_mode=camera_mode)
    original = fit_components(read_sequence(output, eyelid_blendshapes=eyelid_folder), 300, 100)
    assert bpy.ops.flame.export_sequence(filepath=str(tmp_path / "flame_sequence.npz")) == {"FINISHED"}
    assert bpy.ops.flame.export_sequence(filepath=str(tmp_path / "metrical"), format="METRICAL") == {"FINISHED"}
    for exported in (tmp_path / "flame_sequence.npz", tmp_path / "metrical"):
        _sequences_equal(read_sequence(exported, eyelid_blendshapes=eyelid_folder), original)


def test_export_then_import_reproduces_a_vhap_performance(model_and_eyelids, tmp_path):
    """Root rotation, neck, translation and static offsets survive export -> import."""
    model_path, _ = model_and_eyelids
    np.savez(tmp_path / "tracked_flame_params.npz", **vhap_arrays(np.random.default_rng(3), 5))
    bpy.ops.flame.import_sequence(filepath=str(tmp_path / "tracked_flame_params.npz"), model_filepath=str(model_path))
    first = bpy.context.view_layer.objects.active
    assert bpy.ops.flame.export_sequence(filepath=str(tmp_path / "out.npz")) == {"FINISHED"}
    with pytest.raises(RuntimeError, match="neck rotation"):
        bpy.ops.flame.export_sequence(filepath=str(tmp_path / "metrical"), format="METRICAL")
    original, exported = read_sequence(tmp_path / "tracked_flame_params.npz"), read_sequence(tmp_path / "out.npz")
    np.testing.assert_allclose(exported.translation, original.translation, atol=1e-6)
    np.testing.assert_allclose(exported.static_offset, original.static_offset, atol=1e-7)
    np.testing.assert_allclose(exported.rotations, original.rotations, atol=1e-6)

    bpy.ops.flame.import_sequence(filepath=str(tmp_path / "out.npz"), model_filepath=str(model_path))
    second = bpy.context.view_layer.objects.active
    for frame in range(1, 6):
        bpy.context.scene.frame_set(frame)
        np.testing.assert_allclose(evaluated_vertices(second.flame.mesh), evaluated_vertices(first.flame.mesh),
                                   atol=2e-6)


def test_resampling_to_another_fps(model_and_eyelids, metrical_output):
    model_path, _ = model_and_eyelids
    output, _ = metrical_output
    assert bpy.ops.flame.import_sequence(filepath=str(output / "checkpoint" / "00003.frame"),
                                         model_filepath=str(model_path), target_fps=50.0) == {"FINISHED"}
    scene = bpy.context.scene
    assert (scene.render.fps, scene.frame_start, scene.frame_end) == (50, 1, 1 + 2 * FRAME_IDS[-1])
    blocks = bpy.context.view_layer.objects.active.flame.mesh.data.shape_keys.key_blocks
    seq = read_sequence(output)
    scene.frame_set(1 + 2 * 3)  # source frame 3 lands on 50 fps frame 7
    np.testing.assert_allclose(blocks["exp010"].value, seq.expr[3, 10], atol=1e-5)
    scene.frame_set(1 + 2 * 3 + 2)  # source frame 4 is missing: half-way between frames 3 and 5
    np.testing.assert_allclose(blocks["exp010"].value, (seq.expr[3, 10] + seq.expr[4, 10]) / 2, atol=1e-4)


def test_tracker_input_frames_become_the_camera_background(model_and_eyelids, metrical_output):
    model_path, _ = model_and_eyelids
    output, _ = metrical_output
    (output / "input").mkdir(exist_ok=True)
    for frame_id in FRAME_IDS:
        bpy.data.images.new("plate", 8, 8).save(filepath=str(output / "input" / f"{frame_id:05d}.png"))
    bpy.data.images.remove(bpy.data.images["plate"])
    assert bpy.ops.flame.import_sequence(filepath=str(output), model_filepath=str(model_path)) == {"FINISHED"}
    camera = bpy.context.scene.camera.data
    background = camera.background_images[0]
    assert camera.show_background_images and background.image.source == "SEQUENCE"
    assert (background.image_user.frame_start, background.image_user.frame_duration) == (1, FRAME_IDS[-1] + 1)
    assert background.image.filepath.endswith("00000.png")
