"""Staging outputs so a killed tracker never leaves results that look complete (numpy only).

Everything is written into ``DIR/.flame-track-<pid>-<random>/`` and moved into ``DIR`` by
:meth:`Staging.commit`: an old ``flame_sequence.npz`` is removed first, the other outputs (folders and
``landmarks.npz``) are swapped in, old ones of a previous run removed even when this run has none,
and the new ``flame_sequence.npz`` arrives last, by an atomic rename. On any exception the staging
folder is deleted; folders left by killed processes are deleted by the next run.
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ..core import tracker_protocol as protocol
from ..core.errors import TrackerError

STALE_SECONDS_WINDOWS = 6 * 3600  # no safe liveness test for a pid on Windows: go by age


def _pid_alive(pid: int) -> bool:
    if sys.platform == "win32":
        return True  # os.kill would terminate the process there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(output: Path) -> list[Path]:
    """Delete staging folders in ``output`` whose process has ended. Returns what was removed."""
    removed = []
    for path in output.glob(protocol.TEMP_PREFIX + "*"):
        try:
            pid = int(path.name[len(protocol.TEMP_PREFIX):].split("-")[0])
        except ValueError:
            continue
        old = time.time() - path.stat().st_mtime > STALE_SECONDS_WINDOWS
        if pid != os.getpid() and (not _pid_alive(pid) or (sys.platform == "win32" and old)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


class Staging:
    """``with Staging(output) as stage: ...; stage.commit()`` -- see the module docstring."""

    def __init__(self, output: str | Path) -> None:
        self.output = Path(output)
        try:
            self.output.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise TrackerError(f"{self.output}: cannot create the output folder ({err.strerror})") from None
        remove_stale(self.output)
        try:
            self.path = Path(tempfile.mkdtemp(prefix=f"{protocol.TEMP_PREFIX}{os.getpid()}-", dir=self.output))
        except OSError as err:
            raise write_error(err, self.output) from None
        self.committed = False

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def commit(self) -> Path:
        """Move the staged outputs into place, ``flame_sequence.npz`` last. Returns its final path."""
        final = self.output / protocol.SEQUENCE_FILE
        staged = self.path / protocol.SEQUENCE_FILE
        if not staged.is_file():
            raise TrackerError("internal error: no staged flame_sequence.npz to commit")
        final.unlink(missing_ok=True)
        for name in (protocol.CHECKPOINT_DIR, protocol.PREVIEW_DIR, protocol.FRAMES_DIR, protocol.LANDMARKS_FILE,
                     protocol.ALBEDO_FILE):
            target = self.output / name
            if target.exists():
                trash = self.path / f"old-{name}"
                os.replace(target, trash)
            if (self.path / name).exists():
                os.replace(self.path / name, target)
        os.replace(staged, final)
        self.committed = True
        return final


def write_error(err: OSError, output: Path) -> TrackerError:
    """The user's words for a failed write into ``output``: a full disk is named as such."""
    if err.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return TrackerError(f"{output}: the disk is full (no space left for the results); free some space or "
                            "choose another output folder, then track again")
    return TrackerError(f"{output}: cannot write the results ({err.strerror or err})")


def check_free_space(output: Path, needed: int) -> None:
    """TrackerError before any fitting when ``output``'s disk has less than ``needed`` bytes free."""
    free = shutil.disk_usage(output).free
    if free < needed:
        raise TrackerError(f"{output}: the disk is full ({free / 2**20:.0f} MB free; the results need about "
                           f"{needed / 2**20:.0f} MB); free some space or choose another output folder")


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` to exactly ``path``."""
    with open(path, "wb") as f:
        np.savez(f, **arrays)
