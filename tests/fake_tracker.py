"""A stand-in tracker for testing front ends without torch (standard library only).

``python tests/fake_tracker.py --output DIR [--frames N] [--fail-after N] [--hang]
[--delay S]`` speaks the protocol of :mod:`..core.tracker_protocol` like the real tracker and writes a
small valid ``DIR/flame_sequence.npz`` (a slowly turning head opening its jaw). Unknown arguments (``--model``,
``--input`` ...) are accepted and ignored, so a front end can run it with the real tracker's argv.

``--fail-after N`` reports an error after N progress steps and exits ``EXIT_ERROR`` leaving no
outputs; ``--hang`` stops after the first progress step and sleeps until killed; ``--fps F`` writes
that frame rate (a result the front end must refuse, e.g. -5).
"""

from __future__ import annotations

import argparse
import math
import os
import struct
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # run as a script: the add-on's package sits beside tests/
    sys.path.insert(0, ROOT)

from flame_blender_addon.core import tracker_protocol as protocol  # noqa: E402

N_SHAPE, N_EXPR, SIZE, FPS, DISTANCE, FOCAL = 10, 10, 256, 25.0, 0.6, 600.0


def npy_bytes(values: Sequence[float], shape: tuple[int, ...]) -> bytes:
    """A little-endian float32 ``.npy`` (format 1.0) holding ``values`` (row-major) with ``shape``."""
    if math.prod(shape) != len(values):
        raise ValueError(f"{len(values)} values do not fill shape {shape}")
    dims = "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"
    header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}"
    pad = 64 - (10 + len(header) + 1) % 64
    header = header + " " * (pad % 64) + "\n"
    return (b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1")
            + struct.pack(f"<{len(values)}f", *values))


def fake_sequence(frames: int, fps: float = FPS) -> dict[str, tuple[list[float], tuple[int, ...]]]:
    """The arrays of a small flame_sequence.npz: key -> (row-major values, shape)."""
    T = frames
    angle = [0.3 * math.sin(2 * math.pi * t / max(T, 1)) for t in range(T)]
    jaw = [0.15 * (1 - math.cos(2 * math.pi * t / max(T, 1))) for t in range(T)]
    zeros3 = [0.0] * (3 * T)
    K = [FOCAL, 0.0, SIZE / 2, 0.0, FOCAL, SIZE / 2, 0.0, 0.0, 1.0]
    return {
        "rotation": ([v for a in angle for v in (0.0, a, 0.0)], (T, 3)),
        "translation": (zeros3, (T, 3)),
        "neck_pose": (zeros3, (T, 3)),
        "jaw_pose": ([v for a in jaw for v in (a, 0.0, 0.0)], (T, 3)),
        "eyes_pose": ([0.0] * (6 * T), (T, 6)),
        "shape": ([0.5 * (-1) ** i / (i + 1) for i in range(N_SHAPE)], (N_SHAPE,)),
        "expr": ([math.sin(0.3 * t + i) * 0.5 for t in range(T) for i in range(N_EXPR)], (T, N_EXPR)),
        "eyelids": ([0.0] * (2 * T), (T, 2)),
        "fps": ([fps], ()),
        "image_size": ([float(SIZE), float(SIZE)], (2,)),
        "K": (K, (3, 3)),
        "cam_R": ([1.0, 0, 0, 0, -1.0, 0, 0, 0, -1.0], (3, 3)),
        "cam_t": ([0.0, 0.0, DISTANCE], (3,)),
    }


def write_npz(path: str, arrays: dict[str, tuple[list[float], tuple[int, ...]]]) -> None:
    """Write an uncompressed ``.npz`` readable by ``numpy.load``."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for key, (values, shape) in arrays.items():
            zf.writestr(f"{key}.npy", npy_bytes(values, shape))


def emit(message: dict) -> None:
    sys.stdout.write(protocol.encode(message))
    sys.stdout.flush()


def run(output: str, frames: int, fail_after: int | None, hang: bool, delay: float, fps: float = FPS) -> int:
    """Pretend to track; returns the exit code."""
    output = os.path.abspath(output)
    os.makedirs(output, exist_ok=True)
    steps = ("load", "read", "detect", "fit", "fit", "write")
    emit(protocol.log(f"fake tracker, {frames} frames"))
    tmp = tempfile.mkdtemp(prefix=protocol.TEMP_PREFIX, dir=output)
    try:
        for i, stage in enumerate(steps):
            if fail_after is not None and i >= fail_after:
                emit(protocol.error(f"fake failure after {fail_after} progress steps"))
                return protocol.EXIT_ERROR
            emit(protocol.progress(stage, i / len(steps), f"{stage} (fake)"))
            if hang:
                while True:
                    time.sleep(3600)
            time.sleep(delay)
        staged = os.path.join(tmp, protocol.SEQUENCE_FILE)
        write_npz(staged, fake_sequence(frames, fps))
        final = os.path.join(output, protocol.SEQUENCE_FILE)
        os.replace(staged, final)
        emit(protocol.progress("write", 1.0, "done"))
        emit(protocol.result(final, output_dir=output, frames=frames, checkpoint_dir=None,
                             preview_dir=None))
        return protocol.EXIT_OK
    finally:
        for name in os.listdir(tmp):
            os.remove(os.path.join(tmp, name))
        os.rmdir(tmp)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fake_tracker.py",
                                     description="Stand-in tracker speaking the JSON-lines protocol.")
    parser.add_argument("command", nargs="?", default="track", help="ignored ('track')")
    parser.add_argument("--output", required=True, help="output directory")
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--fail-after", type=int, default=None, metavar="N")
    parser.add_argument("--hang", action="store_true")
    parser.add_argument("--delay", type=float, default=0.01, help="seconds between progress steps")
    parser.add_argument("--fps", type=float, default=FPS, help="frame rate written into the result")
    args, _ignored = parser.parse_known_args(argv)
    if args.frames < 1:
        parser.error("--frames must be at least 1")
    return run(args.output, args.frames, args.fail_after, args.hang, args.delay, args.fps)


if __name__ == "__main__":
    sys.exit(main())
