"""Track real clips and measure the result against the footage's own detections.

    python scripts/bench_real_footage.py CLIP [CLIP ...] [--model demo|MODEL --embedding EMB]
        [--device cpu] [--work DIR] [--start N] [--end N] [--step N] [--blender .venvs/bpy-4.5.15/bin/python]

Each clip goes through the tracker program (``python -m flame_blender_addon.tracking track``, a
separate process as Blender runs it). Then, per clip, with no torch: the written
``flame_sequence.npz`` is evaluated by the numpy reference (``core.lbs`` through
``core.sequence``), its landmarks (the embedding stored in ``landmarks.npz``) are projected with
the sequence's own camera and compared with the detections in ``landmarks.npz``. Printed per clip:

- end-to-end frames/s (the tracker process's wall time: start-up, decoding, MediaPipe, fit, writing),
  the same over the process's CPU time (user + system: less sensitive to other jobs on a shared
  machine) and fitting frames/s (the solver alone, as the tracker reports it);
- landmark error of the fit against the detections: median and 95th percentile, in pixels and
  divided by the inter-ocular distance (IOD, outer eye corners), over every detected point;
- the largest |identity coefficient| and the neutral head's width (x extent) ÷ the template's;
- mouth: correlation of the fitted and detected inner-lip opening over the clip, and on
  closed-mouth frames (detected opening < 0.01 IOD) the median |fitted - detected| opening ÷ IOD;
  fitted ÷ detected mouth width (corners);
- jitter ratio: mean |second difference| of the fitted landmarks ÷ that of the detections;
- expression offset: the RMS over components of the clip's mean expression (what the expression
  holds on every frame: the part of the model's mismatch with the face that the identity does not take);
- with ``--blender PYTHON`` (a Python with the bpy wheel): the same landmark error after the import
  into Blender (``scripts/measure_import.py``: the evaluated mesh through the imported camera),
  median and p95 ÷ IOD.

Targets on a CPU: >= 20 frames/s end to end, median <= 0.02 IOD, p95 <= 0.06 IOD, max |beta| <= 4.
Footage of people never goes into this repository: point the script at clips you keep elsewhere.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flame_blender_addon.core import camera, sequence  # noqa: E402
from flame_blender_addon.core import tracker_protocol as protocol  # noqa: E402
from flame_blender_addon.core.evaluation import sequence_vertices  # noqa: E402
from flame_blender_addon.core.model import FlameModel, load_model  # noqa: E402
from flame_blender_addon.demo import head as demo_head  # noqa: E402
from flame_blender_addon.tracking import quality  # noqa: E402

COLUMNS = ("clip", "frames", "size", "end-to-end f/s", "CPU-time f/s", "fit f/s", "median px", "p95 px",
           "median IOD", "p95 IOD", "max |β|", "width", "mouth corr", "closed gap IOD (frames)", "mouth width",
           "jitter", "expr offset")
BLENDER_COLUMNS = ("Blender median IOD", "Blender p95 IOD")


def track(clip: Path, out: Path, args: argparse.Namespace) -> tuple[dict, float, float]:
    """Run the tracker on a clip; returns its result message data, the wall time and the CPU time."""
    cmd = [sys.executable, "-m", "flame_blender_addon.tracking", "track", "--model", args.model, "--input", str(clip),
           "--output", str(out), "--device", args.device, "--start", str(args.start), "--step", str(args.step)]
    cmd += ["--embedding", args.embedding] if args.embedding else []
    cmd += ["--end", str(args.end)] if args.end is not None else []
    started, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    seconds, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    last = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else {}
    if proc.returncode or last.get("type") != "result":
        raise SystemExit(f"{clip.name}: the tracker failed: {last.get('message') or proc.stderr[-2000:]}")
    return last, seconds, cpu


def reference_landmarks(model: FlameModel, out: Path) -> tuple[np.ndarray, dict[str, np.ndarray],
                                                                sequence.FlameSequence]:
    """Fitted landmarks (T, L, 2) by the numpy reference and the sequence's camera; the
    landmarks.npz arrays; the sequence."""
    seq = sequence.read_sequence(out / protocol.SEQUENCE_FILE)
    with np.load(out / protocol.LANDMARKS_FILE) as npz:
        lmk = {k: npz[k] for k in npz.files}
    verts = sequence_vertices(model, seq)  # (T, V, 3)
    points = np.einsum("lc,tlcx->tlx", lmk["bary"], verts[:, model.faces[lmk["face_idx"]]])
    cam = seq.camera
    uv = np.stack([camera.project_opencv(p, K, R, t) for p, K, R, t in zip(points, cam.K, cam.R, cam.t, strict=True)])
    return uv, lmk, seq


def measure(model: FlameModel, clip: Path, out: Path, result: dict, wall: float, cpu: float) -> dict:
    fitted, lmk, seq = reference_landmarks(model, out)
    beta = seq.shape
    report = quality.report(lmk["lmk"], fitted, lmk["mp_index"])
    shaped = model.v_template + model.shapedirs[:, :, :len(beta)] @ beta
    T = len(fitted)
    H, W = lmk["image_size"].tolist()
    return {"clip": clip.name, "frames": T, "size": f"{W}×{H}", "end-to-end f/s": T / wall, "CPU-time f/s": T / cpu,
            "fit f/s": T / result["fit_seconds"], "max |β|": float(np.abs(beta).max()),
            "width": float(np.ptp(shaped[:, 0]) / np.ptp(model.v_template[:, 0])),
            "expr offset": float(np.sqrt(np.mean(seq.expr.mean(axis=0) ** 2))), **report}


def measure_in_blender(python: str, out: Path) -> dict:
    """scripts/measure_import.py's result for a tracker output, run by ``python`` (with bpy)."""
    written = out.with_name(out.name + ".blender.json")  # stdout may hold Blender's own messages too
    proc = subprocess.run([python, str(ROOT / "scripts" / "measure_import.py"), str(out), "--json", str(written)],
                          cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode:
        raise SystemExit(f"{out.name}: measure_import.py failed: {proc.stderr[-2000:]}")
    return json.loads(written.read_text())


def row(m: dict) -> str:
    cells = [m["clip"], str(m["frames"]), m["size"], f"{m['end-to-end f/s']:.1f}", f"{m['CPU-time f/s']:.1f}",
             f"{m['fit f/s']:.0f}",
             f"{m['error_px_median']:.2f}", f"{m['error_px_p95']:.2f}", f"{m['error_iod_median']:.4f}",
             f"{m['error_iod_p95']:.4f}", f"{m['max |β|']:.2f}", f"{m['width']:.3f}", f"{m['mouth_correlation']:.3f}",
             f"{m['closed_gap_error_iod']:.4f} ({m['closed_frames']})", f"{m['mouth_width_ratio']:.3f}",
             f"{m['jitter_ratio']:.2f}", f"{m['expr offset']:.2f}"]
    cells += [f"{m['blender']['iod'][k]:.4f}" for k in ("median", "p95")] if "blender" in m else []
    return "| " + " | ".join(cells) + " |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="+", type=Path)
    parser.add_argument("--model", default="demo")
    parser.add_argument("--embedding")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--work", type=Path, help="keep the tracker outputs here (default: a temporary folder)")
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--end", type=int)
    parser.add_argument("--step", type=int, default=1)
    parser.add_argument("--blender", help="a Python with bpy: also measure the result after the Blender import")
    args = parser.parse_args()
    model = demo_head.demo_model() if args.model == "demo" else load_model(args.model)
    if args.work:
        run_all(model, args, args.work)
        print(f"\noutputs in {args.work}")
    else:
        with tempfile.TemporaryDirectory(prefix="flame-bench-footage-") as work:
            run_all(model, args, Path(work))
    return 0


def run_all(model: FlameModel, args: argparse.Namespace, work: Path) -> None:
    """Track and measure every clip into ``work/<clip stem>``, printing one table row per clip."""
    columns = COLUMNS + (BLENDER_COLUMNS if args.blender else ())
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for clip in args.clips:
        out = work / clip.stem
        m = measure(model, clip, out, *track(clip, out, args))
        if args.blender:
            m["blender"] = measure_in_blender(args.blender, out)
        print(row(m), flush=True)


if __name__ == "__main__":
    sys.exit(main())
