"""DECA / EMOCA / SMIRK per-image outputs as sequences, their orthographic camera, and identities
from MICA files and FLAME-topology meshes (fixtures in each tool's own layout: tests/regressor_files.py)."""

import numpy as np
import pytest
from regressor_files import regressor_codes, write_code_files, write_emoca, write_mica, write_ply
from synthetic_model import random_model_arrays

from flame_blender_addon.core import camera as cam
from flame_blender_addon.core import evaluation
from flame_blender_addon.core import sequence as sq
from flame_blender_addon.core.errors import (
    FileFormatError,
    IdentityError,
    LimitError,
    SequenceError,
    UnsafePickleError,
)
from flame_blender_addon.core.formats.mesh_file import read_mesh_vertices, write_obj
from flame_blender_addon.core.formats.npz import write_sequence_npz
from flame_blender_addon.core.formats.per_frame import frame_numbers
from flame_blender_addon.core.identity import identity_from_mesh, mesh_unit, read_identity_code, read_identity_mesh
from flame_blender_addon.core.model import model_from_arrays
from flame_blender_addon.core.rotations import axis_angle_to_matrix

NAMES = ["frame_0007", "frame_0002", "frame_0010"]  # out of order on purpose
ORDER = [1, 0, 2]  # frames 2, 7, 10


@pytest.fixture(scope="module")
def model():
    return model_from_arrays(random_model_arrays(n_verts=400, n_faces=600, n_components=400, seed=11))


def batch_orth_proj(points, code):
    """DECA's decalib/utils/util.py batch_orth_proj, y negated, then NDC -> pixels of the 224 crop."""
    s, tx, ty = code
    ndc = np.stack([s * (points[:, 0] + tx), -s * (points[:, 1] + ty)], axis=-1)
    return (ndc + 1.0) * 224 / 2.0


@pytest.mark.parametrize("suffix", [".npz", ".pkl", ".pt"])
def test_deca_code_dumps(tmp_path, suffix, model):
    frames = regressor_codes(np.random.default_rng(1), 3)
    write_code_files(tmp_path / "deca", frames, NAMES, suffix)
    seq = sq.read_sequence(tmp_path / "deca")
    assert seq.source == "DECA" and list(seq.frame_ids) == [2, 7, 10]
    ordered = [frames[i] for i in ORDER]
    np.testing.assert_allclose(seq.expr, np.concatenate([f["exp"] for f in ordered]), atol=0)
    mean = np.mean([f["shape"][0] for f in ordered], axis=0, dtype=np.float64)
    np.testing.assert_allclose(seq.shape, mean, atol=1e-12)
    pose = np.concatenate([f["pose"] for f in ordered]).reshape(3, 2, 3)
    np.testing.assert_allclose(seq.rotations[:, 0], axis_angle_to_matrix(pose[:, 0]), atol=1e-12)
    np.testing.assert_allclose(seq.rotations[:, 2], axis_angle_to_matrix(pose[:, 1]), atol=1e-12)
    np.testing.assert_allclose(seq.rotations[:, [1, 3, 4]], np.broadcast_to(np.eye(3), (3, 3, 3, 3)))
    assert any("identity estimate" in w for w in seq.warnings)
    # the orthographic camera reproduces batch_orth_proj on the crop, frame by frame
    fitted = sq.fit_components(seq, model.n_shape, model.n_expr)
    assert any("the input has 50 components, the model 100" in w for w in fitted.warnings)
    verts = evaluation.sequence_vertices(model, fitted)
    for i, frame in enumerate(ordered):
        got = cam.project_opencv(verts[i], fitted.camera.K[i], fitted.camera.R[i], fitted.camera.t[i],
                                 orthographic=True)
        np.testing.assert_allclose(got, batch_orth_proj(verts[i], frame["cam"][0].astype(np.float64)), atol=1e-9)


def test_emoca_folders_have_no_camera(tmp_path):
    frames = regressor_codes(np.random.default_rng(2), 3)
    out = write_emoca(tmp_path / "emoca", frames, ["000007_00", "000002_00", "000010_00"])
    for path in (out, out / "000002_00" / "exp.npy"):  # the folder, or any file in it
        seq = sq.read_sequence(path)
        assert seq.source == "EMOCA" and list(seq.frame_ids) == [2, 7, 10] and seq.camera is None
        assert any("saves no camera" in w for w in seq.warnings)
        np.testing.assert_array_equal(seq.expr[0], frames[1]["exp"][0])


def test_smirk_codes_and_eyelids(tmp_path):
    frames = regressor_codes(np.random.default_rng(3), 3, smirk=True)
    out = write_code_files(tmp_path / "smirk", frames, NAMES, ".pkl")
    eyelid_dirs = np.random.default_rng(4).normal(scale=1e-3, size=(2, 400, 3))
    np.save(out / "l_eyelid.npy", eyelid_dirs[0])
    np.save(out / "r_eyelid.npy", eyelid_dirs[1])
    seq = sq.read_sequence(out)
    ordered = [frames[i] for i in ORDER]
    assert seq.source == "SMIRK" and seq.n_shape == 300 and seq.n_expr == 50
    np.testing.assert_array_equal(seq.eyelids, np.concatenate([f["eyelid_params"] for f in ordered]))
    np.testing.assert_allclose(seq.eyelid_dirs, eyelid_dirs)
    np.testing.assert_allclose(seq.rotations[:, 2], axis_angle_to_matrix(
        np.concatenate([f["jaw_params"] for f in ordered])), atol=1e-12)
    assert seq.camera.orthographic and any("SMIRK adds the eyelids after posing" in w for w in seq.warnings)


def test_orthographic_camera_round_trips(tmp_path):
    """Through Blender's settings and back, through resampling, and through flame_sequence.npz."""
    codes = np.array([[8.0, 0.01, -0.02], [9.0, -0.01, 0.03]])
    track = cam.orthographic_crop(codes)
    bc = cam.opencv_to_blender(track)
    np.testing.assert_allclose(bc.ortho_scale, 2.0 / codes[:, 0])
    np.testing.assert_allclose(bc.cam2world[:, :3, 3], np.c_[-codes[:, 1:], np.ones(2)])
    np.testing.assert_allclose(bc.cam2world[:, :3, :3], np.broadcast_to(np.eye(3), (2, 3, 3)), atol=1e-15)
    back = cam.blender_to_opencv(bc.cam2world, bc.ortho_scale, bc.shift_x, bc.shift_y, bc.sensor_width,
                                 bc.resolution, orthographic=True)
    assert back.orthographic
    np.testing.assert_allclose(back.K, track.K)
    np.testing.assert_allclose(back.t, track.t, atol=1e-12)
    seq = sq.FlameSequence(shape=np.zeros(3), expr=np.zeros((2, 2)), rotations=np.tile(np.eye(3), (2, 5, 1, 1)),
                           translation=np.zeros((2, 3)), frame_ids=np.array([0, 2]), camera=track)
    assert sq.resample(seq, 50.0).camera.orthographic and seq.take([1]).camera.orthographic
    again = sq.read_sequence(write_sequence_npz(tmp_path / "flame_sequence.npz", sq.validate_sequence(seq)))
    assert again.camera.orthographic
    np.testing.assert_allclose(again.camera.K, track.K)


def test_bad_regressor_outputs(tmp_path):
    frames = regressor_codes(np.random.default_rng(5), 2)
    del frames[1]["exp"]
    write_code_files(tmp_path / "missing", frames, ["0001", "0002"], ".npz")
    with pytest.raises(SequenceError, match=r"0002\.npz|0002: missing 'exp'"):
        sq.read_sequence(tmp_path / "missing")
    frames = regressor_codes(np.random.default_rng(5), 2)
    frames[0]["cam"][0, 0] = -1.0
    write_code_files(tmp_path / "scale", frames, ["0001", "0002"], ".npz")
    with pytest.raises(SequenceError, match="scale must be positive"):
        sq.read_sequence(tmp_path / "scale")
    frames = regressor_codes(np.random.default_rng(5), 2)
    frames[1]["pose"] = frames[1]["pose"][:, :3]
    write_code_files(tmp_path / "pose", frames, ["0001", "0002"], ".pkl")
    with pytest.raises(SequenceError, match="'pose' has shapes"):
        sq.read_sequence(tmp_path / "pose")
    (tmp_path / "names").mkdir()
    write_code_files(tmp_path / "names", regressor_codes(np.random.default_rng(5), 2), ["a", "b"], ".npz")
    with pytest.raises(SequenceError, match="distinct frame numbers"):
        sq.read_sequence(tmp_path / "names")


def test_frame_numbers():
    assert frame_numbers(["img_0003", "img_0001"]) == [3, 1]
    assert frame_numbers(["000003_00", "000001_00"]) == [3, 1]  # EMOCA: the image number, not the face's
    assert frame_numbers(["a", "b"]) is None


# --------------------------------------------------------------------------------------------------
# identity


def _head(model, betas):
    return model.v_template + np.einsum("vcs,s->vc", model.shapedirs[:, :, :len(betas)], betas)


def test_identity_from_mesh_is_exact(model):
    betas = np.random.default_rng(6).normal(scale=0.5, size=300)
    betas[:3] = [20.0, -18.0, 15.0]  # beyond the sliders' +-10
    for scale in (1.0, 1000.0):  # metres, millimetres
        fit = identity_from_mesh(model.v_template, model.shapedirs, scale * _head(model, betas))
        assert fit.scale == 1.0 / scale
        np.testing.assert_allclose(fit.betas, betas, atol=1e-6)
        assert fit.residual_m < 1e-9 and fit.max_m < 1e-8
    noisy = _head(model, betas) + np.random.default_rng(7).normal(scale=1e-3, size=(400, 3))
    assert 5e-4 < identity_from_mesh(model.v_template, model.shapedirs, noisy).residual_m < 2e-3


def test_mesh_units_and_vertex_count(model):
    head = _head(model, np.zeros(1))
    assert mesh_unit(head) == 1.0 and mesh_unit(head * 1000) == 1e-3
    for wrong in (head * 10, head * 1e-3):  # a tenfold error, or nothing head-sized
        with pytest.raises(IdentityError, match="neither a head in metres"):
            mesh_unit(wrong)
    with pytest.raises(IdentityError, match="has 399 vertices; a FLAME head has 400"):
        identity_from_mesh(model.v_template, model.shapedirs, head[:-1])


def test_mica_outputs(tmp_path, model):
    betas = np.random.default_rng(8).normal(size=300).astype(np.float32)
    out = write_mica(tmp_path / "mica", betas, _head(model, betas.astype(np.float64)), model.faces)
    np.testing.assert_array_equal(read_identity_code(out / "identity.npy"), betas)
    for mesh in ("mesh.ply", "mesh.obj"):
        fit = read_identity_mesh(out / mesh, model.v_template, model.shapedirs)
        assert fit.scale == 1e-3 and fit.residual_m < 1e-7
        np.testing.assert_allclose(fit.betas, betas, atol=1e-3)
    ascii_ply = write_ply(tmp_path / "ascii.ply", _head(model, betas.astype(np.float64)), model.faces, binary=False)
    np.testing.assert_allclose(read_mesh_vertices(ascii_ply), read_mesh_vertices(out / "mesh.ply") / 1000, atol=1e-7)


def test_identity_codes_of_regressors(tmp_path):
    frames = regressor_codes(np.random.default_rng(9), 1)
    write_emoca(tmp_path / "emoca", frames, ["0001"])
    np.testing.assert_array_equal(read_identity_code(tmp_path / "emoca" / "0001" / "shape.npy"), frames[0]["shape"][0])
    for suffix in (".npz", ".pkl", ".pt"):
        write_code_files(tmp_path / suffix[1:], frames, ["0001"], suffix)
        np.testing.assert_array_equal(read_identity_code(tmp_path / suffix[1:] / f"0001{suffix}"),
                                      frames[0]["shape"][0])
    smirk = regressor_codes(np.random.default_rng(9), 1, smirk=True)
    write_code_files(tmp_path / "smirk", smirk, ["0001"], ".npz")
    assert read_identity_code(tmp_path / "smirk" / "0001.npz").shape == (300,)


def test_bad_identity_files(tmp_path, model, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where the hostile pickle's command would write
    np.save(tmp_path / "two.npy", np.zeros((2, 300)))
    with pytest.raises(IdentityError, match=r"shape \(2, 300\)"):
        read_identity_code(tmp_path / "two.npy")
    np.save(tmp_path / "nan.npy", np.full(300, np.nan))
    with pytest.raises(IdentityError, match="NaN"):
        read_identity_code(tmp_path / "nan.npy")
    np.savez(tmp_path / "codes.npz", exp=np.zeros(50))
    with pytest.raises(IdentityError, match="no 'shape'"):
        read_identity_code(tmp_path / "codes.npz")
    (tmp_path / "empty.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 400\n"
                                         b"property float x\nproperty float y\nproperty float z\nend_header\n")
    with pytest.raises(FileFormatError, match="truncated"):
        read_mesh_vertices(tmp_path / "empty.ply")
    (tmp_path / "huge.ply").write_bytes(b"ply\nformat ascii 1.0\nelement vertex 99999999999\n"
                                        b"property float x\nproperty float y\nproperty float z\nend_header\n")
    with pytest.raises(LimitError):
        read_mesh_vertices(tmp_path / "huge.ply")
    write_obj(tmp_path / "few.obj", _head(model, np.zeros(1))[:100] * 1000, np.zeros((0, 3)))
    with pytest.raises(IdentityError, match="has 100 vertices"):
        read_identity_mesh(tmp_path / "few.obj", model.v_template, model.shapedirs)
    (tmp_path / "hostile").mkdir()
    (tmp_path / "hostile" / "0001.pkl").write_bytes(b"cos\nsystem\n(S'touch PWNED'\ntR.")
    for read in (read_identity_code, sq.read_sequence):
        with pytest.raises(UnsafePickleError, match="0001.pkl: refused to load 'os.system'"):
            read(tmp_path / "hostile" / "0001.pkl")
    assert not (tmp_path / "PWNED").exists()
    (tmp_path / "text.obj").write_text("not a mesh\n")
    with pytest.raises(FileFormatError, match="no 'v x y z'"):
        read_mesh_vertices(tmp_path / "text.obj")
