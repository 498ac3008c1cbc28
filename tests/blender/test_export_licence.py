"""Every export names the model's FLAME edition and licence in the file, read back from the file;
the export report reminds the user of a non-commercial licence and never refuses."""

import dataclasses
import shutil

import bpy
import legacy_pickle
import pytest
from bl_helpers import OperatorDouble, fbx_contents, scene_state
from synthetic_model import random_model_arrays

from flame_blender_addon.blender import export, head
from flame_blender_addon.blender.transaction import plain_value
from flame_blender_addon.core import editions
from flame_blender_addon.core.formats.file_metadata import read_glb_json
from flame_blender_addon.demo.head import demo_model


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """The same small model as FLAME 2020 (``FLAME2020/generic_model.pkl``) and FLAME 2023 Open."""
    folder = tmp_path_factory.mktemp("models")
    (folder / "FLAME2020").mkdir()
    closed = legacy_pickle.write_flame_pickle(folder / "FLAME2020" / "generic_model.pkl",
                                              random_model_arrays(n_verts=300, n_faces=500, seed=5))
    open_ = folder / "flame2023_Open.pkl"
    shutil.copyfile(closed, open_)
    return {"flame2020": closed, "flame2023_open": open_}


def build(path):
    assert bpy.ops.flame.import_model(filepath=str(path), n_shape=3, n_expr=3) == {"FINISHED"}
    bpy.context.scene.frame_start, bpy.context.scene.frame_end = 1, 2
    return bpy.context.view_layer.objects.active


@pytest.fixture(scope="module")
def exported(model_files, tmp_path_factory):
    """A FLAME 2020 head with every format exported; the scene and the head's properties before and after."""
    bpy.ops.wm.read_homefile(use_empty=True)
    armature = build(model_files["flame2020"])
    objects = (armature, armature.flame.mesh)

    def state():
        return scene_state(), [{k: plain_value(v) for k, v in o.items()} for o in objects]

    before = state()
    folder = tmp_path_factory.mktemp("exports")
    written = export.export_all(bpy.context, armature, folder, "head")
    return {"written": written, "before": before, "after": state(),
            "expected": export.licence_metadata(armature)}


def test_the_head_records_its_edition_and_the_export_metadata_follows_it(model_files, exported):
    expected = exported["expected"]
    assert expected["flame_edition"] == "FLAME 2020" and expected["flame_licence"] == editions.MPI_LICENCE
    assert expected["flame_model_file"] == "generic_model.pkl"
    assert exported["after"] == exported["before"]  # the properties set for the exporters are gone again
    bpy.ops.wm.read_homefile(use_empty=True)
    armature = build(model_files["flame2023_open"])
    assert armature.flame.edition == "flame2023_open"
    assert export.licence_metadata(armature)["flame_licence"] == "CC-BY-4.0"
    assert export.licence_reminder(armature) == ""
    armature.flame.edition = ""  # a head saved before heads stored their edition: its model file tells
    assert head.edition_of(armature).id == "flame2023_open"
    armature.flame.model_path = str(model_files["flame2020"])
    assert head.edition_of(armature).id == "flame2020"


@pytest.mark.parametrize("fmt", ["fbx_unreal", "fbx_unity"])
def test_fbx_holds_it_on_the_armature_and_mesh_nodes(exported, fmt):
    _, models, _ = fbx_contents(exported["written"][fmt][0])
    for node in ("FLAME", "FLAME_mesh"):
        written = {k.decode(): v[0].decode() for k, v in models[node].items() if k.startswith(b"flame_")}
        assert written == exported["expected"], node  # and not the head's joint basis (large)


def test_gltf_holds_it_in_asset_extras(exported):
    (path,) = exported["written"]["glb"]
    gltf, _ = read_glb_json(path.read_bytes())
    assert gltf["asset"]["extras"] == exported["expected"]
    assert gltf["asset"]["version"] == "2.0"


def test_usd_holds_it_as_user_properties(exported):
    (path,) = exported["written"]["usd"]
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.wm.usd_import(filepath=str(path))  # imports userProperties as custom properties
    mesh = next(o for o in bpy.context.scene.objects if o.type == "MESH")
    assert {k: v for k, v in mesh.items() if k.startswith("flame_")} == exported["expected"]


def test_alembic_holds_it_as_user_properties(exported):
    """Blender's Alembic importer does not read user properties back: the strings are in the file."""
    (path,) = exported["written"]["abc"]
    blob = path.read_bytes()
    for key, value in exported["expected"].items():
        assert key.encode() in blob and value.encode() in blob, key


@pytest.mark.parametrize("fmt, prefix", [("obj", "# "), ("ply", "comment ")])
def test_every_obj_and_ply_frame_holds_it_in_its_header(exported, fmt, prefix):
    expected = [f"{prefix}{key}: {value}" for key, value in exported["expected"].items()]
    for path in exported["written"][fmt]:
        header = path.read_bytes().split(b"end_header")[0].decode("ascii", "replace").splitlines()
        assert [line for line in header if line.startswith(f"{prefix}flame_")] == expected, path.name


def test_closed_mesh_holds_it_in_the_obj_comments_and_the_stl_header(tmp_path):
    """On the demo head's closable mesh, as if it had been loaded from a FLAME 2023 Open file."""
    bpy.ops.wm.read_homefile(use_empty=True)
    model = dataclasses.replace(demo_model().truncated(2, 2), name="flame2023_Open.pkl", edition="flame2023_open")
    armature = head.build_head(bpy.context, model, "FLAME")
    data = export.licence_metadata(armature)
    obj = export.export_closed_mesh(bpy.context, armature, tmp_path / "head.obj")
    comments = [line for line in obj.read_text().splitlines() if line.startswith("# flame_")]
    assert comments == [f"# {key}: {value}" for key, value in data.items()]
    stl = export.export_closed_mesh(bpy.context, armature, tmp_path / "head.stl")
    assert stl.read_bytes()[:80].rstrip() == b"FLAME head: FLAME 2023 Open, CC-BY-4.0"


@pytest.mark.parametrize("edition, level", [("flame2020", "WARNING"), ("flame2023_open", None)])
def test_the_report_reminds_of_a_non_commercial_licence_and_exports_anyway(model_files, tmp_path, edition, level):
    bpy.ops.wm.read_homefile(use_empty=True)
    armature = build(model_files[edition])
    op = OperatorDouble(bpy.types.FLAME_OT_export_gltf, filepath=str(tmp_path / "a.glb"), target=armature.name)
    assert op.execute(bpy.context) == {"FINISHED"} and (tmp_path / "a.glb").is_file()
    reminders = [(kind, message) for kind, message in op.reports if kind != "INFO"]
    if level is None:
        assert reminders == []
    else:
        assert reminders == [(level, "FLAME 2020 is under the MPI FLAME licence (non-commercial) "
                                     f"({editions.EDITIONS['flame2020'].source}): this export is for "
                                     "non-commercial research use")]
