"""The interactive paths Blender's background mode never takes: ``invoke`` (file browser, a seed
drawn once) and the modal jobs (tracking with the stand-in tracker, the preview render), driven
event by event with the operators' own code."""

import sys
import time
from pathlib import Path
from unittest.mock import MagicMock

import bpy
import numpy as np
import pytest
from bl_helpers import ContextDouble, Event, OperatorDouble, scene_state

from flame_blender_addon.blender import operator_base
from flame_blender_addon.blender.render.operator import FLAME_OT_render_preview
from flame_blender_addon.blender.track_operator import FLAME_OT_track_video
from flame_blender_addon.core import tracker_protocol as protocol

FAKE = f"{sys.executable} {Path(__file__).resolve().parents[1] / 'fake_tracker.py'} --output {{output}}"


@pytest.fixture
def ui(monkeypatch):
    """A window (as far as the operators can tell) and a recording window manager."""
    monkeypatch.setattr(operator_base, "has_ui", lambda: True)
    return ContextDouble(window_manager=MagicMock(), workspace=MagicMock(), window=None)


def run_modal(double, context, deadline_s=60.0, pause=0.02):
    """Send TIMER events (and one mouse move) until the operator stops running; returns its result."""
    deadline = time.monotonic() + deadline_s
    assert double.modal(context, Event("MOUSEMOVE")) == {"PASS_THROUGH"}
    while (result := double.modal(context, Event("TIMER"))) == {"RUNNING_MODAL"}:
        assert time.monotonic() < deadline, "the modal operator never finished"
        time.sleep(pause)
    return result


def progress_values(wm) -> list[int]:
    return [c.args[0] for c in wm.progress_update.call_args_list]


def test_track_video_opens_a_file_browser_then_runs_modal_and_imports(ui, small_model_file, tmp_path):
    video = tmp_path / "interview.mp4"
    video.write_bytes(b"not decoded by the stand-in tracker")
    double = OperatorDouble(FLAME_OT_track_video)
    assert double.invoke(ui, Event()) == {"RUNNING_MODAL"}
    ui.window_manager.fileselect_add.assert_called_once_with(double)
    assert not ui.window_manager.modal_handler_add.called  # nothing runs before a file is chosen

    # what the file browser sets, then confirms (Blender calls execute)
    double.filepath, double.output_dir = str(video), str(tmp_path / "out")
    double.model_filepath, double.command_template = str(small_model_file), FAKE + " --frames 5 --delay 0.05"
    assert double.execute(ui) == {"RUNNING_MODAL"}
    ui.window_manager.modal_handler_add.assert_called_once_with(double)
    ui.window_manager.progress_begin.assert_called_once_with(0, 1000)
    assert run_modal(double, ui) == {"FINISHED"}
    progress = progress_values(ui.window_manager)
    assert progress == sorted(progress) and progress[-1] > 0
    status = [c.args[0] for c in ui.workspace.status_text_set.call_args_list]
    assert status[-1] is None and any("(Esc to stop)" in s for s in status[:-1])
    ui.window_manager.event_timer_remove.assert_called_once()
    armature = bpy.context.view_layer.objects.active
    assert armature.flame.is_head and [t.name for t in armature.flame.takes] == ["interview"]
    assert bpy.context.scene.frame_end == 5


def test_landmarks_npz_chosen_in_the_browser_are_tracked_as_landmarks(tmp_path):
    landmarks = tmp_path / "faces.npz"
    landmarks.write_bytes(b"")
    double = OperatorDouble(FLAME_OT_track_video, filepath=str(landmarks))
    assert double._inputs() == ("", str(landmarks))


def test_esc_kills_the_tracker_and_leaves_the_scene_as_it_was(ui, tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"x")
    before = scene_state()
    double = OperatorDouble(FLAME_OT_track_video, filepath=str(video), output_dir=str(tmp_path / "out"),
                            command_template=FAKE + " --hang")
    double._interactive = True
    assert double.execute(ui) == {"RUNNING_MODAL"}
    deadline = time.monotonic() + 20
    while double._job.fraction == 0 and double._job.status == "starting":
        assert double.modal(ui, Event("TIMER")) == {"RUNNING_MODAL"}
        assert time.monotonic() < deadline, "the stand-in tracker never reported progress"
        time.sleep(0.05)
    assert double.modal(ui, Event("ESC")) == {"CANCELLED"}
    assert double._job.process.poll() is not None
    assert ("WARNING", "Tracking cancelled") in double.reports
    assert not list((tmp_path / "out").glob(protocol.TEMP_PREFIX + "*"))
    assert scene_state() == before
    ui.window_manager.progress_end.assert_called_once()


def test_random_draws_its_seed_once_so_redo_keeps_the_face(ui, small_model_file):
    bpy.ops.flame.import_model(filepath=str(small_model_file), n_shape=20, n_expr=5)
    blocks = bpy.context.view_layer.objects.active.flame.mesh.data.shape_keys.key_blocks

    def identity():
        return np.array([blocks[f"shape{i:03d}"].value for i in range(20)])

    double = OperatorDouble(bpy.types.FLAME_OT_random_shape)
    assert double.invoke(bpy.context, Event()) == {"FINISHED"}
    seed, face = double.seed, identity()
    assert seed > 0 and np.abs(face).max() > 0
    # the redo panel runs execute again with the same properties (a new strength here)
    assert bpy.ops.flame.random_shape(seed=seed, strength=1.0) == {"FINISHED"}
    np.testing.assert_array_equal(identity(), face)
    bpy.ops.flame.random_shape(seed=seed, strength=0.5)
    np.testing.assert_allclose(identity(), np.clip(face * 0.5, -10, 10), atol=1e-6)
    other = OperatorDouble(bpy.types.FLAME_OT_random_shape)
    other.invoke(bpy.context, Event())
    assert other.seed != seed and not np.allclose(identity(), face * 0.5)


@pytest.fixture
def animated_demo_head():
    from flame_blender_addon.blender import head, sequence_import
    from flame_blender_addon.demo.head import demo_model
    from flame_blender_addon.demo.performance import demo_performance

    armature = head.build_head(bpy.context, demo_model().truncated(2, 20), "FLAME_demo")
    sequence_import.apply_sequence(bpy.context, armature,
                                   demo_performance(n_shape=2, n_expr=20, image_size=(16, 16)).take(slice(0, 3)))
    return armature


def render_state():
    scene = bpy.context.scene
    return {"engine": scene.render.engine, "film": scene.render.film_transparent, "world": scene.world,
            "frame": scene.frame_current, "output": scene.render.filepath, "lights": len(bpy.data.lights)}


def test_preview_render_is_modal_with_progress_and_finishes(ui, animated_demo_head, tmp_path):
    before = render_state()
    double = OperatorDouble(FLAME_OT_render_preview)
    assert double.invoke(ui, Event()) == {"RUNNING_MODAL"}
    ui.window_manager.fileselect_add.assert_called_once_with(double)
    double.directory, double.use_video = str(tmp_path / "preview"), False
    assert double.execute(ui) == {"RUNNING_MODAL"}
    ui.window_manager.modal_handler_add.assert_called_once_with(double)
    assert run_modal(double, ui) == {"FINISHED"}
    assert sorted(p.name for p in (tmp_path / "preview").iterdir()) == ["0001.png", "0002.png", "0003.png"]
    progress = progress_values(ui.window_manager)
    assert progress == sorted(progress) and progress[-1] == 1000 and len(progress) >= 4
    assert render_state() == before


def test_esc_stops_the_preview_between_frames_and_restores_the_scene(ui, animated_demo_head, tmp_path):
    before = render_state()
    double = OperatorDouble(FLAME_OT_render_preview, directory=str(tmp_path / "preview"), engine="CYCLES")
    double._interactive = True
    assert double.execute(ui) == {"RUNNING_MODAL"}
    assert bpy.data.lights  # the preview's temporary lights, while it runs
    assert double.modal(ui, Event("TIMER")) == {"RUNNING_MODAL"}
    assert double.modal(ui, Event("ESC")) == {"CANCELLED"}
    assert [p.name for p in (tmp_path / "preview").iterdir()] == ["0001.png"]
    assert ("WARNING", "Preview stopped after 1 of 3 frames") in double.reports
    assert render_state() == before
    ui.window_manager.event_timer_remove.assert_called_once()
