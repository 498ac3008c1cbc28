"""scripts/measure_import.py, as the real-footage benchmark runs it: Blender-projected landmarks of the imported
head against the tracker's detections, in px and / IOD."""

import json
import subprocess
import sys
from pathlib import Path

import legacy_pickle
import numpy as np
from synthetic_model import random_model_arrays

from flame_blender_addon.core.camera import project_opencv
from flame_blender_addon.core.evaluation import sequence_vertices
from flame_blender_addon.core.model import load_model
from flame_blender_addon.core.sequence import fit_components, read_sequence

ROOT = Path(__file__).resolve().parents[2]
SHIFT_PX = 3.0  # the fake detections sit this far right of the exact projection


def test_measures_the_imported_head_against_the_detections(tmp_path):
    model_path = legacy_pickle.write_flame_pickle(tmp_path / "generic_model.pkl",
                                                  random_model_arrays(n_verts=300, n_faces=500, seed=2))
    model = load_model(model_path)
    rng = np.random.default_rng(3)
    T = 5
    shape = rng.normal(size=20)
    shape[1] = 20.0  # beyond the sliders: the import must still be exact
    np.savez(tmp_path / "flame_sequence.npz", shape=shape, expr=rng.normal(size=(T, 10)),
             rotation=rng.normal(scale=0.1, size=(T, 3)), neck_pose=np.zeros((T, 3)),
             jaw_pose=rng.normal(scale=0.05, size=(T, 3)), eyes_pose=np.zeros((T, 6)),
             translation=rng.normal(scale=0.01, size=(T, 3)), fps=np.array(25.0),
             K=np.array([[1000.0, 0, 320], [0, 1000.0, 240], [0, 0, 1]]), cam_R=np.diag([1.0, -1.0, -1.0]),
             cam_t=np.array([0.0, 0.0, 1.0]), image_size=np.array([480, 640]))
    seq = fit_components(read_sequence(tmp_path / "flame_sequence.npz"), 300, 100)
    L = 12
    face_idx = rng.integers(0, len(model.faces), L)
    bary = rng.dirichlet(np.ones(3), L)
    vertices = sequence_vertices(model, seq)  # (T, V, 3)
    points = np.einsum("tlkc,lk->tlc", vertices[:, model.faces[face_idx]], bary)
    exact = np.stack([project_opencv(points[t], seq.camera.K[t], seq.camera.R[t], seq.camera.t[t]) for t in range(T)])
    mp_index = np.arange(L)
    mp_index[[2, 5]] = (33, 263)
    conf = np.ones((T, L))
    conf[0, 7] = 0.0  # not detected: left out
    lmk = exact + [SHIFT_PX, 0.0]
    lmk[0, 7] = 1e6
    np.savez(tmp_path / "landmarks.npz", lmk=lmk, conf=conf, mp_index=mp_index, face_idx=face_idx, bary=bary)

    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "measure_import.py"), str(tmp_path),
                             "--model", str(model_path), "--json", str(tmp_path / "m.json")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    printed = result.stdout[result.stdout.find("\n{") + 1:] if not result.stdout.startswith("{") else result.stdout
    measured = json.loads(printed)  # after what Blender logs itself (5.1+: color management)
    assert measured == json.loads((tmp_path / "m.json").read_text())
    assert (measured["frames"], measured["landmarks"], measured["points"]) == (T, L, T * L - 1)
    assert abs(measured["px"]["median"] - SHIFT_PX) < 0.01 and abs(measured["px"]["max"] - SHIFT_PX) < 0.01
    iod = np.linalg.norm(exact[:, 5] - exact[:, 2], axis=-1)
    expected = np.delete(np.repeat(SHIFT_PX / iod, L), 7)  # every point of each frame, but (0, 7)
    assert abs(measured["iod"]["p95"] - np.percentile(expected, 95)) < 1e-4
    assert measured["max_abs_shape"] == 20.0
