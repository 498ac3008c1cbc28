"""core/ and demo/ must import with bpy, mathutils and torch unavailable (numpy + stdlib only)."""

import subprocess
import sys
from pathlib import Path

import flame_blender_addon.core as core

PACKAGE_DIR = Path(core.__file__).resolve().parents[1]
MODULES = sorted(".".join(p.relative_to(PACKAGE_DIR).with_suffix("").parts)
                 for folder in ("core", "demo") for p in (PACKAGE_DIR / folder).rglob("*.py"))


def test_every_core_module_imports_without_blender_or_torch():
    assert {"core.model", "core.lbs", "core.safe_pickle", "core.sequence", "core.camera", "core.rig",
            "core.formats.npz", "core.formats.metrical", "demo.head"} <= set(MODULES)
    code = (
        "import sys\n"
        "for blocked in ('bpy', 'mathutils', 'torch', 'scipy', 'chumpy'):\n"
        "    sys.modules[blocked] = None\n"
        f"for name in {MODULES!r}:\n"
        "    __import__('flame_blender_addon.' + name.removesuffix('.__init__'))\n"
        "print('ok')\n"
    )
    root = Path(core.__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_package_init_does_not_import_blender():
    code = "import sys; sys.modules['bpy'] = None; import flame_blender_addon; print('ok')"
    root = Path(core.__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
