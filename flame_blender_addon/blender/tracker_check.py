"""*Preferences > Check tracker*: run the tracker's Python once and say what it has, or what to fix.

The probe is a few lines of standard-library Python run in that interpreter: it reports the
versions of torch, mediapipe and PyAV, whether torch sees CUDA, and whether this add-on's
tracking package is importable there. Nothing is installed; the report names the one command
that would fix what is missing.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .tracker_job import ADDON_DIR, tracker_env

REQUIREMENTS = ("torch>=2.1", "mediapipe==0.10.21", "av>=12", "numpy<2")
"""What the tracker needs (pyproject.toml's ``tracker`` extra, less its test-only scikit-image)."""

_PROBE = """
import importlib.metadata as md, importlib.util, json, sys
info = {"python": sys.version.split()[0], "versions": {}, "errors": []}
missing = []
for dist in ("torch", "mediapipe", "av"):
    try:
        info["versions"][dist] = md.version(dist)
    except md.PackageNotFoundError:
        missing.append(dist)
if missing:
    info["errors"].append("not installed: " + ", ".join(missing))
if "torch" in info["versions"]:
    try:
        import torch
        info["cuda"] = torch.cuda.is_available()
        info["gpu"] = torch.cuda.get_device_name(0) if info["cuda"] else ""
    except Exception as err:
        info["errors"].append("import torch failed: %s: %s" % (type(err).__name__, err))
if importlib.util.find_spec(sys.argv[1]) is None:
    info["errors"].append("the add-on's tracking package %s is not importable" % sys.argv[1])
print(json.dumps(info))
"""


@dataclass
class TrackerCheck:
    """The outcome: ``ok``, lines to show, and the command that fixes a failure ('' when ok)."""

    ok: bool
    lines: list[str] = field(default_factory=list)
    fix: str = ""


LAST: dict[str, TrackerCheck] = {}
"""The last check per Python path, shown in the preferences."""


def _pip_install(python: str) -> str:
    return f'"{python}" -m pip install ' + " ".join(f'"{r}"' for r in REQUIREMENTS)


NEW_ENVIRONMENT = ("python3.11 -m venv ~/flame-tracker && " + _pip_install("$HOME/flame-tracker/bin/python")
                   + ", then set Tracker Python to ~/flame-tracker/bin/python")


def check_tracker(python: str, configured: bool = True, timeout: float = 180.0) -> TrackerCheck:
    """Run the probe in ``python`` (importing torch can take a while on first use). ``configured``:
    it is the user's Tracker Python preference, so the fix installs into it; else the fix makes one."""
    fix = _pip_install(python) if configured else NEW_ENVIRONMENT
    if not Path(python).is_file():
        return TrackerCheck(False, [f"{python}: no such file"], NEW_ENVIRONMENT)
    try:
        done = subprocess.run([python, "-c", _PROBE, f"{ADDON_DIR.name}.tracking"], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout, env=tracker_env())
    except (OSError, subprocess.TimeoutExpired) as err:
        return TrackerCheck(False, [f"{python} could not be run: {err}"], NEW_ENVIRONMENT)
    try:
        info = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        tail = [line for line in done.stderr.strip().splitlines() if line.strip()][-3:]
        return TrackerCheck(False, [f"{python} failed (exit code {done.returncode})", *tail], NEW_ENVIRONMENT)
    lines = [f"Python {info['python']} ({python}): "
             + (", ".join(f"{k} {v}" for k, v in info["versions"].items()) or "no tracker packages")]
    if "cuda" in info:
        lines.append(f"CUDA: {info['gpu']}" if info["cuda"] else "CUDA: not available (tracking runs on the CPU)")
    if info["errors"]:
        return TrackerCheck(False, lines + info["errors"], fix)
    return TrackerCheck(True, lines)
