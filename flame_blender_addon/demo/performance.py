"""A built-in facial performance for the demo: a few seconds of speech-like animation (numpy only).

:func:`demo_performance` returns a :class:`~..core.sequence.FlameSequence` for the demo head
(:mod:`.head`), so the demo goes through the same path as a tracked import. It is fully
deterministic (fixed syllable timings, no randomness at call time):

- speech: phrases of syllables at ~4.5 Hz with pauses; every syllable opens the jaw (joint 2) and
  parts the lips, alternating wide and rounded vowels (``mouth_wide`` / ``lip_pucker``);
- blinks: both eyes, a fast close and a slower opening;
- brows: raised on stressed syllables, a short frown; a smile grows over the last phrase;
- head: a turn to the subject's left and back to the right (neck yaw), nods on stresses, a slight
  sway of the whole head (root roll); the eyes lead each turn and keep looking at the camera;
- camera: a fixed OpenCV camera on FLAME's +Z axis framing head and neck (:func:`demo_camera`).
"""

from __future__ import annotations

import numpy as np

from ..core.camera import CameraTrack, intrinsics
from ..core.model import N_JOINTS, N_SHAPE_MAX
from ..core.rotations import axis_angle_to_matrix
from ..core.sequence import FlameSequence, validate_sequence
from .head import EXPRESSION_NAMES

ROOT, NECK, JAW, EYE_L, EYE_R = range(N_JOINTS)
DEFAULT_DURATION, DEFAULT_FPS = 5.0, 25.0

# Phrases as (start time s, syllable count, stressed syllable index). Syllables are 0.22 s apart.
_PHRASES = ((0.35, 5, 1), (1.85, 4, 2), (3.2, 6, 3))
_SYLLABLE_STEP = 0.22
# Vowel colour per syllable, cycled: +1 wide ("ee"), -1 rounded ("oo"), 0 open ("ah").
_VOWELS = (0.0, 1.0, -1.0, 0.0, 1.0, 0.0, -1.0)
_BLINKS = (0.15, 1.55, 2.95, 4.55)  # blink start times, seconds
# Neck yaw key poses (time s, radians about FLAME +Y: positive turns towards the subject's left).
_YAW_KEYS = ((0.0, 0.0), (0.9, 0.0), (1.6, 0.32), (2.6, 0.3), (3.3, -0.22), (4.3, -0.18), (5.0, 0.0))

# Framing: the camera looks at this FLAME point from DISTANCE along +Z and sees FIELD metres across.
_TARGET = np.array([0.0, -0.025, 0.0])
DISTANCE, FIELD = 1.0, 0.42


def _bump(t: np.ndarray, centre: float, width: float) -> np.ndarray:
    """Raised cosine of full width ``width`` (s) at ``centre``: 1 at the centre, 0 outside. t: (T,)."""
    x = np.clip((t - centre) / width, -0.5, 0.5)
    return 0.5 * (1.0 + np.cos(2.0 * np.pi * x))


def _ease(t: np.ndarray, t0: float, t1: float) -> np.ndarray:
    """Smoothstep from 0 at t0 to 1 at t1. t: (T,)."""
    x = np.clip((t - t0) / (t1 - t0), 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _keyed(t: np.ndarray, keys: tuple[tuple[float, float], ...]) -> np.ndarray:
    """Ease-in/ease-out interpolation through (time, value) keys, held outside them. t: (T,) -> (T,)."""
    times, values = np.array(keys).T
    i = np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 2)
    w = np.clip((t - times[i]) / (times[i + 1] - times[i]), 0.0, 1.0)
    return values[i] + (values[i + 1] - values[i]) * w * w * (3.0 - 2.0 * w)


def _syllables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Syllable centre times (N,), vowel colours (N,) and stress flags (N,) bool of all phrases."""
    times, stressed = [], []
    for start, count, stress in _PHRASES:
        times += [start + _SYLLABLE_STEP * k for k in range(count)]
        stressed += [k == stress for k in range(count)]
    vowels = np.resize(np.array(_VOWELS), len(times))
    return np.array(times), vowels, np.array(stressed)


def _blink(t: np.ndarray, start: float) -> np.ndarray:
    """One blink: closes in 0.07 s, stays 0.03 s, opens in 0.14 s. t: (T,) -> (T,) in [0, 1]."""
    return _ease(t, start, start + 0.07) * (1.0 - _ease(t, start + 0.1, start + 0.24))


def speech(t: np.ndarray) -> dict[str, np.ndarray]:
    """Mouth and brow channels of the performance at times t: (T,) seconds -> name -> (T,) values.

    Keys: ``jaw`` (radians about +X, opening), the expression names ``lips_part``, ``mouth_wide``,
    ``lip_pucker``, ``brow_raise``, ``brow_furrow``, ``smile``, and ``nod`` (radians, neck pitch).
    """
    times, vowels, stressed = _syllables()
    gain = np.where(stressed, 1.4, 1.0)
    # (N, T) syllable envelopes, overlapping a little: the jaw nearly closes between syllables.
    env = np.stack([_bump(t, c, 1.3 * _SYLLABLE_STEP) for c in times]) * gain[:, None]
    opening = env.max(axis=0)
    stress_env = np.stack([_bump(t, c - 0.05, 0.5) for c in times[stressed]]).max(axis=0)
    last_start = _PHRASES[-1][0]
    return {
        "jaw": 0.16 * opening,
        "lips_part": 0.7 * opening,
        "mouth_wide": 0.6 * np.einsum("n,nt->t", np.clip(vowels, 0, None), env),
        "lip_pucker": 0.7 * np.einsum("n,nt->t", np.clip(-vowels, 0, None), env),
        "brow_raise": 0.9 * stress_env,
        "brow_furrow": 0.6 * _bump(t, 2.75, 0.7),
        "smile": 0.8 * _ease(t, last_start + 0.3, last_start + 1.2),
        "nod": 0.06 * stress_env,
    }


def blinks(t: np.ndarray) -> np.ndarray:
    """Eyelid closure of both eyes at times t: (T,) -> (T,) in [0, 1] (1 = closed)."""
    return np.max([_blink(t, start) for start in _BLINKS], axis=0)


def head_motion(t: np.ndarray, nod: np.ndarray) -> np.ndarray:
    """Axis-angle of all joints except the jaw: (T, 5, 3) radians (jaw left at zero).

    Neck: keyed yaw plus ``nod`` (T,) pitch; root: a slow roll; eyes: a saccade leading each head
    turn, then counter-rotating so the gaze stays on the camera.
    """
    yaw = _keyed(t, _YAW_KEYS)
    lead = _keyed(t + 0.12, _YAW_KEYS)  # the eyes arrive 0.12 s before the head
    aa = np.zeros((len(t), N_JOINTS, 3))
    aa[:, NECK, 0] = nod
    aa[:, NECK, 1] = yaw
    aa[:, ROOT, 2] = 0.035 * np.sin(2.0 * np.pi * t / 4.0)
    gaze_yaw = 0.6 * (lead - yaw) - 0.5 * yaw
    aa[:, EYE_L:, 1] = gaze_yaw[:, None]
    aa[:, EYE_L:, 0] = 0.04 * _bump(t, 2.2, 1.0)[:, None]  # a glance down while turned
    return aa


def demo_camera(n_frames: int, image_size: tuple[int, int] = (512, 512)) -> CameraTrack:
    """A fixed OpenCV camera on FLAME's +Z axis looking at the face, the same for all frames.

    image_size: (H, W). Focal length: ``FIELD`` metres fill the shorter side at ``DISTANCE``.
    """
    h, w = image_size
    R = np.diag([1.0, -1.0, -1.0])  # camera +Z (forward) = FLAME -Z, image down = FLAME -Y
    centre = _TARGET + np.array([0.0, 0.0, DISTANCE])
    t = -R @ centre
    K = intrinsics(min(h, w) * DISTANCE / FIELD, w / 2.0, h / 2.0)
    return CameraTrack(np.repeat(K, n_frames, axis=0), np.repeat(R[None], n_frames, axis=0),
                       np.repeat(t[None], n_frames, axis=0), (int(h), int(w)))


def demo_performance(duration: float = DEFAULT_DURATION, fps: float = DEFAULT_FPS, n_shape: int = N_SHAPE_MAX,
                     n_expr: int = 100, image_size: tuple[int, int] = (512, 512)) -> FlameSequence:
    """The built-in performance as a validated sequence of ``round(duration * fps)`` frames.

    Identity is the mean head (``shape`` zeros (n_shape,)); ``expr`` (T, n_expr) uses the semantic
    columns of :data:`.head.EXPRESSION_NAMES` (n_expr must cover them); translation is zero;
    the camera is :func:`demo_camera`. Deterministic: equal arguments give equal arrays.
    """
    needed = max(EXPRESSION_NAMES.values()) + 1
    if n_expr < needed:
        raise ValueError(f"the demo performance needs at least {needed} expression components, not {n_expr}")
    n_frames = max(1, int(round(duration * fps)))
    t = np.arange(n_frames) / fps
    channels = speech(t)
    expr = np.zeros((n_frames, n_expr))
    for name in ("lips_part", "mouth_wide", "lip_pucker", "brow_raise", "brow_furrow", "smile"):
        expr[:, EXPRESSION_NAMES[name]] = channels[name]
    closure = blinks(t)
    expr[:, EXPRESSION_NAMES["blink_L"]] = expr[:, EXPRESSION_NAMES["blink_R"]] = closure
    aa = head_motion(t, channels["nod"])
    aa[:, JAW, 0] = channels["jaw"]
    seq = FlameSequence(shape=np.zeros(n_shape), expr=expr, rotations=axis_angle_to_matrix(aa),
                        translation=np.zeros((n_frames, 3)), frame_ids=np.arange(n_frames),
                        fps=float(fps), fps_from_file=True, camera=demo_camera(n_frames, image_size),
                        source="demo performance", path="")
    return validate_sequence(seq, "demo performance")
