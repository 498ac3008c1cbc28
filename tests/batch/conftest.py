"""Clips for the batch tests, made here: demo-head sequences, synthetic landmarks, a corrupt file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flame_blender_addon.core.formats.npz import write_sequence_npz
from flame_blender_addon.demo.embedding import demo_embedding_arrays
from flame_blender_addon.demo.head import demo_model
from flame_blender_addon.demo.performance import demo_performance
from flame_blender_addon.tracking.landmarks import embedding_from_arrays

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "scripts" / "flame_cli.py"
TRACKER_PYTHON = os.environ.get("FLAME_TRACKER_PYTHON", "")
sys.path.insert(0, str(ROOT / "tests" / "tracking"))
import synthetic  # noqa: E402  (tests/tracking/synthetic.py: landmarks of a known motion)

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"


@pytest.fixture(scope="module")
def addon():
    """The add-on registered in this process, for reading the batch's .blend files."""
    import flame_blender_addon

    flame_blender_addon.register()
    yield
    flame_blender_addon.unregister()


def write_sequence(path: Path, first: int, frames: int) -> Path:
    """A slice of the demo performance (camera at 32x32 pixels) as flame_sequence.npz."""
    seq = demo_performance(n_shape=20, n_expr=20, image_size=(32, 32)).take(slice(first, first + frames))
    return write_sequence_npz(path, seq)


def write_landmarks(path: Path, frames: int, seed: int = 0) -> Path:
    """Landmarks of the demo head in a smooth made-up motion, as the tracker's --landmarks input."""
    model = demo_model()
    embedding = embedding_from_arrays(demo_embedding_arrays(), "demo embedding")
    clip = synthetic.smooth_clip(frames, 10, 10, seed=seed)
    track = synthetic.observed_track(model, embedding, clip, 0.5, (), seed=seed + 1)
    np.savez(path, lmk=track.points, conf=track.conf, image_size=np.array(track.image_size))
    return path


# A shell's background job (`nohup scripts/test.sh &`) starts with SIGINT ignored, and a child
# inherits an ignored signal, so the Ctrl-C test's batch would never see it: give the children a
# terminal's default.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def cli(*args, **popen) -> subprocess.Popen:
    """``flame_cli.py ARGS`` in its own process group (a terminal's Ctrl-C reaches the whole group)."""
    return subprocess.Popen([sys.executable, str(CLI), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, start_new_session=True, **popen)


def processes_using(path: Path) -> list[str]:
    """Command lines of running processes that mention ``path`` (children left behind would)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(path) in cmdline:
            found.append(cmdline)
    return found
