"""MediaPipe landmarks of a clip: the face mesh follows the face from frame to frame, and the
detector finds it again where it was lost (scikit-image's astronaut photograph as footage)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mediapipe")
skimage_data = pytest.importorskip("skimage.data")

from flame_blender_addon.tracking import detect  # noqa: E402
from flame_blender_addon.tracking.landmarks import EYE_CORNERS  # noqa: E402

SHIFT = 3  # pixels a frame
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def photo():
    return skimage_data.astronaut()


def test_followed_frames_move_with_the_face(photo):
    """The photo slides right; the mesh finds the face and follows it, and its points move with the
    image and agree with a detection of every frame on its own."""
    frames = [np.roll(photo, SHIFT * i, axis=1) for i in range(6)]
    track = detect.detect(iter(frames), 25.0, len(frames))
    conf = track.conf[:, 0]
    assert (conf == detect.TRACKED).all()
    with detect.Detector() as detector:
        alone = np.stack([detector.detect(rgb)[0] for rgb in frames])
    a, b = EYE_CORNERS
    iod = np.linalg.norm(alone[0, b] - alone[0, a])
    moved = track.points - track.points[0] - np.array([[SHIFT * i, 0.0] for i in range(len(frames))])[:, None]
    assert np.median(np.linalg.norm(moved, axis=-1)) < 0.01 * iod
    assert np.median(np.linalg.norm(track.points - alone, axis=-1)) < 0.02 * iod  # as good as detecting each


def test_a_lost_face_is_found_again(photo):
    frames = [photo, np.zeros_like(photo), photo, photo]
    track = detect.detect(iter(frames), 25.0, len(frames))
    found = np.isfinite(track.points).all(axis=(1, 2))
    assert found.tolist() == [True, False, True, True]
    assert track.conf[1].max() == 0
    width = np.ptp(track.points[0][:, 0])
    assert np.median(np.linalg.norm(track.points[3] - track.points[0], axis=-1)) < 0.01 * width


def test_a_face_too_small_for_the_mesh_is_found_by_the_detector(photo):
    """In a large frame the mesh's own short-range detector misses the face; the full-range
    detector's crop finds it, with the detector's confidence."""
    frame = np.zeros((1024, 1024, 3), np.uint8)
    frame[300:812, 200:712] = photo
    track = detect.detect(iter([frame, frame]), 25.0, 2)
    assert (track.conf[:, 0] >= 0.5).all() and (track.conf[:, 0] < detect.TRACKED).all()
    with detect.Detector() as detector:
        alone = detector.detect(photo)[0] + (200, 300)
    width = np.ptp(alone[:, 0])
    assert np.median(np.linalg.norm(track.points - alone, axis=-1)) < 0.02 * width


MEDIAPIPE_IN_A_FRESH_PYTHON = """
import sys
from flame_blender_addon.tracking import detect
solutions = detect._solutions()
print(sorted(name for name in detect.DRAWING_MODULES if name in sys.modules))
print(callable(solutions.drawing_utils.plt.figure), type(sys.modules["matplotlib.pyplot"]).__name__)
"""


def test_mediapipe_starts_without_its_drawing_modules_which_load_when_used():
    pytest.importorskip("matplotlib")
    proc = subprocess.run([sys.executable, "-c", MEDIAPIPE_IN_A_FRESH_PYTHON], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # none imported by the start; the first use of mediapipe's plotting imports the real pyplot
    assert proc.stdout.splitlines() == ["[]", "True module"]
