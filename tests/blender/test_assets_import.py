"""flame.import_assets and the import beside a model: mask vertex groups, the UV map per loop, a texture
space's albedo, landmark points exact over an animation, all-or-nothing on bad files, the reports; and
metrical-tracker's take finding its texture space the same way."""

import shutil

import asset_files as af
import bpy
import numpy as np
import pytest
from bl_helpers import evaluated_vertices, scene_state
from synthetic_model import random_model_arrays
from texture_files import write_bfm_albedo, write_flame_texture
from tracker_files import metrical_frame, vhap_arrays, write_metrical_output

from flame_blender_addon.blender import appearance, assets
from flame_blender_addon.core.evaluation import sequence_vertices
from flame_blender_addon.core.formats.embeddings import Embedding
from flame_blender_addon.core.formats.texture_space import read_texture_space
from flame_blender_addon.core.model import load_model
from flame_blender_addon.core.sequence import fit_components, read_sequence

N_VERTS, N_FACES = 300, 500


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    """A small model in MICA's layout with every asset file beside it (masks CRLF-damaged)."""
    arrays = random_model_arrays(n_verts=N_VERTS, n_faces=N_FACES, seed=3, joint_spread=5.0)
    written = af.write_mica_layout(tmp_path_factory.mktemp("mica"), arrays, np.random.default_rng(1), crlf=True)
    return {**written, "faces": np.asarray(arrays["f"])}


def _weights(mesh_obj) -> dict[str, dict[int, float]]:
    """Every vertex group's members and their weights."""
    out: dict[str, dict[int, float]] = {g.name: {} for g in mesh_obj.vertex_groups}
    for v in mesh_obj.data.vertices:
        for g in v.groups:
            out[mesh_obj.vertex_groups[g.group].name][v.index] = g.weight
    return out


def _groups(mesh_obj) -> dict[str, list[int]]:
    """Every vertex group's members of weight 1."""
    return {name: [i for i, w in members.items() if w == 1.0] for name, members in _weights(mesh_obj).items()}


def _landmarks(armature, name):
    return bpy.data.objects[f"{armature.name}.lmk.{name}"]


def test_the_model_import_adds_masks_uvs_and_landmarks_found_beside_it(layout, capsys):
    capsys.readouterr()
    assert bpy.ops.flame.import_model(filepath=str(layout["model"]), n_shape=20, n_expr=20) == {"FINISHED"}
    report = capsys.readouterr().out
    armature = bpy.context.view_layer.objects.active
    mesh_obj = armature.flame.mesh
    groups = _groups(mesh_obj)
    for region, indices in layout["regions"].items():
        assert groups[f"mask.{region}"] == sorted(indices.tolist())
    vt, ft = layout["uvs"]
    uv = np.empty(2 * len(mesh_obj.data.loops), dtype=np.float32)
    mesh_obj.data.uv_layers["UVMap"].data.foreach_get("uv", uv)
    np.testing.assert_allclose(uv.reshape(-1, 2), vt[ft].reshape(-1, 2), atol=1e-6)  # per loop: seams kept
    depsgraph = bpy.context.evaluated_depsgraph_get()
    for name, (face_idx, _, points) in layout["embeddings"].items():
        obj = _landmarks(armature, name)
        assert obj.parent is armature and len(obj.data.vertices) == len(face_idx) and obj.hide_render
        markers = [i for i in depsgraph.object_instances if i.is_instance and i.parent.name == obj.name]
        assert len(markers) == len(face_idx)  # a sphere shows each point in the viewport
        numbers = np.empty(len(face_idx), dtype=np.int32)
        obj.data.attributes["landmark"].data.foreach_get("value", numbers)
        np.testing.assert_array_equal(numbers, points)
    info = [line for line in report.splitlines() if line.startswith("Info: Added from")]
    assert len(info) == 1 and "14 mask vertex groups" in info[0] and "UVMap (" in info[0]
    assert "FLAME.lmk.68 (68 landmarks)" in info[0] and "FLAME.lmk.mediapipe (105 landmarks)" in info[0]
    assert "Warning: FLAME_masks.pkl: repaired Windows line endings (CRLF)" in report


def test_landmarks_follow_the_animated_head_exactly(layout, tmp_path):
    bpy.ops.flame.import_model(filepath=str(layout["model"]), n_shape=20, n_expr=20)
    armature = bpy.context.view_layer.objects.active
    arrays = vhap_arrays(np.random.default_rng(2), 5, n_shape=20, n_expr=20, n_verts=N_VERTS)
    np.savez(tmp_path / "tracked_flame_params.npz", **arrays)
    assert bpy.ops.flame.import_sequence(filepath=str(tmp_path / "tracked_flame_params.npz")) == {"FINISHED"}
    seq = fit_components(read_sequence(tmp_path / "tracked_flame_params.npz"), 20, 20)
    reference = sequence_vertices(load_model(layout["model"]), seq)  # (T, V, 3), FLAME space
    faces, worst = layout["faces"], 0.0
    for name, (face_idx, bary, points) in layout["embeddings"].items():
        embedding, obj = Embedding(face_idx, bary, points, name), _landmarks(armature, name)
        for i, frame_id in enumerate(seq.frame_ids):
            bpy.context.scene.frame_set(1 + int(frame_id))
            seen = evaluated_vertices(obj)
            np.testing.assert_allclose(seen, embedding.positions(faces, evaluated_vertices(armature.flame.mesh)),
                                       atol=1e-6)
            worst = max(worst, np.abs(seen - embedding.positions(faces, reference[i])).max())
    assert worst < 1e-5, f"landmark error {worst:.3g} m"


def test_import_assets_from_a_folder_onto_a_head_and_delete_head_removes_the_points(layout, tmp_path, capsys):
    model = tmp_path / "elsewhere" / "generic_model.pkl"
    model.parent.mkdir()
    shutil.copy(layout["model"], model)
    assert bpy.ops.flame.import_model(filepath=str(model), n_shape=5, n_expr=5) == {"FINISHED"}
    armature = bpy.context.view_layer.objects.active
    assert not armature.children[0].vertex_groups.get("mask.face") and len(armature.children) == 1
    capsys.readouterr()
    assert bpy.ops.flame.import_assets(directory=str(layout["model"].parent)) == {"FINISHED"}
    assert "Info: Added from" in capsys.readouterr().out
    assert armature.flame.mesh.vertex_groups.get("mask.face") and len(assets.landmark_objects(armature)) == 2
    assert bpy.ops.flame.delete_head() == {"FINISHED"}
    assert not [o for o in bpy.data.objects if ".lmk." in o.name] and not bpy.data.node_groups


def test_bad_files_leave_the_scene_unchanged_or_are_skipped_beside_a_model(layout, tmp_path, capsys):
    folder = tmp_path / "bad"
    shutil.copytree(layout["model"].parent, folder)
    regions = dict(layout["regions"], nose=np.array([1, N_VERTS + 7]))
    af.write_masks(folder / "FLAME_masks" / "FLAME_masks.pkl", regions)
    capsys.readouterr()
    assert bpy.ops.flame.import_model(filepath=str(folder / "generic_model.pkl"), n_shape=5, n_expr=5) == {"FINISHED"}
    report = capsys.readouterr().out
    assert "Warning: skipped: FLAME_masks.pkl: region 'nose' uses vertex 307, but the head has 300" in report
    armature = bpy.context.view_layer.objects.active
    assert not armature.flame.mesh.vertex_groups.get("mask.face")  # the masks were skipped, the rest added
    assert "UVMap" in armature.flame.mesh.data.uv_layers and len(assets.landmark_objects(armature)) == 2

    assert bpy.ops.flame.import_model(filepath=str(folder / "generic_model.pkl"), n_shape=5, n_expr=5,
                                      import_assets=False) == {"FINISHED"}
    head = bpy.context.view_layer.objects.active
    assert not head.flame.mesh.data.uv_layers and not assets.landmark_objects(head)
    before, groups = scene_state(), [g.name for g in head.flame.mesh.vertex_groups]
    node_groups = len(bpy.data.node_groups)
    with pytest.raises(RuntimeError, match="FLAME_masks.pkl: region 'nose' uses vertex 307"):
        bpy.ops.flame.import_assets(directory=str(folder))
    shutil.copy(layout["model"].parent / "FLAME_masks" / "FLAME_masks.pkl", folder / "FLAME_masks")
    np.savez(folder / "mediapipe_landmark_embedding.npz", lmk_face_idx=np.array([N_FACES + 1]),
             lmk_b_coords=np.array([[1.0, 0, 0]]))
    with pytest.raises(RuntimeError, match="mediapipe_landmark_embedding.npz: uses triangle 501, but the head has 500"):
        bpy.ops.flame.import_assets(directory=str(folder))
    assert scene_state() == before and [g.name for g in head.flame.mesh.vertex_groups] == groups
    assert not head.flame.mesh.data.uv_layers and len(bpy.data.node_groups) == node_groups
    with pytest.raises(RuntimeError, match="nothing: not a folder"):
        bpy.ops.flame.import_assets(directory=str(tmp_path / "nothing"))
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(RuntimeError, match="no FLAME files found there, in its subfolders or its parent"):
        bpy.ops.flame.import_assets(directory=str(tmp_path / "empty" / "sub"))


def test_a_failure_while_adding_rolls_back_groups_uvs_and_objects(layout, monkeypatch):
    bpy.ops.flame.import_model(filepath=str(layout["model"]), n_shape=5, n_expr=5, import_assets=False)
    armature = bpy.context.view_layer.objects.active
    before = scene_state()

    def broken(*args):
        raise RuntimeError("broken on purpose")

    monkeypatch.setattr(assets, "add_landmarks", broken)  # after masks and UVs were added
    with pytest.raises(RuntimeError, match="broken on purpose"):
        bpy.ops.flame.import_assets(directory=str(layout["model"].parent))
    mesh_obj = armature.flame.mesh
    assert scene_state() == before and not mesh_obj.data.uv_layers
    assert [g.name for g in mesh_obj.vertex_groups if g.name.startswith("mask.")] == []


def test_a_failure_after_the_masks_restores_the_mask_groups_the_head_had(layout, monkeypatch):
    """Mask groups of the imported names that the head already had (other members, painted weights)
    come back as they were, not as the import rewrote them."""
    bpy.ops.flame.import_model(filepath=str(layout["model"]), n_shape=5, n_expr=5, import_assets=False)
    mesh_obj = bpy.context.view_layer.objects.active.flame.mesh
    rng = np.random.default_rng(5)
    for region, indices in list(layout["regions"].items())[:3]:
        others = np.setdiff1d(np.arange(N_VERTS), indices)[:7]
        group = mesh_obj.vertex_groups.new(name=assets.MASK_PREFIX + region)
        weights = [0.0, *rng.uniform(0.1, 0.9, len(others) - 1)]  # weight 0: a member too
        for index, weight in zip(others, weights, strict=True):
            group.add([int(index)], float(weight), "REPLACE")
    before = _weights(mesh_obj)

    def broken(*args):
        raise RuntimeError("broken on purpose")

    monkeypatch.setattr(assets, "add_landmarks", broken)  # after the masks were written
    with pytest.raises(RuntimeError, match="broken on purpose"):
        bpy.ops.flame.import_assets(directory=str(layout["model"].parent))
    after = _weights(mesh_obj)
    assert after.keys() == before.keys()
    for name, members in before.items():
        assert after[name].keys() == members.keys(), name
        assert np.array_equal(np.float32(list(after[name].values())), np.float32(list(members.values()))), name


def test_flame_sized_template_gives_5118_uvs_per_loop(flame_sized_model_file, tmp_path, capsys):
    bpy.ops.flame.import_model(filepath=str(flame_sized_model_file), n_shape=0, n_expr=0, import_assets=False)
    armature = bpy.context.view_layer.objects.active
    faces = assets.head_faces(armature.flame.mesh.data)
    vt, ft = af.template_uvs(np.random.default_rng(3), faces, 5023, n_seam=95)
    af.write_template_obj(tmp_path / "head_template.obj", faces, vt, ft, 5023)
    capsys.readouterr()
    assert bpy.ops.flame.import_assets(directory=str(tmp_path)) == {"FINISHED"}
    assert "UVMap (5118 UVs)" in capsys.readouterr().out
    uv = np.empty(2 * 3 * 9976, dtype=np.float32)
    armature.flame.mesh.data.uv_layers["UVMap"].data.foreach_get("uv", uv)
    np.testing.assert_allclose(uv.reshape(-1, 2), vt[ft].reshape(-1, 2), atol=1e-6)
    assert len(np.unique(ft)) > 5023  # seams: some vertices have two UVs on their loops


def _uvs(mesh) -> np.ndarray:
    uv = np.empty(2 * len(mesh.loops), dtype=np.float32)
    mesh.uv_layers["UVMap"].data.foreach_get("uv", uv)
    return uv.reshape(-1, 3, 2)


def _albedo(mesh) -> np.ndarray:
    """The albedo material's image, top row first, RGB."""
    image = next(n.image for n in mesh.materials[0].node_tree.nodes if n.type == "TEX_IMAGE")
    pixels = np.empty(len(image.pixels), dtype=np.float32)
    image.pixels.foreach_get(pixels)
    return pixels.reshape(image.size[1], image.size[0], 4)[::-1, :, :3]


def _model_with_texture(layout, folder):
    """A copy of the layout in ``folder`` with FLAME_albedo_from_BFM.npz (7 components) in the model's parent
    (MICA's data/); returns the model path and the written (mean, basis), BGR."""
    shutil.copytree(layout["model"].parent.parent, folder)
    model = folder / "FLAME2020" / "generic_model.pkl"
    return model, write_bfm_albedo(folder / "FLAME_albedo_from_BFM.npz", np.random.default_rng(7), k=7)


def test_import_assets_adds_the_templates_uvs_and_the_bfm_albedo(layout, tmp_path, capsys):
    model, (mean, _) = _model_with_texture(layout, tmp_path / "data")
    bpy.ops.flame.import_model(filepath=str(model), n_shape=5, n_expr=5, import_assets=False)
    armature = bpy.context.view_layer.objects.active
    mesh = armature.flame.mesh.data
    capsys.readouterr()
    assert bpy.ops.flame.import_assets(directory=str(model.parent)) == {"FINISHED"}
    info = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Info: Added from")]
    vt, ft = layout["uvs"]
    np.testing.assert_allclose(_uvs(mesh), vt[ft], atol=1e-6)  # a BFM space has no UVs: the template's
    material = mesh.materials[0]
    assert [material[f"tex{k:03d}"] for k in range(7)] == [0.0] * 7 and "tex007" not in material
    np.testing.assert_allclose(_albedo(mesh), mean[:, :, ::-1], atol=1e-6)  # the file's mean, BGR -> RGB
    assert len(info) == 1 and "14 mask vertex groups" in info[0] and "UVMap (" in info[0]
    assert "albedo FLAME_albedo_from_BFM.npz (BFM, 7 of 7 components) as flame_texture" in info[0]
    material["tex002"] = 1.5  # keyable coefficients drive the image
    material.update_tag()
    bpy.context.view_layer.update()
    space = read_texture_space(model.parent.parent / "FLAME_albedo_from_BFM.npz")
    assert np.abs(_albedo(mesh) - space.albedo([0, 0, 1.5])).max() < 1e-6


def test_the_model_import_adds_a_texture_space_beside_it_with_the_components_asked_for(layout, tmp_path, capsys):
    shutil.copytree(layout["model"].parent, tmp_path / "FLAME2020")
    model = tmp_path / "FLAME2020" / "generic_model.pkl"
    vt = np.random.default_rng(8).uniform(0, 1, (N_FACES * 3, 2))  # the space's own UVs, not the template's
    ft = np.arange(3 * N_FACES).reshape(-1, 3)
    write_flame_texture(model.parent / "FLAME_texture.npz", np.random.default_rng(9), k=6, uvs=(vt, ft))
    capsys.readouterr()
    assert bpy.ops.flame.import_model(filepath=str(model), n_shape=5, n_expr=5, texture_components=4) == {"FINISHED"}
    report = capsys.readouterr().out
    mesh = bpy.context.view_layer.objects.active.flame.mesh.data
    np.testing.assert_allclose(_uvs(mesh), vt[ft], atol=1e-6)
    material = mesh.materials[0]
    assert material["flame_texture_components"] == 4 and "tex003" in material and "tex004" not in material
    np.testing.assert_allclose(_albedo(mesh), read_texture_space(model.parent / "FLAME_texture.npz").mean, atol=1e-6)
    assert f"UVMap ({3 * N_FACES} UVs of FLAME_texture.npz; the template's not used)" in report
    assert "albedo FLAME_texture.npz (FLAME, 4 of 6 components)" in report

    bare = tmp_path / "bare"  # a BFM space and nothing else: no UVs to put it on
    bare.mkdir()
    shutil.copy(model, bare)
    write_bfm_albedo(bare / "FLAME_albedo_from_BFM.npz", np.random.default_rng(10))
    assert bpy.ops.flame.import_model(filepath=str(bare / "generic_model.pkl"), n_shape=5, n_expr=5) == {"FINISHED"}
    assert "Warning: FLAME_albedo_from_BFM.npz: not added: it stores no UVs" in capsys.readouterr().out
    assert not bpy.context.view_layer.objects.active.flame.mesh.data.materials


def test_a_failed_import_assets_leaves_the_head_as_it_was(layout, tmp_path, monkeypatch):
    model, _ = _model_with_texture(layout, tmp_path / "data")
    bpy.ops.flame.import_model(filepath=str(model), n_shape=5, n_expr=5, import_assets=False)
    armature = bpy.context.view_layer.objects.active
    mesh_obj = armature.flame.mesh
    assert bpy.ops.flame.import_assets(directory=str(model.parent)) == {"FINISHED"}
    uvs, material = _uvs(mesh_obj.data), mesh_obj.data.materials[0]
    groups, before = [g.name for g in mesh_obj.vertex_groups], scene_state()

    faces = layout["faces"]
    other = af.template_uvs(np.random.default_rng(11), faces, N_VERTS)  # other UVs, that would replace these
    af.write_template_obj(model.parent / "head_template.obj", faces, *other, N_VERTS)

    def broken(*args):
        raise RuntimeError("broken on purpose")

    monkeypatch.setattr(appearance, "albedo_image", broken)  # after the masks and the UVs were set
    with pytest.raises(RuntimeError, match="broken on purpose"):
        bpy.ops.flame.import_assets(directory=str(model.parent))
    monkeypatch.undo()
    (model.parent.parent / "FLAME_albedo_from_BFM.npz").write_bytes(b"PK\x03\x04 a truncated zip")
    with pytest.raises(RuntimeError, match="FLAME_albedo_from_BFM.npz"):
        bpy.ops.flame.import_assets(directory=str(model.parent))
    assert scene_state() == before and [g.name for g in mesh_obj.vertex_groups] == groups
    assert np.array_equal(_uvs(mesh_obj.data), uvs) and list(mesh_obj.data.materials) == [material]


def test_a_metrical_take_finds_the_texture_space_beside_the_model(layout, tmp_path):
    model, _ = _model_with_texture(layout, tmp_path / "data")
    assert bpy.ops.flame.import_model(filepath=str(model), n_shape=20, n_expr=20) == {"FINISHED"}
    armature = bpy.context.view_layer.objects.active
    rng = np.random.default_rng(12)
    frame = metrical_frame(rng, 0, n_shape=20, n_expr=20)
    tex = rng.normal(0, 0.5, (1, 9)).astype(np.float32)  # more coefficients than the 7 components
    frame["flame"].update(tex=tex[:, :5], sh=rng.normal(0, 0.3, (1, 9, 3)).astype(np.float32))
    root = write_metrical_output(tmp_path / "out", {0: frame})
    assert bpy.ops.flame.import_sequence(filepath=str(root)) == {"FINISHED"}
    material = armature.flame.mesh.data.materials[0]
    space_path = model.parent.parent / "FLAME_albedo_from_BFM.npz"
    assert material["flame_texture_space"] == str(space_path)  # found in the model's parent, as find_assets does
    expected = read_texture_space(space_path).albedo(np.r_[tex[0, :5], 0.0, 0.0])
    assert np.abs(_albedo(armature.flame.mesh.data) - expected).max() < 1e-6
