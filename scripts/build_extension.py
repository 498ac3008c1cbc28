"""Build the installable extension zip and validate it with Blender's own extension tool.

    python scripts/build_extension.py --output-dir dist

Stages ``flame_blender_addon/`` plus the top-level ``blender_manifest.toml`` (Blender wants it at
the zip root, beside ``__init__.py``), then runs ``blender_ext.py validate`` and ``build``. The
tool ships inside the ``bpy`` wheel and runs with plain Python (no bpy import); a ``blender``
executable on PATH works too. Prints the zip's path.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "flame_blender_addon"


def extension_tool() -> list[str]:
    """The command that runs Blender's extension CLI (``... validate DIR`` / ``... build ...``)."""
    spec = importlib.util.find_spec("bpy")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            found = sorted(Path(location).glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
            if found:
                return [sys.executable, str(found[-1])]
    blender = shutil.which("blender")
    if blender:
        return [blender, "--factory-startup", "--command", "extension"]
    raise SystemExit("error: Blender's extension tool not found: install the bpy wheel "
                     "(pip install bpy) or put a Blender >= 4.2 executable on PATH")


def stage(target: Path) -> Path:
    """Copy the package and manifest into ``target`` (no caches) and return it."""
    shutil.copytree(PACKAGE, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy2(ROOT / "blender_manifest.toml", target / "blender_manifest.toml")
    return target


def build(output_dir: Path) -> Path:
    """Validate and build; returns the path of the zip written to ``output_dir``."""
    output_dir.mkdir(parents=True, exist_ok=True)
    tool = extension_tool()
    with tempfile.TemporaryDirectory() as tmp:
        source = stage(Path(tmp) / "flame_head")
        before = set(output_dir.glob("*.zip"))
        for args in (["validate", str(source)],
                     ["build", "--source-dir", str(source), "--output-dir", str(output_dir)]):
            result = subprocess.run(tool + args, capture_output=True, text=True)
            if result.returncode != 0:
                raise SystemExit(f"error: extension {args[0]} failed:\n{result.stdout}{result.stderr}")
    built = sorted(set(output_dir.glob("*.zip")) - before) or sorted(output_dir.glob("flame_head-*.zip"))
    return built[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=ROOT / "dist", help="where the zip goes")
    args = parser.parse_args(argv)
    print(build(args.output_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
