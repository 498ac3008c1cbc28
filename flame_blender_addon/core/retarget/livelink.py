"""Live Link Face (Epic's iPhone app) CSV takes: ARKit's 52 blendshape weights per sample.

Layout, as the app writes it: ``Timecode,BlendShapeCount,`` then the 52 blendshape columns in
:data:`ARKIT_NAMES` order, then the 9 head and eye rotation columns of :data:`ROTATION_NAMES`
(``BlendShapeCount`` is 61: 52 + 9). A timecode is ``HH:MM:SS:FF.sss``: FF counts frames at the
app's timecode rate and ``.sss`` is the fraction of a frame. The rate is not in the file: it is the
smallest common rate above the largest FF seen when the take crosses a second, else the app's
default of 60. Rotations are stored as the app gives them (radians).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import safe_files
from ..errors import RetargetError
from ..limits import LARGE

ARKIT_NAMES = (
    "EyeBlinkLeft", "EyeLookDownLeft", "EyeLookInLeft", "EyeLookOutLeft", "EyeLookUpLeft", "EyeSquintLeft",
    "EyeWideLeft", "EyeBlinkRight", "EyeLookDownRight", "EyeLookInRight", "EyeLookOutRight", "EyeLookUpRight",
    "EyeSquintRight", "EyeWideRight", "JawForward", "JawRight", "JawLeft", "JawOpen", "MouthClose",
    "MouthFunnel", "MouthPucker", "MouthRight", "MouthLeft", "MouthSmileLeft", "MouthSmileRight",
    "MouthFrownLeft", "MouthFrownRight", "MouthDimpleLeft", "MouthDimpleRight", "MouthStretchLeft",
    "MouthStretchRight", "MouthRollLower", "MouthRollUpper", "MouthShrugLower", "MouthShrugUpper",
    "MouthPressLeft", "MouthPressRight", "MouthLowerDownLeft", "MouthLowerDownRight", "MouthUpperUpLeft",
    "MouthUpperUpRight", "BrowDownLeft", "BrowDownRight", "BrowInnerUp", "BrowOuterUpLeft",
    "BrowOuterUpRight", "CheekPuff", "CheekSquintLeft", "CheekSquintRight", "NoseSneerLeft",
    "NoseSneerRight", "TongueOut",
)
"""ARKit's 52 blendshapes in the app's column order (PascalCase; ARKit itself writes eyeBlinkLeft...)."""
ROTATION_NAMES = ("HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
                  "RightEyeYaw", "RightEyePitch", "RightEyeRoll")
HEADER = ("Timecode", "BlendShapeCount", *ARKIT_NAMES, *ROTATION_NAMES)
_RATES = (24, 25, 30, 48, 50, 60, 120)
DEFAULT_RATE = 60


@dataclass(frozen=True)
class Take:
    """times: (T,) seconds from the first sample; fps: sample rate; weights: (T, 52) in
    ARKIT_NAMES order; rotations: (T, 9) in ROTATION_NAMES order."""

    times: np.ndarray
    fps: float
    weights: np.ndarray
    rotations: np.ndarray


def match_names(names: list[str]) -> dict[int, str]:
    """ARKit index -> the name in ``names`` that matches it, ignoring case and ``_``/``.``/spaces."""
    def norm(n: str) -> str:
        return n.lower().replace("_", "").replace(".", "").replace(" ", "")

    wanted = {norm(n): i for i, n in enumerate(ARKIT_NAMES)}
    return {wanted[norm(n)]: n for n in names if norm(n) in wanted}


def _timecode(text: str, where: str) -> tuple[int, int, int, float]:
    parts = text.strip().split(":")
    try:
        if len(parts) != 4:
            raise ValueError
        h, m, s = (int(p) for p in parts[:3])
        return h, m, s, float(parts[3])
    except ValueError:
        raise RetargetError(f"{where}: timecode '{text}' is not HH:MM:SS:FF.sss") from None


def read_take(path: str | Path) -> Take:
    """Read and validate a Live Link Face CSV. Raises RetargetError naming the row and column; FileAccessError
    or LimitError for a path that is missing, not a regular file or too large."""
    path = Path(path)
    try:  # a regular file within limits: a FIFO or device picked by mistake must not block Blender
        text = safe_files.read_bytes(path, LARGE).decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise RetargetError(f"{path.name}: cannot be read ({err})") from None
    rows = [r for r in csv.reader(io.StringIO(text, newline="")) if any(cell.strip() for cell in r)]
    if not rows:
        raise RetargetError(f"{path.name}: empty file")
    header = [h.strip() for h in rows[0]]
    lower = [h.lower() for h in header]
    missing = [h for h in HEADER if h.lower() not in lower]
    extra = [h for h in header if h.lower() not in {n.lower() for n in HEADER}]
    if missing or extra or len(header) != len(HEADER):
        what = "; ".join(filter(None, [f"missing columns: {', '.join(missing)}" if missing else "",
                                       f"unexpected columns: {', '.join(extra)}" if extra else "",
                                       "" if missing or extra else "duplicated columns"]))
        raise RetargetError(f"{path.name}: not a Live Link Face take ({what})")
    body = rows[1:]
    if len(body) < 2:
        raise RetargetError(f"{path.name}: needs at least 2 rows of samples, found {len(body)}")
    order = [lower.index(h.lower()) for h in HEADER]
    values = np.empty((len(body), len(HEADER) - 1))
    codes = []
    for r, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise RetargetError(f"{path.name}: row {r} has {len(row)} cells, the header {len(header)}")
        codes.append(_timecode(row[order[0]], f"{path.name}: row {r}"))
        for c, col in enumerate(order[1:]):
            try:
                values[r - 2, c] = float(row[col])
            except ValueError:
                raise RetargetError(f"{path.name}: row {r}, column {header[col]}: '{row[col]}' is not a number") \
                    from None
    if not np.all(np.isfinite(values)):
        raise RetargetError(f"{path.name}: contains NaN or infinite values")
    hms = np.array([c[:3] for c in codes], dtype=np.float64)
    frames = np.array([c[3] for c in codes])
    seconds = hms @ [3600.0, 60.0, 1.0]
    crossed = np.any(np.diff(seconds) > 0)
    rate = next((r for r in _RATES if r > np.floor(frames.max())), _RATES[-1]) if crossed else DEFAULT_RATE
    times = seconds + frames / rate
    times = times - times[0]
    steps = np.diff(times)
    if np.any(steps <= 0):
        raise RetargetError(f"{path.name}: timecodes do not increase (row {int(np.argmax(steps <= 0)) + 3})")
    fps = 1.0 / float(np.median(steps))
    fps = round(fps) if abs(fps - round(fps)) < 0.01 * fps else fps
    return Take(times=times, fps=float(fps), weights=values[:, 1:53], rotations=values[:, 53:])


def write_take(path: str | Path, weights: np.ndarray, fps: float, rotations: np.ndarray | None = None) -> Path:
    """Write (T, 52) weights (ARKIT_NAMES order) sampled at ``fps`` in the app's layout; the timecode
    rate is ``fps`` rounded, starting at 00:00:00:00. rotations: (T, 9) or zeros."""
    weights = np.asarray(weights, dtype=np.float64)
    rotations = np.zeros((len(weights), len(ROTATION_NAMES))) if rotations is None else np.asarray(rotations)
    rate = max(1, round(fps))
    path = Path(path)
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(HEADER)
        for i, (w, rot) in enumerate(zip(weights, rotations, strict=True)):
            t = i * rate / fps  # in timecode frames
            whole = int(np.floor(t + 1e-9))
            sec, ff = divmod(whole, rate)
            code = f"{sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}:{ff:02d}.{round((t - whole) * 1000):03d}"
            out.writerow([code, len(ARKIT_NAMES) + len(ROTATION_NAMES), *(f"{v:.8g}" for v in w),
                          *(f"{v:.8g}" for v in rot)])
    return path
