"""Coefficients beyond the shape-key sliders' +-10 (|beta| = 20, |psi| past 10) stay exact in every importer,
in retargeting, in the joints and in the export, through the '.x10' overflow keys."""

import bpy
import legacy_pickle
import numpy as np
import pytest
from bl_helpers import evaluated_vertices
from synthetic_model import random_model_arrays
from tracker_files import metrical_frame, vhap_arrays, write_flame_param_folder, write_metrical_output

from flame_blender_addon.blender import head, measure
from flame_blender_addon.core.camera import project_opencv
from flame_blender_addon.core.evaluation import rest_joints, sequence_vertices
from flame_blender_addon.core.model import load_model
from flame_blender_addon.core.sequence import fit_components, read_sequence

N_VERTS = 400
BIG_SHAPE = {0: 20.0, 3: -20.0, 7: 12.5}  # component -> value
EXPR_PEAKS = {2: 20.0, 5: -16.0}  # component -> peak over the clip (crosses +-10 on the way)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    arrays = random_model_arrays(n_verts=N_VERTS, n_faces=700, seed=21, joint_spread=4.0)
    return legacy_pickle.write_flame_pickle(tmp_path_factory.mktemp("model") / "generic_model.pkl", arrays)


def beyond(shape: np.ndarray, expr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same arrays with BIG_SHAPE set and EXPR_PEAKS swept from -peak/2 to peak over the frames."""
    shape, expr = shape.copy(), expr.copy()
    for k, value in BIG_SHAPE.items():
        shape[..., k] = value
    for k, peak in EXPR_PEAKS.items():
        expr[:, k] = np.linspace(-peak / 2, peak, len(expr))
    return shape, expr


def write_metrical(folder, rng):
    frames = {i: metrical_frame(rng, i) for i in range(6)}
    shape, expr = beyond(frames[0]["flame"]["shape"], np.concatenate([f["flame"]["exp"] for f in frames.values()]))
    for i, frame in frames.items():
        frame["flame"]["shape"], frame["flame"]["exp"] = shape, expr[i:i + 1]
    return write_metrical_output(folder / "actor", frames)


def write_vhap(folder, rng):
    arrays = vhap_arrays(rng, 6, n_verts=N_VERTS)
    arrays["shape"], arrays["expr"] = beyond(arrays["shape"], arrays["expr"])
    np.savez(folder / "tracked_flame_params.npz", **arrays)
    return folder / "tracked_flame_params.npz"


def write_flame_param(folder, rng):
    arrays = vhap_arrays(rng, 6, n_verts=N_VERTS)
    arrays["shape"], arrays["expr"] = beyond(arrays["shape"], arrays["expr"])
    keep = ("rotation", "translation", "neck_pose", "jaw_pose", "eyes_pose", "shape", "expr")
    return write_flame_param_folder(folder / "flame_param", {k: arrays[k] for k in keep}, list(range(6)))


def write_flame_sequence(folder, rng):
    """What the tracker writes (and flame.export_sequence): flame_sequence.npz with a camera."""
    arrays = vhap_arrays(rng, 6, n_verts=N_VERTS)
    shape, expr = beyond(arrays["shape"], arrays["expr"])
    K = np.array([[900.0, 0, 256], [0, 900.0, 256], [0, 0, 1]])
    np.savez(folder / "flame_sequence.npz", shape=shape, expr=expr, rotation=arrays["rotation"],
             neck_pose=arrays["neck_pose"], jaw_pose=arrays["jaw_pose"], eyes_pose=arrays["eyes_pose"],
             translation=arrays["translation"], fps=np.array(25.0), K=K, cam_R=np.diag([1.0, -1.0, -1.0]),
             cam_t=np.array([0.0, 0.0, 0.6]), image_size=np.array([512, 512]))
    return folder / "flame_sequence.npz"


WRITERS = {"metrical": write_metrical, "vhap": write_vhap, "flame_param": write_flame_param,
           "flame_sequence": write_flame_sequence}


def worst_errors(mesh_obj, seq, reference) -> tuple[float, float]:
    """Max vertex error (m) and max projection error (px, or 0 without a camera) over the frames."""
    worst_v = worst_px = 0.0
    for i, frame_id in enumerate(seq.frame_ids):
        bpy.context.scene.frame_set(1 + int(frame_id))
        worst_v = max(worst_v, np.abs(evaluated_vertices(mesh_obj) - reference[i]).max())
        if seq.camera is not None:  # the vertices on the image (random heads of |beta| = 20 reach the lens)
            expected = project_opencv(reference[i], seq.camera.K[i], seq.camera.R[i], seq.camera.t[i])
            seen = measure.camera_pixels(bpy.context.scene, measure.evaluated_world_vertices(mesh_obj))
            shown = ((expected >= 0) & (expected <= seq.camera.image_size[::-1])).all(axis=1)
            assert shown.sum() > 50
            worst_px = max(worst_px, np.abs(seen - expected)[shown].max())
    return worst_v, worst_px


@pytest.mark.parametrize("fmt", WRITERS)
def test_every_importer_is_exact_beyond_the_sliders_and_says_so(model_path, tmp_path, fmt, capsys):
    path = WRITERS[fmt](tmp_path, np.random.default_rng(4))
    seq = fit_components(read_sequence(path), 300, 100)
    assert np.abs(seq.shape).max() == 20 and np.abs(seq.expr).max() == 20
    capsys.readouterr()
    assert bpy.ops.flame.import_sequence(filepath=str(path), model_filepath=str(model_path)) == {"FINISHED"}
    report = capsys.readouterr().out  # operator reports are printed when called from Python
    assert "3 identity (up to 20.0) and 2 expression (up to 20.0) coefficients pass the sliders' +-10" in report

    armature = bpy.context.view_layer.objects.active
    blocks = armature.flame.mesh.data.shape_keys.key_blocks
    assert blocks["shape000"].value == 10 and blocks["shape000.x10"].value == pytest.approx(1.0)
    assert blocks["shape003.x10"].value == pytest.approx(-1.0) and "shape001.x10" not in blocks
    reference = sequence_vertices(load_model(model_path), seq)
    worst_v, worst_px = worst_errors(armature.flame.mesh, seq, reference)
    assert worst_v < 1e-5, f"vertex error {worst_v:.3g} m"
    assert worst_px < 0.01, f"projection error {worst_px:.3g} px"


def test_export_update_joints_and_reset_read_the_true_coefficients(model_path, tmp_path):
    path = write_flame_sequence(tmp_path, np.random.default_rng(5))
    bpy.ops.flame.import_sequence(filepath=str(path), model_filepath=str(model_path))
    armature = bpy.context.view_layer.objects.active
    original = read_sequence(path)
    assert bpy.ops.flame.export_sequence(filepath=str(tmp_path / "out.npz")) == {"FINISHED"}
    exported = read_sequence(tmp_path / "out.npz")
    np.testing.assert_allclose(exported.shape, original.shape, atol=1e-5)
    np.testing.assert_allclose(exported.expr, original.expr, atol=1e-5)
    np.testing.assert_allclose(exported.translation, original.translation, atol=1e-6)

    model = load_model(model_path)
    bpy.context.scene.frame_set(6)  # the last frame: expression component 2 at 20
    shape, expr = head.coefficient_values(armature)
    np.testing.assert_allclose(expr[2], 20.0, atol=1e-5)
    assert bpy.ops.flame.update_joints() == {"FINISHED"}
    expected = rest_joints(model, fit_components(original, 300, 100), np.array([5]))[0]
    np.testing.assert_allclose([b.head_local for b in armature.data.bones], expected, atol=1e-6)

    blocks = armature.flame.mesh.data.shape_keys.key_blocks
    assert bpy.ops.flame.reset_shape() == {"FINISHED"}
    assert blocks["shape000"].value == 0 and blocks["shape000.x10"].value == 0
    assert np.abs(head.coefficient_values(armature)[0]).max() == 0


def test_keep_identity_retargets_a_performance_beyond_the_sliders(model_path, tmp_path):
    """The head keeps its own identity of |beta| = 20 while another clip's expressions, |psi| = 20, play on it."""
    first = write_flame_sequence(tmp_path, np.random.default_rng(6))
    bpy.ops.flame.import_sequence(filepath=str(first), model_filepath=str(model_path))
    armature = bpy.context.view_layer.objects.active
    (tmp_path / "other").mkdir()
    other = write_vhap(tmp_path / "other", np.random.default_rng(7))
    assert bpy.ops.flame.import_sequence(filepath=str(other), keep_identity=True, camera_mode="NONE") == {"FINISHED"}

    seq = fit_components(read_sequence(other), 300, 100)
    seq.shape, seq.static_offset = fit_components(read_sequence(first), 300, 100).shape, None
    reference = sequence_vertices(load_model(model_path), seq)
    worst_v, _ = worst_errors(armature.flame.mesh, seq, reference)
    assert worst_v < 1e-5, f"vertex error {worst_v:.3g} m"


def test_the_panel_shows_the_true_value_beside_a_full_slider(model_path, tmp_path):
    from types import SimpleNamespace
    from unittest.mock import MagicMock

    from flame_blender_addon.blender import panel

    bpy.ops.flame.import_sequence(filepath=str(write_flame_sequence(tmp_path, np.random.default_rng(8))),
                                  model_filepath=str(model_path))
    armature = bpy.context.view_layer.objects.active
    sliders = SimpleNamespace(layout=MagicMock(), prefix=head.SHAPE_PREFIX, operators=("", ""))
    panel._SlidersPanel.draw(sliders, SimpleNamespace(active_object=armature))
    labels = [call.kwargs["text"] for call in sliders.layout.mock_calls if call[0].endswith("label")]
    assert labels == ["= 20.00", "= -20.00", "= 12.50"]  # shape000, shape003, shape007 of the first ten
