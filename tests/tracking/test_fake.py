"""The stand-in tracker: same protocol, valid output, failure and hang on demand (no torch)."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from flame_blender_addon.core import tracker_protocol as protocol

FAKE_TRACKER = Path(__file__).resolve().parents[1] / "fake_tracker.py"


def run_fake(*args, timeout=30):
    proc = subprocess.run([sys.executable, str(FAKE_TRACKER), *args],
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    messages = [m for m in map(protocol.parse_line, proc.stdout.splitlines()) if m is not None]
    return proc.returncode, messages


def test_fake_writes_a_sequence_the_core_reader_accepts(tmp_path):
    rc, messages = run_fake("--output", str(tmp_path), "--frames", "7", "--delay", "0", "--model", "ignored.pkl")
    assert rc == protocol.EXIT_OK
    assert not any(m.raw for m in messages)
    fractions = [m.fraction for m in messages if m.type == "progress"]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    result = messages[-1]
    assert result.type == "result" and Path(result.path) == tmp_path / protocol.SEQUENCE_FILE
    with np.load(result.path) as npz:
        assert npz["expr"].shape == (7, 10) and npz["rotation"].shape == (7, 3) and npz["K"].shape == (3, 3)
        assert float(npz["fps"]) == 25.0 and npz["image_size"].tolist() == [256, 256]
    from flame_blender_addon.core.sequence import read_sequence

    seq = read_sequence(result.path)
    assert seq.n_frames == 7 and seq.camera is not None
    assert os.listdir(tmp_path) == [protocol.SEQUENCE_FILE]


def test_fake_failure_leaves_nothing(tmp_path):
    rc, messages = run_fake("--output", str(tmp_path), "--fail-after", "2", "--delay", "0")
    assert rc == protocol.EXIT_ERROR
    assert [m.type for m in messages][-1] == "error" and sum(m.type == "progress" for m in messages) == 2
    assert os.listdir(tmp_path) == []


def test_fake_hang_can_be_killed(tmp_path):
    proc = subprocess.Popen([sys.executable, str(FAKE_TRACKER), "--output", str(tmp_path),
                             "--hang"], stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    first = [protocol.parse_line(proc.stdout.readline()) for _ in range(2)]
    assert [m.type for m in first] == ["log", "progress"]
    proc.send_signal(signal.SIGTERM if sys.platform == "win32" else signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdout.close()
    assert proc.returncode != 0
    assert not (tmp_path / protocol.SEQUENCE_FILE).exists()
