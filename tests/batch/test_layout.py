"""The output folder: staging, atomic commit, resume records, fingerprints; no Ray, no Blender."""

import os

import pytest

from flame_blender_addon.batch import layout
from flame_blender_addon.batch.runner import tracker_resources


def staged(out, name, files):
    stage = layout.reset_staging(out, name)
    for rel, text in files.items():
        (stage / rel).parent.mkdir(parents=True, exist_ok=True)
        (stage / rel).write_text(text)
    return stage


def test_commit_moves_the_staging_folder_in_place_of_the_old_one(tmp_path):
    staged(tmp_path, "a", {"a.blend": "old", "frames/0001.png": "old"})
    layout.commit(tmp_path, "a", {"status": "done", "fingerprint": "1"})
    staged(tmp_path, "a", {"a.blend": "new", layout.LOG: "log"})
    final = layout.commit(tmp_path, "a", {"status": "done", "fingerprint": "2"})
    assert sorted(p.name for p in final.iterdir()) == ["a.blend", layout.LOG, layout.RESULT]
    assert (final / "a.blend").read_text() == "new"
    assert layout.previous(tmp_path, "a") == {"status": "done", "fingerprint": "2"}
    assert not (tmp_path / layout.STAGING).exists()


def test_a_failed_clip_keeps_only_its_log_and_record(tmp_path):
    staged(tmp_path, "a", {"a.blend": "half", "track/flame_sequence.npz": "x", layout.LOG: "why"})
    final = layout.commit(tmp_path, "a", {"status": "failed", "message": "bad input", "fingerprint": "1"})
    assert sorted(p.name for p in final.iterdir()) == [layout.LOG, layout.RESULT]
    assert (final / layout.LOG).read_text() == "why"


def test_staging_reset_keeps_what_is_asked(tmp_path):
    staged(tmp_path, "a", {"track/flame_sequence.npz": "x", layout.LOG: "log", "a.blend": "half"})
    stage = layout.reset_staging(tmp_path, "a", keep=(layout.LOG, layout.TRACK))
    assert sorted(p.name for p in stage.iterdir()) == [layout.LOG, layout.TRACK]
    layout.remove_staging(tmp_path, "a")
    assert not (tmp_path / layout.STAGING).exists()


@pytest.mark.parametrize("status, retry_failed, finished", [
    ("done", False, True), ("failed", False, True), ("failed", True, False), ("error", False, False),
    ("cancelled", False, False)])
def test_which_records_a_rerun_skips(status, retry_failed, finished):
    assert layout.is_finished({"status": status, "fingerprint": "f"}, "f", retry_failed) is finished
    assert not layout.is_finished({"status": status, "fingerprint": "f"}, "g", retry_failed)
    assert not layout.is_finished(None, "f")


def test_fingerprint_follows_inputs_and_options(tmp_path):
    clip = tmp_path / "frames"
    clip.mkdir()
    (clip / "0001.png").write_bytes(b"1")
    first = layout.fingerprint([clip], {"engine": "WORKBENCH"})
    assert layout.fingerprint([clip], {"engine": "WORKBENCH"}) == first
    assert layout.fingerprint([clip], {"engine": "CYCLES"}) != first
    (clip / "0002.png").write_bytes(b"2")
    second = layout.fingerprint([clip], {"engine": "WORKBENCH"})
    assert second != first
    os.utime(clip / "0002.png", ns=(1, 1))
    assert layout.fingerprint([clip], {"engine": "WORKBENCH"}) != second


def test_clip_log_numbers_attempts(tmp_path):
    log = layout.ClipLog(tmp_path, "a")
    assert log.attempt("build") == 1
    log("something")
    assert (log.attempt("track"), log.attempt("build")) == (1, 2)
    assert f"pid {os.getpid()}" in log.path.read_text()


@pytest.mark.parametrize("cluster, per_track, expected", [
    ({"CPU": 16.0}, 1.0, (0.0, "cpu")),
    ({"CPU": 16.0, "GPU": 4.0}, 1.0, (1.0, "cuda")),
    ({"CPU": 16.0, "GPU": 4.0}, 0.25, (0.25, "cuda")),
    ({"CPU": 16.0, "GPU": 4.0}, 0.0, (0.0, "cpu")),  # --gpus-per-track 0: track on the CPU
    ({"CPU": 16.0, "GPU": 1.0}, 2.0, (0.0, "cpu")),  # a task asking for more than exists would never run
])
def test_tracking_asks_for_a_gpu_when_the_cluster_has_one(cluster, per_track, expected):
    assert tracker_resources(cluster, per_track) == expected
