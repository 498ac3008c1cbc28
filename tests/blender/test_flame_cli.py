"""scripts/flame_cli.py end to end, as a user runs it (a separate process with the bpy wheel)."""

import subprocess
import sys
from pathlib import Path

import pytest

CLI = Path(__file__).resolve().parents[2] / "scripts" / "flame_cli.py"


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, str(CLI), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def test_demo_writes_blend_preview_and_exports(tmp_path):
    out = tmp_path / "demo"
    result = cli("demo", "--output", out, "--frames", "3", "--resolution", "32", "--n-shape", "10", "--n-expr", "20")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["demo.blend", "frames", "head.glb", "head_unity.fbx",
                                                       "head_unreal.fbx", "preview.mp4"]
    assert sorted(p.name for p in (out / "frames").iterdir()) == ["0001.png", "0002.png", "0003.png"]
    assert (out / "preview.mp4").stat().st_size > 0 and (out / "frames" / "0002.png").read_bytes()[:4] == b"\x89PNG"
    assert "render (workbench)" in result.stdout and "eta" in result.stdout

    rendered = tmp_path / "rendered"
    result = cli("render", out / "demo.blend", "--output", rendered, "--frames", "2:3", "--resolution", "24",
                 "--engine", "CYCLES", "--samples", "1")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (rendered / "frames").iterdir()) == ["0002.png", "0003.png"]


def test_build_and_import_write_blend_files(tmp_path, small_model_file):
    import numpy as np
    from tracker_files import vhap_arrays

    result = cli("build", small_model_file, "--output", tmp_path / "head.blend", "--n-shape", "5", "--n-expr", "5")
    assert result.returncode == 0 and (tmp_path / "head.blend").is_file(), result.stderr
    arrays = vhap_arrays(np.random.default_rng(0), 4, n_verts=300)
    np.savez(tmp_path / "flame_param.npz", **{k: v for k, v in arrays.items() if k != "static_offset"})
    result = cli("import", tmp_path / "flame_param.npz", "--model", small_model_file,
                 "--output", tmp_path / "anim.blend")
    assert result.returncode == 0 and (tmp_path / "anim.blend").is_file(), result.stderr


@pytest.mark.parametrize("args, code, message", [
    (["bogus"], 2, "invalid choice: 'bogus'"),
    (["build", "missing.pkl", "--output", "{tmp}/out/head.blend"], 1, "missing.pkl: file not found"),
    (["render", "missing.blend", "--output", "{tmp}/out"], 1, "missing.blend: no such .blend file"),
    (["demo", "--output", "{tmp}/a_file/demo"], 1, "cannot write there"),
    (["render", "x.blend", "--output", "{tmp}/o", "--frames", "9:2"], 2, "LAST is before FIRST"),
])
def test_bad_input_is_one_line_and_leaves_nothing(tmp_path, args, code, message):
    (tmp_path / "a_file").write_text("in the way")
    result = cli(*[a.format(tmp=tmp_path) for a in args])
    assert result.returncode == code
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
