"""Launch the add-on's command line (:mod:`flame_blender_addon.cli`) from a source checkout.

    python scripts/flame_cli.py demo --output out/demo                                      # bpy wheel
    blender --background --factory-startup --python scripts/flame_cli.py -- demo --output out/demo

An installed extension needs no launcher: ``blender -c flame demo --output out/demo``. Same
subcommands and options everywhere (``--help``).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from flame_blender_addon.cli import main  # noqa: E402
from flame_blender_addon.cli.console import leave  # noqa: E402

PROG = "flame_cli.py"


def script_args(argv: list[str], blender: bool) -> list[str]:
    """The arguments meant for this script: after ``--`` when a Blender executable runs it
    (``blender --background --python flame_cli.py -- demo ...``), else all but the script name
    (``track --python ...`` is then this script's own option, not Blender's)."""
    if blender:
        return argv[argv.index("--") + 1:] if "--" in argv else []
    return argv[1:]


def run_by_blender() -> bool:
    """A Blender executable runs this script: bpy is imported already, from a Blender binary."""
    bpy = sys.modules.get("bpy")
    return bpy is not None and bool(bpy.app.binary_path)


if __name__ == "__main__":
    leave(main(script_args(sys.argv, run_by_blender()), PROG))
