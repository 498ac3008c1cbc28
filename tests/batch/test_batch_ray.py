"""``flame_cli.py batch`` end to end on a local Ray runtime with 2 workers (the bpy wheel in child
processes, the real tracker when FLAME_TRACKER_PYTHON names a Python with torch).

The batch holds sequences, one clip whose Ray worker the test kills while Blender works on it, one
corrupt file and (with a tracker) one landmarks clip that is tracked first.
"""

from __future__ import annotations

import json
import os
import signal
import time

import bpy
import numpy as np
import pytest
from conftest import TRACKER_PYTHON, cli, processes_using, write_landmarks, write_sequence

from flame_blender_addon.batch import layout
from flame_blender_addon.blender.head import scene_heads
from flame_blender_addon.blender.render.frames import load_rgba

SEQUENCES = {"seq_a": (0, 4), "seq_b": (10, 3), "seq_c": (20, 5), "seq_d": (30, 4), "victim": (40, 12)}
OPTIONS = ("--workers", "2", "--render", "--resolution", "32", "--formats", "glb")
TIMEOUT = 600
pytestmark = pytest.mark.usefixtures("addon")


def batch_command(clips, out, *extra):
    tracker = ("--tracker-python", TRACKER_PYTHON) if TRACKER_PYTHON else ()
    return ("batch", clips, "--output", out, *OPTIONS, *tracker, *extra)


def wait_for_attempt(log, stage: str, process, timeout=TIMEOUT) -> int:
    """The pid of the Ray worker that started ``stage`` of a clip (from its log)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        text = log.read_text() if log.exists() else ""
        if f"== {stage} attempt 1 on " in text:
            return int(text.split(f"== {stage} attempt 1 on ")[1].split("pid ")[1].split()[0])
        time.sleep(0.02)
    raise AssertionError(f"{log} never showed a {stage} attempt")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("batch") / "clips"
    folder.mkdir()
    for name, (first, frames) in SEQUENCES.items():
        write_sequence(folder / f"{name}.npz", first, frames)
    (folder / "broken.npz").write_bytes(b"PK\x03\x04 this is not a zip archive")
    if TRACKER_PYTHON:
        write_landmarks(folder / "marks.npz", 8)
    return folder


@pytest.fixture(scope="module")
def first_run(clips):
    """The batch, with the victim's worker killed while it builds the victim; then the same command again."""
    out = clips.parent / "out"
    process = cli(*batch_command(clips, out))
    worker = wait_for_attempt(out / layout.STAGING / "victim" / layout.LOG, "build", process)
    os.kill(worker, signal.SIGKILL)
    stdout, stderr = process.communicate(timeout=TIMEOUT)
    report = json.loads((out / layout.REPORT).read_text())
    logs = {p.parent.name: p.stat().st_mtime_ns for p in out.glob(f"*/{layout.LOG}")}
    again = cli(*batch_command(clips, out))
    second = again.communicate(timeout=TIMEOUT)
    return out, process.returncode, stdout, stderr, report, logs, (again.returncode, *second)


def test_good_clips_finish_the_corrupt_one_is_reported_the_killed_one_is_retried(first_run):
    out, code, stdout, stderr, report, _, _ = first_run
    clips = {c["name"]: c for c in report["clips"]}
    good = [*SEQUENCES, *(["marks"] if TRACKER_PYTHON else [])]
    assert sorted(clips) == sorted([*good, "broken"])
    assert code == 1 and stderr.count("\n") == 1, stderr
    assert f"1 of {len(clips)} clips failed" in stderr and "broken" in stderr
    assert "clips:" in stdout and "frames/s" in stdout  # the progress line

    assert clips["broken"]["status"] == "failed" and "broken.npz" in clips["broken"]["message"]
    assert sorted(p.name for p in (out / "broken").iterdir()) == [layout.LOG, layout.RESULT]
    assert clips["victim"]["attempts"]["build"] == 2  # the kill landed mid-task, and the retry finished
    assert "== build attempt 2" in (out / "victim" / layout.LOG).read_text()
    for name in good:
        record = clips[name]
        assert record["status"] == "done", record
        assert record["frames"] == (SEQUENCES[name][1] if name in SEQUENCES else 8)
        assert {"import", "render", "export", "blender"} <= set(record["timings"])
        files = {p.relative_to(out / name).as_posix() for p in (out / name).rglob("*") if p.is_file()}
        assert {f"{name}.blend", "export/head.glb", layout.LOG, layout.RESULT} <= files
        assert len([f for f in files if f.startswith("frames/")]) == record["frames"]
        assert json.loads((out / name / layout.RESULT).read_text()) == record
    assert report["counts"] == {"done": len(good), "failed": 1, "error": 0, "cancelled": 0, "resumed": 0}
    assert not (out / layout.STAGING).exists()
    assert processes_using(out) == []  # no tracker or Blender left behind by the killed worker


@pytest.mark.skipif(not TRACKER_PYTHON, reason="FLAME_TRACKER_PYTHON (a Python with torch) is not set")
def test_landmarks_clip_is_tracked_then_imported(first_run):
    out, *_ , report, _, _ = first_run
    record = next(c for c in report["clips"] if c["name"] == "marks")
    assert record["kind"] == "landmarks" and record["attempts"] == {"track": 1, "build": 1}
    assert 0 < record["fit_error_px"] < 5 and record["timings"]["track"] > 0
    sequence = out / "marks" / "track" / "flame_sequence.npz"
    with np.load(sequence) as seq:
        assert seq["expr"].shape[0] == 8
    bpy.ops.wm.open_mainfile(filepath=str(out / "marks" / "marks.blend"), load_ui=False, use_scripts=False)
    assert scene_heads(bpy.context.scene)[0].flame.sequence_path == str(sequence)  # not the staging folder's


def test_a_second_run_skips_everything(first_run):
    out, _, _, _, report, logs, (code, stdout, stderr) = first_run
    assert code == 1 and "1 of" in stderr  # the corrupt clip is still reported, from the first run
    again = json.loads((out / layout.REPORT).read_text())
    assert all(c["resumed"] for c in again["clips"])
    assert [c["status"] for c in again["clips"]] == [c["status"] for c in report["clips"]]
    assert {p.parent.name: p.stat().st_mtime_ns for p in out.glob(f"*/{layout.LOG}")} == logs  # nothing ran
    assert f"{len(report['clips'])} finished earlier" in stdout


def head_vertices(blend) -> np.ndarray:
    """Evaluated vertices (F, V, 3) of the first head's mesh over the scene's frames."""
    bpy.ops.wm.open_mainfile(filepath=str(blend), load_ui=False, use_scripts=False)
    scene = bpy.context.scene
    mesh = next(c for c in scene_heads(scene)[0].children if c.type == "MESH")
    frames = []
    for frame in range(scene.frame_start, scene.frame_end + 1):
        scene.frame_set(frame)
        evaluated = mesh.evaluated_get(bpy.context.evaluated_depsgraph_get())
        co = np.empty(len(evaluated.data.vertices) * 3)
        evaluated.data.vertices.foreach_get("co", co)
        frames.append(co.reshape(-1, 3) @ np.array(mesh.matrix_world)[:3, :3].T + np.array(mesh.matrix_world)[:3, 3])
    return np.array(frames)


def glb_binary_chunk(path) -> bytes:
    """The BIN chunk of a .glb (vertices, skin, morph targets, animation): after the 12-byte header and
    the JSON chunk (length, type, data)."""
    data = path.read_bytes()
    json_length = int.from_bytes(data[12:16], "little")
    return data[20 + json_length + 8:]


def test_batch_results_equal_running_the_clips_one_by_one(first_run, clips, tmp_path):
    out = first_run[0]
    names = [*SEQUENCES, *(["marks"] if TRACKER_PYTHON else [])]
    for name in names:
        blend = tmp_path / name / f"{name}.blend"
        if name in SEQUENCES:
            steps = [("import", clips / f"{name}.npz", "--output", blend)]
        else:
            steps = [("track", "--landmarks", clips / "marks.npz", "--python", TRACKER_PYTHON,
                      "--work-dir", tmp_path / "marks_track", "--output", blend)]
        steps += [("render", blend, "--output", tmp_path / name, "--resolution", "32"),
                  ("export", blend, "--output", tmp_path / name / "export", "--formats", "glb")]
        for step in steps:
            process = cli(*step)
            assert process.wait(timeout=TIMEOUT) == 0, process.stderr.read()
        batch, alone = head_vertices(out / name / f"{name}.blend"), head_vertices(blend)
        assert batch.shape == alone.shape
        np.testing.assert_allclose(batch, alone, atol=1e-5, err_msg=name)
        frames = sorted(p.name for p in (tmp_path / name / "frames").iterdir())
        assert frames == sorted(p.name for p in (out / name / "frames").iterdir())
        for frame in frames:
            batch_px, alone_px = (load_rgba(root / name / "frames" / frame) for root in (out, tmp_path))
            assert np.abs(batch_px - alone_px).max() <= 1 / 255, (name, frame)
        glb = [glb_binary_chunk(root / name / "export" / "head.glb") for root in (out, tmp_path)]
        assert glb[0] == glb[1], name  # the JSON chunk names each run's own paths, which differ


def test_ctrl_c_cancels_cleanly_says_what_finished_and_the_rerun_resumes(clips, tmp_path):
    names = ("seq_a", "seq_b", "seq_c", "victim")
    sources = [clips / f"{name}.npz" for name in names]
    out = tmp_path / "out"
    command = ("batch", *sources, "--output", out, "--workers", "1", "--render", "--resolution", "32")
    process = cli(*command)
    deadline = time.monotonic() + TIMEOUT
    first = None  # the first clip to finish: Ray does not promise to run queued tasks in order
    while first is None and time.monotonic() < deadline:
        first = next((name for name in names if (out / name / layout.RESULT).exists()), None)
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    report = json.loads((out / layout.REPORT).read_text())
    statuses = {c["name"]: c["status"] for c in report["clips"]}
    finished = [n for n, s in statuses.items() if s == "done"]
    assert report["interrupted"] and first in finished and "cancelled" in statuses.values()
    assert set(statuses.values()) <= {"done", "cancelled"}
    assert f"interrupted: {len(finished)} of 4 clips finished ({', '.join(finished)})" in stderr
    assert not (out / layout.STAGING).exists()
    time.sleep(1)
    assert processes_using(out) == []

    again = cli(*command)
    assert again.wait(timeout=TIMEOUT) == 0, again.stderr.read()
    resumed = {c["name"]: c.get("resumed", False) for c in json.loads((out / layout.REPORT).read_text())["clips"]}
    assert resumed == {n: n in finished for n in statuses}
