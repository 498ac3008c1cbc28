"""FLAME editions: which one a model file is, the licence each names, the export metadata and the
report's reminder, and the metadata written into GLB, OBJ and PLY files."""

import json
import struct

import legacy_pickle
import numpy as np
import pytest
from synthetic_model import random_model_arrays

from flame_blender_addon.core import editions
from flame_blender_addon.core.errors import FileFormatError
from flame_blender_addon.core.formats.file_metadata import (
    add_glb_extras,
    add_obj_comments,
    add_ply_comments,
    read_glb_json,
)
from flame_blender_addon.core.model import load_model
from flame_blender_addon.core.model_folder import find_models


@pytest.mark.parametrize("path, expected", [
    ("generic_model.pkl", "flame2017_2020"),
    ("downloads/female_model.pkl", "flame2017_2020"),
    ("FLAME2020/generic_model.pkl", "flame2020"),
    ("FLAME2019/male_model.pkl", "flame2019"),
    ("flame2017/generic_model.npz", "flame2017"),
    ("FLAME2023/flame2023.pkl", "flame2023"),
    ("FLAME2023/flame2023_no_jaw.pkl", "flame2023_no_jaw"),
    ("flame2023_Open.pkl", "flame2023_open"),
    ("models/FLAME2023_OPEN.npz", "flame2023_open"),
    ("flame2023_open_v1.pkl", "flame2023_open"),
    ("FLAME2023Open/generic_model.pkl", "flame2023_open"),
    ("FLAME2023/generic_model.pkl", "unknown"),  # 2023 files have their own names: this one is renamed
    ("FLAME_NEUTRAL.pkl", "flame2017_2020"),
    ("head.pkl", "unknown"),
    ("open_model.pkl", "unknown"),
])
def test_edition_from_the_file_name_and_folder(path, expected):
    assert editions.detect_edition(path).id == expected


def test_only_the_open_edition_permits_commercial_use():
    flame = [e for e in editions.EDITIONS.values() if e not in (editions.DEMO, editions.UNKNOWN)]
    assert [e.id for e in flame if e.commercial] == ["flame2023_open"]
    assert editions.EDITIONS["flame2023_open"].licence == "CC-BY-4.0"
    assert {e.licence for e in flame if not e.commercial} == {editions.MPI_LICENCE}
    assert all(e.source.startswith(editions.WEBSITE) for e in flame)
    assert editions.UNKNOWN.commercial is None
    assert editions.edition("") is editions.UNKNOWN and editions.edition("flame2099") is editions.UNKNOWN


def test_reminder_only_when_non_commercial_or_unknown():
    note = editions.reminder(editions.EDITIONS["flame2020"])
    assert note.startswith("FLAME 2020 is under the MPI FLAME licence") and "non-commercial research use" in note
    assert "unknown" in editions.reminder(editions.UNKNOWN)
    assert editions.reminder(editions.EDITIONS["flame2023_open"]) == ""
    assert editions.reminder(editions.DEMO) == ""


def test_metadata_names_edition_licence_source_and_file():
    data = editions.metadata(editions.EDITIONS["flame2023_open"], "flame2023_Open.pkl")
    assert data == {"flame_edition": "FLAME 2023 Open", "flame_licence": "CC-BY-4.0",
                    "flame_licence_source": editions.EDITIONS["flame2023_open"].source,
                    "flame_model_file": "flame2023_Open.pkl", "flame_attribution": editions.ATTRIBUTION}
    demo = editions.metadata(editions.DEMO)
    assert set(demo) == {"flame_edition", "flame_licence"}  # no FLAME data: nothing to credit
    assert all(value.isascii() for value in data.values())


@pytest.fixture(scope="module")
def arrays():
    return random_model_arrays(n_verts=120, n_faces=200, seed=11)


def test_open_edition_loads_like_the_other_2023_files(arrays, tmp_path):
    (tmp_path / "FLAME2023").mkdir()
    (tmp_path / "FLAME2023Open").mkdir()
    closed = load_model(legacy_pickle.write_flame_pickle(tmp_path / "FLAME2023/flame2023.pkl", arrays))
    open_ = load_model(legacy_pickle.write_flame_pickle(tmp_path / "FLAME2023Open/flame2023_Open.pkl", arrays))
    assert (closed.edition, open_.edition) == ("flame2023", "flame2023_open")
    for key in ("v_template", "faces", "shapedirs", "exprdirs", "posedirs", "J_regressor", "weights", "parents"):
        np.testing.assert_array_equal(getattr(open_, key), getattr(closed, key))
    assert open_.sha256 == closed.sha256 and not open_.warnings
    assert [m.label for m in find_models(tmp_path)] == ["FLAME2023: FLAME 2023", "FLAME2023Open: FLAME 2023 Open"]


def test_edition_follows_the_folder_the_file_was_loaded_from(arrays, tmp_path, monkeypatch):
    (tmp_path / "FLAME2020").mkdir()
    legacy_pickle.write_flame_pickle(tmp_path / "FLAME2020/generic_model.pkl", arrays)
    monkeypatch.chdir(tmp_path / "FLAME2020")
    assert load_model("generic_model.pkl").edition == "flame2020"  # a relative path still names its folder


def glb(json_text: bytes, binary: bytes) -> bytes:
    """A minimal GLB: header, JSON chunk (space-padded), BIN chunk."""
    json_text += b" " * (-len(json_text) % 4)
    chunks = struct.pack("<II", len(json_text), 0x4E4F534A) + json_text + struct.pack("<II", len(binary), 0x004E4942)
    chunks += binary
    return struct.pack("<4sII", b"glTF", 2, 12 + len(chunks)) + chunks


def test_glb_asset_extras_are_added_and_the_binary_chunk_kept(tmp_path):
    binary = bytes(range(256)) * 3
    path = tmp_path / "head.glb"
    path.write_bytes(glb(json.dumps({"asset": {"version": "2.0", "extras": {"mine": 1}}, "nodes": []}).encode(),
                         binary))
    data = editions.metadata(editions.EDITIONS["flame2023"], "flame2023.pkl")
    add_glb_extras(path, data)
    blob = path.read_bytes()
    assert struct.unpack_from("<I", blob, 8)[0] == len(blob)
    json_length = struct.unpack_from("<I", blob, 12)[0]
    assert json_length % 4 == 0
    gltf, rest = read_glb_json(blob)
    assert gltf["asset"] == {"version": "2.0", "extras": {"mine": 1, **data}} and gltf["nodes"] == []
    assert rest == struct.pack("<II", len(binary), 0x004E4942) + binary
    path.write_bytes(b"PK\x03\x04" + bytes(40))
    with pytest.raises(FileFormatError, match="not a binary glTF"):
        add_glb_extras(path, data)


def test_obj_comments_follow_the_exporters_own(tmp_path):
    path = tmp_path / "head_0001.obj"
    path.write_text("# Blender 4.2\n# www.blender.org\no head\nv 0 0 0\n")
    add_obj_comments(path, {"flame_edition": "FLAME 2020", "flame_licence": "MPI FLAME licence\n(non-commercial)"})
    assert path.read_text().splitlines() == [
        "# Blender 4.2", "# www.blender.org", "# flame_edition: FLAME 2020",
        "# flame_licence: MPI FLAME licence (non-commercial)", "o head", "v 0 0 0"]


def test_ply_comments_go_in_the_header_and_leave_the_binary_body(tmp_path):
    body = np.arange(9, dtype="<f4").tobytes() + b"\nend_header\n"  # body bytes that look like text
    header = b"ply\nformat binary_little_endian 1.0\ncomment Created in Blender\nelement vertex 3\n" \
             b"property float x\nend_header\n"
    path = tmp_path / "head_0001.ply"
    path.write_bytes(header + body)
    add_ply_comments(path, {"flame_edition": "FLAME 2023 Open", "flame_licence": "CC-BY-4.0"})
    blob = path.read_bytes()
    head, _, rest = blob.partition(b"end_header\n")
    assert head.decode().splitlines()[:4] == [
        "ply", "format binary_little_endian 1.0", "comment flame_edition: FLAME 2023 Open",
        "comment flame_licence: CC-BY-4.0"]
    assert rest == body
    path.write_bytes(b"solid head\n")
    with pytest.raises(FileFormatError, match="not a PLY"):
        add_ply_comments(path, {"flame_edition": "x"})
