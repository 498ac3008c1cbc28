"""flame.import_identity (MICA, regressor codes, FLAME meshes; |beta| past the sliders) and DECA / EMOCA /
SMIRK folders through flame.import_sequence, with the orthographic camera measured in Blender's projection."""

import bpy
import legacy_pickle
import numpy as np
import pytest
from bl_helpers import evaluated_vertices, scene_state
from regressor_files import regressor_codes, write_code_files, write_emoca, write_mica
from synthetic_model import random_model_arrays

from flame_blender_addon.blender import head, measure
from flame_blender_addon.core.evaluation import rest_joints, sequence_vertices
from flame_blender_addon.core.lbs import forward
from flame_blender_addon.core.model import load_model
from flame_blender_addon.core.sequence import FlameSequence, fit_components, read_sequence

BIG = {0: 20.0, 1: -20.0, 4: 12.5}  # identity components beyond the sliders' +-10


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    arrays = random_model_arrays(n_verts=400, n_faces=700, seed=21, joint_spread=4.0)
    arrays["shapedirs"][:, :, :300] *= 0.3  # |beta| = 20 stays a head-sized mesh (for the unit detection)
    return legacy_pickle.write_flame_pickle(tmp_path_factory.mktemp("model") / "generic_model.pkl", arrays)


def build(model_path, n_expr=100):
    bpy.ops.flame.import_model(filepath=str(model_path), n_expr=n_expr)
    return bpy.context.view_layer.objects.active


def big_betas(seed):
    betas = np.random.default_rng(seed).normal(scale=0.5, size=300)
    for k, value in BIG.items():
        betas[k] = value
    return betas


def rest_head(model, betas):
    rest = np.tile(np.eye(3), (1, 5, 1, 1))
    return forward(model, betas, np.zeros((1, model.n_expr)), rest, np.zeros((1, 3))).vertices[0]


def check_identity(armature, model, betas, atol=1e-5):
    np.testing.assert_allclose(evaluated_vertices(armature.flame.mesh), rest_head(model, betas), atol=atol)
    seq = FlameSequence(shape=betas, expr=np.zeros((1, model.n_expr)), rotations=np.tile(np.eye(3), (1, 5, 1, 1)),
                        translation=np.zeros((1, 3)), frame_ids=np.array([0]))
    joints = np.array([b.head_local for b in armature.data.bones])
    np.testing.assert_allclose(joints, rest_joints(model, seq)[0], atol=1e-5)


def test_identity_codes_beyond_the_sliders(model_path, tmp_path):
    model = load_model(model_path)
    armature = build(model_path)
    betas = big_betas(1)
    out = write_mica(tmp_path / "mica", betas, rest_head(model, betas), model.faces)
    assert bpy.ops.flame.import_identity(filepath=str(out / "identity.npy"), target=armature.name) == {"FINISHED"}
    check_identity(armature, model, betas.astype(np.float32).astype(np.float64))
    assert head.coefficient_values(armature)[0][0] == pytest.approx(20.0)  # exact through the .x10 key
    codes = regressor_codes(np.random.default_rng(2), 1)  # a DECA code: 100 components, the rest zero
    write_code_files(tmp_path / "deca", codes, ["0001"], ".pkl")
    bpy.ops.flame.import_identity(filepath=str(tmp_path / "deca" / "0001.pkl"), target=armature.name)
    check_identity(armature, model, np.r_[codes[0]["shape"][0], np.zeros(200)].astype(np.float64))


def test_identity_from_a_millimetre_mesh(model_path, tmp_path, capfd):
    model = load_model(model_path)
    armature = build(model_path)
    betas = big_betas(3)
    out = write_mica(tmp_path / "mica", betas, rest_head(model, betas), model.faces)
    for mesh in ("mesh.ply", "mesh.obj"):
        bpy.ops.flame.import_identity(filepath=str(out / mesh), target=armature.name)
        check_identity(armature, model, betas, atol=2e-5)  # float32 shape keys and a float32 / 6-decimal file
        assert "mesh in millimetres; residual" in capfd.readouterr().out


def test_bad_identity_input_leaves_the_head_as_it_was(model_path, tmp_path):
    model = load_model(model_path)
    armature = build(model_path)
    bpy.ops.flame.import_identity(filepath=str(write_mica(tmp_path / "ok", big_betas(4), rest_head(model, big_betas(4)),
                                                          model.faces) / "identity.npy"))
    before, vertices = scene_state(), evaluated_vertices(armature.flame.mesh)
    write_mica(tmp_path / "few", np.zeros(300), rest_head(model, np.zeros(300))[:-3], model.faces[:10])
    np.save(tmp_path / "huge.npy", np.full(300, 500.0))
    np.savez(tmp_path / "codes.npz", exp=np.zeros(50))
    for path, message in ((tmp_path / "few" / "mesh.ply", "has 397 vertices; a FLAME head has 400"),
                          (tmp_path / "huge.npy", "beyond the"), (tmp_path / "codes.npz", "no 'shape'"),
                          (tmp_path / "missing.npy", "file not found")):
        with pytest.raises(RuntimeError, match=message):
            bpy.ops.flame.import_identity(filepath=str(path), target=armature.name)
        assert scene_state() == before
        np.testing.assert_array_equal(evaluated_vertices(armature.flame.mesh), vertices)


def batch_orth_proj_pixels(points, code, side=224):
    s, tx, ty = code
    return np.stack([s * (points[:, 0] + tx) + 1.0, -s * (points[:, 1] + ty) + 1.0], axis=-1) * side / 2.0


@pytest.mark.parametrize(("smirk", "camera_mode"), [(False, "MOVING_CAMERA"), (False, "STATIC_CAMERA"),
                                                    (True, "MOVING_CAMERA")])
def test_regressor_folder_with_orthographic_camera(model_path, tmp_path, smirk, camera_mode, capfd):
    model = load_model(model_path)
    armature = build(model_path)
    frames = regressor_codes(np.random.default_rng(5), 4, smirk=smirk)
    if smirk:
        for codes in frames:
            codes["eyelid_params"][:] = 0.0  # SMIRK's eyelid blendshapes are not part of this model
    names = ["img_0003", "img_0000", "img_0001", "img_0002"]
    folder = write_code_files(tmp_path / "out", frames, names, ".npz")
    assert bpy.ops.flame.import_sequence(filepath=str(folder), target=armature.name,
                                         camera_mode=camera_mode) == {"FINISHED"}
    out = capfd.readouterr().out
    n_shape = 300 if smirk else 100
    assert f"identity: the input has {n_shape} components, the model 300" in out or smirk
    assert "expression: the input has 50 components, the model 100; the other 50 are set to zero" in out
    scene = bpy.context.scene
    assert scene.camera.data.type == "ORTHO"
    assert (scene.render.resolution_x, scene.render.resolution_y) == (224, 224)
    seq = fit_components(read_sequence(folder), model.n_shape, model.n_expr)
    reference = sequence_vertices(model, seq)
    worst_px, worst_m = 0.0, 0.0
    for i, frame_id in enumerate(seq.frame_ids):
        scene.frame_set(1 + int(frame_id))
        local = evaluated_vertices(armature.flame.mesh)
        worst_m = max(worst_m, np.abs(local - reference[i]).max())
        pixels = measure.camera_pixels(scene, measure.evaluated_world_vertices(armature.flame.mesh))
        code = frames[names.index(f"img_{frame_id:04d}")]["cam"][0].astype(np.float64)
        worst_px = max(worst_px, np.abs(pixels - batch_orth_proj_pixels(reference[i], code)).max())
    print(f"regressor import: {worst_m:.2e} m, {worst_px:.2e} px")
    assert worst_m < 1e-5 and worst_px < 0.01, (worst_m, worst_px)
    exported = tmp_path / "flame_sequence.npz"  # the orthographic camera survives the export
    bpy.ops.flame.export_sequence(filepath=str(exported), target=armature.name)
    back = read_sequence(exported).camera
    assert back.orthographic
    np.testing.assert_allclose(back.K, seq.camera.K, rtol=1e-5)
    np.testing.assert_allclose(back.t, seq.camera.t, atol=1e-6)


def test_identity_on_an_animated_head_keeps_every_frame_exact(model_path, tmp_path):
    model = load_model(model_path)
    armature = build(model_path)
    frames = regressor_codes(np.random.default_rng(8), 3)
    folder = write_code_files(tmp_path / "deca", frames, ["0000", "0001", "0002"], ".npz")
    bpy.ops.flame.import_sequence(filepath=str(folder), target=armature.name)
    betas = big_betas(9)
    np.save(tmp_path / "identity.npy", betas)
    bpy.ops.flame.import_identity(filepath=str(tmp_path / "identity.npy"), target=armature.name)
    seq = fit_components(read_sequence(folder), model.n_shape, model.n_expr)
    seq.shape = betas
    reference = sequence_vertices(model, seq)
    for i in range(3):
        bpy.context.scene.frame_set(1 + i)
        np.testing.assert_allclose(evaluated_vertices(armature.flame.mesh), reference[i], atol=1e-5)
    np.testing.assert_allclose(armature.flame.takes[armature.flame.active_take]["shape"], betas, atol=1e-5)


def test_emoca_folder_imports_without_camera(model_path, tmp_path, capfd):
    armature = build(model_path)
    write_emoca(tmp_path / "emoca", regressor_codes(np.random.default_rng(6), 2), ["000001_00", "000002_00"])
    bpy.ops.flame.import_sequence(filepath=str(tmp_path / "emoca"), target=armature.name)
    assert "EMOCA saves no camera; none imported" in capfd.readouterr().out
    assert bpy.context.scene.camera is None and (bpy.context.scene.frame_start, bpy.context.scene.frame_end) == (2, 3)


def test_bad_regressor_folder_leaves_the_scene_as_it_was(model_path, tmp_path):
    build(model_path)
    before = scene_state()
    frames = regressor_codes(np.random.default_rng(7), 2)
    del frames[1]["cam"], frames[1]["exp"]
    write_code_files(tmp_path / "bad", frames, ["0001", "0002"], ".npz")
    with pytest.raises(RuntimeError, match="0002.npz: missing 'exp'"):
        bpy.ops.flame.import_sequence(filepath=str(tmp_path / "bad"))
    assert scene_state() == before
