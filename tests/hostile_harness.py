"""Run the project's loaders on untrusted files in a child process, so a crash fails a test, not the run.

The child (``python tests/hostile_harness.py SPEC.json``) sets a memory limit (RLIMIT_AS) before
importing numpy, then runs each case with an alarm and prints one JSON line when a case starts and
one when it ends: the outcome (``ok``, ``error``, ``internal``, ``foreign``, ``timeout``), the error
class and message, warnings, the peak RSS so far, and whether an allowlisted function or stub class
was modified. The parent (:func:`run_cases`) restarts the child after the case that killed it (a
signal, or silence past the case's timeout) and reports that case as ``crash`` or ``hang``.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MEMORY_MB = 2048  # the child's address-space limit: far above any hostile case, far below the machine

LOADERS = {  # name -> (module, function); each takes one path
    "model": ("flame_blender_addon.core.model", "load_model"),
    "sequence": ("flame_blender_addon.core.sequence", "read_sequence"),
    "eyelids": ("flame_blender_addon.core.formats.metrical", "load_eyelid_blendshapes"),
    "landmarks": ("flame_blender_addon.tracking.landmarks", "load_track"),
    "embedding": ("flame_blender_addon.tracking.landmarks", "load_embedding"),
    "identity": ("flame_blender_addon.core.identity", "read_identity_code"),
    "mesh": ("flame_blender_addon.core.formats.mesh_file", "read_mesh_vertices"),
    "masks": ("flame_blender_addon.core.formats.masks", "read_masks"),
    "asset-embedding": ("flame_blender_addon.core.formats.embeddings", "read_embedding"),
}


def run_cases(cases: list[dict[str, Any]], workdir: Path, memory_mb: int = MEMORY_MB) -> dict[str, dict[str, Any]]:
    """Run ``cases`` ({id, loader, path, timeout?, ext?}) in child processes -> {id: result}."""
    results: dict[str, dict[str, Any]] = {}
    pending = list(cases)
    while pending:
        spec = workdir / f"spec-{len(results)}.json"
        spec.write_text(json.dumps({"memory_mb": memory_mb, "cases": pending}))
        current, outcome, returncode, stderr = _run_child(spec, pending, results)
        if outcome is not None:
            failed = [current] if current is not None else [c["id"] for c in pending if c["id"] not in results]
            for case_id in failed:  # died outside a case: report the rest rather than loop
                results[case_id] = {"id": case_id, "outcome": outcome, "returncode": returncode,
                                    "message": stderr[-2000:]}
        pending = [c for c in pending if c["id"] not in results]
    return results


def _run_child(spec: Path, pending: list[dict[str, Any]], results: dict[str, dict[str, Any]]
               ) -> tuple[str | None, str | None, int | None, str]:
    """One child over ``pending``; results go into ``results``. Returns (case running when it died,
    'crash' / 'hang' / None, return code, end of stderr)."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1")
    child = subprocess.Popen([sys.executable, str(Path(__file__)), str(spec)], cwd=spec.parent, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    lines: queue.Queue[str | None] = queue.Queue()
    stderr: list[str] = []

    def read_stdout() -> None:
        for line in child.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read_stdout, daemon=True).start()
    threading.Thread(target=lambda: stderr.extend(child.stderr), daemon=True).start()
    timeouts = {c["id"]: float(c.get("timeout", 20)) + 20.0 for c in pending}
    current, limit = None, 60.0  # start-up allowance until the first case starts
    while True:
        try:
            line = lines.get(timeout=limit)
        except queue.Empty:
            child.kill()
            child.wait()
            return current, "hang", None, "".join(stderr)
        if line is None:
            child.wait()
            return current, "crash" if child.returncode else None, child.returncode, "".join(stderr)
        event = json.loads(line)
        if event["event"] == "start":
            current, limit = event["id"], timeouts[event["id"]]
        else:
            results[event["id"]] = event
            current, limit = None, 60.0


# --------------------------------------------------------------------------------------------------
# child


class CaseTimeout(BaseException):
    """Raised by the alarm; a BaseException so the loaders' guard lets it through."""


def _fingerprint() -> str:
    """The mutable state a hostile BUILD could reach: allowlisted functions and the stub classes."""
    import codecs
    import copyreg

    from flame_blender_addon.core import safe_pickle

    parts = []
    for func in (copyreg._reconstructor, codecs.encode, set, dict):
        parts.append(repr((getattr(func, "__defaults__", None), sorted(getattr(func, "__dict__", {}) or {}))))
    for cls in (safe_pickle.ChumpyArray, safe_pickle.SparseMatrix, *safe_pickle._SPARSE.values()):
        parts.append(repr(sorted(cls.__dict__)))
    return "|".join(parts)


def _peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM belongs to the address space, which exec replaces;
    ru_maxrss would also count the parent's peak at fork (a Blender test process: ~600 MB)."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) / 1024
    except (OSError, StopIteration):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_setup(memory_mb: int) -> tuple[dict[str, Any], str]:
    """In a child process: limit its address space (before numpy is imported), make SIGALRM raise
    :class:`CaseTimeout`, import the loaders. Returns (loaders by name, :func:`_fingerprint`)."""
    import importlib
    import resource
    import signal

    limit = memory_mb << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    def alarm(*_: Any) -> None:
        raise CaseTimeout

    signal.signal(signal.SIGALRM, alarm)
    loaders = {name: getattr(importlib.import_module(mod), func) for name, (mod, func) in LOADERS.items()}
    return loaders, _fingerprint()


def _child(spec_path: str) -> None:
    import copyreg
    import signal

    spec = json.loads(Path(spec_path).read_text())
    loaders, before = child_setup(spec["memory_mb"])
    from flame_blender_addon.core.errors import FlameError, InternalError

    for case in spec["cases"]:
        print(json.dumps({"event": "start", "id": case["id"]}), flush=True)
        for module, name, code in case.get("ext", []):
            copyreg.add_extension(module, name, code)
        result: dict[str, Any] = {"event": "done", "id": case["id"]}
        signal.alarm(int(case.get("timeout", 20)))
        try:
            value = loaders[case["loader"]](case["path"])
            result.update(outcome="ok", warnings=[str(w) for w in getattr(value, "warnings", [])])
        except CaseTimeout:
            result.update(outcome="timeout")
        except InternalError as err:
            result.update(outcome="internal", error="InternalError", message=str(err))
        except FlameError as err:
            result.update(outcome="error", error=type(err).__name__, message=str(err))
        except BaseException as err:  # noqa: BLE001 - reported, never raised: that is the test
            result.update(outcome="foreign", error=type(err).__name__, message=str(err)[:500])
        finally:
            signal.alarm(0)
            for module, name, code in case.get("ext", []):
                copyreg.remove_extension(module, name, code)
        result["rss_mb"] = _peak_rss_mb()
        result["state_changed"] = _fingerprint() != before
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    _child(sys.argv[1])
