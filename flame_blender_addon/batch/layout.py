"""The batch output folder: per-clip staging, atomic commit and the records that make re-runs resume.

    OUT/<clip>/log.txt, result.json     every ended clip (status, timings, message)
    OUT/<clip>/<clip>.blend, track/, frames/, preview.mp4, export/   a clip that succeeded
    OUT/.staging/<clip>/                a clip in progress, moved to OUT/<clip> by one rename
    OUT/batch_report.json               every clip's record of the last run

A clip counts as finished when ``OUT/<clip>/result.json`` says ``done`` or ``failed`` (its input is bad:
the same every time) for the same fingerprint (inputs' sizes and times, and the clip's options).
Other statuses (``error``: a crash or an unexpected failure) are run again. Standard library only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

STAGING = ".staging"
LOG, RESULT, REPORT = "log.txt", "result.json", "batch_report.json"
TRACK = "track"
DONE, FAILED, ERROR, CANCELLED = "done", "failed", "error", "cancelled"
FINAL = (DONE, FAILED)


def _stats(path: Path) -> list:
    """Sizes and modification times of a file, or of every file under a folder."""
    if path.is_dir():
        return [[str(p.relative_to(path)), *_stats(p)] for p in sorted(path.rglob("*")) if p.is_file()]
    info = path.stat()
    return [info.st_size, info.st_mtime_ns]


def fingerprint(inputs: Iterable[Path], options: dict[str, Any]) -> str:
    """Changes when an input file (or a file in an input folder) or an option changes."""
    state = {"inputs": [[str(p), _stats(p)] for p in inputs], "options": options}
    return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()[:16]


def staging(out: Path, name: str) -> Path:
    return out / STAGING / name


def previous(out: Path, name: str) -> dict[str, Any] | None:
    """The record of the clip's last ended run, or None."""
    try:
        record = json.loads((out / name / RESULT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def is_finished(record: dict[str, Any] | None, fingerprint_: str, retry_failed: bool = False) -> bool:
    final = (DONE,) if retry_failed else FINAL
    return record is not None and record.get("status") in final and record.get("fingerprint") == fingerprint_


def reset_staging(out: Path, name: str, keep: tuple[str, ...] = ()) -> Path:
    """The clip's staging folder, emptied except for the entries named in ``keep``."""
    stage = staging(out, name)
    stage.mkdir(parents=True, exist_ok=True)
    for item in stage.iterdir():
        if item.name not in keep:
            shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()
    return stage


def write_json(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and a rename, so readers never see half a file."""
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    temp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    os.replace(temp, path)


def commit(out: Path, name: str, record: dict[str, Any]) -> Path:
    """End the clip: write its record into the staging folder (keeping only the log unless it is done)
    and move the folder to ``OUT/<clip>``, replacing an older one. Returns ``OUT/<clip>``."""
    stage = reset_staging(out, name, keep=(LOG,)) if record["status"] != DONE else staging(out, name)
    write_json(stage / RESULT, record)
    final = out / name
    old = out / STAGING / f"{name}.old-{uuid.uuid4().hex[:8]}"
    if final.exists():
        os.replace(final, old)
    os.replace(stage, final)
    shutil.rmtree(old, ignore_errors=True)
    _remove_empty_staging(out)
    return final


def remove_staging(out: Path, name: str) -> None:
    shutil.rmtree(staging(out, name), ignore_errors=True)
    _remove_empty_staging(out)


def _remove_empty_staging(out: Path) -> None:
    with contextlib.suppress(OSError):
        (out / STAGING).rmdir()  # only when no other clip is in progress


def write_report(out: Path, records: list[dict[str, Any]], **run: Any) -> Path:
    """``OUT/batch_report.json``: counts by status, ``run``'s values and every clip's record."""
    counts = {status: sum(r["status"] == status for r in records) for status in (DONE, FAILED, ERROR, CANCELLED)}
    counts["resumed"] = sum(bool(r.get("resumed")) for r in records)
    path = out / REPORT
    write_json(path, {**run, "counts": counts, "clips": records})
    return path


class ClipLog:
    """Appends time-stamped lines to the clip's ``log.txt`` in its staging folder."""

    def __init__(self, out: Path, name: str) -> None:
        self.path = staging(out, name) / LOG
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, message: str) -> None:
        with self.path.open("a", encoding="utf-8") as log:
            log.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")

    def attempt(self, stage: str) -> int:
        """Log the start of an attempt at ``stage`` (with this host and process id); returns its number."""
        marker = f"== {stage} attempt "
        text = self.path.read_text(encoding="utf-8") if self.path.exists() else ""
        number = text.count(marker) + 1
        self(f"{marker}{number} on {socket.gethostname()} pid {os.getpid()}")
        return number
