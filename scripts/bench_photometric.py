"""Photometric-stage speed: frames per second at 256^2 and 512^2, batched vs frame by frame; or,
with ``--accuracy``, its accuracy on ground truth (docs/photometric.md's table).

    python scripts/bench_photometric.py [--frames 16] [--epochs 4] [--sizes 256 512] [--device cpu]
    python scripts/bench_photometric.py --accuracy [--clips A B C D E] [--length 8] [--renderer blender \
        --blender .venvs/bpy-4.5.15/bin/python]

A synthetic clip of the demo head (textured, lit, with landmarks) is rendered at each size and
fitted with landmarks first (not timed). Then the photometric stage runs ``--epochs`` passes
(timed) in two ways: ours, batches of 16 consecutive frames with visibility found again every
4th pass; the naive way, one frame per step with visibility found at every step, as
per-frame trackers do. A full stage makes ``Settings.epochs`` passes (80 by default), so its
frames/s is the measured pass rate divided by that; both rates are printed, and the ratio.

Accuracy: the textured clips A-E (``--length`` frames each, 8 by default;
tests/tracking/textured_clip.py) are rendered by the tracker's renderer or, with ``--renderer
blender``, by Blender (Cycles, scripts/render_photometric_clip.py, run by the bpy Python
``--blender``). Each is fitted with landmarks, then refined by the stage (128^2 crops, 80 passes,
30 identity and 30 expression components) with a free texture and with a made-up texture space
holding the clip's albedo; the table gives the dense face error (px, and mm after a similarity
alignment) before and after, the albedo PSNR on the texels seen and the light direction's error.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path[1:1] = [str(Path(__file__).resolve().parents[1] / "tests" / d) for d in ("", "tracking")]  # fixtures

import textured_clip  # noqa: E402  (tests/tracking: the synthetic textured clips)

from flame_blender_addon.tracking import photometric as ph  # noqa: E402

N = 50  # identity and expression components
CLIPS = {"A": (192, 340.0, 0), "B": (256, 450.0, 1), "C": (192, 340.0, 2),  # image side, focal (px), seed
         "D": (192, 340.0, 3), "E": (256, 450.0, 4)}
ACCURACY_N = 30


def timed_passes(size: int, frames: int, epochs: int, device: str) -> dict[str, float]:
    """Seconds per pass over the clip, ours and naive, at working resolution size^2."""
    clip = textured_clip.make_clip(n_frames=frames, n_shape=N, n_expr=N, image_size=(size, size),
                                   focal=450.0 * size / 256)
    fitted = textured_clip.landmark_fit(clip, N, N, device)
    fit, problem, dev = fitted.fit, fitted.problem, torch.device(device)
    settings = ph.Settings(resolution=size, epochs=epochs, coarse_fraction=0.0)
    boxes = ph.face_boxes(fit.uv, np.ones(frames, bool), settings.crop_margin)
    obs = ph.observations(iter(clip.images), boxes, fit.focal, clip.track.image_size, clip.track.points,
                          clip.track.conf, problem.sigma, size, dev)
    out = {}
    for name, s in (("ours", settings), ("naive", dataclasses.replace(settings, batch=1, raster_every=0))):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        ph.refine(fitted.mesh, textured_clip.demo_appearance(), obs, fit.beta, fit.frames,
                  (clip.embedding.face_idx, clip.embedding.bary), ph.fit_priors(problem), s)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        out[name] = (time.perf_counter() - start) / epochs
    return out


def accuracy(name: str, length: int, blender: str | None) -> None:
    """Print the accuracy rows (free texture, texture space) of clip ``name``, ``length`` frames long."""
    size, focal, seed = CLIPS[name]
    started = time.perf_counter()
    clip = textured_clip.make_clip(n_frames=length, n_shape=ACCURACY_N, n_expr=ACCURACY_N, image_size=(size, size),
                                   focal=focal, seed=seed, blender=blender)
    rendered = time.perf_counter() - started
    fitted = textured_clip.landmark_fit(clip, ACCURACY_N, ACCURACY_N)
    settings = ph.Settings(resolution=128)
    before = textured_clip.fit_errors(fitted, fitted.fit.beta, fitted.fit.frames)
    spaces = {"free": textured_clip.demo_appearance(),
              "space": textured_clip.made_up_space(clip.albedo, settings.texture_size)[0]}
    for albedo, look in spaces.items():
        result = textured_clip.refine(fitted, look, settings)
        after = textured_clip.fit_errors(fitted, result.beta, result.frames)
        cut = [100 * (1 - a / b) for a, b in zip(after, before, strict=True)]
        print(f"| {name} ({size}^2, {seed}) | {albedo} | {before[0]:.3f} / {before[1]:.3f} | "
              f"{after[0]:.3f} / {after[1]:.3f} | {cut[0]:.0f} % / {cut[1]:.0f} % | "
              f"{textured_clip.albedo_psnr(result.albedo, clip.albedo, result.seen):.1f} dB | "
              f"{textured_clip.direction_error_deg(result.sh, clip.sh):.1f}° | "
              f"{np.nanmean(fitted.fit.error_px):.2f} -> {np.nanmean(result.error_px):.2f} px | {rendered:.0f} s |",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--accuracy", action="store_true", help="the accuracy table instead of the speed")
    parser.add_argument("--clips", nargs="+", choices=sorted(CLIPS), default=sorted(CLIPS))
    parser.add_argument("--length", type=int, default=8, help="frames per accuracy clip (25 fps)")
    parser.add_argument("--renderer", choices=("torch", "blender"), default="torch",
                        help="what renders the accuracy clips (default: the tracker's renderer)")
    parser.add_argument("--blender", default=".venvs/bpy-4.5.15/bin/python", help="a bpy Python for --renderer blender")
    args = parser.parse_args()
    if args.accuracy:
        print(f"accuracy, clips rendered by {args.renderer}; landmark-only -> photometric; torch "
              f"{torch.__version__} ({torch.get_num_threads()} threads)")
        print("| clip (image, seed) | albedo | landmark-only: px / mm | photometric: px / mm | reduction px / mm "
              "| albedo PSNR | light error | landmark error | render |")
        for name in args.clips:
            accuracy(name, args.length, args.blender if args.renderer == "blender" else None)
        return
    cpu = platform.processor() or platform.machine()
    if args.device == "cuda":
        cpu = torch.cuda.get_device_name()
    print(f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"{args.frames} frames, {args.epochs} timed passes, device {args.device}")
    full = ph.Settings().epochs
    for size in args.sizes:
        t = timed_passes(size, args.frames, args.epochs, args.device)
        ours, naive = args.frames / t["ours"], args.frames / t["naive"]
        print(f"{size}^2: ours {ours:.1f} frame-passes/s = {ours / full:.3f} frames/s for a {full}-pass stage; "
              f"naive {naive:.1f} frame-passes/s = {naive / full:.3f} frames/s; ours / naive = {ours / naive:.1f}x")


if __name__ == "__main__":
    main()
