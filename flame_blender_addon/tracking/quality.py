"""How well a fit follows the footage, from 2-D landmarks alone (numpy only).

Detected and fitted landmarks are (T, L, 2) pixels in one embedding's order, NaN where missing;
``mp_index`` (L,) names each row's MediaPipe point (as ``landmarks.npz`` stores it). Lengths are
divided by the inter-ocular distance (IOD): the distance between the outer eye corners (points
33 and 263) of the detections, per frame.
"""

from __future__ import annotations

import numpy as np

from .landmarks import EYE_CORNERS, LIP_PAIRS, MOUTH_CORNERS

CLOSED_MOUTH_IOD = 0.01  # a detected inner-lip gap below this is a closed mouth
MOUTH_MIDDLE = LIP_PAIRS[len(LIP_PAIRS) // 2]  # (13, 14): the inner lips' middle points


def rows(mp_index: np.ndarray, points: tuple[int, ...]) -> list[int]:
    """The rows of the MediaPipe ``points``; KeyError naming a point the embedding lacks."""
    where = {int(p): i for i, p in enumerate(mp_index)}
    missing = [p for p in points if p not in where]
    if missing:
        raise KeyError(f"the landmarks have no MediaPipe point {missing[0]}")
    return [where[p] for p in points]


def inter_ocular(detected: np.ndarray, mp_index: np.ndarray) -> np.ndarray:
    """(T,) pixels between the outer eye corners."""
    a, b = rows(mp_index, EYE_CORNERS)
    return np.linalg.norm(detected[:, b] - detected[:, a], axis=-1)


def mouth_gap(uv: np.ndarray, mp_index: np.ndarray, iod: np.ndarray) -> np.ndarray:
    """(T,) opening of the mouth ÷ IOD: from the upper to the lower inner lip's middle point along
    the face's downward direction (perpendicular to the eye line); negative when the lips cross."""
    right, left = rows(mp_index, EYE_CORNERS)
    upper, lower = rows(mp_index, MOUTH_MIDDLE)
    eye = uv[:, left] - uv[:, right]
    down = np.stack([-eye[:, 1], eye[:, 0]], -1) / np.linalg.norm(eye, axis=-1, keepdims=True)
    return ((uv[:, lower] - uv[:, upper]) * down).sum(-1) / iod


def mouth_width(uv: np.ndarray, mp_index: np.ndarray) -> np.ndarray:
    """(T,) pixels between the mouth corners."""
    a, b = rows(mp_index, MOUTH_CORNERS)
    return np.linalg.norm(uv[:, b] - uv[:, a], axis=-1)


def jitter(uv: np.ndarray) -> float:
    """Mean length of the second difference over frames and points (pixels), finite ones only."""
    acc = np.linalg.norm(uv[2:] - 2 * uv[1:-1] + uv[:-2], axis=-1)
    return float(np.nanmean(acc))


def report(detected: np.ndarray, fitted: np.ndarray, mp_index: np.ndarray) -> dict[str, float]:
    """Landmark error (median and p95, px and ÷ IOD) over detected points; mouth-opening correlation,
    the median |fitted - detected| gap on closed-mouth frames (÷ IOD) and their count; the fitted ÷
    detected mouth width (median); the jitter of the fit ÷ that of the detections."""
    iod = inter_ocular(detected, mp_index)
    error = np.linalg.norm(fitted - detected, axis=-1)
    seen = np.isfinite(error) & np.isfinite(iod)[:, None]
    px, rel = error[seen], (error / iod[:, None])[seen]
    gap_d, gap_f = mouth_gap(detected, mp_index, iod), mouth_gap(fitted, mp_index, iod)
    ok = np.isfinite(gap_d) & np.isfinite(gap_f)
    closed = ok & (gap_d < CLOSED_MOUTH_IOD)
    both = np.isfinite(detected).all(axis=(1, 2))
    return {
        "error_px_median": float(np.median(px)), "error_px_p95": float(np.percentile(px, 95)),
        "error_iod_median": float(np.median(rel)), "error_iod_p95": float(np.percentile(rel, 95)),
        "mouth_correlation": float(np.corrcoef(gap_d[ok], gap_f[ok])[0, 1]) if ok.sum() > 2 else float("nan"),
        "closed_frames": int(closed.sum()),
        "closed_gap_error_iod": float(np.median(np.abs(gap_f - gap_d)[closed])) if closed.any() else float("nan"),
        "mouth_width_ratio": float(np.nanmedian(mouth_width(fitted, mp_index) / mouth_width(detected, mp_index))),
        "jitter_ratio": jitter(np.where(both[:, None, None], fitted, np.nan)) / jitter(detected),
    }
