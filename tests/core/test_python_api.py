"""The README's "Python API" example runs as written: load_model and read_sequence are the documented entry points."""

import re
from pathlib import Path

import legacy_pickle
import numpy as np
from synthetic_model import random_model_arrays
from tracker_files import vhap_arrays

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    section = README.read_text(encoding="utf-8").split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_python_api_example_runs(tmp_path, monkeypatch, capsys):
    legacy_pickle.write_flame_pickle(tmp_path / "generic_model.pkl", random_model_arrays(n_verts=300, n_faces=500))
    (tmp_path / "tracked").mkdir()
    np.savez(tmp_path / "tracked" / "tracked_flame_params.npz", **vhap_arrays(np.random.default_rng(0), 6, n_verts=300))
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(readme_example(), str(README), "exec"), namespace)
    assert capsys.readouterr().out.split() == ["6", "25.0", "VHAP", "(6,", "300,", "3)"]
    assert namespace["vertices"].shape == (6, 300, 3) and np.isfinite(namespace["vertices"]).all()
