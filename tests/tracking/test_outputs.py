"""What the tracker writes besides the sequence: landmarks.npz, the trimmed frame mapping, and the
program running from an installed copy of the package, away from the repository."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from scenes import write_inputs  # noqa: E402

from flame_blender_addon.core import tracker_protocol as protocol  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TRIM = ("--start", "5", "--end", "45", "--step", "2")


def track(*args, cwd=ROOT, env=None):
    proc = subprocess.run([sys.executable, "-m", "flame_blender_addon.tracking", "track", *map(str, args)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == protocol.EXIT_OK, proc.stdout[-2000:] + proc.stderr[-2000:]
    return [m for m in map(protocol.parse_line, proc.stdout.splitlines()) if m][-1]


def test_landmarks_npz_and_trimming(scene, tmp_path):
    paths = write_inputs(scene, tmp_path)
    common = ("--model", paths["model"], "--embedding", paths["embedding"], "--n-shape", 10, "--n-expr", 10,
              "--focal", scene.clip.focal)
    result = track(*common, "--landmarks", paths["landmarks"], "--output", tmp_path / "out", *TRIM)
    kept = np.arange(5, 45, 2)
    assert result.data["frames"] == len(kept) and result.data["frames_dir"] is None
    assert Path(result.data["landmarks_path"]) == (tmp_path / "out" / protocol.LANDMARKS_FILE).resolve()
    with np.load(result.path) as seq:
        assert seq["source_frames"].tolist() == kept.tolist()
        assert seq["frame_ids"].tolist() == list(range(len(kept)))
        assert float(seq["fps"]) == 12.5 and str(seq["source_path"]) == ""  # 25 fps assumed, every 2nd frame
        assert seq["face_found"].tolist() == [not 20 <= k <= 26 for k in kept]  # frames 20-26 have no face
        first = {k: seq[k] for k in ("shape", "expr", "rotation", "translation")}
    emb = scene.embedding
    with np.load(result.data["landmarks_path"]) as lmk:
        assert sorted(lmk.files) == ["bary", "conf", "face_idx", "fps", "image_size", "lmk", "mp_index",
                                     "source_frames"]
        np.testing.assert_array_equal(lmk["lmk"], scene.track.points[kept][:, emb.points])
        np.testing.assert_array_equal(lmk["conf"], scene.track.conf[kept][:, emb.points])
        np.testing.assert_array_equal(lmk["mp_index"], emb.points)
        np.testing.assert_array_equal(lmk["face_idx"], emb.face_idx)
        np.testing.assert_array_equal(lmk["bary"], emb.bary)
        assert lmk["image_size"].tolist() == [512, 512] and lmk["source_frames"].tolist() == kept.tolist()

    # landmarks.npz is a --landmarks file for the same model and embedding: the same fit again
    again = track(*common, "--landmarks", result.data["landmarks_path"], "--output", tmp_path / "again")
    with np.load(again.path) as seq:
        for key, value in first.items():
            np.testing.assert_allclose(seq[key], value, atol=1e-9)


def test_trimming_that_keeps_nothing_is_an_error(scene, tmp_path):
    paths = write_inputs(scene, tmp_path)
    proc = subprocess.run([sys.executable, "-m", "flame_blender_addon.tracking", "track", "--model", paths["model"],
                           "--embedding", paths["embedding"], "--landmarks", paths["landmarks"], "--output",
                           tmp_path / "out", "--start", "60"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == protocol.EXIT_ERROR
    assert "keep none of its 60 frames" in protocol.parse_line(proc.stdout.splitlines()[-1]).message
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def test_runs_from_an_installed_package_anywhere(scene, tmp_path):
    """``pip install .`` (here into a folder, offline, from a copy of the sources) then
    ``python -m flame_blender_addon.tracking`` from an unrelated folder."""
    pytest.importorskip("setuptools")
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "flame_blender_addon", source / "flame_blender_addon",
                    ignore=shutil.ignore_patterns("__pycache__"))
    site = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                          "--no-index", "--target", str(site), str(source)], capture_output=True, text=True,
                         timeout=300)
    if pip.returncode and "bdist_wheel" in pip.stderr + pip.stdout:
        pytest.skip("this Python's setuptools cannot build wheels offline")
    assert pip.returncode == 0, pip.stderr[-2000:]
    shutil.rmtree(source)  # nothing may come from the sources any more
    paths = write_inputs(scene, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run([sys.executable, "-c", "import flame_blender_addon; print(flame_blender_addon.__file__)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60)
    assert Path(where.stdout.strip()).is_relative_to(site)
    result = track("--model", paths["model"], "--embedding", paths["embedding"], "--landmarks", paths["landmarks"],
                   "--output", "out", "--n-shape", 5, "--n-expr", 5, cwd=elsewhere, env=env)
    assert Path(result.path) == (elsewhere / "out" / protocol.SEQUENCE_FILE).resolve()
