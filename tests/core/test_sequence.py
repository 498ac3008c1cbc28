"""Reading, validating, resampling and writing tracked FLAME sequences (no torch needed; torch tests skip)."""

import dataclasses
import zipfile

import numpy as np
import pytest
from synthetic_model import random_model_arrays
from tracker_files import (
    I6D,
    gaussian_avatars_arrays,
    metrical_frame,
    metrical_sh_shading,
    vhap_arrays,
    write_flame_param_folder,
    write_hostile_frame,
    write_metrical_output,
    write_torch_save_zip,
)

from flame_blender_addon.core import camera as cam
from flame_blender_addon.core import evaluation
from flame_blender_addon.core import sequence as sq
from flame_blender_addon.core.errors import FileFormatError, SequenceError, UnsafePickleError
from flame_blender_addon.core.formats.metrical import load_eyelid_blendshapes, write_metrical_checkpoints
from flame_blender_addon.core.formats.npz import write_sequence_npz
from flame_blender_addon.core.lbs import forward
from flame_blender_addon.core.model import model_from_arrays
from flame_blender_addon.core.rotations import axis_angle_to_matrix, matrix_to_axis_angle, rotation_6d_to_matrix, slerp

N_VERTS = 200


@pytest.fixture(scope="module")
def model():
    """300 identity + 20 expression components on 200 vertices."""
    return model_from_arrays(random_model_arrays(n_verts=N_VERTS, n_faces=300, n_components=320, seed=3))


def make_sequence(rng, frame_ids, n_shape=12, n_expr=8, root=True, neck=True, camera=True, eyelids=True,
                  static_offset=False):
    """A hand-built sequence with random poses, optionally without root/neck rotation."""
    T = len(frame_ids)
    aa = rng.normal(scale=0.15, size=(T, 5, 3))
    aa[:, 0] *= root
    aa[:, 1] *= neck
    track = None
    if camera:
        K = cam.intrinsics(rng.uniform(900, 1100, T), 320 + rng.normal(size=T), 240 + rng.normal(size=T))
        R = axis_angle_to_matrix(rng.normal(scale=0.1, size=(T, 3))) @ np.diag([1.0, -1.0, -1.0])
        track = cam.CameraTrack(K, R, np.array([0, 0, 1.0]) + rng.normal(scale=0.02, size=(T, 3)), (480, 640))
    return sq.FlameSequence(
        shape=rng.normal(size=n_shape), expr=rng.normal(size=(T, n_expr)), rotations=axis_angle_to_matrix(aa),
        translation=rng.normal(scale=0.02, size=(T, 3)) * root, frame_ids=np.asarray(frame_ids),
        fps=30.0, eyelids=rng.uniform(size=(T, 2)) if eyelids else None, camera=track,
        static_offset=rng.normal(scale=1e-3, size=(N_VERTS, 3)) if static_offset else None)


def metrical_output(tmp_path, ids=(0, 1, 2, 4), seed=0, **kw):
    rng = np.random.default_rng(seed)
    shape = rng.normal(size=300)
    frames = {i: metrical_frame(rng, i, shape=shape, **kw) for i in ids}
    return write_metrical_output(tmp_path / "out", frames), frames


# ------------------------------------------------------------------------------------------------
# metrical-tracker


def test_metrical_output_folder_checkpoint_folder_and_frame_file_read_alike(tmp_path):
    root, frames = metrical_output(tmp_path)
    seqs = [sq.read_sequence(p) for p in (root, root / "checkpoint", root / "checkpoint" / "00002.frame")]
    seq = seqs[0]
    for other in seqs[1:]:
        np.testing.assert_array_equal(other.expr, seq.expr)
        np.testing.assert_array_equal(other.frame_ids, seq.frame_ids)
    assert seq.source == "metrical-tracker" and seq.fps == 25.0 and not seq.fps_from_file
    np.testing.assert_array_equal(seq.frame_ids, [0, 1, 2, 4])
    assert any("missing frames 3 (1 in all)" in w for w in seq.warnings)
    np.testing.assert_array_equal(seq.expr[3], frames[4]["flame"]["exp"][0])
    np.testing.assert_array_equal(seq.eyelids[1], frames[1]["flame"]["eyelids"][0])
    np.testing.assert_array_equal(seq.shape, frames[0]["flame"]["shape"][0])
    np.testing.assert_array_equal(seq.rotations[:, :2], np.broadcast_to(np.eye(3), (4, 2, 3, 3)))
    np.testing.assert_array_equal(seq.translation, 0.0)
    np.testing.assert_allclose(seq.rotations[:, 2], rotation_6d_to_matrix(
        np.stack([frames[i]["flame"]["jaw"][0] for i in (0, 1, 2, 4)])))
    # the camera derived from pytorch3d values matches the tracker's stored OpenCV camera
    assert not any("differs" in w for w in seq.warnings)
    np.testing.assert_allclose(seq.camera.K[2], frames[2]["opencv"]["K"][0], rtol=1e-6)
    np.testing.assert_allclose(seq.camera.R[2], frames[2]["opencv"]["R"][0], atol=1e-6)
    np.testing.assert_allclose(seq.camera.t[2], frames[2]["opencv"]["t"][0], atol=1e-6)
    assert seq.camera.image_size == (512, 512)


def test_metrical_tex_and_sh_are_kept_as_the_takes_appearance(tmp_path):
    from flame_blender_addon.core.sh_lighting import from_metrical

    root, frames = metrical_output(tmp_path)
    seq = sq.read_sequence(root)
    first = frames[0]["flame"]
    assert np.allclose(seq.appearance["tex"], first["tex"][0]) and seq.appearance["tex"].shape == (140,)
    assert np.allclose(seq.appearance["sh"], from_metrical(first["sh"][0]))
    expected = [from_metrical(frames[i]["flame"]["sh"][0]) for i in sorted(frames)]
    assert np.allclose(seq.appearance["sh_frames"], expected)
    for frame in frames.values():
        del frame["flame"]["tex"], frame["flame"]["sh"]
    assert sq.read_sequence(write_metrical_output(tmp_path / "plain", frames)).appearance is None
    frames[0]["flame"]["sh"] = np.zeros((1, 4, 3), np.float32)
    with pytest.raises(SequenceError, match=r"00000.frame: 'flame.sh' is \(1, 4, 3\), expected \(1, 9, 3\)"):
        sq.read_sequence(write_metrical_output(tmp_path / "bad", frames))


def test_metrical_6d_rows_follow_pytorch3d(tmp_path):
    # a1 = (0, 0, 3), a2 = (1, 0, 5): Gram-Schmidt gives rows b1 = z, b2 = x, b3 = z x x = y
    expected = np.array([[0.0, 0, 1], [1, 0, 0], [0, 1, 0]])
    rng = np.random.default_rng(1)
    frame = metrical_frame(rng, 0)
    frame["flame"]["jaw"] = np.array([[0, 0, 3, 1, 0, 5]], dtype=np.float32)
    frame["flame"]["eyes"] = np.array([[0, 0, 3, 1, 0, 5, *I6D]], dtype=np.float32)
    seq = sq.read_sequence(write_metrical_output(tmp_path, {0: frame}))
    np.testing.assert_allclose(seq.rotations[0, 2], expected, atol=1e-7)
    np.testing.assert_allclose(seq.rotations[0, 3], expected, atol=1e-7)  # eyes[:6] -> joint 3 (left eye)
    np.testing.assert_allclose(seq.rotations[0, 4], np.eye(3), atol=1e-7)


def test_metrical_initial_camera(tmp_path):
    frame = metrical_frame(np.random.default_rng(2), 0)
    frame["camera"] = {"R": np.array([[-1, 0, 0, 0, 1, 0]], np.float32), "t": np.array([[0, 0, 1]], np.float32),
                       "fl": np.array([[5000 / 512]], np.float32), "pp": np.zeros((1, 2), np.float32)}
    del frame["opencv"]
    seq = sq.read_sequence(write_metrical_output(tmp_path, {0: frame}))
    np.testing.assert_allclose(seq.camera.K[0], [[2500, 0, 256], [0, 2500, 256], [0, 0, 1]], rtol=1e-6)
    np.testing.assert_allclose(seq.camera.R[0], np.diag([1.0, -1, -1]))
    np.testing.assert_allclose(seq.camera.t[0], [0, 0, 1])


def test_metrical_stored_opencv_disagreeing_with_pytorch3d_values_is_reported(tmp_path):
    rng = np.random.default_rng(3)
    frames = {0: metrical_frame(rng, 0), 1: metrical_frame(rng, 1)}
    frames[1]["opencv"]["K"][0, 0, 2] += 5.0
    seq = sq.read_sequence(write_metrical_output(tmp_path, frames))
    assert any("differs" in w for w in seq.warnings)


def test_metrical_opencv_only_checkpoints_are_read(tmp_path):
    frame = metrical_frame(np.random.default_rng(4), 0)
    del frame["camera"]
    seq = sq.read_sequence(write_metrical_output(tmp_path, {0: frame}))
    np.testing.assert_array_equal(seq.camera.K[0], frame["opencv"]["K"][0])


def test_hostile_frame_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    folder = tmp_path / "out" / "checkpoint"
    folder.mkdir(parents=True)
    write_hostile_frame(folder / "00000.frame", marker)
    with pytest.raises(UnsafePickleError, match="00000.frame.*system"):
        sq.read_sequence(tmp_path / "out")
    assert not marker.exists()


def test_metrical_nan_names_file_and_key(tmp_path):
    rng = np.random.default_rng(5)
    frames = {i: metrical_frame(rng, i) for i in range(3)}
    frames[2]["flame"]["exp"][0, 7] = np.nan
    with pytest.raises(SequenceError, match=r"'flame.exp' has NaN or infinite values in 00002.frame"):
        sq.read_sequence(write_metrical_output(tmp_path, frames))


def test_metrical_missing_key_and_damaged_file(tmp_path):
    rng = np.random.default_rng(6)
    frames = {i: metrical_frame(rng, i) for i in range(2)}
    del frames[1]["flame"]["jaw"]
    with pytest.raises(SequenceError, match="00001.frame: missing 'flame.jaw'"):
        sq.read_sequence(write_metrical_output(tmp_path / "a", frames))
    root = write_metrical_output(tmp_path / "b", {0: metrical_frame(rng, 0)})
    path = root / "checkpoint" / "00000.frame"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(FileFormatError, match="00000.frame: not a readable"):
        sq.read_sequence(root)


def test_metrical_skips_unnumbered_files(tmp_path):
    rng = np.random.default_rng(7)
    root = write_metrical_output(tmp_path, {3: metrical_frame(rng, 3)})
    write_torch_save_zip(root / "checkpoint" / "best.frame", metrical_frame(rng, 9))
    seq = sq.read_sequence(root)
    np.testing.assert_array_equal(seq.frame_ids, [3])
    assert any("best.frame" in w for w in seq.warnings)


def test_metrical_identity_varying_between_frames_is_reported(tmp_path):
    rng = np.random.default_rng(8)
    frames = {i: metrical_frame(rng, i) for i in range(2)}  # each frame draws its own shape
    seq = sq.read_sequence(write_metrical_output(tmp_path, frames))
    np.testing.assert_array_equal(seq.shape, frames[0]["flame"]["shape"][0])
    assert any("identity" in w for w in seq.warnings)


def test_eyelid_blendshapes_found_next_to_checkpoints(tmp_path):
    root, frames = metrical_output(tmp_path, ids=(0, 1))
    seq = sq.read_sequence(root)
    assert seq.eyelid_dirs is None and any("l_eyelid.npy" in w for w in seq.warnings)
    rng = np.random.default_rng(9)
    dirs = rng.normal(size=(2, 5023, 3))
    np.save(root / "l_eyelid.npy", dirs[0])
    np.save(root / "r_eyelid.npy", dirs[1])
    np.testing.assert_array_equal(sq.read_sequence(root).eyelid_dirs, dirs)
    elsewhere = tmp_path / "blendshapes"
    elsewhere.mkdir()
    np.save(elsewhere / "l_eyelid.npy", dirs[1])
    np.save(elsewhere / "r_eyelid.npy", dirs[0])
    np.testing.assert_array_equal(sq.read_sequence(root, eyelid_blendshapes=elsewhere).eyelid_dirs, dirs[::-1])


def test_eyelid_blendshapes_bad_files(tmp_path):
    np.save(tmp_path / "l_eyelid.npy", np.zeros((10, 2)))
    np.save(tmp_path / "r_eyelid.npy", np.zeros((10, 3)))
    with pytest.raises(SequenceError, match="l_eyelid.npy: shape"):
        load_eyelid_blendshapes(tmp_path)
    np.save(tmp_path / "l_eyelid.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(FileFormatError, match=r"l_eyelid.npy: values of type '\|O' are refused"):
        load_eyelid_blendshapes(tmp_path)
    with pytest.raises(SequenceError, match="not found"):
        load_eyelid_blendshapes(tmp_path / "nowhere")


def test_metrical_written_by_real_torch_with_numpy_and_tensor_leaves(tmp_path):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(10)
    frames = {i: metrical_frame(rng, i) for i in range(3)}
    folder = tmp_path / "out" / "checkpoint"
    folder.mkdir(parents=True)
    for i, frame in frames.items():
        if i == 1:  # newer tracker versions save tensors
            frame = {k: {n: torch.from_numpy(v) for n, v in g.items()} if isinstance(g, dict) else g
                     for k, g in frame.items()}
        torch.save(frame, folder / f"{i:05d}.frame")
    seq = sq.read_sequence(tmp_path / "out")
    for i in range(3):
        np.testing.assert_array_equal(seq.expr[i], frames[i]["flame"]["exp"][0])
        np.testing.assert_allclose(seq.camera.K[i], frames[i]["opencv"]["K"][0], rtol=1e-6)


# ------------------------------------------------------------------------------------------------
# VHAP / GaussianAvatars


def test_vhap_npz(tmp_path):
    rng = np.random.default_rng(11)
    arrays = vhap_arrays(rng, 4, image_size=(480, 640))
    arrays["timestep_id"] = np.array(["frame_00010", "frame_00011", "frame_00013", "frame_00014"])
    np.savez(tmp_path / "tracked_flame_params_30.npz", **arrays)
    np.savez(tmp_path / "tracked_flame_params_10.npz", **vhap_arrays(rng, 4))
    seq = sq.read_sequence(tmp_path)
    assert seq.source == "VHAP"
    assert "tracked_flame_params_30.npz" in seq.warnings[0] and "tracked_flame_params_10.npz" in seq.warnings[0]
    np.testing.assert_array_equal(seq.frame_ids, [10, 11, 13, 14])
    np.testing.assert_allclose(seq.rotations[:, 0], axis_angle_to_matrix(arrays["rotation"]))
    np.testing.assert_allclose(seq.rotations[:, 3], axis_angle_to_matrix(arrays["eyes_pose"][:, :3]))
    np.testing.assert_allclose(seq.rotations[:, 4], axis_angle_to_matrix(arrays["eyes_pose"][:, 3:]))
    np.testing.assert_array_equal(seq.translation, arrays["translation"])
    np.testing.assert_array_equal(seq.shape, arrays["shape"])
    assert seq.static_offset.shape == (5023, 3)  # 120 teeth rows dropped
    np.testing.assert_array_equal(seq.static_offset, arrays["static_offset"][0, :5023])
    np.testing.assert_allclose(seq.camera.K[0], [[1.6 * 640, 0, 320], [0, 1.6 * 640, 240], [0, 0, 1]], rtol=1e-6)
    np.testing.assert_allclose(seq.camera.R[3], np.diag([1.0, -1, -1]))
    np.testing.assert_allclose(seq.camera.t[3], [0, 0, 1])
    assert seq.eyelids is None


def test_vhap_dynamic_offsets_and_object_timestep_ids(tmp_path):
    rng = np.random.default_rng(12)
    arrays = vhap_arrays(rng, 3)
    arrays["dynamic_offset"] = rng.normal(size=(3, 5143, 3)).astype(np.float32)
    arrays["timestep_id"] = np.array(["a", 1, None], dtype=object)  # only loadable by unpickling
    path = tmp_path / "tracked_flame_params.npz"
    np.savez(path, **arrays)
    seq = sq.read_sequence(path)
    assert any("dynamic_offset" in w for w in seq.warnings)
    np.testing.assert_array_equal(seq.frame_ids, [0, 1, 2])


def test_gaussian_avatars_npz_has_no_camera(tmp_path):
    arrays = gaussian_avatars_arrays(np.random.default_rng(13), 3)
    np.savez(tmp_path / "flame_param.npz", **arrays)
    seq = sq.read_sequence(tmp_path)
    assert seq.source == "GaussianAvatars" and seq.camera is None
    assert any("no camera" in w for w in seq.warnings)
    assert not any("dynamic_offset" in w for w in seq.warnings)  # zeros are not worth a word
    np.testing.assert_array_equal(seq.expr, arrays["expr"])


def test_flame_param_folder_is_ordered_by_number(tmp_path):
    rng = np.random.default_rng(14)
    arrays = gaussian_avatars_arrays(rng, 3, n_verts=5023)
    folder = write_flame_param_folder(tmp_path / "export" / "flame_param", arrays, [9, 10, 100])
    for p in folder.glob("*.npz"):  # unpadded names: lexical order would be 10, 100, 9
        p.rename(folder / f"{int(p.stem)}.npz")
    for path in (tmp_path / "export", folder, folder / "10.npz"):
        seq = sq.read_sequence(path)
        np.testing.assert_array_equal(seq.frame_ids, [9, 10, 100])
        np.testing.assert_array_equal(seq.expr, arrays["expr"])
        np.testing.assert_allclose(seq.rotations[:, 2], axis_angle_to_matrix(arrays["jaw_pose"]))
        np.testing.assert_array_equal(seq.static_offset, arrays["static_offset"][0])


def test_unknown_inputs(tmp_path):
    with pytest.raises(SequenceError, match="no such file"):
        sq.read_sequence(tmp_path / "missing")
    with pytest.raises(SequenceError, match="no tracker output found"):
        sq.read_sequence(tmp_path)
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    with pytest.raises(SequenceError, match="missing 'expr' \\(found: weights\\)"):
        sq.read_sequence(tmp_path / "other.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(FileFormatError, match="junk.npz: not a readable zip archive"):
        sq.read_sequence(tmp_path / "junk.npz")
    np.save(tmp_path / "expr.npy", np.zeros((2, 3)))
    with pytest.raises(FileFormatError, match="expr.npy: a single array"):
        sq.read_sequence(tmp_path / "expr.npy")
    np.savez(tmp_path / "objects.npz", expr=np.array([{"x": 1}], dtype=object))
    with pytest.raises(FileFormatError, match="objects.npz: 'expr': values of type '\\|O' are refused"):
        sq.read_sequence(tmp_path / "objects.npz")


# ------------------------------------------------------------------------------------------------
# flame_sequence.npz, validation


def test_own_format_round_trips_exactly(tmp_path):
    seq = make_sequence(np.random.default_rng(15), [3, 4, 7, 8], static_offset=True)
    path = write_sequence_npz(tmp_path / "take.npz", seq)
    with np.load(path, allow_pickle=False) as npz:
        assert set(npz.files) == {"shape", "expr", "rotation", "neck_pose", "jaw_pose", "eyes_pose", "translation",
                                  "fps", "frame_ids", "eyelids", "K", "cam_R", "cam_t", "image_size",
                                  "static_offset"}
        assert npz["frame_ids"].dtype == np.int64 and npz["expr"].dtype == np.float64
    back = sq.read_sequence(path)
    assert back.source == "flame_sequence" and back.fps == 30.0 and back.fps_from_file
    for key in ("shape", "expr", "translation", "frame_ids", "eyelids", "static_offset"):
        np.testing.assert_array_equal(getattr(back, key), getattr(seq, key), err_msg=key)
    np.testing.assert_allclose(back.rotations, seq.rotations, atol=1e-14)
    for key in ("K", "R", "t"):
        np.testing.assert_array_equal(getattr(back.camera, key), getattr(seq.camera, key))
    assert back.camera.image_size == (480, 640)
    assert back.warnings[0] == "take.npz: missing frames 5-6 (2 in all); the others keep their frame numbers"
    assert "l_eyelid.npy / r_eyelid.npy were not found" in back.warnings[1] and len(back.warnings) == 2
    assert sq.read_sequence(path, fps=50).fps == 50.0


def test_own_format_minimal_and_shared_camera(tmp_path):
    rng = np.random.default_rng(16)
    aa = rng.normal(scale=0.1, size=(2, 15))
    np.savez(tmp_path / "flame_sequence.npz", shape=np.zeros(5), expr=rng.normal(size=(2, 4)),
             rotation=aa[:, :3], neck_pose=aa[:, 3:6], jaw_pose=aa[:, 6:9], eyes_pose=aa[:, 9:],
             translation=np.zeros((2, 3)), fps=np.array(24.0), K=cam.intrinsics(500, 50, 40)[0],
             cam_R=np.eye(3), cam_t=np.array([0, 0, 2.0]), image_size=np.array([80, 100]))
    seq = sq.read_sequence(tmp_path)
    assert seq.fps == 24.0 and seq.warnings == []
    np.testing.assert_array_equal(seq.frame_ids, [0, 1])
    np.testing.assert_array_equal(seq.camera.t, [[0, 0, 2.0], [0, 0, 2.0]])
    np.testing.assert_allclose(matrix_to_axis_angle(seq.rotations[:, 2]), aa[:, 6:9], atol=1e-12)


def test_own_format_camera_needs_all_keys_and_image_size(tmp_path):
    base = dict(expr=np.zeros((2, 3)), fps=np.array(25.0))
    np.savez(tmp_path / "a.npz", **base, K=np.eye(3))
    with pytest.raises(SequenceError, match="'K', 'cam_R' and 'cam_t' together"):
        sq.read_sequence(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", **base, K=np.eye(3), cam_R=np.eye(3), cam_t=np.zeros(3))
    with pytest.raises(SequenceError, match="'image_size'"):
        sq.read_sequence(tmp_path / "b.npz")
    np.savez(tmp_path / "c.npz", **base, K=np.eye(3), cam_R=np.eye(3) * 2, cam_t=np.zeros(3),
             image_size=np.array([64, 64]))
    with pytest.raises(SequenceError, match="'camera R' in frame 0 is not a rotation"):
        sq.read_sequence(tmp_path / "c.npz")
    np.savez(tmp_path / "d.npz", **base, K=np.eye(3), cam_R=np.eye(3), cam_t=np.zeros(3), image_size=np.array([4, 4]))
    with pytest.raises(SequenceError, match=r"d.npz: 'image_size' is \[4, 4\], expected \[H, W\]"):
        sq.read_sequence(tmp_path / "d.npz")


def test_duplicates_disorder_and_gaps(tmp_path):
    seq = make_sequence(np.random.default_rng(17), [5, 3, 3, 4, 8])
    path = write_sequence_npz(tmp_path / "s.npz", seq)
    back = sq.read_sequence(path)
    np.testing.assert_array_equal(back.frame_ids, [3, 4, 5, 8])
    np.testing.assert_array_equal(back.expr, seq.expr[[1, 3, 0, 4]])  # the first frame numbered 3 is kept
    np.testing.assert_array_equal(back.camera.K, seq.camera.K[[1, 3, 0, 4]])
    text = " | ".join(back.warnings)
    assert "not in order" in text and "frame numbers 3 appear more than once" in text
    assert "1 frames dropped" in text and "missing frames 6-7 (2 in all)" in text


def test_huge_gaps_are_described_without_listing_them():
    seq = make_sequence(np.random.default_rng(29), [0, 10**12, 10**12 + 5, 10**12 + 6])
    clean = sq.validate_sequence(seq, "s")
    assert clean.warnings == [f"s: missing frames 1-{10**12 - 1}, {10**12 + 1}-{10**12 + 4} "
                              f"({10**12 + 3} in all); the others keep their frame numbers"]


def test_nan_names_key_and_frame(tmp_path):
    seq = make_sequence(np.random.default_rng(18), [5, 6, 7])
    seq.expr[2, 1] = np.inf
    path = write_sequence_npz(tmp_path / "s.npz", seq)
    with pytest.raises(SequenceError, match=r"s.npz: 'expr' has NaN or infinite values in frame 7"):
        sq.read_sequence(path)
    seq.expr[2, 1] = 0.0
    seq.camera.t[0, 0] = np.nan
    with pytest.raises(SequenceError, match=r"'camera t' has NaN or infinite values in frame 5"):
        sq.validate_sequence(seq)


def test_validate_does_not_modify_its_input():
    seq = make_sequence(np.random.default_rng(19), [2, 1])
    clean = sq.validate_sequence(seq, "hand-made")
    np.testing.assert_array_equal(seq.frame_ids, [2, 1])
    assert seq.warnings == [] and clean.warnings == ["hand-made: frames were not in order; sorted by frame number"]
    with pytest.raises(SequenceError, match="expr has shape"):
        sq.validate_sequence(dataclasses.replace(seq, expr=np.zeros((3, 4))))


def test_fit_components_pads_and_truncates_with_warnings():
    seq = make_sequence(np.random.default_rng(20), [0, 1], n_shape=5, n_expr=6)
    fitted = sq.fit_components(seq, n_shape=8, n_expr=4)
    assert fitted.shape.shape == (8,) and fitted.expr.shape == (2, 4)
    np.testing.assert_array_equal(fitted.shape[:5], seq.shape)
    np.testing.assert_array_equal(fitted.shape[5:], 0)
    np.testing.assert_array_equal(fitted.expr, seq.expr[:, :4])
    assert any("identity" in w and "set to zero" in w for w in fitted.warnings)
    assert any("expression" in w and "dropped the last 2" in w for w in fitted.warnings)
    assert seq.warnings == []
    assert sq.fit_components(seq, 5, 6).warnings == []


# ------------------------------------------------------------------------------------------------
# resampling


def test_resample_slerps_rotations_and_interpolates_vectors():
    rng = np.random.default_rng(21)
    seq = make_sequence(rng, np.arange(5))
    axis = np.array([0.6, 0.0, 0.8])
    seq.rotations[:, 2] = axis_angle_to_matrix(np.outer(0.3 * np.arange(5), axis))  # 0.3 rad per frame
    seq.expr = np.outer(np.arange(5), [1.0, -2.0, 0.5, 0, 0, 0, 0, 0])
    seq.fps = 25.0
    up = sq.resample(seq, 75.0)  # weights 1/3 and 2/3, where slerp and nlerp differ
    np.testing.assert_array_equal(up.frame_ids, np.arange(13))
    assert up.fps == 75.0 and "resampled from 25 to 75 fps" in up.warnings
    np.testing.assert_allclose(up.rotations[:, 2], axis_angle_to_matrix(np.outer(0.1 * np.arange(13), axis)),
                               atol=1e-12)
    np.testing.assert_allclose(up.expr, np.outer(np.arange(13) / 3, [1.0, -2.0, 0.5, 0, 0, 0, 0, 0]), atol=1e-12)
    np.testing.assert_allclose(up.translation[1], seq.translation[0] * 2 / 3 + seq.translation[1] / 3)
    np.testing.assert_allclose(up.camera.t[5], seq.camera.t[1] / 3 + seq.camera.t[2] * 2 / 3)
    np.testing.assert_allclose(up.rotations[::3], seq.rotations, atol=1e-12)
    np.testing.assert_allclose(up.camera.R[::3], seq.camera.R, atol=1e-12)
    np.testing.assert_allclose(up.eyelids[::3], seq.eyelids, atol=1e-12)


def test_resample_bridges_gaps_and_downsamples():
    seq = make_sequence(np.random.default_rng(22), [0, 3, 6])
    seq.fps = 30.0
    same = sq.resample(seq, 30.0)
    np.testing.assert_array_equal(same.frame_ids, np.arange(7))
    np.testing.assert_allclose(same.expr[1], seq.expr[0] * 2 / 3 + seq.expr[1] / 3)
    down = sq.resample(seq, 10.0)
    np.testing.assert_array_equal(down.frame_ids, [0, 1, 2])
    np.testing.assert_allclose(down.expr, seq.expr, atol=1e-12)
    with pytest.raises(SequenceError):
        sq.resample(seq, 0.0)


def test_slerp_takes_the_short_way():
    q0 = np.array([1.0, 0, 0, 0])
    q1 = -np.array([np.cos(0.2), np.sin(0.2), 0, 0])  # the same rotation as +q1
    mid = slerp(q0, q1, 0.5)
    np.testing.assert_allclose(np.abs(mid), [np.cos(0.1), np.sin(0.1), 0, 0], atol=1e-12)


# ------------------------------------------------------------------------------------------------
# geometry


def test_sequence_vertices_match_forward_with_offsets_and_eyelids_after_skinning(model):
    rng = np.random.default_rng(23)
    seq = make_sequence(rng, [0, 1, 2], static_offset=True)
    dirs = rng.normal(scale=1e-3, size=(2, N_VERTS, 3))
    shifted = dataclasses.replace(model, v_template=model.v_template + seq.static_offset)
    expected = forward(shifted, seq.shape, seq.expr, seq.rotations, seq.translation).vertices
    no_lids = evaluation.sequence_vertices(model, seq)
    np.testing.assert_allclose(no_lids, expected, atol=1e-14)  # no blendshapes known: no eyelid offsets
    with_lids = evaluation.sequence_vertices(model, seq, frames=slice(1, 3), eyelid_dirs=dirs)
    np.testing.assert_allclose(with_lids - expected[1:], np.einsum("tk,kvc->tvc", seq.eyelids[1:], dirs),
                               atol=1e-14)
    with pytest.raises(SequenceError, match="fit_components"):
        evaluation.sequence_vertices(model, sq.fit_components(seq, 12, 30))


def test_rest_joints_follow_expression(model):
    seq = make_sequence(np.random.default_rng(24), [0, 1], static_offset=True)
    joints = evaluation.rest_joints(model, seq)
    shifted = dataclasses.replace(model, v_template=model.v_template + seq.static_offset)
    for i in range(2):
        np.testing.assert_allclose(joints[i], shifted.rest_joints(seq.shape, seq.expr[i]), atol=1e-14)
    assert np.abs(joints[0] - joints[1]).max() > 1e-6


# ------------------------------------------------------------------------------------------------
# writing metrical-tracker checkpoints


def test_write_metrical_checkpoints_round_trip(tmp_path):
    seq = make_sequence(np.random.default_rng(25), [0, 1, 5], n_shape=300, n_expr=100, root=False, neck=False)
    assert write_metrical_checkpoints(tmp_path / "f64", seq, dtype=np.float64) == []
    back = sq.read_sequence(tmp_path / "f64", fps=30)
    np.testing.assert_array_equal(back.frame_ids, [0, 1, 5])
    np.testing.assert_array_equal(back.expr, seq.expr)
    np.testing.assert_array_equal(back.eyelids, seq.eyelids)
    np.testing.assert_allclose(back.rotations, seq.rotations, atol=1e-12)
    np.testing.assert_array_equal(back.translation, 0.0)
    np.testing.assert_allclose(back.camera.K, seq.camera.K, atol=1e-9)
    np.testing.assert_allclose(back.camera.R, seq.camera.R, atol=1e-12)
    np.testing.assert_allclose(back.camera.t, seq.camera.t + np.einsum("tij,tj->ti", seq.camera.R, seq.translation),
                               atol=1e-12)
    assert not any("differs" in w for w in back.warnings)
    write_metrical_checkpoints(tmp_path / "f32", seq)
    back32 = sq.read_sequence(tmp_path / "f32")
    np.testing.assert_allclose(back32.rotations, seq.rotations, atol=1e-6)
    with zipfile.ZipFile(tmp_path / "f32" / "checkpoint" / "00005.frame") as zf:
        assert sorted(zf.namelist()) == ["00005/byteorder", "00005/data.pkl", "00005/data/", "00005/version"]
        assert zf.read("00005/version") == b"3\n" and zf.read("00005/byteorder") == b"little"
        assert b"numpy._core" not in zf.read("00005/data.pkl")  # readable by numpy < 1.26 too


@pytest.mark.parametrize("per_frame", [False, True])
def test_written_checkpoint_lighting_round_trips_to_the_same_shading(tmp_path, model, per_frame):
    """The photometric stage's camera-frame SH (one per clip or per frame) is written in metrical-tracker's
    convention (its renderer's formula at world-frame normals shades as ours at the camera-frame normals),
    and reads back as per-frame SH in FLAME space that shades the same within 1e-6; the texture is kept."""
    from flame_blender_addon.core.formats.metrical import read_frame_file
    from flame_blender_addon.core.sh_lighting import shading

    rng = np.random.default_rng(27)
    seq = make_sequence(rng, [0, 1, 5], n_shape=10, n_expr=20, neck=False, eyelids=False)  # root motion folded
    tex = np.arange(4.0)[None]
    sh = rng.normal(size=(3, 9, 3) if per_frame else (9, 3))
    write_metrical_checkpoints(tmp_path, seq, model, dtype=np.float64, extra_flame={"tex": tex}, sh=sh)
    back = sq.read_sequence(tmp_path)
    n_world = rng.normal(size=(40, 3))
    n_world /= np.linalg.norm(n_world, axis=1, keepdims=True)
    for i, name in enumerate(["00000", "00001", "00005"]):
        frame = read_frame_file(tmp_path / "checkpoint" / f"{name}.frame")
        np.testing.assert_array_equal(frame["flame.tex"], tex)
        R_cv = seq.camera.R[i] @ seq.rotations[i, 0]  # FLAME world (no root) -> OpenCV camera
        ours = shading(sh[i] if per_frame else sh, n_world @ R_cv.T)
        np.testing.assert_allclose(metrical_sh_shading(frame["flame.sh"][0], n_world), ours, atol=1e-9)
        np.testing.assert_allclose(shading(back.appearance["sh_frames"][i], n_world), ours, atol=1e-6)
    np.testing.assert_array_equal(back.appearance["sh"], back.appearance["sh_frames"][0])
    with pytest.raises(SequenceError, match="'sh' has 2 rows for 3 frames"):
        write_metrical_checkpoints(tmp_path / "bad", seq, model, sh=rng.normal(size=(2, 9, 3)))


def test_write_metrical_folds_root_motion_into_the_camera(tmp_path, model):
    rng = np.random.default_rng(26)
    seq = make_sequence(rng, [0, 1, 2], n_shape=10, n_expr=20, neck=False, eyelids=False)
    with pytest.raises(SequenceError, match="needs the FLAME model"):
        write_metrical_checkpoints(tmp_path / "x", seq)
    write_metrical_checkpoints(tmp_path / "out", seq, model=model, dtype=np.float64)
    back = sq.read_sequence(tmp_path / "out")
    np.testing.assert_allclose(back.rotations[:, 0], np.broadcast_to(np.eye(3), (3, 3, 3)), atol=1e-12)
    before = evaluation.sequence_vertices(model, seq)
    after = evaluation.sequence_vertices(model, back)
    assert np.abs(before - after).max() > 1e-3  # the head really moved into the camera...
    for i in range(3):  # ...and the pictures are the same
        uv = cam.project_opencv(before[i], seq.camera.K[i], seq.camera.R[i], seq.camera.t[i])
        uv_back = cam.project_opencv(after[i], back.camera.K[i], back.camera.R[i], back.camera.t[i])
        np.testing.assert_allclose(uv_back, uv, atol=1e-8)


def test_write_metrical_refuses_what_it_cannot_store(tmp_path, model):
    rng = np.random.default_rng(27)
    with pytest.raises(SequenceError, match="neck rotation"):
        write_metrical_checkpoints(tmp_path, make_sequence(rng, [0, 1]), model=model)
    with pytest.raises(SequenceError, match="static vertex offsets"):
        write_metrical_checkpoints(tmp_path, make_sequence(rng, [0], neck=False, static_offset=True), model=model)
    with pytest.raises(SequenceError, match="non-negative"):
        write_metrical_checkpoints(tmp_path, make_sequence(rng, [-1, 0], root=False, neck=False))
    with pytest.raises(SequenceError, match="need a camera"):
        write_metrical_checkpoints(tmp_path, make_sequence(rng, [0], neck=False, camera=False), model=model)
    seq = make_sequence(rng, [0], neck=False)
    warnings = write_metrical_checkpoints(tmp_path / "lids", seq, model=model)
    assert any("eyelid" in w for w in warnings)


def test_written_checkpoints_load_in_real_torch(tmp_path):
    torch = pytest.importorskip("torch")
    seq = make_sequence(np.random.default_rng(28), [7], root=False, neck=False)
    write_metrical_checkpoints(tmp_path, seq)
    frame = torch.load(tmp_path / "checkpoint" / "00007.frame", weights_only=False)
    assert frame["frame_id"] == "00007" and frame["img_size"].tolist() == [480, 640]
    assert frame["flame"]["jaw"].shape == (1, 6) and frame["flame"]["jaw"].dtype == np.float32
    assert frame["camera"]["fl"].shape == (1, 1) and frame["opencv"]["K"].shape == (1, 3, 3)
    np.testing.assert_allclose(rotation_6d_to_matrix(frame["flame"]["eyes"][0, 6:]), seq.rotations[0, 4], atol=1e-6)
    np.testing.assert_allclose(frame["flame"]["exp"][0], seq.expr[0], rtol=1e-6)
