"""The command line's arguments: one subparser per subcommand, one-line errors (exit code 2)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NoReturn

from ..core.arguments import positive_int
from .batch import cmd_batch
from .commands import (
    ALL_EXPORTS,
    ENGINES,
    EXPORT_CHOICES,
    cmd_build,
    cmd_demo,
    cmd_export,
    cmd_import,
    cmd_render,
    cmd_retarget,
    cmd_track,
)

HELP = """The FLAME add-on's pipeline from the command line.

Subcommands (each has --help):
  demo    demo head + built-in performance -> demo.blend, preview PNGs + MP4, every engine export
  build   FLAME model file (.pkl/.npz) -> .blend with the rigged head
  import  tracked sequence (+ model, else the demo head) -> .blend with animation and camera
  track   video / frames / landmarks -> tracked .blend, through the external tracker process
  render  .blend -> PNG frames (+ MP4), Workbench / Eevee / Cycles, optionally over source frames
  export  .blend's head -> FBX (Unreal, Unity), glTF binary, Alembic, USD, OBJ / PLY per frame
  retarget  your character (.blend/.fbx/.glb/.obj) + tracked sequence -> animated character .blend, FBX
  batch   many clips on Ray: track -> import -> preview -> exports, resumable (needs pip install ray)

Errors are one line on stderr with exit code 1 (2 for bad arguments). Outputs are written to a
staging folder inside the output folder and moved into place only when the command succeeds, so a
failure leaves nothing behind. Blender's own messages go to a temporary log file (named in the
error message when something unexpected fails) unless --verbose is given."""


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (``flame_cli.py demo: error: ...``), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


SEQUENCE_HELP = ("metrical-tracker folder or .frame, VHAP/GaussianAvatars .npz, flame_sequence.npz, "
                 "a folder of DECA/EMOCA/SMIRK results")


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


def common(q, output_help: str, output_type=Path) -> None:
    q.add_argument("-o", "--output", type=output_type, required=True, help=output_help)
    q.add_argument("--verbose", action="store_true", help="show Blender's own messages instead of logging them")


def render_options(q) -> None:
    q.add_argument("--engine", choices=ENGINES, default="WORKBENCH", help="render engine (default WORKBENCH)")
    q.add_argument("--samples", type=positive_int, help="samples per pixel (default: Workbench 1 = no "
                                                        "anti-aliasing, Eevee and Cycles 16)")
    q.add_argument("--device", choices=("CPU", "GPU"), default="CPU", help="Cycles device (default CPU)")


def preview_options(q, switch: type[argparse.Action] | str = "store_true") -> None:
    """Resolution, MP4 and compositing of ``render``; ``switch`` is the flags' action."""
    q.add_argument("--resolution", type=resolution, help="WxH, or W keeping the scene's aspect")
    q.add_argument("--mp4", action=switch, default=False, help="also encode preview.mp4")
    q.add_argument("--overlay", action=switch, default=False, help="composite the head over the source frames")
    q.add_argument("--side-by-side", action=switch, default=False, help="source frame left, render right")


def counts(q) -> None:
    q.add_argument("--n-shape", type=int, default=300, help="identity components (default 300)")
    q.add_argument("--n-expr", type=int, default=100, help="expression components (default 100)")


def formats(q, default: list[str]) -> None:
    q.add_argument("--formats", nargs="*", choices=sorted(EXPORT_CHOICES), default=default,
                   help="fbx = fbx-unreal + fbx-unity (default: " + " ".join(default or ["none"]) + ")")


def import_options(q) -> None:
    """How a sequence is imported (``import``, ``batch``)."""
    q.add_argument("--model", type=existing_file, help="FLAME model file (default: the demo head)")
    q.add_argument("--fps", type=float, default=0.0, help="source fps (default: the file's, else 25)")
    q.add_argument("--target-fps", type=float, default=0.0, help="resample to this fps")
    q.add_argument("--frame-start", type=int, default=1, help="scene frame of sequence frame 0 (default 1)")
    q.add_argument("--camera", choices=("MOVING_CAMERA", "STATIC_CAMERA", "NONE"), default="MOVING_CAMERA",
                   help="how the tracker's camera is imported (default MOVING_CAMERA)")
    q.add_argument("--eyelids", type=existing_folder, help="folder with l_eyelid.npy / r_eyelid.npy")


def fit_options(q) -> None:
    """The tracker's fit (``track``, ``batch``)."""
    q.add_argument("--focal", type=float, default=0.0, help="focal length in pixels (default: estimated)")
    q.add_argument("--embedding", type=existing_file, help="landmark embedding .npz for your FLAME model")


def clip_options(q) -> None:
    """What ``batch`` does with each clip; a manifest's column of the same name overrides it per clip."""
    import_options(q)
    fit_options(q)
    q.add_argument("--render", action=argparse.BooleanOptionalAction, default=False,
                   help="render a preview into OUT/<clip>/frames")
    render_options(q)
    preview_options(q, argparse.BooleanOptionalAction)
    formats(q, [])


class ClipParser(Parser):
    """Parses one clip's options (from a manifest); errors raise ValueError with argparse's message."""

    def error(self, message: str) -> NoReturn:
        raise ValueError(message)


def clip_parser(defaults: argparse.Namespace) -> ClipParser:
    """A parser of the clip options whose defaults are the batch command's values."""
    p = ClipParser(prog="clip", add_help=False)
    clip_options(p)
    p.set_defaults(**{a.dest: getattr(defaults, a.dest) for a in p._actions})
    return p


def batch_options(q) -> None:
    q.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="a folder of clips, a glob, a CSV or JSON clip list (input, name and clip options "
                        "per clip), or a clip: video, frames folder, landmarks .npz or tracked sequence")
    common(q, "output folder: OUT/<clip>/ for each clip, OUT/batch_report.json")
    q.add_argument("--force", action="store_true", help="run every clip again (default: skip finished ones)")
    q.add_argument("--retry-failed", action="store_true",
                   help="run clips again that failed on bad input in an earlier run (default: skip them)")
    q.add_argument("--address", help="join a Ray cluster: 'auto', or ray://HOST:10001 with ray[client] installed "
                                         "(default: start Ray here)")
    q.add_argument("--workers", type=positive_int, help="clips at a time in the local runtime (default: the CPU count; "
                                                            "a cluster's resources decide there)")
    q.add_argument("--retries", type=int, default=2, help="retries of a clip whose worker died (default 2)")
    q.add_argument("--gpus-per-track", type=float, default=1.0,
                   help="GPUs a tracking task asks for when the cluster has GPUs; 0 tracks on the CPU (default 1)")
    q.add_argument("--tracker-python", help="Python with torch for clips that need tracking (default: this one, "
                                            "if it has torch)")
    q.add_argument("--blender", help="Blender executable, or a Python with the bpy wheel, for the clips "
                                     "(default: this Blender or Python)")


def parser(prog: str) -> Parser:
    """The command line of every subcommand; ``prog`` names it in help and errors."""
    p = Parser(prog=prog, description=HELP.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
               epilog=HELP.split("\n\n", 1)[1])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    q = sub.add_parser("demo", help="demo head + built-in performance -> .blend, PNG + MP4 preview, exports",
                       description="The demo head performs the built-in 5 s animation (speech, blinks, brows, "
                                   "a head turn). Writes demo.blend, frames/NNNN.png, preview.mp4 and the "
                                   "engine exports into the output folder.")
    common(q, "output folder")
    q.add_argument("--resolution", type=resolution, help="preview size WxH or W (default 512x512)")
    q.add_argument("--frames", type=positive_int, help="only the first N frames of the performance (default all)")
    q.add_argument("--no-render", action="store_true", help="skip the preview render")
    q.add_argument("--no-video", action="store_true", help="PNG frames only, no MP4")
    q.add_argument("--character", action="store_true",
                   help="also the stylised demo character, fitted and rigged, playing the same performance")
    render_options(q)
    formats(q, ALL_EXPORTS)
    counts(q)
    q.set_defaults(func=cmd_demo)

    q = sub.add_parser("retarget", help="your character + tracked sequence -> animated character .blend and FBX",
                       description="Fits FLAME to the character's head, imports the sequence onto it and "
                                   "transfers the rig (or, with --keys, keys the character's own shape keys). "
                                   "Writes character.blend and character.fbx (Unreal) into the output folder.")
    q.add_argument("character", type=existing_file, help="the character: .blend, .fbx, .glb/.gltf or .obj")
    q.add_argument("sequence", type=existing_path, help=SEQUENCE_HELP)
    common(q, "output folder")
    q.add_argument("--mesh", default="", help="the character's mesh object (default: the largest mesh)")
    q.add_argument("--model", type=existing_file, help="FLAME model file (default: the demo head)")
    q.add_argument("--keys", action="store_true", help="key the character's own shape keys (ARKit or any set) "
                                                       "instead of transferring FLAME's rig")
    q.add_argument("--head-bone", default="", help="with --keys: bone that takes the head's rigid motion")
    q.add_argument("--fps", type=float, default=0.0, help="source fps (default: the file's, else 25)")
    q.add_argument("--frame-start", type=int, default=1, help="scene frame of sequence frame 0 (default 1)")
    counts(q)
    q.set_defaults(func=cmd_retarget)

    q = sub.add_parser("build", help="FLAME model file (.pkl/.npz) -> .blend with the rigged head",
                       description="Builds the rigged head (armature, shape keys, driven correctives).")
    q.add_argument("model", type=existing_file, help="generic_model.pkl, flame2023.pkl or a converted .npz")
    common(q, ".blend file to write", blend_path)
    counts(q)
    q.set_defaults(func=cmd_build)

    q = sub.add_parser("import", help="tracked sequence -> .blend with animation and camera",
                       description="Imports a tracked sequence onto a new head (the demo head without --model).")
    q.add_argument("sequence", type=existing_path, help=SEQUENCE_HELP)
    common(q, ".blend file to write", blend_path)
    import_options(q)
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
    q.add_argument("--landmarks", type=existing_file, help="precomputed landmarks .npz instead of detection")
    fit_options(q)
    q.add_argument("--command", dest="tracker_command",
                   help="run this tracker command instead; {input}, {output} and {model} are replaced by the "
                        "input, the tracker output folder and the model")
    q.set_defaults(func=cmd_track)

    q = sub.add_parser("render", help=".blend -> PNG frames (+ MP4) through the scene camera",
                       description="Renders frames/NNNN.png (and preview.mp4 with --mp4) into the output folder.")
    q.add_argument("blend", type=existing_file)
    common(q, "output folder")
    q.add_argument("--frames", type=frame_range, help="FIRST:LAST[:STEP] (default: the scene's range)")
    preview_options(q)
    q.add_argument("--source", type=existing_path,
                   help="the footage: a tracker output folder, a folder of numbered frames or a video, its first "
                        "frame at the sequence's frame 0 (default: the camera's background, set by a tracked import)")
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

    q = sub.add_parser("batch", help="many clips on Ray: track -> import -> preview -> exports, resumable",
                       description="Runs each clip (tracking video, frames or landmarks first) in its own Ray task "
                                   "and Blender process: OUT/<clip>/<clip>.blend, track/, frames/, export/, "
                                   "log.txt, result.json, and OUT/batch_report.json. A re-run skips finished "
                                   "clips. Needs Ray: pip install 'flame-blender-addon[batch]'.")
    batch_options(q)
    clip_options(q.add_argument_group("clip options (a CSV/JSON column of the same name overrides one per clip)"))
    q.set_defaults(func=cmd_batch)
    return p
