"""From clips and their parsed options to :class:`~.stages.ClipJob` s, and which clips a re-run skips."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..core.errors import FlameError
from . import layout
from .manifest import Clip
from .stages import ClipJob

SCENE_KEYS = ("model", "fps", "target_fps", "camera", "frame_start", "eyelids", "render", "engine", "samples",
              "device", "resolution", "mp4", "overlay", "side_by_side", "formats")
BLENDER_FLAGS = ("--background", "--factory-startup", "--python-exit-code", "1", "--python-expr")


def blender_command(executable: str | None) -> tuple[str, ...]:
    """How a worker runs Python code in Blender: ``(python, "-c")`` for a Python with the bpy wheel,
    ``(blender, --background, ..., --python-expr)`` for a Blender executable. Default: the Blender
    running this command, else this Python if it has bpy, else ``blender`` on PATH."""
    if executable is None:
        bpy = sys.modules.get("bpy")
        if bpy is not None and bpy.app.binary_path:
            return (bpy.app.binary_path, *BLENDER_FLAGS)
        if importlib.util.find_spec("bpy") is not None:
            return (sys.executable, "-c")
        executable = shutil.which("blender")
        if executable is None:
            raise FlameError("no Blender to run the clips in: pass --blender (a Blender executable, or a Python "
                             "with the bpy wheel)")
    try:
        version = subprocess.run([executable, "--version"], capture_output=True, text=True, timeout=120).stdout
    except (OSError, subprocess.TimeoutExpired) as err:
        raise FlameError(f"--blender {executable}: cannot run it ({err})") from None
    if version.startswith("Blender"):
        return (executable, *BLENDER_FLAGS)
    if version.startswith("Python"):
        return (executable, "-c")
    raise FlameError(f"--blender {executable}: neither a Blender executable nor a Python")


def default_tracker_python() -> str | None:
    """This Python when it has torch (the tracker's dependency), else None."""
    return sys.executable if importlib.util.find_spec("torch") is not None else None


def clip_job(clip: Clip, options: Any, out: Path, blender: tuple[str, ...], tracker_python: str | None,
             run: str = "") -> ClipJob:
    """The job of one clip in batch run ``run``; ``options`` are its parsed clip options (the batch
    command's, overridden by the manifest's per-clip values)."""
    scene = {k: getattr(options, k) for k in SCENE_KEYS}
    scene = {k: str(v.resolve()) if isinstance(v, Path) else v for k, v in scene.items()}  # for any worker's cwd
    tracker = None
    if clip.tracked:
        if tracker_python is None:
            raise FlameError(f"{clip.where}: this clip needs tracking: pass --tracker-python, a Python with "
                             "torch (pip install '.[tracker]')")
        tracker = {"python": tracker_python, "model": scene["model"] or "demo",
                   "source": str(clip.input) if clip.kind != "landmarks" else "",
                   "landmarks": str(clip.input) if clip.kind == "landmarks" else "",
                   "embedding": str(options.embedding.resolve()) if options.embedding else "", "focal": options.focal}
    inputs = [clip.input] + [Path(p) for p in (scene["model"], scene["eyelids"], options.embedding) if p]
    settings = {"scene": scene, "tracker": {k: v for k, v in (tracker or {}).items() if k != "python"}}
    return ClipJob(name=clip.name, out=str(out.resolve()), kind=clip.kind, input=str(clip.input),
                   fingerprint=layout.fingerprint(inputs, settings), blender=blender, scene=scene, tracker=tracker,
                   run=run)


def resumed(job: ClipJob, force: bool, retry_failed: bool) -> dict[str, Any] | None:
    """The clip's earlier record when a re-run skips it (finished, same inputs and options), else None."""
    record = None if force else layout.previous(Path(job.out), job.name)
    return {**record, "resumed": True} if layout.is_finished(record, job.fingerprint, retry_failed) else None
