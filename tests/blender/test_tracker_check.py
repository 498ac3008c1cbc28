"""Preferences > Check tracker: what the tracker's Python has, or the exact error and the fix."""

import os
import sys
import tomllib
from pathlib import Path

import bpy
import pytest

from flame_blender_addon.blender import tracker_check

ROOT = Path(__file__).resolve().parents[2]


def test_requirements_are_the_tracker_extra_of_pyproject():
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["tracker"]
    assert set(tracker_check.REQUIREMENTS) == set(extra) - {"scikit-image"}  # the extra's test-only photo


def test_a_python_without_torch_names_what_is_missing_and_the_install_command():
    result = tracker_check.check_tracker(sys.executable)  # this test's Python: bpy, no torch
    assert not result.ok
    assert result.lines[0].startswith(f"Python {sys.version.split()[0]} ({sys.executable})")
    assert result.lines[1:] == ["not installed: torch, mediapipe, av"]
    assert result.fix == f'"{sys.executable}" -m pip install "torch>=2.1" "mediapipe==0.10.21" "av>=12" "numpy<2"'
    unset = tracker_check.check_tracker(sys.executable, configured=False)
    assert unset.fix == tracker_check.NEW_ENVIRONMENT and "python3.11 -m venv" in unset.fix


def test_a_missing_or_broken_python_is_reported(tmp_path):
    assert tracker_check.check_tracker(str(tmp_path / "python")).lines == [f"{tmp_path / 'python'}: no such file"]
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\necho 'error: no python here' >&2\nexit 7\n")
    broken.chmod(0o755)
    result = tracker_check.check_tracker(str(broken))
    assert result.lines == [f"{broken} failed (exit code 7)", "error: no python here"] and not result.ok


def test_operator_reports_the_fix(addon_preferences):
    addon_preferences.python = sys.executable
    message = r"The tracker cannot run: not installed: torch, mediapipe, av\. Fix: \".*\" -m pip install"
    with pytest.raises(RuntimeError, match=message):
        bpy.ops.flame.check_tracker()
    assert not tracker_check.LAST.pop(sys.executable).ok


@pytest.mark.skipif(not os.environ.get("FLAME_TRACKER_PYTHON"),
                    reason="FLAME_TRACKER_PYTHON (a Python with torch) not set; scripts/test.sh sets it")
def test_the_tracker_environment_passes():
    result = tracker_check.check_tracker(os.environ["FLAME_TRACKER_PYTHON"])
    assert result.ok and result.fix == ""
    assert all(f"{name} " in result.lines[0] for name in ("torch", "mediapipe", "av"))
    assert result.lines[1].startswith("CUDA: ")
