"""scikit-image's astronaut photograph through MediaPipe to a fitted demo head (the whole program,
``--model demo``: the demo head with its own MediaPipe embedding)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("mediapipe")
pytest.importorskip("av")
skimage_data = pytest.importorskip("skimage.data")

from flame_blender_addon.core import tracker_protocol as protocol  # noqa: E402
from flame_blender_addon.core.sequence import read_sequence  # noqa: E402
from flame_blender_addon.tracking import media, preview  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def test_astronaut_photo_to_fitted_head(tmp_path):
    (tmp_path / "astronaut.png").write_bytes(media.png_bytes(skimage_data.astronaut()))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "flame_blender_addon.tracking", "track", "--model", "demo",
                           "--input", str(tmp_path / "astronaut.png"),
                           "--output", str(out), "--n-shape", "20", "--n-expr", "20"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    messages = [m for m in map(protocol.parse_line, proc.stdout.splitlines()) if m]
    result = messages[-1]
    assert result.type == "result" and result.data["frames"] == 1 and result.data["frames_without_face"] == 0
    assert result.data["landmark_error_px"] < 3.0  # the face is about 90 px wide; the demo head is stylised
    seq = read_sequence(result.path)
    cam_z = (seq.camera.R[0] @ seq.translation[0] + seq.camera.t[0])[2]
    assert 0.2 < cam_z < 3.0  # the head sits in front of the camera at a human distance
    previews = sorted((out / protocol.PREVIEW_DIR).glob("*.png"))
    assert [p.name for p in previews] == ["00000.png"]


def run_tracker(*args):
    return subprocess.run([sys.executable, "-m", "flame_blender_addon.tracking", "track", "--model", "demo",
                           "--n-shape", "20", "--n-expr", "20", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def test_moving_photo_frames_trimmed_with_footage_previews_and_a_quiet_log(tmp_path):
    """Six frames of the photo sliding sideways; every 2nd from frame 1 is tracked. The frames used
    land in frames/, previews are face crops beside the shaded mesh, and MediaPipe's native log
    (shown with --verbose) stays out of stderr."""
    photo = skimage_data.astronaut()
    folder = tmp_path / "clip"
    folder.mkdir()
    images = [np.roll(photo, 4 * i, axis=1) for i in range(6)]
    for i, img in enumerate(images):
        (folder / f"{i:03d}.png").write_bytes(media.png_bytes(img))
    out = tmp_path / "out"
    proc = run_tracker("--input", folder, "--output", out, "--start", 1, "--step", 2, "--previews", 2)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    assert proc.stderr == ""
    with np.load(out / protocol.SEQUENCE_FILE) as seq:
        assert seq["source_frames"].tolist() == [1, 3, 5] and str(seq["source_path"]) == str(folder.resolve())
    written = media.open_source(out / protocol.FRAMES_DIR)
    assert [p.name for p in written.files] == [protocol.FRAME_FILE.format(i) for i in range(3)]
    for (_, got), k in zip(media.frames(written), (1, 3, 5), strict=True):
        assert np.abs(got.astype(int) - images[k]).mean() < 4  # JPEG of the very frame
    previews = sorted((out / protocol.PREVIEW_DIR).glob("*.png"))
    assert [p.name for p in previews] == ["00000.png", "00002.png"]
    shown = next(media.frames(media.open_source(previews[0])))[1]
    assert shown.shape == (preview.SIZE, 2 * preview.SIZE, 3)
    mesh_half, face_half = shown[:, preview.SIZE:].astype(int), shown[:, :preview.SIZE].astype(int)
    assert (np.abs(mesh_half - face_half).sum(axis=2) > 30).mean() > 0.2  # the mesh covers the face

    verbose = run_tracker("--input", folder / "000.png", "--output", tmp_path / "v", "--verbose")
    assert verbose.returncode == 0 and verbose.stderr.strip()  # what the quiet run kept out
