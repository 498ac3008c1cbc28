"""Shared bits of the benchmark scripts: the machine description and a FLAME-sized fixture."""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
_sandbox = Path(tempfile.mkdtemp(prefix="flame-bench-"))
os.environ.setdefault("BLENDER_USER_RESOURCES", str(_sandbox / "blender"))  # before bpy is imported
os.environ.setdefault("XDG_CACHE_HOME", str(_sandbox / "cache"))


def best_of(n: int, func) -> float:
    """The shortest of n timed calls of func(), in seconds."""
    times = []
    for _ in range(n):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def machine() -> str:
    """One line: CPU model, cores, Python, numpy and (where bpy is installed) Blender versions."""
    import numpy as np

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as info:
        cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    try:
        import bpy

        blender = f", Blender {bpy.app.version_string}"
    except ImportError:
        blender = ""
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}{blender}"


def flame_sized_model(folder: Path) -> Path:
    """Write a FLAME-sized model in the distributed pickle format; returns its path."""
    sys.path.insert(0, str(ROOT / "tests"))  # the test suite's model fixtures
    import legacy_pickle
    from synthetic_model import random_model_arrays

    return legacy_pickle.write_flame_pickle(folder / "generic_model.pkl", random_model_arrays(seed=1))
