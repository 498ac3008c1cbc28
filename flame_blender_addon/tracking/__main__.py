"""``python -m flame_blender_addon.tracking track --model MODEL --input VIDEO --output DIR ...``

(``detect`` is the landmark detection process that ``track`` starts before it imports torch:
:mod:`.detection_process`.)

stdout carries only the JSON lines of :mod:`..core.tracker_protocol`: the real stdout is kept for
them and file descriptor 1 is pointed at stderr, so libraries that print (mediapipe, ffmpeg) cannot
corrupt the stream. Without ``--verbose`` what native libraries write to file descriptors 1 and 2
(MediaPipe's glog and TFLite lines) goes to the null device and their Python warnings are muted;
Python's own ``sys.stderr`` (tracebacks) still reaches the real stderr. Exit codes: ``EXIT_OK``,
``EXIT_ERROR`` (one ``error`` line, e.g. bad input), ``EXIT_USAGE`` (bad arguments; also one
``error`` line). SIGTERM ends the job cleanly (staged outputs removed). Run as a program, it leaves
with :func:`leave` once :func:`main` has returned: the result is sent and the outputs are committed.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from ..core import tracker_protocol as protocol
from ..core.arguments import positive_int

if TYPE_CHECKING:
    from . import media


class Channel:
    """Writes protocol messages to the process's original stdout."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(self, message: dict[str, Any]) -> None:
        self.stream.write(protocol.encode(message))
        self.stream.flush()


def silence_native_output() -> None:
    """Send what native code writes to file descriptors 1 and 2 to the null device, keeping
    ``sys.stderr`` on the real stderr, and mute the log and warnings of MediaPipe's stack."""
    sys.stderr.flush()
    sys.stderr = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
    sys.stdout = sys.stderr
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)
    os.environ.setdefault("GLOG_minloglevel", "3")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for module in ("mediapipe", "google", "absl", "tensorflow"):
        warnings.filterwarnings("ignore", module=module)


def claim_stdout() -> Channel:
    """Keep the real stdout for the protocol and send everything else printed to stderr."""
    sys.stdout.flush()
    stream = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return Channel(stream)


class Parser(argparse.ArgumentParser):
    """argparse that also reports usage errors as a protocol error line."""

    channel: Channel | None = None

    def error(self, message: str) -> NoReturn:
        if self.channel is not None:
            self.channel(protocol.error(f"bad arguments: {message}"))
        self.print_usage(sys.stderr)
        self.exit(protocol.EXIT_USAGE, f"{self.prog}: error: {message}\n")


def positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def optional_path(text: str) -> Path | None:
    """A path, or None for an empty argument (a front end passing an unset file field)."""
    return Path(text) if text else None


def build_parser() -> Parser:
    parser = Parser(prog="python -m flame_blender_addon.tracking",
                    description="Fit a FLAME sequence to the face in a video (JSON lines on stdout).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    track = sub.add_parser("track", help="track a video, a folder of frames or an image")
    track.add_argument("--model", required=True, type=Path,
                       help="FLAME model (.pkl or .npz), or 'demo' for the add-on's procedural demo head")
    track.add_argument("--input", type=Path, help="video file, folder of frames, or image")
    track.add_argument("--output", required=True, type=Path, help="output folder")
    track.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    track.add_argument("--focal", type=positive, help="focal length in pixels (estimated when omitted)")
    track.add_argument("--landmarks", type=Path, help="precomputed landmarks .npz (lmk, conf, image_size)")
    track.add_argument("--embedding", type=optional_path,
                       help="landmark embedding .npz (lmk_face_idx, lmk_b_coords, landmark_indices); "
                            "default: the one in the model .npz, or the demo head's own")
    track.add_argument("--n-shape", type=positive_int, default=100, help="identity components to fit (default 100)")
    track.add_argument("--n-expr", type=positive_int, default=100, help="expression components to fit (default 100)")
    track.add_argument("--fps", type=positive, help="the input's frame rate (default: the video's, else 25); "
                                                           "the sequence's is this divided by --step")
    track.add_argument("--previews", type=int, default=12, help="overlay frames to write (default 12)")
    track.add_argument("--noise-px", type=positive, help="landmark noise in pixels (default 0.4%% of the face size)")
    add_trim_and_verbose(track)
    track.add_argument("--no-frames", action="store_true",
                       help="do not write the tracked frames to OUTPUT/frames (the sequence still names them)")
    photo = track.add_argument_group("photometric stage (texture, lighting, dense refinement)")
    photo.add_argument("--photometric", action=argparse.BooleanOptionalAction, default=None,
                       help="run it after the landmark fit (default: only with --device cuda)")
    photo.add_argument("--texture-space", type=optional_path,
                       help="albedo model .npz (mean, tex_dir, optional vt/ft; FLAME_texture.npz layout)")
    photo.add_argument("--uv", type=optional_path, help="OBJ with the model's UVs (e.g. FLAME's head_template.obj)")
    photo.add_argument("--masks", type=optional_path, help="FLAME_masks.pkl (its 'face' mask limits the stage)")
    # defaults: photometric.Settings (not imported here: it imports torch)
    photo.add_argument("--photometric-resolution", type=positive_int,
                       help="side of the face crops it compares (default 256)")
    photo.add_argument("--photometric-epochs", type=positive_int, help="passes over the clip (default 80)")
    photo.add_argument("--per-frame-light", action="store_true",
                       help="fit one SH lighting per frame (smooth in time) instead of one per clip")
    detect = sub.add_parser("detect", help="the landmark detection process that track starts (see detection_process)")
    detect.add_argument("--input", required=True, type=Path, help="video file, folder of frames, or image")
    detect.add_argument("--output", required=True, type=Path, help="landmarks .npz to write")
    detect.add_argument("--frames", type=Path, help="folder to write the frames to (JPEG)")
    add_trim_and_verbose(detect)
    return parser


def add_trim_and_verbose(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--start", type=non_negative, default=0, help="first frame to track (0-based; default 0)")
    parser.add_argument("--end", type=non_negative,
                        help="stop before this frame (like Python's range; default: the last frame)")
    parser.add_argument("--step", type=positive_int, default=1, help="track every n-th frame (default 1)")
    parser.add_argument("--verbose", action="store_true", help="show the log and warnings of MediaPipe and TFLite")


def _terminate(signum: int, frame: Any) -> NoReturn:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    channel = claim_stdout()
    parser = build_parser()
    Parser.channel = channel
    args = parser.parse_args(argv)
    if not args.verbose:
        silence_native_output()
    signal.signal(signal.SIGTERM, _terminate)
    try:
        from ..core.errors import FlameError
    except ImportError as err:  # pragma: no cover - broken installation
        channel(protocol.error(f"cannot import the add-on's core package: {err}"))
        return protocol.EXIT_ERROR
    try:
        from . import detection_process, media  # numpy, no torch: the detection process starts before torch
    except ImportError as err:
        channel(protocol.error(missing_dependency(err)))
        return protocol.EXIT_ERROR
    trim = media.Trim(args.start, args.end, args.step)
    if args.command == "detect":
        return reported(channel, FlameError, lambda: detection_process.detect_source(
            args.input, trim, args.frames, args.output, channel))
    return reported(channel, FlameError, lambda: track(args, trim, channel))


def missing_dependency(err: ImportError) -> str:
    return f"the tracker needs torch and numpy in this Python ({sys.executable}): {err}"


def track(args: argparse.Namespace, trim: media.Trim, channel: Channel) -> None:
    """The ``track`` command: the detection process is started before torch is imported."""
    from . import detection_process

    with detection_process.start(args.output, args.input, args.landmarks, trim, not args.no_frames,
                                 args.verbose) as started:
        try:
            from . import photometric, photometric_stage, solver, tracker
        except ImportError as err:
            from ..core.errors import TrackerError

            raise TrackerError(missing_dependency(err)) from None
        settings = solver.FitSettings(noise_px=args.noise_px)
        photo = photometric_stage.Options(
            enabled=args.photometric, texture_space=args.texture_space, uv=args.uv, masks=args.masks,
            settings=photometric.Settings(**_given(resolution=args.photometric_resolution,
                                                   epochs=args.photometric_epochs),
                                          per_frame_light=args.per_frame_light))
        opts = tracker.Options(model=args.model, output=args.output, input=args.input, device=args.device,
                               focal=args.focal, landmarks=args.landmarks, embedding=args.embedding,
                               n_shape=args.n_shape, n_expr=args.n_expr, fps=args.fps, previews=args.previews,
                               trim=trim, write_frames=not args.no_frames, settings=settings, photometric=photo)
        tracker.run(opts, channel, started)


def reported(channel: Channel, expected: type[Exception], job: Callable[[], object]) -> int:
    """Run ``job()``; an ``expected`` error (FlameError), a cancel (SIGTERM), running out of memory
    or a bug becomes one ``error`` line. Returns the exit code."""
    try:
        job()
    except expected as err:
        channel(protocol.error(str(err)))
        return protocol.EXIT_ERROR
    except KeyboardInterrupt:
        channel(protocol.error("tracking was cancelled"))
        return protocol.EXIT_ERROR
    except MemoryError:
        channel(protocol.error("out of memory; try fewer frames or --device cpu"))
        return protocol.EXIT_ERROR
    except Exception as err:  # noqa: BLE001 - the front end needs one line, the traceback goes to stderr
        traceback.print_exc()
        channel(protocol.error(f"internal error: {type(err).__name__}: {err}"))
        return protocol.EXIT_ERROR
    return protocol.EXIT_OK


def _given(**options: Any) -> dict[str, Any]:
    """The options the command line set (None: left to the settings' own default)."""
    return {k: v for k, v in options.items() if v is not None}


def leave(code: int) -> NoReturn:
    """Flush the streams and end the process without the interpreter's teardown (about 0.5 s of
    freeing torch's and MediaPipe's modules). Only after :func:`main` has returned: every output file
    is closed and committed (or its staging removed) and the last message is flushed by then."""
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        if stream is not None:
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    leave(main())
