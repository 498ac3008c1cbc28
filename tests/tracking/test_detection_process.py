"""The tracker's landmark detection process: its failures, and that it ends with the tracker."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("mediapipe")
pytest.importorskip("av")
skimage_data = pytest.importorskip("skimage.data")

from flame_blender_addon.core import tracker_protocol as protocol  # noqa: E402
from flame_blender_addon.core.errors import TrackerError  # noqa: E402
from flame_blender_addon.tracking import detection_process, media  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
N_FRAMES = 200


def frames_folder(folder: Path, images) -> Path:
    folder.mkdir()
    for i, img in enumerate(images):
        (folder / f"{i:03d}.png").write_bytes(media.png_bytes(img))
    return folder


def start_tracker(folder: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flame_blender_addon.tracking", "track", "--model", "demo",
                             "--input", str(folder), "--output", str(out), "--n-shape", "10", "--n-expr", "10"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def test_a_failing_detection_process_gives_its_one_line_error_and_no_output(tmp_path):
    photo = skimage_data.astronaut()
    folder = frames_folder(tmp_path / "clip", [photo, photo[:400]])
    proc = start_tracker(folder, tmp_path / "out")
    stdout, stderr = proc.communicate(timeout=300)
    messages = [m for m in map(protocol.parse_line, stdout.splitlines()) if m]
    assert proc.returncode == protocol.EXIT_ERROR, stderr[-2000:]
    assert [m.type for m in messages if m.type == "error"] == ["error"] and messages[-1].type == "error"
    assert messages[-1].message == "frame 1 is 512x400, the first was 512x512; all frames must have one size"
    assert os.listdir(tmp_path / "out") == []


def test_a_detection_process_that_dies_is_named_and_its_staging_removed(tmp_path):
    folder = frames_folder(tmp_path / "clip", [skimage_data.astronaut()])
    with (pytest.raises(TrackerError, match="the landmark detection process stopped with exit code -9"),
          detection_process.start(tmp_path / "out", folder, None, media.Trim(), True) as started):
        started.detection.process.kill()
        started.detection.track(lambda *progress: None)
    assert os.listdir(tmp_path / "out") == []


@pytest.mark.skipif(sys.platform == "win32", reason="process groups are POSIX")
@pytest.mark.parametrize("how", ["cancel", "tracker killed"])
def test_the_detection_process_ends_with_the_tracker(tmp_path, how):
    """Blender's cancel (SIGTERM to the process group): the tracker reports it, reaps the process
    and removes its staging. The tracker killed on its own: the process stops at its next progress
    line instead of detecting the rest of the clip."""
    photo = skimage_data.astronaut()[::4, ::4]
    folder = frames_folder(tmp_path / "clip", [np.roll(photo, i, axis=1) for i in range(N_FRAMES)])
    out = tmp_path / "out"
    proc = start_tracker(folder, out)
    first = protocol.FRAMES_DIR + "/" + protocol.FRAME_FILE.format(0)
    while not list(out.glob(protocol.TEMP_PREFIX + "*/" + first)):  # the detection process is at work
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    if how == "cancel":
        os.killpg(proc.pid, signal.SIGTERM)
        stdout, _ = proc.communicate(timeout=120)
        assert proc.returncode == protocol.EXIT_ERROR
        assert protocol.parse_line(stdout.splitlines()[-1]).message == "tracking was cancelled"
        with pytest.raises(ProcessLookupError):  # nothing of the job is left running
            os.killpg(proc.pid, 0)
        assert os.listdir(out) == []
        return
    proc.kill()
    proc.communicate(timeout=120)
    for _ in range(1200):  # until the process group is empty (a minute, were it slow)
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("the detection process outlived the tracker")
    written = list(out.glob(protocol.TEMP_PREFIX + "*/" + protocol.FRAMES_DIR + "/*.jpg"))
    assert 0 < len(written) < N_FRAMES
