"""The tracker front end, driven by the stand-in tracker (stdlib only, same JSON-lines protocol)."""

import os
import sys
import time
from pathlib import Path

import bpy
import numpy as np
import pytest
from bl_helpers import evaluated_vertices, scene_state
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Vector

from flame_blender_addon.blender import tracker_job
from flame_blender_addon.core import lbs, rotations
from flame_blender_addon.core import tracker_protocol as protocol
from flame_blender_addon.core.camera import project_opencv
from flame_blender_addon.demo import embedding as demo_embedding
from flame_blender_addon.demo import head as demo_head

FAKE = f"{sys.executable} {Path(__file__).resolve().parents[1] / 'fake_tracker.py'} --output {{output}}"


@pytest.fixture
def video(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"not decoded by the stand-in tracker")
    return path


def test_tracks_and_imports_onto_a_new_head(video, small_model_file, tmp_path, capsys):
    out = tmp_path / "tracked"
    result = bpy.ops.flame.track_video(filepath=str(video), output_dir=str(out), model_filepath=str(small_model_file),
                                       command_template=FAKE + " --frames 6")
    assert result == {"FINISHED"}
    armature = bpy.context.view_layer.objects.active
    assert armature.flame.is_head and armature.flame.sequence_source
    assert (out / protocol.SEQUENCE_FILE).is_file()
    assert bpy.context.scene.frame_end == 6 and bpy.context.scene.camera is not None
    assert "[tracker 100.0%]" in capsys.readouterr().out  # progress shown on the command line


def test_failure_reports_the_tracker_error_and_changes_nothing(video, small_model_file, tmp_path):
    before = scene_state()
    out = tmp_path / "tracked"
    with pytest.raises(RuntimeError, match="Tracking failed: .*"):
        bpy.ops.flame.track_video(filepath=str(video), output_dir=str(out), model_filepath=str(small_model_file),
                                  command_template=FAKE + " --fail-after 2")
    assert scene_state() == before
    assert not (out / protocol.SEQUENCE_FILE).exists()
    assert not list(out.glob(protocol.TEMP_PREFIX + "*"))


def test_missing_input_and_bad_template_are_reported(tmp_path):
    with pytest.raises(RuntimeError, match="no such video"):
        bpy.ops.flame.track_video(filepath=str(tmp_path / "missing.mp4"))
    with pytest.raises(RuntimeError, match="nothing to track"):
        bpy.ops.flame.track_video()
    (tmp_path / "v.mp4").write_bytes(b"x")
    with pytest.raises(RuntimeError, match="template is not valid"):
        bpy.ops.flame.track_video(filepath=str(tmp_path / "v.mp4"), command_template="track {nonsense}")


def test_a_dead_process_is_a_failure_with_its_log(video, tmp_path):
    code = "import sys; print('loading weights', file=sys.stderr); sys.exit(3)"
    job = tracker_job.TrackerJob([sys.executable, "-c", code], output_dir=tmp_path)
    assert job.wait() is False
    assert job.failure().startswith("the tracker stopped with exit code 3") and "loading weights" in job.failure()


def test_cancel_kills_a_hanging_tracker_and_removes_staging(tmp_path):
    argv = tracker_job.template_argv(FAKE + " --hang", model="demo", source="x", output=str(tmp_path))
    job = tracker_job.TrackerJob(argv, output_dir=tmp_path)
    deadline = time.monotonic() + 20
    while not any(m.type == protocol.PROGRESS for m in job.messages()):
        assert time.monotonic() < deadline, "the stand-in tracker never reported progress"
        time.sleep(0.05)
    (tmp_path / f"{protocol.TEMP_PREFIX}leftover").mkdir(exist_ok=True)
    job.cancel(timeout=5)
    assert job.process.poll() is not None
    assert not list(tmp_path.glob(protocol.TEMP_PREFIX + "*"))
    assert job not in tracker_job._RUNNING


def test_own_tracker_command_line():
    argv = tracker_job.tracker_argv("/env/bin/python", model="m.pkl", source="v.mp4", output="out", device="cuda",
                                    focal=1200.0, landmarks="l.npz", embedding="e.npz")
    assert argv == ["/env/bin/python", "-m", "flame_blender_addon.tracking", "track", "--model", "m.pkl",
                    "--output", "out", "--input", "v.mp4", "--device", "cuda", "--focal", "1200.0",
                    "--landmarks", "l.npz", "--embedding", "e.npz"]


@pytest.mark.skipif(not os.environ.get("FLAME_TRACKER_PYTHON"),
                    reason="FLAME_TRACKER_PYTHON (a Python with torch) not set; scripts/test.sh sets it")
def test_real_tracker_end_to_end_on_the_demo_head(tmp_path):
    """Blender -> the torch tracker (--model demo, precomputed landmarks) -> import -> reprojection."""
    model, emb = demo_head.demo_model(), demo_embedding.demo_embedding_arrays()
    T, rng = 20, np.random.default_rng(4)
    t = np.linspace(0, 1, T)[:, None]
    expr = np.zeros((T, 100))
    expr[:, :8] = 0.4 * np.sin(2 * np.pi * t + rng.uniform(0, 6, 8))
    aa = np.zeros((T, 5, 3))
    aa[:, 0, 1], aa[:, 2, 0] = 0.25 * np.sin(2 * np.pi * t[:, 0]), 0.15 * (1 - np.cos(2 * np.pi * t[:, 0]))
    verts = lbs.forward(model, np.zeros(300), expr, rotations.axis_angle_to_matrix(aa)).vertices
    points = np.einsum("tlkc,lk->tlc", verts[:, model.faces[emb["lmk_face_idx"]]], emb["lmk_b_coords"])
    K, R_cv, t_cv = np.array([[900.0, 0, 256], [0, 900, 256], [0, 0, 1]]), np.diag([1.0, -1, -1]), np.array([0, 0, 0.6])
    lmk = np.full((T, 478, 2), np.nan)
    lmk[:, emb["landmark_indices"]] = np.stack([project_opencv(p, K, R_cv, t_cv) for p in points])
    lmk[:, emb["landmark_indices"]] += rng.normal(scale=0.5, size=(T, len(emb["landmark_indices"]), 2))
    np.savez(tmp_path / "landmarks.npz", lmk=lmk, image_size=np.array([512, 512]))

    result = bpy.ops.flame.track_video(landmarks_filepath=str(tmp_path / "landmarks.npz"), focal=900.0,
                                       output_dir=str(tmp_path / "out"), python=os.environ["FLAME_TRACKER_PYTHON"])
    assert result == {"FINISHED"}
    scene, armature = bpy.context.scene, bpy.context.view_layer.objects.active
    assert armature.flame.is_head and armature.flame.model_name == "demo_head"
    assert (scene.frame_start, scene.frame_end) == (1, T)
    errors = []
    for frame in (1, T // 2, T):
        scene.frame_set(frame)
        local = evaluated_vertices(armature.flame.mesh)
        world = np.array(armature.flame.mesh.matrix_world)
        fitted = np.einsum("lkc,lk->lc", local[model.faces[emb["lmk_face_idx"]]], emb["lmk_b_coords"])
        fitted = fitted @ world[:3, :3].T + world[:3, 3]
        ndc = np.array([tuple(world_to_camera_view(scene, scene.camera, Vector(p)))[:2] for p in fitted])
        pixels = np.stack([ndc[:, 0] * 512, (1 - ndc[:, 1]) * 512], axis=1)
        errors.append(np.linalg.norm(pixels - lmk[frame - 1, emb["landmark_indices"]], axis=1).mean())
    assert max(errors) < 1.5, f"mean landmark reprojection error per frame {errors} px"
