"""The ``track`` program: outputs, the JSON lines, bad input and cancellation."""

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import synthetic  # noqa: E402
from scenes import make_scene, write_inputs  # noqa: E402

from flame_blender_addon.core import camera, evaluation, sequence  # noqa: E402
from flame_blender_addon.core import tracker_protocol as protocol  # noqa: E402
from flame_blender_addon.core.errors import FlameError, TrackerError  # noqa: E402
from flame_blender_addon.demo import head as demo_head  # noqa: E402
from flame_blender_addon.demo.embedding import demo_embedding_arrays  # noqa: E402
from flame_blender_addon.tracking import landmarks, outputs, tracker  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def start(*args):
    return subprocess.Popen([sys.executable, "-m", "flame_blender_addon.tracking", *map(str, args)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)


def messages_of(text):
    return [m for m in map(protocol.parse_line, text.splitlines()) if m is not None]


def test_track_writes_sequence_checkpoints_and_reports(scene, tmp_path):
    paths = write_inputs(scene, tmp_path, embed_in_model=True)
    out = tmp_path / "out"
    proc = start("track", "--model", paths["model"], "--landmarks", paths["landmarks"], "--output", out,
                 "--n-shape", 10, "--n-expr", 10, "--focal", scene.clip.focal)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == protocol.EXIT_OK, stderr
    messages = messages_of(stdout)
    assert not any(m.raw for m in messages), stdout
    assert any(m.type == "log" and "no face in 7 of 60 frames (20-26)" in m.message for m in messages)
    fractions = [m.fraction for m in messages if m.type == "progress"]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    result = messages[-1]
    assert result.type == "result" and Path(result.path) == (out / protocol.SEQUENCE_FILE).resolve()
    assert sorted(os.listdir(out)) == [protocol.CHECKPOINT_DIR, protocol.SEQUENCE_FILE, protocol.LANDMARKS_FILE]
    assert len(list((out / protocol.CHECKPOINT_DIR).glob("*.frame"))) == 60

    truth = synthetic.project(synthetic.landmarks(scene.model, scene.embedding,
                                                  synthetic.vertices(scene.model, scene.clip)),
                              scene.clip.focal, scene.clip.image_size)
    face = scene.track.face_found()
    for source in (result.path, out / protocol.CHECKPOINT_DIR):
        uv = reprojected(scene.model, scene.embedding, sequence.read_sequence(source))
        assert np.linalg.norm(uv - truth, axis=-1)[face].mean() < 1.0
    with np.load(result.path) as npz:
        assert npz["face_found"].tolist() == face.tolist()
        assert npz["face_confidence"].tolist() == face.astype(float).tolist()
        assert np.abs(npz["translation"][face].mean(axis=0)).max() < 1e-9  # the head is centred at the origin
        assert np.allclose(npz["neck_pose"], 0) and npz["image_size"].tolist() == [512, 512]


def reprojected(model, embedding, seq) -> np.ndarray:
    """The embedded landmarks of a read sequence through its own cameras: (T, L, 2) pixels."""
    points = synthetic.landmarks(model, embedding, evaluation.sequence_vertices(model, seq))
    return np.stack([camera.project_opencv(p, K, R, t)
                     for p, K, R, t in zip(points, seq.camera.K, seq.camera.R, seq.camera.t, strict=True)])


def test_demo_model_fits_mediapipe_landmarks_with_its_own_embedding(tmp_path):
    model = demo_head.demo_model()
    embedding = landmarks.embedding_from_arrays(demo_embedding_arrays(), "demo")
    clip = synthetic.smooth_clip(40, 10, 10, seed=7)
    track = synthetic.observed_track(model, embedding, clip, noise_px=0.5, seed=8)
    mediapipe_layout = np.full((track.n_frames, landmarks.MEDIAPIPE_POINTS, 2), np.nan)  # unembedded points NaN
    mediapipe_layout[:, embedding.points] = track.points
    np.savez(tmp_path / "lmk.npz", lmk=mediapipe_layout, image_size=np.array(clip.image_size))
    proc = start("track", "--model", "demo", "--landmarks", tmp_path / "lmk.npz", "--output", tmp_path / "out",
                 "--n-shape", 10, "--n-expr", 10, "--focal", clip.focal)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == protocol.EXIT_OK, stderr
    messages = messages_of(stdout)
    assert any(m.type == "progress" and m.message.startswith("demo_head: fitting 10 identity") for m in messages)
    result = messages[-1]
    assert result.type == "result" and result.data["landmark_error_px"] <= 1.0  # against the noisy input
    truth = synthetic.project(synthetic.landmarks(model, embedding, synthetic.vertices(model, clip)), clip.focal,
                              clip.image_size)
    seq = sequence.read_sequence(result.path)
    fitted = reprojected(model, embedding, seq)
    assert np.linalg.norm(fitted - truth, axis=-1).mean() <= 1.0

    # the real-footage benchmark measures this output the same way (it crashed on a moved import)
    spec = importlib.util.spec_from_file_location("bench_real_footage", ROOT / "scripts" / "bench_real_footage.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    measured = bench.measure(model, Path("clip.mp4"), tmp_path / "out", result.data, 2.0, 4.0)
    error = np.linalg.norm(fitted - track.points, axis=-1)
    assert measured["error_px_median"] == pytest.approx(np.nanmedian(error))
    assert measured["max |β|"] == pytest.approx(np.abs(seq.shape).max())
    assert (measured["end-to-end f/s"], measured["CPU-time f/s"], measured["frames"]) == (20.0, 10.0, 40)


LEAVES_WITHOUT_TEARDOWN = """
import atexit, runpy, sys
atexit.register(lambda: print("interpreter teardown", file=sys.stderr, flush=True))
sys.argv[0] = "flame_blender_addon.tracking"
runpy.run_module("flame_blender_addon.tracking", run_name="__main__")
"""


@pytest.mark.parametrize("good", [True, False])
def test_the_program_leaves_without_teardown_after_its_last_message(scene, tmp_path, good):
    paths = write_inputs(scene, tmp_path, embed_in_model=True)
    out = tmp_path / "out"
    args = ["track", "--model", paths["model"], "--landmarks", paths["landmarks"] if good else tmp_path / "missing.npz",
            "--output", out, "--n-shape", 10, "--n-expr", 10]
    proc = subprocess.run([sys.executable, "-c", LEAVES_WITHOUT_TEARDOWN, *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert "interpreter teardown" not in proc.stderr  # os._exit skipped atexit (and the rest of the teardown)
    messages = messages_of(proc.stdout)
    if not good:
        assert proc.returncode == protocol.EXIT_ERROR and messages[-1].type == "error"
        assert os.listdir(out) == []
        return
    assert proc.returncode == protocol.EXIT_OK, proc.stderr
    assert messages[-1].type == "result" and proc.stdout.endswith("\n")  # flushed whole before leaving
    assert sorted(os.listdir(out)) == [protocol.CHECKPOINT_DIR, protocol.SEQUENCE_FILE, protocol.LANDMARKS_FILE]
    for name in (protocol.SEQUENCE_FILE, protocol.LANDMARKS_FILE):  # complete files, committed in place
        with np.load(out / name) as npz:
            assert all(npz[key].size for key in npz.files)
    assert len(sequence.read_sequence(out / protocol.SEQUENCE_FILE).expr) == scene.track.n_frames


def test_cancel_mid_fit_leaves_no_output(tmp_path):
    paths = write_inputs(make_scene(n_frames=400, no_face=()), tmp_path)
    out = tmp_path / "out"
    proc = start("track", "--model", paths["model"], "--landmarks", paths["landmarks"], "--embedding",
                 paths["embedding"], "--output", out, "--n-shape", 10, "--n-expr", 10)
    for line in proc.stdout:
        message = protocol.parse_line(line)
        if message and message.type == "progress" and message.stage == "fit":
            proc.send_signal(signal.SIGTERM)
            break
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == protocol.EXIT_ERROR
    assert messages_of(stdout)[-1].type == "error"
    assert not out.exists() or os.listdir(out) == []


def test_bad_arguments_exit_with_usage_code_and_error_line(tmp_path):
    proc = start("track", "--model", tmp_path / "m.pkl", "--output", tmp_path, "--n-expr", "0")
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == protocol.EXIT_USAGE
    assert [m.type for m in messages_of(stdout)] == ["error"] and "--n-expr" in stderr


def test_an_empty_embedding_argument_means_none():  # the Blender front end passes unset file fields as ''
    from flame_blender_addon.tracking.__main__ import build_parser

    args = build_parser().parse_args(["track", "--model", "demo", "--output", "out", "--embedding", ""])
    assert args.embedding is None and str(args.model) == tracker.DEMO_MODEL


def test_photometric_options_default_to_the_stage_settings(capsys):  # the parser cannot import photometric
    from flame_blender_addon.tracking import photometric
    from flame_blender_addon.tracking.__main__ import build_parser

    parser = build_parser()
    args = parser.parse_args(["track", "--model", "demo", "--output", "out"])
    assert args.photometric_epochs is None and args.photometric_resolution is None
    with pytest.raises(SystemExit):
        parser.parse_args(["track", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    defaults = photometric.Settings()
    assert f"(default {defaults.epochs})" in text and f"(default {defaults.resolution})" in text


def run_in_process(tmp_path, **kwargs):
    opts = tracker.Options(output=tmp_path / "out", **kwargs)
    sent = []
    try:
        tracker.run(opts, sent.append)
    finally:
        assert not (tmp_path / "out" / protocol.SEQUENCE_FILE).exists()
    return sent


@pytest.mark.parametrize("case, expected", [
    ("missing model", "file not found"),
    ("no embedding", "no landmark embedding"),
    ("embedding of another topology", "does not match"),
    ("landmark count mismatch", "per frame"),
    ("no face anywhere", "no face found in any of its 60 frames"),
    ("unreadable video", "not a readable video"),
    ("cuda without gpu", "CUDA"),
])
def test_bad_input_gives_one_clear_error(scene, tmp_path, case, expected):
    paths = write_inputs(scene, tmp_path)
    kwargs = {"model": paths["model"], "landmarks": paths["landmarks"], "embedding": paths["embedding"]}
    if case == "missing model":
        kwargs["model"] = tmp_path / "generic_model.pkl"
    elif case == "no embedding":
        kwargs["embedding"] = None
    elif case == "embedding of another topology":
        np.savez(paths["embedding"], lmk_face_idx=np.array([5, 9975]), lmk_b_coords=np.full((2, 3), 1 / 3))
    elif case == "landmark count mismatch":
        np.savez(paths["embedding"], lmk_face_idx=np.array([5, 6]), lmk_b_coords=np.full((2, 3), 1 / 3))
    elif case == "no face anywhere":
        np.savez(paths["landmarks"], lmk=np.full(scene.track.points.shape, np.nan), image_size=np.array([512, 512]))
    elif case == "unreadable video":
        pytest.importorskip("av")
        (tmp_path / "clip.mp4").write_bytes(b"not a video")
        kwargs.update(landmarks=None, input=tmp_path / "clip.mp4")
    elif case == "cuda without gpu":
        if torch.cuda.is_available():
            pytest.skip("a GPU is present")
        kwargs["device"] = "cuda"
    with pytest.raises(FlameError, match=expected):
        run_in_process(tmp_path, **kwargs)


def _fitted(sent):
    return any(m["type"] == "progress" and m["stage"] == "fit" for m in sent)


def test_inputs_and_output_folder_are_checked_before_fitting(scene, tmp_path):
    paths = write_inputs(scene, tmp_path)
    kwargs = {"model": paths["model"], "landmarks": paths["landmarks"], "embedding": paths["embedding"]}
    (tmp_path / "a_file").write_bytes(b"")
    sent = []
    with pytest.raises(TrackerError, match="cannot create the output folder"):
        tracker.run(tracker.Options(output=tmp_path / "a_file" / "out", **kwargs), sent.append)
    assert sent == []  # not even the model was loaded
    for fps, message in ((-5.0, "'fps' is \\[-5.0\\], expected one number from 0.01 to 1000"),
                         (1e9, "'fps' is \\[1000000000.0\\]")):
        with np.load(paths["landmarks"]) as npz:
            np.savez(tmp_path / "lmk_fps.npz", **dict(npz), fps=np.array(fps))
        sent = []
        with pytest.raises(TrackerError, match=message):
            tracker.run(tracker.Options(output=tmp_path / "out", **dict(kwargs, landmarks=tmp_path / "lmk_fps.npz")),
                        sent.append)
        assert not _fitted(sent)
    sent = []
    with pytest.raises(TrackerError, match="a frame rate of 5000 fps cannot be imported"):
        tracker.run(tracker.Options(output=tmp_path / "out", fps=5000.0, **kwargs), sent.append)
    assert not _fitted(sent)
    assert not list((tmp_path / "out").iterdir())  # staging removed


def test_a_full_disk_is_named_before_fitting_and_while_writing(scene, tmp_path, monkeypatch):
    import errno
    import shutil
    from collections import namedtuple

    paths = write_inputs(scene, tmp_path)
    opts = tracker.Options(output=tmp_path / "out", model=paths["model"], landmarks=paths["landmarks"],
                           embedding=paths["embedding"], n_shape=5, n_expr=5)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9, 1000))
    sent = []
    with pytest.raises(TrackerError, match="the disk is full \\(0 MB free; the results need about"):
        tracker.run(opts, sent.append)
    assert not _fitted(sent)
    monkeypatch.undo()

    def full(path, arrays):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(outputs, "write_npz", full)
    with pytest.raises(TrackerError, match="the disk is full \\(no space left for the results\\)"):
        run_in_process(tmp_path, model=paths["model"], landmarks=paths["landmarks"], embedding=paths["embedding"],
                       n_shape=5, n_expr=5)
    assert not list((tmp_path / "out").iterdir())


def test_staging_removes_its_folder_on_failure_and_stale_ones(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f"{protocol.TEMP_PREFIX}{int(dead.stdout)}-abc"
    (stale / protocol.CHECKPOINT_DIR).mkdir(parents=True)
    (tmp_path / protocol.SEQUENCE_FILE).write_bytes(b"old")
    with pytest.raises(TrackerError), outputs.Staging(tmp_path) as stage:
        assert not stale.exists() or sys.platform == "win32"
        (stage.path / "partial.npz").write_bytes(b"x")
        raise TrackerError("boom")
    assert sorted(os.listdir(tmp_path)) == [protocol.SEQUENCE_FILE]
    with outputs.Staging(tmp_path) as stage:
        (stage.path / protocol.SEQUENCE_FILE).write_bytes(b"new")
        (stage.path / protocol.PREVIEW_DIR).mkdir()
        stage.commit()
    assert (tmp_path / protocol.SEQUENCE_FILE).read_bytes() == b"new"
    assert sorted(os.listdir(tmp_path)) == [protocol.SEQUENCE_FILE, protocol.PREVIEW_DIR]
