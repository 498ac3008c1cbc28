"""Masks, template UVs, landmark embeddings and texture spaces: each reader on its distributed layout
(written by tests/asset_files.py), CRLF damage, hostile legacy torch streams, and the folder scan."""

import pickle
import shutil

import asset_files as af
import numpy as np
import pytest
from synthetic_model import random_model_arrays
from texture_files import write_bfm_albedo, write_flame_texture

from flame_blender_addon.core import safe_pickle
from flame_blender_addon.core.errors import AssetError, FileFormatError, FlameError, UnsafePickleError
from flame_blender_addon.core.formats.assets import AssetFiles, find_assets, read_assets
from flame_blender_addon.core.formats.embeddings import Embedding, read_embedding
from flame_blender_addon.core.formats.masks import read_masks
from flame_blender_addon.core.formats.template_obj import read_template_uvs

N_VERTS, N_FACES = 120, 200


@pytest.fixture(scope="module")
def arrays():
    return random_model_arrays(n_verts=N_VERTS, n_faces=N_FACES, seed=2)


@pytest.mark.parametrize("crlf", [False, True])
def test_every_mask_region_is_read_and_crlf_damage_is_repaired_with_a_warning(tmp_path, crlf):
    regions = af.mask_regions(np.random.default_rng(1), N_VERTS)
    path = af.write_masks(tmp_path / "FLAME_masks.pkl", regions, crlf)
    if crlf:  # the damage the format notes describe: plain pickle fails on it
        with pytest.raises(pickle.UnpicklingError, match="STRING opcode argument must be quoted"):
            pickle.loads(path.read_bytes(), encoding="latin1")
    read, warnings = read_masks(path, N_VERTS)
    assert list(read) == list(af.MASK_REGIONS)
    for name, indices in regions.items():
        np.testing.assert_array_equal(read[name], np.sort(indices))
    assert len(warnings) == crlf and all("CRLF" in w and "FLAME_masks.pkl" in w for w in warnings)


def test_masks_of_another_topology_name_the_region(tmp_path):
    regions = af.mask_regions(np.random.default_rng(1), N_VERTS)
    regions["nose"] = np.append(regions["nose"], N_VERTS + 7)
    with pytest.raises(AssetError, match=r"FLAME_masks.pkl: region 'nose' uses vertex 127, but the head has 120"):
        read_masks(af.write_masks(tmp_path / "FLAME_masks.pkl", regions), N_VERTS)
    (tmp_path / "list.pkl").write_bytes(pickle.dumps([1, 2], protocol=0))
    with pytest.raises(AssetError, match="holds a list, expected a dict"):
        read_masks(tmp_path / "list.pkl", N_VERTS)
    (tmp_path / "text.pkl").write_bytes(pickle.dumps({"face": np.array(["a"])}, protocol=2))
    with pytest.raises(FlameError, match="text.pkl"):
        read_masks(tmp_path / "text.pkl", N_VERTS)


def test_landmark_embedding_npy_with_torch_tensors_is_read_without_torch(tmp_path):
    content = af.landmark_embedding_dict(np.random.default_rng(3), N_FACES)
    path = af.write_landmark_embedding(tmp_path / "landmark_embedding.npy", content)
    decoded, warnings = safe_pickle.load_file(path)
    assert not warnings and sorted(decoded) == sorted(content)
    for key, value in content.items():  # the tensors too, with their dtypes
        np.testing.assert_array_equal(decoded[key], value)
        assert decoded[key].dtype == value.dtype
    embedding, _ = read_embedding(path)
    assert embedding.name == "68"
    np.testing.assert_array_equal(embedding.face_idx, content["full_lmk_faces_idx"][0])
    np.testing.assert_allclose(embedding.bary, content["full_lmk_bary_coords"][0])
    np.testing.assert_array_equal(embedding.points, np.arange(68))
    np.testing.assert_array_equal(embedding.face_idx[17:], content["static_lmk_faces_idx"])


def test_vhap_embedding_with_eyes_has_70_points(tmp_path):
    content = af.landmark_embedding_dict(np.random.default_rng(4), N_FACES, eyes=True)
    embedding, _ = read_embedding(af.write_landmark_embedding(tmp_path / "landmark_embedding_with_eyes.npy", content))
    assert embedding.name == "70" and len(embedding) == 70
    np.testing.assert_array_equal(embedding.face_idx, content["full_lmk_faces_idx"][0])


@pytest.mark.parametrize("crlf", [False, True])
def test_static_embedding_pickle_is_points_17_to_67(tmp_path, crlf):
    face_idx, bary = af.random_embedding(np.random.default_rng(5), N_FACES, (51,))
    embedding, warnings = read_embedding(af.write_static_embedding(tmp_path / "flame_static_embedding.pkl",
                                                                   face_idx, bary, crlf))
    assert embedding.name == "static" and len(warnings) == crlf
    np.testing.assert_array_equal(embedding.points, np.arange(17, 68))
    np.testing.assert_array_equal(embedding.face_idx, face_idx)
    np.testing.assert_array_equal(embedding.bary, bary)


def test_dynamic_embedding_gives_its_frontal_contour(tmp_path):
    face_idx, bary = af.random_embedding(np.random.default_rng(6), N_FACES, (79, 17))
    embedding, _ = read_embedding(af.write_dynamic_embedding(tmp_path / "flame_dynamic_embedding.npy", face_idx, bary))
    assert embedding.name == "contour"
    np.testing.assert_array_equal(embedding.face_idx, face_idx[0])
    np.testing.assert_array_equal(embedding.bary, bary[0])
    np.testing.assert_array_equal(embedding.points, np.arange(17))


def test_mediapipe_embedding_points_are_mediapipe_indices(tmp_path):
    rng = np.random.default_rng(7)
    face_idx, bary = af.random_embedding(rng, N_FACES, (105,))
    points = rng.choice(468, 105, replace=False)
    embedding, _ = read_embedding(af.write_mediapipe_embedding(tmp_path / "mediapipe_landmark_embedding.npz",
                                                               face_idx, bary, points))
    assert embedding.name == "mediapipe"
    np.testing.assert_array_equal(embedding.points, points)


def test_positions_are_the_barycentric_formula(arrays):
    rng = np.random.default_rng(8)
    face_idx, bary = af.random_embedding(rng, N_FACES, (9,))
    embedding = Embedding(face_idx, bary, None, "x")
    vertices = rng.normal(size=(4, N_VERTS, 3))
    faces = arrays["f"]
    expected = [[sum(bary[i, c] * v[faces[face_idx[i], c]] for c in range(3)) for i in range(9)] for v in vertices]
    np.testing.assert_allclose(embedding.positions(faces, vertices), expected, atol=1e-12)
    with pytest.raises(AssetError, match="uses triangle"):
        embedding.corners(faces[:5])


def test_template_uvs_per_corner_with_seams(tmp_path, arrays):
    faces = arrays["f"]
    vt, ft = af.template_uvs(np.random.default_rng(9), faces, N_VERTS)
    assert len(vt) > N_VERTS  # seams: some vertices carry two UVs
    path = af.write_template_obj(tmp_path / "head_template.obj", faces, vt, ft, N_VERTS)
    read_vt, read_ft = read_template_uvs(path, faces)
    np.testing.assert_allclose(read_vt, vt, atol=1e-6)
    np.testing.assert_array_equal(read_ft, ft)


def test_template_of_another_topology_is_one_clear_line(tmp_path, arrays):
    faces = arrays["f"]
    vt, ft = af.template_uvs(np.random.default_rng(9), faces, N_VERTS)
    path = af.write_template_obj(tmp_path / "head_template.obj", faces, vt, ft, N_VERTS)
    with pytest.raises(AssetError, match=r"head_template.obj: its 200 triangles over 120 vertices are not the "
                                         r"head's 199 triangles \(UVs for another topology\?\)"):
        read_template_uvs(path, faces[:-1])
    path.write_text("v 0 0 0\nvt 0 0\nf 1/1 1/1 1/1 1/1\n")
    with pytest.raises(AssetError, match="a face of 4 corners"):
        read_template_uvs(path, faces)
    path.write_text("v 0 0 0\nvt 0 0\nf 1 1 1\n")
    with pytest.raises(AssetError, match="faces without UV indices"):
        read_template_uvs(path, faces)


def _legacy_tensor_npy(tmp_path, stream: bytes):
    """landmark_embedding.npy whose one tensor's storage is ``stream``."""
    content = {"t": af.Tensor(np.arange(4, dtype=np.int64))}
    w = af._Py3Writer()
    w.value(af.legacy_pickle.ObjectArray(content))
    w.out += b"."
    good = af.legacy_storage_stream(np.arange(4, dtype=np.int64))
    data = bytes(w.out).replace(struct_len(good) + good, struct_len(stream) + stream)
    path = tmp_path / "landmark_embedding.npy"
    path.write_bytes(af.object_npy(data))
    return path


def struct_len(blob: bytes) -> bytes:
    return b"B" + len(blob).to_bytes(4, "little") if len(blob) >= 256 else b"C" + bytes([len(blob)])


@pytest.mark.parametrize("edit, error, message", [
    (lambda s: s.replace(b"\xf9\x20\x6a\xa8", b"\x00\x00\x00\x00", 1), FileFormatError, "legacy format"),
    (lambda s: s[:-9], FileFormatError, "4 elements declared"),
    (lambda s: s[:-40] + b"\xff" * 8 + s[-32:], FileFormatError, "elements declared"),
    (lambda s: s.replace(b"ctorch\nLongStorage\n", b"cos\nsystem\n", 1), UnsafePickleError,
     "refused to load 'os.system"),
    (lambda s: s.replace(b"NtQ.", b"K\x01tQ.", 1), UnsafePickleError, "refused persistent reference"),
    (lambda s: s.replace(b"\x80\x02(X", b"\x80\x02ctorch.storage\n_load_from_bytes\n(C\x01xtR(X", 1), UnsafePickleError,
     "refused 'torch.storage._load_from_bytes' inside a torch storage"),
    (lambda s: s.replace(b"little_endian\x94\x88", b"little_endian\x94\x89", 1).replace(
        b"little_endianq\x02\x88", b"little_endianq\x02\x89", 1), FileFormatError, "big-endian"),
])
def test_hostile_legacy_torch_streams_are_clear_errors(tmp_path, edit, error, message):
    stream = edit(af.legacy_storage_stream(np.arange(4, dtype=np.int64)))
    with pytest.raises(error, match=message):
        safe_pickle.load_file(_legacy_tensor_npy(tmp_path, stream))


def test_object_arrays_other_than_a_wrapped_value_and_plain_npy_are_refused(tmp_path):
    path = tmp_path / "landmark_embedding.npy"
    np.save(path, np.array([{"a": 1}, {"b": 2}], dtype=object), allow_pickle=True)
    with pytest.raises(FileFormatError, match=r"expected a single pickled object"):
        read_embedding(path)
    path.write_bytes(af.object_npy(pickle.dumps(np.array([{"a": 1}, {"b": 2}], dtype=object), protocol=3)))
    with pytest.raises(FileFormatError, match="only a single wrapped value"):
        read_embedding(path)
    path.write_bytes(af.object_npy(af.legacy_pickle.dumps_py2(af.legacy_pickle.ObjectArray([1, 2]))))
    with pytest.raises(AssetError, match="holds a list, expected a dict of landmark arrays"):
        read_embedding(path)
    np.save(path, np.zeros(3))
    with pytest.raises(FileFormatError, match="expected a single pickled object"):
        read_embedding(path)


def test_folder_scan_finds_the_mica_and_smirk_layouts(tmp_path, arrays):
    written = af.write_mica_layout(tmp_path / "mica", arrays, np.random.default_rng(10))
    found = find_assets(written["model"].parent)
    place = written["model"].parent
    assert found == AssetFiles(masks=place / "FLAME_masks" / "FLAME_masks.pkl", uvs=place / "head_template.obj",
                               embeddings=(place / "landmark_embedding.npy",
                                           place / "mediapipe_landmark_embedding.npz"))
    smirk = tmp_path / "smirk" / "assets"  # assets/FLAME2020/generic_model.pkl, the rest one level up
    (smirk / "FLAME2020").mkdir(parents=True)
    shutil.copytree(place / "FLAME_masks", smirk / "FLAME_masks")
    shutil.copy(place / "head_template.obj", smirk / "head_template_mesh.obj")
    (smirk / "someone_elses").mkdir()  # a sibling of the model's folder is the user's, not searched
    shutil.copy(place / "landmark_embedding.npy", smirk / "someone_elses")
    assert find_assets(smirk / "FLAME2020") == AssetFiles(masks=smirk / "FLAME_masks" / "FLAME_masks.pkl",
                                                          uvs=smirk / "head_template_mesh.obj")
    assert find_assets(tmp_path / "nowhere") == AssetFiles() and not AssetFiles().paths()


def test_read_assets_strict_raises_lenient_skips_with_a_warning(tmp_path, arrays):
    written = af.write_mica_layout(tmp_path, arrays, np.random.default_rng(11))
    files = find_assets(written["model"].parent)
    assets = read_assets(files, arrays["f"], N_VERTS)
    assert sorted(assets.masks) == sorted(af.MASK_REGIONS) and len(assets.uvs[0]) > N_VERTS
    assert [e.name for e in assets.embeddings] == ["68", "mediapipe"] and not assets.warnings
    small = arrays["f"][:50]  # a head of fewer triangles: the UVs and embeddings do not fit it
    with pytest.raises(AssetError, match="head_template.obj: .* not the head's 50 triangles"):
        read_assets(files, small, N_VERTS)
    lenient = read_assets(files, small, N_VERTS, strict=False)
    assert lenient.masks and lenient.uvs is None and lenient.embeddings == []
    assert len(lenient.warnings) == 3 and all(w.startswith("skipped: ") for w in lenient.warnings)
    assert "landmark_embedding.npy: uses triangle" in lenient.warnings[1]


def test_the_bfm_texture_space_is_found_first_and_read_with_its_first_components(tmp_path, arrays):
    written = af.write_mica_layout(tmp_path, arrays, np.random.default_rng(12))
    place = written["model"].parent
    rng = np.random.default_rng(13)
    write_flame_texture(place / "FLAME_texture.npz", rng, uvs=(written["uvs"][0], written["uvs"][1][:10]))
    assert find_assets(place).texture == place / "FLAME_texture.npz"
    mean, basis = write_bfm_albedo(place.parent / "FLAME_albedo_from_BFM.npz", rng, k=5)
    files = find_assets(place)
    assert files.texture == place.parent / "FLAME_albedo_from_BFM.npz"  # BFM's name first, even in the parent
    assets = read_assets(files, arrays["f"], N_VERTS, n_texture=3)
    space = assets.texture
    assert (space.layout, space.n_components, space.n_total, space.vt) == ("BFM", 3, 5, None)
    np.testing.assert_allclose(space.basis, np.moveaxis(basis[:, :, ::-1, :3], -1, 0), atol=1e-7)  # BGR -> RGB
    np.testing.assert_allclose(space.mean, mean[:, :, ::-1], atol=1e-7)
    flame_only = AssetFiles(texture=place / "FLAME_texture.npz")  # its UVs: 10 triangles, not the head's 200
    with pytest.raises(AssetError, match=r"FLAME_texture.npz: its UVs \('ft'\) have 10 triangles, the head 200"):
        read_assets(flame_only, arrays["f"], N_VERTS)
    lenient = read_assets(flame_only, arrays["f"], N_VERTS, strict=False)
    assert lenient.texture is None and lenient.warnings == ["skipped: FLAME_texture.npz: its UVs ('ft') have 10 "
                                                            "triangles, the head 200"]
