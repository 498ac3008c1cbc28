"""The tracker front end, driven by the stand-in tracker (stdlib only, same JSON-lines protocol)."""

import sys
import time

import bpy
import pytest
from bl_helpers import scene_state

from flame_blender_addon.blender import tracker_job
from flame_blender_addon.core import tracker_protocol as protocol

FAKE = f"{sys.executable} -m flame_blender_addon.tracking.fake --output {{output}}"


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
                    "--input", "v.mp4", "--output", "out", "--device", "cuda", "--focal", "1200.0",
                    "--landmarks", "l.npz", "--embedding", "e.npz"]
