"""core/ must import with bpy, mathutils and torch unavailable (numpy + stdlib only)."""

import subprocess
import sys
from pathlib import Path

import flame_blender_addon.core as core

MODULES = sorted(p.stem for p in Path(core.__file__).parent.glob("*.py") if p.stem != "__init__")


def test_every_core_module_imports_without_blender_or_torch():
    assert {"model", "lbs", "safe_pickle", "sequence", "camera", "rig"} <= set(MODULES)
    code = (
        "import sys\n"
        "for blocked in ('bpy', 'mathutils', 'torch', 'scipy', 'chumpy'):\n"
        "    sys.modules[blocked] = None\n"
        f"for name in {MODULES!r}:\n"
        "    __import__('flame_blender_addon.core.' + name)\n"
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
