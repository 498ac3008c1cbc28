"""The FLAME add-on's pipeline from the command line: the same under the bpy wheel and inside Blender.

    python scripts/flame_cli.py demo --output out/demo
    blender --background --factory-startup --python scripts/flame_cli.py -- demo --output out/demo

Subcommands (each has --help):
  demo    demo head + built-in performance -> demo.blend, preview PNGs + MP4, every engine export
  build   FLAME model file (.pkl/.npz) -> .blend with the rigged head
  import  tracked sequence (+ model, else the demo head) -> .blend with animation and camera
  track   video / frames / landmarks -> tracked .blend, through the external tracker process
  render  .blend -> PNG frames (+ MP4), Workbench / Eevee / Cycles, optionally over source frames
  export  .blend's head -> FBX (Unreal, Unity), glTF binary, Alembic, USD, OBJ / PLY per frame

Errors are one line on stderr with exit code 1 (2 for bad arguments). Outputs are written to a
staging folder inside the output folder and moved into place only when the command succeeds, so a
failure leaves nothing behind. Blender's own messages go to a temporary log file (named in the
error message when something unexpected fails) unless --verbose is given.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable, Iterator, NoReturn, TextIO

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PROG = "flame_cli.py"
ENGINES = ("WORKBENCH", "EEVEE", "CYCLES")
DEFAULT_SAMPLES = {"WORKBENCH": 1, "EEVEE": 16, "CYCLES": 16}  # Workbench: anti-aliasing samples, 1 = off
EXPORT_CHOICES = {  # CLI name -> export.FORMATS ids
    "fbx": ("fbx_unreal", "fbx_unity"), "fbx-unreal": ("fbx_unreal",), "fbx-unity": ("fbx_unity",),
    "glb": ("glb",), "abc": ("abc",), "usd": ("usd",), "obj": ("obj",), "ply": ("ply",),
}
ALL_EXPORTS = ["fbx", "glb", "abc", "usd", "obj", "ply"]
EXPORT_STEM = "head"


class CliError(Exception):
    """A problem the user can act on: printed as one line, exit code 1."""


# ------------------------------------------------------------------------------------------ console
class Console:
    """The terminal's stdout/stderr, kept aside while Blender's C code prints into a log file."""

    def __init__(self, verbose: bool) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self.out: TextIO = os.fdopen(os.dup(1), "w", buffering=1)
        self.err: TextIO = os.fdopen(os.dup(2), "w", buffering=1)
        self.log_path: Path | None = None
        if not verbose:
            fd, name = tempfile.mkstemp(prefix="flame_cli-", suffix=".log")
            self.log_path = Path(name)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.close(fd)

    def info(self, message: str) -> None:
        self.out.write(message + "\n")

    def error(self, message: str) -> None:
        self.err.write(f"{PROG}: error: {message}\n")

    def close(self, keep_log: bool) -> None:
        """Restore the terminal; the log is deleted unless ``keep_log``."""
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self.out.fileno(), 1)
        os.dup2(self.err.fileno(), 2)
        if self.log_path is not None and not keep_log:
            self.log_path.unlink(missing_ok=True)


class ProgressBar:
    """``label [#######.......]  45%  frame 57  eta 12 s`` on one line (a line per 10% when piped)."""

    WIDTH = 28

    def __init__(self, console: Console, label: str) -> None:
        self.console, self.label = console, label
        self.started, self.shown = time.monotonic(), -1
        self.tty = console.out.isatty()

    def __call__(self, fraction: float, message: str = "") -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        step = int(fraction * 10)
        if not self.tty and step == self.shown and fraction < 1.0:
            return
        self.shown = step
        elapsed = time.monotonic() - self.started
        eta = f"{elapsed * (1.0 - fraction) / fraction:4.0f} s" if fraction > 0 else "   ? s"
        filled = int(self.WIDTH * fraction)
        line = (f"{self.label} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {100 * fraction:3.0f}%  "
                f"{message:<24.24}  eta {eta}")
        end = "\n" if fraction >= 1.0 or not self.tty else ""
        self.console.out.write(("\r" if self.tty else "") + line + end)
        self.console.out.flush()


@contextlib.contextmanager
def staged_output(folder: Path) -> Iterator[Path]:
    """A staging folder inside ``folder``; its entries replace those in ``folder`` only if the block
    succeeds. On failure the staging folder (and ``folder``, if this created it) is removed."""
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=".flame-cli-", dir=folder))
    except OSError as err:
        raise CliError(f"{folder}: cannot write there ({err.strerror or err})") from None
    try:
        yield stage
        for item in stage.iterdir():
            target = folder / item.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(item, target)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        if created:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    stage.rmdir()


# ------------------------------------------------------------------------------------------ Blender
def blender():
    """Import bpy and register the add-on from this source tree (unless an installed copy is on)."""
    try:
        import bpy
    except ImportError:
        raise CliError("bpy is not installed: run with the bpy wheel (pip install bpy, Python 3.11) or inside "
                       "Blender (blender --background --python scripts/flame_cli.py -- ...)") from None
    if not hasattr(bpy.types, "FLAME_OT_import_model"):
        import flame_blender_addon

        flame_blender_addon.register()
    return bpy


def run_operator(op: Callable[..., set[str]], **kwargs) -> None:
    """Call an operator; its ERROR report (a RuntimeError) becomes a CliError."""
    try:
        result = op(**kwargs)
    except RuntimeError as err:
        raise CliError(str(err).strip().removeprefix("Error:").strip().splitlines()[0]) from None
    if "FINISHED" not in result:
        raise CliError(f"{op.idname_py()} did not finish")


def open_blend(bpy, path: Path) -> None:
    """Open a .blend (without running scripts stored in it)."""
    try:
        bpy.ops.wm.open_mainfile(filepath=str(path), load_ui=False, use_scripts=False)
    except RuntimeError:
        raise CliError(f"{path}: cannot be opened as a .blend file") from None


def find_head(bpy, name: str = ""):
    """The FLAME head named ``name``, else the first in the scene."""
    from flame_blender_addon.blender.head import find_head as head_of

    heads = [o for o in bpy.context.scene.objects if head_of(o) is o]
    if name:
        heads = [o for o in heads if o.name == name]
        if not heads:
            raise CliError(f"the scene has no FLAME head named '{name}'")
    if not heads:
        raise CliError("the scene has no FLAME head")
    return heads[0]


def save_blend(bpy, path: Path) -> None:
    bpy.ops.wm.save_as_mainfile(filepath=str(path), compress=True, copy=True)


def write_blend(bpy, output: Path, console: Console) -> None:
    """Save the scene to ``output`` through a staging folder beside it."""
    with staged_output(output.parent) as stage:
        save_blend(bpy, stage / output.name)
    console.info(f"wrote {output}")


def render_settings(args, resolution: tuple[int, int] | None = None, frames: tuple[int, int, int] | None = None):
    from flame_blender_addon.blender.render import RenderSettings

    samples = args.samples or DEFAULT_SAMPLES[args.engine]
    return RenderSettings(engine=args.engine, resolution=resolution, samples=samples, device=args.device, frames=frames)


def render_into(bpy, console: Console, stage: Path, settings, video: bool, source=None, overlay=False,
                side_by_side=False) -> None:
    """Render the scene's camera into ``stage/frames`` (+ ``stage/preview.mp4``) with a progress bar."""
    from flame_blender_addon.blender import render

    result = render.render_preview(bpy.context, stage / "frames", settings,
                                   video=stage / "preview.mp4" if video else None, source=source,
                                   overlay=overlay, side_by_side=side_by_side,
                                   report=ProgressBar(console, f"render ({settings.engine.lower()})"))
    console.info(f"rendered {len(result.frames)} frames, {result.seconds_per_frame:.2f} s/frame "
                 f"({settings.engine.lower()}, {bpy.context.scene.render.resolution_x}x"
                 f"{bpy.context.scene.render.resolution_y})")
    if result.missing_sources:
        console.info(f"warning: {len(result.missing_sources)} frames had no source frame")


def export_into(bpy, console: Console, stage: Path, armature, formats: list[str], frames=None) -> None:
    from flame_blender_addon.blender import export

    ids = tuple(dict.fromkeys(i for name in formats for i in EXPORT_CHOICES[name]))
    written = export.export_all(bpy.context, armature, stage, EXPORT_STEM, ids, frames,
                                report=ProgressBar(console, "export"))
    console.info("exported " + ", ".join(f"{k} ({len(v)} files)" if len(v) > 1 else k for k, v in written.items()))


# ------------------------------------------------------------------------------------- subcommands
def cmd_demo(args, console: Console) -> None:
    bpy = blender()
    from flame_blender_addon.blender import head, render, sequence_import
    from flame_blender_addon.demo.head import demo_model
    from flame_blender_addon.demo.performance import demo_performance
    from flame_blender_addon.core.sequence import fit_components

    width, height = args.resolution or (512, 512)
    height = height or width
    bpy.ops.wm.read_homefile(use_empty=True)
    with staged_output(args.output) as stage:
        console.info("building the demo head and its performance ...")
        armature = head.build_head(bpy.context, demo_model().truncated(args.n_shape, args.n_expr), "FLAME_demo")
        seq = demo_performance(n_shape=args.n_shape, n_expr=max(args.n_expr, 14), image_size=(height, width))
        seq = fit_components(seq if args.frames is None else seq.take(slice(0, args.frames)),
                             armature.flame.n_shape, armature.flame.n_expr)
        sequence_import.apply_sequence(bpy.context, armature, seq)
        render.add_preview_lighting(bpy.context)
        save_blend(bpy, stage / "demo.blend")
        if not args.no_render:
            render_into(bpy, console, stage, render_settings(args), video=not args.no_video)
        if args.formats:
            export_into(bpy, console, stage, armature, args.formats)
    console.info(f"demo written to {args.output}")


def cmd_build(args, console: Console) -> None:
    bpy = blender()
    bpy.ops.wm.read_homefile(use_empty=True)
    run_operator(bpy.ops.flame.import_model, filepath=str(args.model), n_shape=args.n_shape, n_expr=args.n_expr)
    write_blend(bpy, args.output, console)


def cmd_import(args, console: Console) -> None:
    bpy = blender()
    bpy.ops.wm.read_homefile(use_empty=True)
    if args.model is None:
        run_operator(bpy.ops.flame.add_demo_head)
    run_operator(bpy.ops.flame.import_sequence, filepath=str(args.sequence), model_filepath=str(args.model or ""),
                 fps=args.fps, target_fps=args.target_fps, camera_mode=args.camera, frame_start=args.frame_start,
                 eyelid_folder=str(args.eyelids or ""))
    write_blend(bpy, args.output, console)


def cmd_track(args, console: Console) -> None:
    bpy = blender()
    bpy.ops.wm.read_homefile(use_empty=True)
    options = {"filepath": str(args.input or ""), "output_dir": str(args.work_dir or ""),
               "model_filepath": str(args.model or ""), "python": args.python or "", "focal": args.focal,
               "landmarks_filepath": str(args.landmarks or ""), "embedding_filepath": str(args.embedding or ""),
               "command_template": args.command or ""}
    if args.device:
        options["device"] = args.device
    with staged_output(args.output.parent) as stage, contextlib.redirect_stdout(console.out):
        run_operator(bpy.ops.flame.track_video, **options)  # prints the tracker's progress lines
        save_blend(bpy, stage / args.output.name)
    console.info(f"wrote {args.output}")


def cmd_render(args, console: Console) -> None:
    bpy = blender()
    from flame_blender_addon.blender import render

    open_blend(bpy, args.blend)
    scene = bpy.context.scene
    resolution = None
    if args.resolution:
        width, height = args.resolution
        resolution = (width, height or max(1, round(width * scene.render.resolution_y / scene.render.resolution_x)))
    source = None
    if args.source:
        source = render.folder_frames(args.source, (args.frames or (scene.frame_start,))[0])
    elif args.overlay or args.side_by_side:
        source = render.camera_background_frames(scene)
    with staged_output(args.output) as stage:
        render_into(bpy, console, stage, render_settings(args, resolution, args.frames), video=args.mp4, source=source,
                    overlay=args.overlay, side_by_side=args.side_by_side)
    console.info(f"rendered into {args.output}")


def cmd_export(args, console: Console) -> None:
    bpy = blender()
    open_blend(bpy, args.blend)
    armature = find_head(bpy, args.target)
    with staged_output(args.output) as stage:
        export_into(bpy, console, stage, armature, args.formats, args.frames[:2] if args.frames else None)
    console.info(f"exported into {args.output}")


# ------------------------------------------------------------------------------------------ parsing
class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (``flame_cli.py demo: error: ...``), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def frame_range(text: str) -> tuple[int, int, int]:
    """``FIRST:LAST`` or ``FIRST:LAST:STEP`` (inclusive)."""
    try:
        values = [int(v) for v in text.split(":")]
    except ValueError:
        values = []
    if len(values) not in (2, 3):
        raise argparse.ArgumentTypeError(f"'{text}' is not FIRST:LAST[:STEP]")
    first, last, step = (values + [1])[:3]
    if last < first:
        raise argparse.ArgumentTypeError(f"'{text}': LAST is before FIRST")
    if step < 1:
        raise argparse.ArgumentTypeError(f"'{text}': STEP must be at least 1")
    return first, last, step


def resolution(text: str) -> tuple[int, int]:
    """``W`` (height keeps the scene's aspect: 0) or ``WxH``, each 4..16384 pixels."""
    try:
        values = [int(v) for v in text.lower().split("x")]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or not all(4 <= v <= 16384 for v in values):
        raise argparse.ArgumentTypeError(f"'{text}' is not WIDTH or WIDTHxHEIGHT (4 to 16384 pixels)")
    return values[0], values[1] if len(values) == 2 else 0


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a positive integer")
    return int(text)


def existing_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: file not found")
    return path


def existing_path(text: str) -> Path:
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text}: no such file or folder")
    return path


def existing_folder(text: str) -> Path:
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: no such folder")
    return path


def blend_path(text: str) -> Path:
    if not text.endswith(".blend"):
        raise argparse.ArgumentTypeError(f"{text}: the output must be a .blend file")
    return Path(text)


def parser() -> Parser:
    p = Parser(prog=PROG, description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
               epilog=__doc__.split("\n\n", 2)[2])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    def common(q, output_help: str, output_type=Path) -> None:
        q.add_argument("-o", "--output", type=output_type, required=True, help=output_help)
        q.add_argument("--verbose", action="store_true", help="show Blender's own messages instead of logging them")

    def render_options(q) -> None:
        q.add_argument("--engine", choices=ENGINES, default="WORKBENCH", help="render engine (default WORKBENCH)")
        q.add_argument("--samples", type=positive_int, help="samples per pixel (default: Workbench 1 = no "
                                                            "anti-aliasing, Eevee and Cycles 16)")
        q.add_argument("--device", choices=("CPU", "GPU"), default="CPU", help="Cycles device (default CPU)")

    def counts(q) -> None:
        q.add_argument("--n-shape", type=int, default=300, help="identity components (default 300)")
        q.add_argument("--n-expr", type=int, default=100, help="expression components (default 100)")

    def formats(q, default: list[str]) -> None:
        q.add_argument("--formats", nargs="*", choices=sorted(EXPORT_CHOICES), default=default,
                       help="fbx = fbx-unreal + fbx-unity (default: " + " ".join(default or ["none"]) + ")")

    q = sub.add_parser("demo", help="demo head + built-in performance -> .blend, PNG + MP4 preview, exports",
                       description="The demo head performs the built-in 5 s animation (speech, blinks, brows, "
                                   "a head turn). Writes demo.blend, frames/NNNN.png, preview.mp4 and the "
                                   "engine exports into the output folder.")
    common(q, "output folder")
    q.add_argument("--resolution", type=resolution, help="preview size WxH or W (default 512x512)")
    q.add_argument("--frames", type=positive_int, help="only the first N frames of the performance (default all)")
    q.add_argument("--no-render", action="store_true", help="skip the preview render")
    q.add_argument("--no-video", action="store_true", help="PNG frames only, no MP4")
    render_options(q)
    formats(q, ALL_EXPORTS)
    counts(q)
    q.set_defaults(func=cmd_demo)

    q = sub.add_parser("build", help="FLAME model file (.pkl/.npz) -> .blend with the rigged head",
                       description="Builds the rigged head (armature, shape keys, driven correctives).")
    q.add_argument("model", type=existing_file, help="generic_model.pkl, flame2023.pkl or a converted .npz")
    common(q, ".blend file to write", blend_path)
    counts(q)
    q.set_defaults(func=cmd_build)

    q = sub.add_parser("import", help="tracked sequence -> .blend with animation and camera",
                       description="Imports a tracked sequence onto a new head (the demo head without --model).")
    q.add_argument("sequence", type=existing_path,
                   help="metrical-tracker folder or .frame, VHAP/GaussianAvatars .npz, flame_sequence.npz")
    common(q, ".blend file to write", blend_path)
    q.add_argument("--model", type=existing_file, help="FLAME model file (default: the demo head)")
    q.add_argument("--fps", type=float, default=0.0, help="source fps (default: the file's, else 25)")
    q.add_argument("--target-fps", type=float, default=0.0, help="resample to this fps")
    q.add_argument("--frame-start", type=int, default=1, help="scene frame of sequence frame 0 (default 1)")
    q.add_argument("--camera", choices=("MOVING_CAMERA", "STATIC_CAMERA", "NONE"), default="MOVING_CAMERA",
                   help="how the tracker's camera is imported (default MOVING_CAMERA)")
    q.add_argument("--eyelids", type=existing_folder, help="folder with l_eyelid.npy / r_eyelid.npy")
    q.set_defaults(func=cmd_import)

    q = sub.add_parser("track", help="video / frames / landmarks -> tracked .blend (external tracker process)",
                       description="Runs the tracker in your Python with torch (--python) and imports the result "
                                   "onto a new head.")
    q.add_argument("input", type=existing_path, nargs="?", help="video file, folder of frames or one image")
    common(q, ".blend file to write", blend_path)
    q.add_argument("--work-dir", type=Path, help="tracker output folder (default: <input>_flame beside the input)")
    q.add_argument("--model", type=existing_file, help="FLAME model (default: the demo head)")
    q.add_argument("--python", help="Python with torch for the tracker (default: the add-on preference)")
    q.add_argument("--device", choices=("auto", "cuda", "cpu"), help="tracker device (default: the preference)")
    q.add_argument("--focal", type=float, default=0.0, help="focal length in pixels (default: estimated)")
    q.add_argument("--landmarks", type=existing_file, help="precomputed landmarks .npz instead of detection")
    q.add_argument("--embedding", type=existing_file, help="landmark embedding .npz for --landmarks")
    q.add_argument("--command", help="run this tracker command instead ({model} {source} {output} placeholders)")
    q.set_defaults(func=cmd_track)

    q = sub.add_parser("render", help=".blend -> PNG frames (+ MP4) through the scene camera",
                       description="Renders frames/NNNN.png (and preview.mp4 with --mp4) into the output folder.")
    q.add_argument("blend", type=existing_file)
    common(q, "output folder")
    q.add_argument("--frames", type=frame_range, help="FIRST:LAST[:STEP] (default: the scene's range)")
    q.add_argument("--resolution", type=resolution, help="WxH, or W keeping the scene's aspect")
    q.add_argument("--mp4", action="store_true", help="also encode preview.mp4")
    q.add_argument("--overlay", action="store_true", help="composite the head over the source frames")
    q.add_argument("--side-by-side", action="store_true", help="source frame left, render right")
    q.add_argument("--source", type=existing_folder,
                   help="folder of numbered source frames (default: the camera's background images)")
    render_options(q)
    q.set_defaults(func=cmd_render)

    q = sub.add_parser("export", help=".blend's head -> FBX (Unreal, Unity), glTF, Alembic, USD, OBJ/PLY",
                       description="Writes head_unreal.fbx, head_unity.fbx, head.glb, head.abc, head.usd, "
                                   "obj/head_NNNN.obj and ply/head_NNNN.ply (as selected) into the output folder.")
    q.add_argument("blend", type=existing_file)
    common(q, "output folder")
    q.add_argument("--frames", type=frame_range, help="FIRST:LAST (default: the scene's range; STEP is ignored)")
    q.add_argument("--target", default="", help="name of the FLAME head (default: the first one)")
    formats(q, ALL_EXPORTS)
    q.set_defaults(func=cmd_export)
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    console = Console(args.verbose)
    keep_log = False
    try:
        args.func(args, console)
        return 0
    except CliError as err:
        console.error(f"{args.command}: {err}")
    except KeyboardInterrupt:
        console.error(f"{args.command}: interrupted; nothing was written")
        return 130
    except Exception as err:  # FlameError and OSError carry a message for the user; anything else is a bug
        from flame_blender_addon.core.errors import FlameError

        if isinstance(err, (FlameError, OSError)):
            console.error(f"{args.command}: {err}")
        else:
            traceback.print_exc()  # into the log (or the terminal with --verbose)
            keep_log = console.log_path is not None
            console.error(f"{args.command}: unexpected {type(err).__name__}: {err}"
                          + (f" (details in {console.log_path})" if keep_log else ""))
    finally:
        console.close(keep_log)
    return 1


def script_args(argv: list[str]) -> list[str]:
    """The arguments meant for this script: after ``--`` when a Blender executable runs it
    (``blender --background --python flame_cli.py -- demo ...``), else all but the script name."""
    blender_options = argv[:argv.index("--")] if "--" in argv else argv
    if "--python" in blender_options or "-P" in blender_options:
        return argv[argv.index("--") + 1:] if "--" in argv else []
    return argv[1:]


def _exit(code: int) -> NoReturn:
    """Leave without the bpy module's interpreter shutdown, which can hang or crash after rendering
    (a static destructor waits on a thread), and remove Blender's session temp folder it would have."""
    sys.stdout.flush()
    sys.stderr.flush()
    bpy = sys.modules.get("bpy")
    if bpy is not None and not bpy.app.binary_path:
        tempdir = Path(bpy.app.tempdir)
        if tempdir.name.startswith("blender_"):
            shutil.rmtree(tempdir, ignore_errors=True)
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    _exit(main(script_args(sys.argv)))
