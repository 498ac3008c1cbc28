"""The tracker's JSON-lines protocol on stdout (standard library only: Blender imports this file).

It lives in ``core`` so that Blender never imports the ``tracking`` package: the tracker writes
these lines, the front end (``blender/tracker_job.py``) reads them.

The tracker (``python -m flame_blender_addon.tracking track ...``, or the test stand-in
``tests/fake_tracker.py``) writes one JSON object per line on stdout and
nothing else there; diagnostics of third-party libraries go to stderr. Messages:

``{"type": "progress", "stage": "fit", "fraction": 0.42, "message": "all frames, pass 2/4"}``
    ``fraction`` in [0, 1] is the whole job's progress (monotone); ``stage`` is one of ``STAGES``.
``{"type": "log", "level": "info"|"warning", "message": "..."}``
    Something to show or keep (e.g. the frames where no face was found).
``{"type": "result", "path": ".../flame_sequence.npz", "output_dir": "...", "frames": 120,
"checkpoint_dir": "..."|null, "preview_dir": "..."|null, "frames_dir": "..."|null, "landmarks_path": "..."}``
    Sent once, after every output is in place; the process then exits 0.
``{"type": "error", "message": "..."}``
    One line a user can act on; the process then exits with ``EXIT_ERROR`` (usage errors from
    argparse exit with ``EXIT_USAGE`` and print to stderr instead).

Every message also carries ``"protocol": PROTOCOL_VERSION``. Outputs are first written to a
folder named ``TEMP_PREFIX + ...`` inside the output directory and moved into place at the end,
``flame_sequence.npz`` last, so a killed job never leaves outputs that look complete. A front end
that kills the tracker may delete ``TEMP_PREFIX*`` folders in the output directory; the tracker
also removes stale ones (of processes no longer running) when it starts.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

PROTOCOL_VERSION = 1

PROGRESS, LOG, RESULT, ERROR = "progress", "log", "result", "error"
TYPES = (PROGRESS, LOG, RESULT, ERROR)
STAGES = ("load", "read", "detect", "fit", "write")
LEVELS = ("info", "warning")

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
SEQUENCE_FILE = "flame_sequence.npz"
CHECKPOINT_DIR = "checkpoint"
PREVIEW_DIR = "preview"
ALBEDO_FILE = "albedo.png"  # the photometric stage's albedo texture
FRAMES_DIR = "frames"  # the footage of sequence frame i: FRAMES_DIR / FRAME_FILE.format(i)
FRAME_FILE = "{:06d}.jpg"
LANDMARKS_FILE = "landmarks.npz"
TEMP_PREFIX = ".flame-track-"


@dataclass(frozen=True)
class Message:
    """One parsed line. ``type`` is one of ``TYPES``; ``raw`` is True for a line that was not protocol
    JSON (kept as a ``log`` message so that stray output is shown rather than lost)."""

    type: str
    message: str = ""
    stage: str = ""
    fraction: float = 0.0
    level: str = "info"
    path: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    raw: bool = False


def progress(stage: str, fraction: float, message: str = "") -> dict[str, Any]:
    """A progress message; ``fraction`` is clamped to [0, 1]."""
    return {"type": PROGRESS, "protocol": PROTOCOL_VERSION, "stage": stage,
            "fraction": round(min(1.0, max(0.0, float(fraction))), 4), "message": message}


def log(message: str, level: str = "info") -> dict[str, Any]:
    return {"type": LOG, "protocol": PROTOCOL_VERSION, "level": level, "message": message}


def result(path: str, **extra: Any) -> dict[str, Any]:
    return {"type": RESULT, "protocol": PROTOCOL_VERSION, "path": path, **extra}


def error(message: str) -> dict[str, Any]:
    return {"type": ERROR, "protocol": PROTOCOL_VERSION, "message": message}


def encode(message: dict[str, Any]) -> str:
    """One line of JSON, newline included, no NaN (invalid JSON) allowed."""
    return json.dumps(message, allow_nan=False, separators=(",", ":")) + "\n"


def parse_line(line: str) -> Message | None:
    """Parse one stdout line. Blank lines give None; anything else gives a :class:`Message`.

    Tolerant on purpose: a line that is not a JSON object with a known ``type`` becomes a raw
    ``log`` message, a progress fraction outside [0, 1] (or not a number) is clamped (or 0).
    """
    text = line.strip()
    if not text:
        return None
    try:
        obj = json.loads(text)
    except ValueError:
        obj = None
    if not isinstance(obj, dict) or obj.get("type") not in TYPES:
        return Message(type=LOG, message=text, raw=True)
    kind = obj["type"]
    known = {"type", "protocol", "message", "stage", "fraction", "level", "path"}
    data = {k: v for k, v in obj.items() if k not in known}
    level = obj.get("level") if obj.get("level") in LEVELS else "info"
    return Message(type=kind, message=str(obj.get("message", "")), stage=str(obj.get("stage", "")),
                   fraction=_fraction(obj.get("fraction")), level=level,
                   path=str(obj.get("path", "")), data=data)


def _fraction(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return 0.0
    return min(1.0, max(0.0, float(value)))
