"""Shared test setup: keep Blender's user config and caches out of the user's home.

Blender reads these variables when ``bpy`` is first imported, so they are set here, before any
test module imports it.
"""

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

_sandbox = Path(tempfile.mkdtemp(prefix="flame-tests-"))
atexit.register(shutil.rmtree, _sandbox, ignore_errors=True)
os.environ["BLENDER_USER_RESOURCES"] = str(_sandbox / "blender")
os.environ["XDG_CACHE_HOME"] = str(_sandbox / "cache")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def pytest_sessionfinish(session, exitstatus):
    session.config.flame_exitstatus = int(exitstatus)


def pytest_unconfigure(config):
    """When a test imported bpy, end the process once pytest has reported: the bpy module can crash in
    its own interpreter shutdown (seen on 4.2 after FBX/glTF imports), which would turn a green run
    into exit 139."""
    if "bpy" not in sys.modules:
        return
    shutil.rmtree(_sandbox, ignore_errors=True)  # atexit does not run after os._exit
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(getattr(config, "flame_exitstatus", 0))
