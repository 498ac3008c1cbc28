"""scikit-image's astronaut photograph through MediaPipe to a fitted demo head (the whole program,
``--model demo``: the demo head with its own MediaPipe embedding)."""

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("mediapipe")
pytest.importorskip("av")
skimage_data = pytest.importorskip("skimage.data")

from flame_blender_addon.core import tracker_protocol as protocol  # noqa: E402
from flame_blender_addon.core.sequence import read_sequence  # noqa: E402
from flame_blender_addon.tracking import media  # noqa: E402

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
