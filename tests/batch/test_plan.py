"""From clips and options to jobs: Blender command, tracker settings, resume decisions; no Ray."""

import argparse
import sys

import pytest

from flame_blender_addon.batch import layout, plan, stages
from flame_blender_addon.batch.manifest import Clip
from flame_blender_addon.cli.parsing import clip_options as add_clip_options
from flame_blender_addon.core.errors import FlameError


def clip_options(**overrides):
    """The batch command's clip options at their defaults, with ``overrides``."""
    parser = argparse.ArgumentParser()
    add_clip_options(parser)
    return parser.parse_args([]).__dict__ | overrides


@pytest.mark.parametrize("banner, expected", [
    ("Blender 4.5.3 LTS", plan.BLENDER_FLAGS), ("Python 3.11.7", ("-c",))])
def test_blender_command_runs_a_blender_executable_or_a_python(tmp_path, banner, expected):
    executable = tmp_path / "exe"
    executable.write_text(f"#!/bin/sh\necho '{banner}'\n")
    executable.chmod(0o755)
    assert plan.blender_command(str(executable)) == (str(executable), *expected)
    with pytest.raises(FlameError, match="cannot run it"):
        plan.blender_command(str(tmp_path / "missing"))


def test_blender_command_defaults_to_this_python_with_the_bpy_wheel():
    pytest.importorskip("bpy")
    assert plan.blender_command(None) == (sys.executable, "-c")


def job_of(tmp_path, kind, tracker_python="/py", run="", **overrides):
    source = tmp_path / "clip.npz"
    if not source.exists():
        source.write_bytes(b"x")
    clip = Clip("clip", source, kind, where="list.csv line 2")
    return plan.clip_job(clip, argparse.Namespace(**clip_options(**overrides)), tmp_path / "out",
                         ("/no/blender", "-c"), tracker_python, run)


def test_landmarks_are_tracked_with_the_demo_head_unless_a_model_is_given(tmp_path):
    job = job_of(tmp_path, "landmarks", focal=900.0)
    assert job.tracker == {"python": "/py", "model": "demo", "source": "", "landmarks": job.input,
                           "embedding": "", "focal": 900.0}
    assert job.scene["model"] is None and job.scene["formats"] == []
    assert job_of(tmp_path, "video").tracker["source"] == job.input
    assert job_of(tmp_path, "sequence").tracker is None
    with pytest.raises(FlameError, match="list.csv line 2: this clip needs tracking: pass --tracker-python"):
        job_of(tmp_path, "video", tracker_python=None)


def test_a_rerun_skips_finished_clips_with_the_same_fingerprint(tmp_path):
    job = job_of(tmp_path, "sequence")
    assert job_of(tmp_path, "sequence").fingerprint == job.fingerprint
    assert job_of(tmp_path, "sequence", engine="CYCLES").fingerprint != job.fingerprint
    assert plan.resumed(job, force=False, retry_failed=False) is None  # never ran
    layout.reset_staging(tmp_path / "out", "clip")
    job.finish(layout.FAILED, "bad input")
    assert plan.resumed(job, force=False, retry_failed=False)["resumed"]
    assert plan.resumed(job, force=False, retry_failed=True) is None
    assert plan.resumed(job, force=True, retry_failed=False) is None


def test_a_stage_retried_after_its_clip_was_committed_in_this_run_does_nothing(tmp_path):
    """A worker can die after committing and before returning; Ray then runs the stage again."""
    job = job_of(tmp_path, "landmarks", run="run1")
    layout.reset_staging(tmp_path / "out", "clip")
    done = job.finish(layout.DONE, frames=3)
    assert stages.build(job) == done and stages.track(job, "cpu") == done  # neither starts a process
    assert layout.staging(tmp_path / "out", "clip").exists() is False
    later = job_of(tmp_path, "landmarks", run="run2")
    assert later.committed() is None
