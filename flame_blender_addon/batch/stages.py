"""One clip's work, in two stages that run in worker processes (Ray tasks; no Ray here).

1. :func:`track` (clips from video, frames, images or landmarks): the add-on's tracker process
   writes into the clip's staging folder; on a GPU node with ``device="cuda"``.
2. :func:`build` (every clip): a Blender child process (:mod:`.clip_job`) imports the sequence onto
   the user's model, saves the .blend, renders the preview and writes the exports; then the clip is
   committed (:func:`.layout.commit`).

A stage that fails on the clip's own account commits a ``failed`` or ``error`` record and returns it;
a child process killed by a signal raises :class:`~.processes.ChildCrashed` so that the scheduler
retries the stage.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import tracker_protocol as protocol
from . import layout, processes

TRACKER_ERRORS = ("internal error", "out of memory", "tracking was cancelled")  # not the input's fault
JOB_FILE, RESULT_FILE = ".job.json", ".result.json"


@dataclass(frozen=True)
class ClipJob:
    """Everything the stages need for one clip (plain values: it travels to Ray workers).

    tracker: keywords of ``tracker_argv`` except output and device (None: the input is a sequence);
    blender: the command that runs Python code in Blender, the code to be appended
    (``[python, "-c"]`` with the bpy wheel, ``[blender, "--background", ..., "--python-expr"]``);
    scene: :mod:`.clip_job`'s settings; run: the batch run's id (a retried stage whose clip this run
    already committed does nothing)."""

    name: str
    out: str
    kind: str
    input: str
    fingerprint: str
    blender: tuple[str, ...]
    run: str = ""
    scene: dict[str, Any] = field(default_factory=dict)
    tracker: dict[str, Any] | None = None

    def record(self, status: str, message: str = "", **extra: Any) -> dict[str, Any]:
        base = {"name": self.name, "input": self.input, "kind": self.kind, "status": status, "message": message,
                "frames": None, "fit_error_px": None, "timings": {}, "attempts": {},
                "fingerprint": self.fingerprint, "run": self.run}
        return {**base, **extra}

    def committed(self) -> dict[str, Any] | None:
        """The clip's record if this run already committed it (its worker died before returning)."""
        record = layout.previous(Path(self.out), self.name)
        return record if record is not None and self.run and record.get("run") == self.run else None

    def finish(self, status: str, message: str = "", **extra: Any) -> dict[str, Any]:
        """Commit the clip with this record; returns it."""
        record = self.record(status, message, **extra)
        if message:
            layout.ClipLog(Path(self.out), self.name)(f"{status}: {message}")
        layout.commit(Path(self.out), self.name, record)
        return record


def fit_summary(sequence: Path) -> tuple[int, float | None]:
    """Frames of a tracked ``flame_sequence.npz`` and its mean landmark error in pixels (frames with a face)."""
    import numpy as np

    with np.load(sequence, allow_pickle=False) as data:
        frames = len(data["expr"])
        errors = data["landmark_error_px"] if "landmark_error_px" in data.files else np.full(1, np.nan)
    finite = errors[np.isfinite(errors)]
    return frames, float(finite.mean()) if finite.size else None


def track(job: ClipJob, device: str) -> dict[str, Any]:
    """Stage 1: run the tracker into ``staging/track``. Returns ``{"status": "tracked", "sequence": path,
    "frames", "fit_error_px", "timings", "attempts"}``, or the committed record of a failure."""
    from ..blender.tracker_job import tracker_argv  # bpy-free: the add-on's own tracker command line

    if (record := job.committed()) is not None:
        return record
    out = Path(job.out)
    log = layout.ClipLog(out, job.name)
    attempt = log.attempt("track")
    stage = layout.reset_staging(out, job.name, keep=(layout.LOG,))
    work = stage / f"{layout.TRACK}.partial"
    argv = tracker_argv(**job.tracker, output=str(work), device=device)
    log("tracker: " + shlex.join(argv))
    said: dict[str, Any] = {"error": "", "result": None, "tenth": -1}

    def on_line(line: str) -> None:
        message = protocol.parse_line(line)
        if message is None:
            return
        if message.type == protocol.PROGRESS and int(10 * message.fraction) > said["tenth"]:
            said["tenth"] = int(10 * message.fraction)
            log(f"tracking {100 * message.fraction:3.0f}% {message.message or message.stage}")
        elif message.type in (protocol.LOG, protocol.ERROR):
            log(f"tracker {message.level if message.type == protocol.LOG else 'error'}: {message.message}")
            if message.type == protocol.ERROR:
                said["error"] = message.message
        elif message.type == protocol.RESULT:
            said["result"] = message

    started = time.perf_counter()
    code = processes.run("the tracker", argv, log.path, on_line)
    timings = {"track": round(time.perf_counter() - started, 3)}
    if code != protocol.EXIT_OK or said["result"] is None:
        error = said["error"] or f"the tracker stopped with exit code {code} (see log.txt)"
        status = layout.FAILED if said["error"] and not error.startswith(TRACKER_ERRORS) else layout.ERROR
        return job.finish(status, f"tracking failed: {error}", timings=timings, attempts={"track": attempt})
    final = stage / layout.TRACK
    work.rename(final)
    frames, fit_error = fit_summary(final / protocol.SEQUENCE_FILE)
    return {"status": "tracked", "sequence": str(final / protocol.SEQUENCE_FILE), "frames": frames,
            "fit_error_px": fit_error, "timings": timings, "attempts": {"track": attempt}}


def bootstrap(job_file: Path) -> str:
    """Python code that runs :mod:`.clip_job` in Blender, importing the add-on by its folder's name."""
    return (f"import sys; sys.path.insert(0, {str(processes.PACKAGE_DIR.parent)!r}); "
            f"from {processes.PACKAGE_DIR.name}.batch.clip_job import main; main({str(job_file)!r})")


def build(job: ClipJob, tracked: dict[str, Any] | None = None) -> dict[str, Any]:
    """Stage 2: the Blender child process, then commit. Returns the clip's committed record."""
    if (record := job.committed()) is not None:
        return record
    out = Path(job.out)
    log = layout.ClipLog(out, job.name)
    attempts = {**(tracked or {}).get("attempts", {}), "build": log.attempt("build")}
    stage = layout.reset_staging(out, job.name, keep=(layout.LOG, layout.TRACK))
    settings = {**job.scene, "name": job.name, "stage": str(stage), "final": str(out / job.name),
                "sequence": tracked["sequence"] if tracked else job.input}
    layout.write_json(stage / JOB_FILE, settings)
    started = time.perf_counter()
    code = processes.run("Blender", [*job.blender, bootstrap(stage / JOB_FILE)], log.path)
    try:
        result = json.loads((stage / RESULT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        result = {"status": layout.ERROR, "message": f"Blender stopped with exit code {code} without a result "
                                                     "(see log.txt)"}
    for name in (JOB_FILE, RESULT_FILE):
        (stage / name).unlink(missing_ok=True)
    timings = {**(tracked or {}).get("timings", {}), **result.get("timings", {}),
               "blender": round(time.perf_counter() - started, 3)}
    fit_error = (tracked or {}).get("fit_error_px")
    return job.finish(result["status"], result.get("message", ""), frames=result.get("frames"),
                      fit_error_px=fit_error, timings=timings, attempts=attempts)
