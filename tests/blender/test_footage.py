"""The footage comes along: a tracker output's video (source.json) or frames become the camera background,
frame-accurately, and the preview overlay composites the same frames (decoded by Blender's FFmpeg)."""

import json
import subprocess
import sys
from pathlib import Path

import bpy
import numpy as np
import pytest

from flame_blender_addon.blender.render import frames, sources, video
from flame_blender_addon.core.formats.footage import find_footage, write_reference

ROOT = Path(__file__).resolve().parents[2]
N_FRAMES, BAND = 12, 4  # frame i of the test footage: black, white in columns BAND i to BAND (i + 1)


def pattern(i: int) -> np.ndarray:
    """Test footage frame i: (32, 48, 4) pixels, black with a white vertical band."""
    pixels = np.zeros((32, 48, 4), np.float32)
    pixels[:, BAND * i:BAND * (i + 1)] = 1.0
    pixels[..., 3] = 1.0
    return pixels


def frame_number(pixels) -> int:
    """Which test footage frame these pixels show (robust to H.264's losses)."""
    return int(np.argmax(pixels[..., 0].mean(axis=0))) // BAND


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("clip")
    paths = [frames.save_rgba(pattern(i), folder / f"{i:04d}.png") for i in range(N_FRAMES)]
    return video.encode_video(paths, folder / "clip.mp4", 25.0)


def tracked_output(folder: Path, frame_ids) -> Path:
    """A tracker output with a camera: flame_sequence.npz for a 2-component head (the demo head's layout)."""
    folder.mkdir()
    T = len(frame_ids)
    np.savez(folder / "flame_sequence.npz", shape=np.zeros(2), expr=np.zeros((T, 2)), rotation=np.zeros((T, 3)),
             neck_pose=np.zeros((T, 3)), jaw_pose=np.zeros((T, 3)), eyes_pose=np.zeros((T, 6)),
             translation=np.zeros((T, 3)), fps=np.array(25.0), frame_ids=np.asarray(frame_ids),
             K=np.array([[60.0, 0, 24], [0, 60.0, 16], [0, 0, 1]]), cam_R=np.diag([1.0, -1.0, -1.0]),
             cam_t=np.array([0.0, 0.0, 0.6]), image_size=np.array([32, 48]))
    return folder


def test_decoding_is_frame_accurate(clip):
    assert [frame_number(video.decode_frame(clip, i)) for i in range(N_FRAMES)] == list(range(N_FRAMES))
    assert video.decode_frame(clip, N_FRAMES) is None


def test_a_referenced_video_becomes_the_camera_background_frame_accurately(clip, tmp_path):
    """Frame ids 3..7 of the video, tracked as ids 0..4 (frame_offset 3), imported at frame 10."""
    output = tracked_output(tmp_path / "tracked", range(5))
    write_reference(output, "video", clip, frame_offset=3)
    bpy.ops.flame.add_demo_head(n_shape=2, n_expr=2)
    assert bpy.ops.flame.import_sequence(filepath=str(output / "flame_sequence.npz"), frame_start=10) == {"FINISHED"}
    background = bpy.context.scene.camera.data.background_images[0]
    assert background.source == "MOVIE_CLIP" and Path(background.clip.filepath) == clip.resolve()
    assert background.clip.frame_start == 10 - 3  # Blender shows the video's first frame there
    lookup = sources.camera_background_frames(bpy.context.scene)
    assert [frame_number(lookup(f)) for f in (10, 12, 14)] == [3, 5, 7]  # scene frame 10 + f: video frame f + 3
    assert lookup(6) is None
    given = sources.given_frames(output, 10)  # the tracked folder named as --source: the same frames
    assert frame_number(given(12)) == 5


def test_images_follow_their_frame_ids(tmp_path):
    """metrical-tracker's input/ frames are numbered by frame id: a sequence starting at id 4 shows 00004.png."""
    output = tracked_output(tmp_path / "tracked", range(4, 8))
    (output / "input").mkdir()
    for n in range(0, 10):
        frames.save_rgba(pattern(n), output / "input" / f"{n:05d}.png")
    bpy.ops.flame.add_demo_head(n_shape=2, n_expr=2)
    assert bpy.ops.flame.import_sequence(filepath=str(output), frame_start=1) == {"FINISHED"}
    assert bpy.context.scene.frame_start == 5
    lookup = sources.camera_background_frames(bpy.context.scene)
    assert [frame_number(lookup(f)) for f in (5, 6, 8)] == [4, 5, 7]


def test_a_broken_or_dangling_reference_is_a_warning(tmp_path, capsys):
    output = tracked_output(tmp_path / "tracked", range(3))
    (output / "source.json").write_text(json.dumps({"video": "gone.mp4"}))
    assert find_footage(output)[0] is None and "gone.mp4 is not there" in find_footage(output)[1][0]
    bpy.ops.flame.add_demo_head(n_shape=2, n_expr=2)
    assert bpy.ops.flame.import_sequence(filepath=str(output)) == {"FINISHED"}
    assert "gone.mp4 is not there" in capsys.readouterr().out
    assert not bpy.context.scene.camera.data.background_images
    (output / "source.json").write_text('{"video": 3}')
    assert "needs one of 'video' or 'images'" in find_footage(output)[1][0]
    (output / "source.json").write_text('{"images": "frames", "frame_offset": "x"}')
    assert "'frame_offset' must be a whole number" in find_footage(output)[1][0]


def test_render_overlays_the_tracked_video_with_no_extraction(clip, tmp_path):
    """flame_cli.py import of a tracker output that references a video, then render --side-by-side."""
    output = tracked_output(tmp_path / "tracked", range(6))
    write_reference(output, "video", clip)
    cli = [sys.executable, str(ROOT / "scripts" / "flame_cli.py")]
    run = lambda *args: subprocess.run([*cli, *map(str, args)], capture_output=True, text=True, timeout=300)  # noqa: E731
    result = run("import", output / "flame_sequence.npz", "--output", tmp_path / "anim.blend")
    assert result.returncode == 0, result.stderr
    result = run("render", tmp_path / "anim.blend", "--output", tmp_path / "r", "--frames", "5:5", "--side-by-side")
    assert result.returncode == 0, result.stderr
    left = frames.load_rgba(tmp_path / "r" / "frames" / "0005.png")[:, :48]
    assert frame_number(left) == 4, result.stdout  # scene frame 5 = frame id 4 (import at frame 1)


def test_a_tracked_video_comes_along_when_the_tracker_does_not_reference_it(clip, tmp_path):
    """The stand-in tracker writes no footage reference: the front end references the video it tracked."""
    fake = f"{sys.executable} {ROOT / 'tests' / 'fake_tracker.py'} --output {{output}} --frames 4"
    out = tmp_path / "tracked"
    assert bpy.ops.flame.track_video(filepath=str(clip), output_dir=str(out), command_template=fake) == {"FINISHED"}
    assert json.loads((out / "source.json").read_text())["video"] == str(clip.resolve())
    background = bpy.context.scene.camera.data.background_images[0]
    assert background.source == "MOVIE_CLIP" and background.clip.frame_start == 1
