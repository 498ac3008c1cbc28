"""The Blender side of one clip, run in a Blender child process by :func:`.stages.build`.

It runs the same steps as the single-clip commands, in one process: ``import`` (sequence onto the
user's model, else the demo head) -> ``<clip>.blend``, then ``render`` (``frames/``, ``preview.mp4``)
and ``export`` (``export/``) from that .blend, all into the clip's staging folder. The outcome goes to
``.result.json`` there: status (``done``, ``failed`` for the clip's own problems, ``error`` for anything
unexpected), message, frames and the seconds of each step.
"""

from __future__ import annotations

import argparse
import json
import time
import traceback
from pathlib import Path
from typing import Any

from ..cli import commands, console
from ..core.errors import FlameError
from . import layout
from .stages import RESULT_FILE

IMPORT_KEYS = ("model", "fps", "target_fps", "camera", "frame_start", "eyelids")
RENDER_KEYS = ("engine", "samples", "device", "resolution", "mp4", "overlay", "side_by_side")


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _retarget(bpy, blend: Path, stage: Path, final: Path) -> None:
    """Point the heads' ``sequence_path`` at the committed folder instead of the staging one."""
    from ..blender.head import scene_heads

    commands.open_blend(bpy, blend)
    for armature in scene_heads(bpy.context.scene):
        path = Path(armature.flame.sequence_path)
        if path.is_relative_to(stage):
            armature.flame.sequence_path = str(final / path.relative_to(stage))
    commands.save_blend(bpy, blend)


def run(settings: dict[str, Any], out: console.Console) -> dict[str, Any]:
    """The clip's steps; returns what :func:`main` writes to ``.result.json``."""
    stage, final = Path(settings["stage"]), Path(settings["final"])
    blend = stage / f"{settings['name']}.blend"
    timings: dict[str, float] = {}
    started = time.perf_counter()
    options = {k: settings.get(k) for k in IMPORT_KEYS}
    commands.cmd_import(argparse.Namespace(sequence=Path(settings["sequence"]), output=blend, **{
        **options, "model": _path(options["model"]), "eyelids": _path(options["eyelids"])}), out)
    bpy = commands.blender()
    bpy.context.preferences.filepaths.save_version = 0  # no .blend1 when the .blend is saved again
    _retarget(bpy, blend, stage, final)
    scene = bpy.context.scene
    frames = scene.frame_end - scene.frame_start + 1
    timings["import"] = time.perf_counter() - started
    if settings.get("render"):
        started = time.perf_counter()
        commands.cmd_render(argparse.Namespace(blend=blend, output=stage, frames=None, source=None, **{
            k: settings.get(k) for k in RENDER_KEYS}), out)
        timings["render"] = time.perf_counter() - started
    if settings.get("formats"):
        started = time.perf_counter()
        commands.cmd_export(argparse.Namespace(blend=blend, output=stage / "export", frames=None, target="",
                                               formats=settings["formats"]), out)
        timings["export"] = time.perf_counter() - started
    return {"status": layout.DONE, "frames": frames, "timings": {k: round(v, 3) for k, v in timings.items()}}


def main(job_file: str) -> None:
    """Run the clip described by ``job_file`` (JSON) and leave: without the bpy module's shutdown."""
    settings = json.loads(Path(job_file).read_text(encoding="utf-8"))
    out = console.Console(f"batch {settings['name']}", verbose=True)  # our stdout and stderr are the clip's log
    try:
        result = run(settings, out)
    except (console.CliError, FlameError) as err:
        result = {"status": layout.FAILED, "message": str(err)}
    except Exception as err:  # noqa: BLE001 - an OSError or a bug: the traceback goes to the clip's log
        traceback.print_exc()
        result = {"status": layout.ERROR, "message": f"{type(err).__name__}: {err}"}
    layout.write_json(Path(settings["stage"]) / RESULT_FILE, result)
    console.leave(0)
