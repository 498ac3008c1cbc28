"""Launch the add-on's command line (:mod:`flame_blender_addon.cli`) from a source checkout.

    python scripts/flame_cli.py demo --output out/demo                                      # bpy wheel
    blender --background --factory-startup --python scripts/flame_cli.py -- demo --output out/demo

An installed extension needs no launcher: ``blender -c flame demo --output out/demo``. Same
subcommands and options everywhere (``--help``).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import NoReturn

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from flame_blender_addon.cli import main  # noqa: E402

PROG = "flame_cli.py"


def script_args(argv: list[str]) -> list[str]:
    """The arguments meant for this script: all but the script name when Python runs it
    (``python flame_cli.py track clip.mp4 --python PATH``), else the ones after ``--`` (a Blender
    executable runs it: ``blender --background --python flame_cli.py -- demo ...``, argv[0] is Blender)."""
    if argv and Path(argv[0]).resolve() == Path(__file__).resolve():
        return argv[1:]
    return argv[argv.index("--") + 1:] if "--" in argv else []


def _exit(code: int) -> NoReturn:
    """Leave without the bpy module's interpreter shutdown, which can hang or crash after rendering
    (a static destructor waits on a thread), and remove Blender's session temp folder it would have."""
    sys.stdout.flush()
    sys.stderr.flush()
    bpy = sys.modules.get("bpy")
    if bpy is not None and not bpy.app.binary_path:
        tempdir = Path(bpy.app.tempdir)
        if tempdir.name.startswith("blender_"):
            shutil.rmtree(tempdir, ignore_errors=True)
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    _exit(main(script_args(sys.argv), PROG))
