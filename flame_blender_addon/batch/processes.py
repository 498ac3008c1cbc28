"""Child processes of a batch worker (the tracker, Blender): output into the clip's log, and no orphans.

A worker that is killed (by Ray, the out-of-memory killer or a test) must not leave its child running
and writing into a staging folder that a retry now owns. On Linux every child is started through a
tiny launcher that asks the kernel to kill it when its parent dies (``PR_SET_PDEATHSIG``) and then
``exec``s the real command; a cancelled or interrupted task kills the child's process group itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent
PR_SET_PDEATHSIG = 1
# argv[1]: the parent's pid (if the parent died before prctl, exit at once); argv[2:]: the command
_LAUNCHER = ("import ctypes, os, signal, sys\n"
             f"ctypes.CDLL(None).prctl({PR_SET_PDEATHSIG}, signal.SIGKILL)\n"
             "if os.getppid() != int(sys.argv[1]): os._exit(137)\n"
             "os.execvp(sys.argv[2], sys.argv[2:])\n")


class ChildCrashed(Exception):
    """A child process was killed by a signal (a crash, or the out-of-memory killer): worth a retry."""


def package_env() -> dict[str, str]:
    """This environment with the add-on's package importable (by its folder's name) and unbuffered output."""
    path = os.pathsep.join(filter(None, [str(PACKAGE_DIR.parent), os.environ.get("PYTHONPATH")]))
    return dict(os.environ, PYTHONPATH=path, PYTHONUNBUFFERED="1")


def run(what: str, argv: list[str], log: Path, on_stdout: Callable[[str], None] | None = None) -> int:
    """Run ``argv`` (``what`` names it in messages) to its end; stderr (and stdout unless ``on_stdout``
    takes its lines) is appended to ``log``. Returns the exit code; raises ChildCrashed when a signal ended it."""
    if sys.platform.startswith("linux"):
        argv = [sys.executable, "-c", _LAUNCHER, str(os.getpid()), *argv]
    with log.open("a", encoding="utf-8") as sink:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE if on_stdout else sink,
                                   stderr=sink, text=True, bufsize=1, env=package_env(), start_new_session=True)
        try:
            if on_stdout is not None:
                for line in process.stdout:
                    on_stdout(line)
            code = process.wait()
        finally:
            if process.poll() is None:  # cancelled or interrupted: the whole process group goes
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    if code < 0:
        raise ChildCrashed(f"{what} was killed by signal {signal.Signals(-code).name}")
    return code
