"""Batch throughput: the same N clips through ``flame_cli.py batch`` with 1 and with 2 Ray workers.

    python scripts/bench_batch.py [--clips 8] [--frames 25] [--resolution 256] [--tracker-python PY]

Each clip is a demo-head sequence of ``--frames`` frames: import onto the demo head, a Workbench
preview (PNG frames + MP4) and a glTF export, one Blender child process per clip. The ratio of the
two runs' wall times (Ray's start excluded, it is reported apart) is the figure. With
``--tracker-python`` (a Python with torch, mediapipe and scikit-image) one more run tracks two
clips of video frames (scikit-image's astronaut photograph, ``--frames`` and 4x as many) to split
the tracker's cost into per frame (detection + fit) and per clip, for the plan in
docs/benchmarks.md. Prints the per-clip costs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flame_blender_addon.core.formats.npz import write_sequence_npz  # noqa: E402
from flame_blender_addon.demo.performance import demo_performance  # noqa: E402

CLI = ROOT / "scripts" / "flame_cli.py"
ASTRONAUT = ("import sys; from pathlib import Path; from skimage import data; "
             "from flame_blender_addon.tracking.media import png_bytes; png = png_bytes(data.astronaut()); "
             "[(Path(sys.argv[1]) / f'{i:05d}.png').write_bytes(png) for i in range(int(sys.argv[2]))]")


def batch(sources: list[Path], out: Path, workers: int, extra: list[str]) -> tuple[float, dict]:
    """Run the batch command; returns (wall seconds, batch_report.json)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, str(CLI), "batch", *map(str, sources), "--output", str(out),
                    "--workers", str(workers), *extra], check=True, stdout=subprocess.DEVNULL,
                   env=dict(os.environ, RAY_USAGE_STATS_ENABLED="0"))
    return time.perf_counter() - started, json.loads((out / "batch_report.json").read_text())


def mean(records: list[dict], key: str) -> float:
    values = [r["timings"].get(key, 0.0) for r in records]
    return sum(values) / len(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--frames", type=int, default=25)
    parser.add_argument("--resolution", default="256")
    parser.add_argument("--tracker-python")
    args = parser.parse_args()
    options = ["--render", "--mp4", "--resolution", args.resolution, "--formats", "glb"]
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        folder = Path(tmp) / "clips"
        folder.mkdir()
        performance = demo_performance(n_shape=50, n_expr=50)
        sources = [write_sequence_npz(folder / f"clip{i:03d}.npz",
                                      performance.take(slice(i % 5 * 10, i % 5 * 10 + args.frames)))
                   for i in range(args.clips)]
        frames = args.clips * args.frames
        walls = {}
        for workers in (1, 2):
            wall, report = batch(sources, Path(tmp) / f"out{workers}", workers, options)
            walls[workers] = report["seconds"]
            print(f"{workers} worker(s): {args.clips} clips, {frames} frames in {report['seconds']:.1f} s "
                  f"({frames / report['seconds']:.1f} frames/s; Ray start {report['ray_start_seconds']:.1f} s, "
                  f"command {wall:.1f} s)")
        print(f"ratio 1 vs 2 workers: {walls[1] / walls[2]:.2f}x")
        records = report["clips"]
        print(f"per clip ({args.frames} frames, {args.resolution} px): Blender child {mean(records, 'blender'):.2f} s "
              f"= import {mean(records, 'import'):.2f} s + render {mean(records, 'render'):.2f} s "
              f"({mean(records, 'render') / args.frames:.3f} s/frame) + export {mean(records, 'export'):.2f} s "
              "+ start-up and saving")
        if args.tracker_python:
            lengths = (args.frames, 4 * args.frames)
            videos = [Path(tmp) / f"video{n}" for n in lengths]
            for video, n in zip(videos, lengths, strict=True):
                video.mkdir()
                subprocess.run([args.tracker_python, "-c", ASTRONAUT, str(video), str(n)], check=True, cwd=ROOT)
            _, report = batch(videos, Path(tmp) / "tracked", 1, ["--tracker-python", args.tracker_python])
            short, long = (r["timings"]["track"] for r in report["clips"])
            per_frame = (long - short) / (lengths[1] - lengths[0])
            print(f"tracking video frames (MediaPipe detection + fit, CPU): {short:.2f} s for {lengths[0]} frames, "
                  f"{long:.2f} s for {lengths[1]}: {per_frame * 1000:.0f} ms/frame + "
                  f"{short - per_frame * lengths[0]:.1f} s per clip (start-up, model, writing)")

if __name__ == "__main__":
    main()
