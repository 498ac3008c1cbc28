"""Measure a tracked result as Blender shows it: the imported head's landmarks against the tracker's detections.

    .venvs/bpy-4.5.15/bin/python scripts/measure_import.py clip_flame [--model generic_model.pkl] [--json out.json]

Imports ``clip_flame/flame_sequence.npz`` with ``flame.import_sequence`` (onto the demo head with
``--model demo``, the default), projects the landmarks of ``clip_flame/landmarks.npz`` (``face_idx``
(L,), ``bary`` (L, 3)) from Blender's evaluated mesh through the imported camera at every frame,
and compares them with the detections (``lmk`` (T, L, 2) pixels, optional ``conf`` (T, L); points
with conf <= 0 or NaN are left out). Errors are reported in pixels and divided by the frame's
inter-ocular distance (IOD: the detected outer eye corners, MediaPipe points 33 and 263, found
through ``mp_index`` (L,)). Prints one JSON object (and writes it to ``--json``); Blender's and
the operators' messages go to stderr. Used by the real-footage benchmark.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

EYE_CORNERS = (33, 263)  # MediaPipe's outer eye corners, subject's right then left


def read_landmarks(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    missing = [k for k in ("lmk", "face_idx", "bary") if k not in arrays]
    if missing:
        raise SystemExit(f"{path}: missing {', '.join(missing)}")
    return arrays


def inter_ocular(lmk: np.ndarray, mp_index: np.ndarray | None) -> np.ndarray | None:
    """(T,) distance of the detected outer eye corners, or None without them."""
    if mp_index is None or not all(np.isin(EYE_CORNERS, mp_index)):
        return None
    right, left = (int(np.flatnonzero(mp_index == p)[0]) for p in EYE_CORNERS)
    return np.linalg.norm(lmk[:, left] - lmk[:, right], axis=-1)


def error_stats(projected: np.ndarray, detected: np.ndarray, valid: np.ndarray, iod: np.ndarray | None) -> dict:
    """Median / p95 / max of |projected - detected| over the valid (T, L) points, in px and / IOD."""
    err = np.linalg.norm(projected - detected, axis=-1)  # (T, L)

    def summary(values: np.ndarray) -> dict[str, float]:
        return {"median": float(np.median(values)), "p95": float(np.percentile(values, 95)),
                "max": float(values.max())}

    stats = {"points": int(valid.sum()), "px": summary(err[valid])}
    if iod is not None:
        ok = valid & (iod[:, None] > 0)
        stats["iod"] = summary((err / np.where(iod > 0, iod, np.inf)[:, None])[ok])
        stats["median_iod_px"] = float(np.median(iod[iod > 0]))
    return stats


def main(argv: list[str]) -> dict:
    p = argparse.ArgumentParser(prog="measure_import.py", description=__doc__.split("\n\n")[0])
    p.add_argument("tracked", type=Path, help="tracker output folder (flame_sequence.npz, landmarks.npz)")
    p.add_argument("--model", default="demo", help="FLAME model the tracker fitted (default: demo)")
    p.add_argument("--json", type=Path, help="also write the result here")
    args = p.parse_args(argv)

    import bpy

    import flame_blender_addon
    from flame_blender_addon.blender import measure
    from flame_blender_addon.core.sequence import read_sequence

    flame_blender_addon.register()
    sequence_file = args.tracked / "flame_sequence.npz"
    landmarks = read_landmarks(args.tracked / "landmarks.npz")
    seq = read_sequence(sequence_file)
    bpy.ops.wm.read_homefile(use_empty=True)
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # the operators' reports
        if args.model == "demo":
            bpy.ops.flame.add_demo_head()
        bpy.ops.flame.import_sequence(filepath=str(sequence_file),
                                      model_filepath="" if args.model == "demo" else str(args.model))
    import_seconds = time.perf_counter() - started
    armature = bpy.context.view_layer.objects.active

    lmk = np.asarray(landmarks["lmk"], dtype=np.float64)
    if len(lmk) != seq.n_frames:
        raise SystemExit(f"landmarks.npz has {len(lmk)} frames, the sequence {seq.n_frames}")
    started = time.perf_counter()
    projected = measure.landmark_pixels(bpy.context.scene, armature.flame.mesh, landmarks["face_idx"],
                                        landmarks["bary"], armature.flame.sequence_frame_start + seq.frame_ids)
    measure_seconds = time.perf_counter() - started
    conf = landmarks.get("conf")
    valid = np.isfinite(lmk).all(axis=-1) & (np.ones(lmk.shape[:2], bool) if conf is None else conf > 0)
    result = {"tracked": str(args.tracked), "frames": seq.n_frames, "landmarks": lmk.shape[1],
              **error_stats(projected, lmk, valid, inter_ocular(lmk, landmarks.get("mp_index"))),
              "max_abs_shape": float(np.abs(seq.shape).max(initial=0.0)),
              "max_abs_expr": float(np.abs(seq.expr).max(initial=0.0)),
              "import_seconds": round(import_seconds, 3), "measure_seconds": round(measure_seconds, 3)}
    text = json.dumps(result, indent=1)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
