"""The FLAME add-on's pipeline from the command line, with the bpy wheel or inside Blender.

    python scripts/flame_cli.py demo --output out/demo
    blender --background --python scripts/flame_cli.py -- demo --output out/demo

Subcommands:
  demo    the demo head + built-in performance -> demo.blend, preview PNGs + MP4, FBX and glTF
  build   a FLAME model file -> .blend with the rigged head
  import  a tracked sequence (+ model, else the demo head) -> .blend with animation and camera
  track   a video / frames / landmarks -> tracked .blend, through the external tracker process
  render  a .blend -> PNG frames (+ MP4)
  export  a .blend's head -> FBX (Unity / Unreal scale), glTF binary

Errors are one line on stderr and exit code 1 (2 for bad arguments). Outputs are written to a
staging folder inside the output folder and moved into place at the end, so a failure leaves
nothing half-written.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ENGINES = ("WORKBENCH", "EEVEE", "CYCLES")


class CliError(Exception):
    """A problem the user can act on: printed as one line, exit code 1."""


def script_args(argv: list[str]) -> list[str]:
    """The arguments meant for this script (after ``--`` when run by a Blender executable)."""
    return argv[argv.index("--") + 1:] if "--" in argv else argv[1:]


def progress_bar(label: str, done: int, total: int, started: float) -> None:
    """One carriage-return line: ``label [#####.....] 12/40  eta 8 s``."""
    width = 30
    filled = int(width * done / max(total, 1))
    elapsed = time.monotonic() - started
    eta = elapsed / done * (total - done) if done else 0.0
    end = "\n" if done >= total else ""
    print(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}  eta {eta:4.0f} s", end=end,
          flush=True)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence what Blender's C code prints on stdout (per-frame render lines) for the block."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@contextlib.contextmanager
def staged_output(folder: Path) -> Iterator[Path]:
    """A staging folder inside ``folder``; its files move into ``folder`` only if the block succeeds."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=".flame-cli-", dir=folder))
    except OSError as err:
        raise CliError(f"{folder}: cannot write there ({err.strerror or err})") from None
    try:
        yield stage
        for item in stage.iterdir():
            target = folder / item.name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(item, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


# ------------------------------------------------------------------------------------------ Blender
def blender():
    """Import bpy and make sure the add-on's operators exist (installed extension or this source)."""
    import bpy

    if not hasattr(bpy.types, "FLAME_OT_import_model"):
        import flame_blender_addon

        flame_blender_addon.register()
    return bpy


def run_operator(op: Callable, **kwargs) -> None:
    """Call an operator; its ERROR report becomes a CliError."""
    try:
        result = op(**kwargs)
    except RuntimeError as err:
        raise CliError(str(err).strip().removeprefix("Error: ").strip()) from None
    if "FINISHED" not in result:
        raise CliError(f"{op.idname_py()} did not finish")


def open_blend(path: Path):
    bpy = blender()
    if not path.is_file():
        raise CliError(f"{path}: no such .blend file")
    bpy.ops.wm.open_mainfile(filepath=str(path), load_ui=False)
    return bpy


def the_head(bpy):
    from flame_blender_addon.blender.head import find_head

    heads = [o for o in bpy.context.scene.objects if find_head(o) is o]
    if not heads:
        raise CliError("the scene has no FLAME head")
    return heads[0]


def save_blend(bpy, path: Path) -> None:
    bpy.ops.wm.save_as_mainfile(filepath=str(path), compress=True)


def render_frames(bpy, folder: Path, engine: str, resolution: int | None, samples: int,
                  frames: tuple[int, int] | None, mp4: bool) -> None:
    """Render the scene's camera frame by frame into ``folder/frames/NNNN.png`` (+ ``preview.mp4``)."""
    from flame_blender_addon.blender import compat

    scene = bpy.context.scene
    if scene.camera is None:
        raise CliError("the scene has no camera to render from")
    scene.render.engine = {"WORKBENCH": "BLENDER_WORKBENCH", "EEVEE": compat.EEVEE_ENGINE,
                           "CYCLES": "CYCLES"}[engine]
    if engine == "CYCLES":
        scene.cycles.samples = samples
        scene.cycles.device = "CPU"
    elif engine == "EEVEE":
        scene.eevee.taa_render_samples = samples
    if resolution:
        aspect = scene.render.resolution_y / scene.render.resolution_x
        scene.render.resolution_x, scene.render.resolution_y = resolution, max(1, round(resolution * aspect))
    scene.render.image_settings.file_format = "PNG"
    first, last = frames or (scene.frame_start, scene.frame_end)
    (folder / "frames").mkdir(exist_ok=True)
    started = time.monotonic()
    for i, frame in enumerate(range(first, last + 1)):
        scene.frame_set(frame)
        scene.render.filepath = str(folder / "frames" / f"{frame:04d}.png")
        with quiet():
            bpy.ops.render.render(write_still=True)
        progress_bar(f"render ({engine.lower()})", i + 1, last - first + 1, started)
    if mp4:
        encode_mp4(bpy, folder / "frames", folder / "preview.mp4", scene.render.fps, first, last)


def encode_mp4(bpy, frames: Path, target: Path, fps: int, first: int, last: int) -> None:
    """PNG frames -> H.264 MP4 through Blender's sequencer (no 3D rendering involved)."""
    scene = bpy.data.scenes.new("flame_mp4")
    files = [frames / f"{f:04d}.png" for f in range(first, last + 1)]
    image = bpy.data.images.load(str(files[0]))
    scene.render.resolution_x, scene.render.resolution_y = image.size
    bpy.data.images.remove(image)
    scene.render.fps, scene.frame_start, scene.frame_end = fps, 1, len(files)
    from flame_blender_addon.blender import compat

    strip = compat.sequencer_strips(scene.sequence_editor_create()).new_image("frames", str(files[0]), 1, 1)
    for file in files[1:]:
        strip.elements.append(file.name)
    settings = scene.render
    compat.set_video_output(settings.image_settings)
    settings.ffmpeg.format, settings.ffmpeg.codec = "MPEG4", "H264"
    settings.filepath = str(target)
    with quiet():
        bpy.ops.render.render(animation=True, scene=scene.name)
    bpy.data.scenes.remove(scene)
    if not target.is_file():
        raise CliError("the MP4 preview could not be encoded (Blender without FFmpeg?)")


def export_head(bpy, folder: Path, formats: list[str]) -> None:
    """Armature + mesh with shape keys and animation, as FBX (Unity, Unreal ×100) and/or glTF binary."""
    armature = the_head(bpy)
    for obj in bpy.context.view_layer.objects:
        obj.select_set(obj in (armature, armature.flame.mesh))
    bpy.context.view_layer.objects.active = armature
    common = dict(use_selection=True, object_types={"ARMATURE", "MESH"}, add_leaf_bones=False,
                  bake_anim=True, bake_anim_use_all_actions=False, bake_anim_use_nla_strips=False,
                  bake_anim_simplify_factor=0.0)
    with quiet():
        if "fbx" in formats:
            bpy.ops.export_scene.fbx(filepath=str(folder / "head_unity.fbx"), **common)
            bpy.ops.export_scene.fbx(filepath=str(folder / "head_unreal.fbx"), global_scale=100.0,
                                     apply_unit_scale=True, **common)
        if "glb" in formats:
            bpy.ops.export_scene.gltf(filepath=str(folder / "head.glb"), export_format="GLB", use_selection=True,
                                      export_animations=True, export_morph=True, export_skins=True)


# ------------------------------------------------------------------------------------- subcommands
def cmd_demo(args) -> None:
    bpy = blender()
    from flame_blender_addon.blender import head, sequence_import
    from flame_blender_addon.core.demo_head import demo_model
    from flame_blender_addon.core.performance import demo_performance

    bpy.ops.wm.read_homefile(use_empty=True)
    with staged_output(args.output) as stage:
        print("building the demo head and its performance ...", flush=True)
        armature = head.build_head(bpy.context, demo_model().truncated(args.n_shape, args.n_expr), "FLAME_demo")
        seq = demo_performance(n_shape=args.n_shape, n_expr=args.n_expr,
                               image_size=(args.resolution, args.resolution))
        if args.frames:
            seq = seq.take(slice(0, args.frames))
        sequence_import.apply_sequence(bpy.context, armature, seq)
        save_blend(bpy, stage / "demo.blend")
        if not args.no_render:
            render_frames(bpy, stage, args.engine, None, args.samples, None, mp4=True)
        export_head(bpy, stage, ["fbx", "glb"])
    print(f"demo written to {args.output}")


def cmd_build(args) -> None:
    bpy = blender()
    bpy.ops.wm.read_homefile(use_empty=True)
    run_operator(bpy.ops.flame.import_model, filepath=str(args.model), n_shape=args.n_shape, n_expr=args.n_expr)
    with staged_output(args.output.parent) as stage:
        save_blend(bpy, stage / args.output.name)
    print(f"wrote {args.output}")


def cmd_import(args) -> None:
    bpy = blender()
    bpy.ops.wm.read_homefile(use_empty=True)
    if args.model is None:
        run_operator(bpy.ops.flame.add_demo_head)
    run_operator(bpy.ops.flame.import_sequence, filepath=str(args.sequence),
                 model_filepath=str(args.model or ""), fps=args.fps, target_fps=args.target_fps,
                 camera_mode=args.camera)
    with staged_output(args.output.parent) as stage:
        save_blend(bpy, stage / args.output.name)
    print(f"wrote {args.output}")


def cmd_track(args) -> None:
    bpy = blender()
    bpy.ops.wm.read_homefile(use_empty=True)
    run_operator(bpy.ops.flame.track_video, filepath=str(args.input or ""), output_dir=str(args.work_dir or ""),
                 model_filepath=str(args.model or ""), python=args.python or "", focal=args.focal,
                 landmarks_filepath=str(args.landmarks or ""), embedding_filepath=str(args.embedding or ""))
    with staged_output(args.output.parent) as stage:
        save_blend(bpy, stage / args.output.name)
    print(f"wrote {args.output}")


def cmd_render(args) -> None:
    bpy = open_blend(args.blend)
    with staged_output(args.output) as stage:
        render_frames(bpy, stage, args.engine, args.resolution, args.samples, args.frames, mp4=args.mp4)
    print(f"rendered into {args.output}")


def cmd_export(args) -> None:
    bpy = open_blend(args.blend)
    with staged_output(args.output) as stage:
        export_head(bpy, stage, args.formats)
    print(f"exported into {args.output}")


# ------------------------------------------------------------------------------------------ parsing
def frame_range(text: str) -> tuple[int, int]:
    try:
        first, last = (int(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not FIRST:LAST") from None
    if last < first:
        raise argparse.ArgumentTypeError(f"'{text}': LAST is before FIRST")
    return first, last


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flame_cli.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 2)[2])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def render_options(q, resolution: bool) -> None:
        q.add_argument("--engine", choices=ENGINES, default="WORKBENCH", help="render engine (default WORKBENCH)")
        q.add_argument("--samples", type=int, default=8, help="Eevee/Cycles samples (default 8)")
        if resolution:
            q.add_argument("--resolution", type=int, help="width in pixels (height keeps the aspect)")

    def counts(q) -> None:
        q.add_argument("--n-shape", type=int, default=300, help="identity components (default 300)")
        q.add_argument("--n-expr", type=int, default=100, help="expression components (default 100)")

    q = sub.add_parser("demo", help="demo head + built-in performance -> .blend, PNG + MP4 preview, exports")
    q.add_argument("--output", type=Path, required=True, help="output folder")
    q.add_argument("--resolution", type=int, default=256, help="preview size in pixels (default 256)")
    q.add_argument("--frames", type=int, help="only the first N frames of the performance")
    q.add_argument("--no-render", action="store_true", help="skip the preview render")
    render_options(q, resolution=False)
    counts(q)
    q.set_defaults(func=cmd_demo)

    q = sub.add_parser("build", help="FLAME model file (.pkl/.npz) -> .blend with the rigged head")
    q.add_argument("model", type=Path)
    q.add_argument("--output", type=Path, required=True, help=".blend to write")
    counts(q)
    q.set_defaults(func=cmd_build)

    q = sub.add_parser("import", help="tracked sequence -> .blend with animation and camera")
    q.add_argument("sequence", type=Path, help="metrical-tracker folder, .frame, VHAP/GaussianAvatars npz, "
                                               "flame_sequence.npz")
    q.add_argument("--model", type=Path, help="FLAME model file (default: the demo head)")
    q.add_argument("--output", type=Path, required=True, help=".blend to write")
    q.add_argument("--fps", type=float, default=0.0, help="source fps (default: the file's, else 25)")
    q.add_argument("--target-fps", type=float, default=0.0, help="resample to this fps")
    q.add_argument("--camera", choices=("MOVING_CAMERA", "STATIC_CAMERA", "NONE"), default="MOVING_CAMERA")
    q.set_defaults(func=cmd_import)

    q = sub.add_parser("track", help="video / frames / landmarks -> tracked .blend (external torch tracker)")
    q.add_argument("input", type=Path, nargs="?", help="video file, folder of frames or image")
    q.add_argument("--output", type=Path, required=True, help=".blend to write")
    q.add_argument("--work-dir", type=Path, help="tracker output folder (default: beside the input)")
    q.add_argument("--model", type=Path, help="FLAME model (default: the demo head)")
    q.add_argument("--python", help="Python with torch for the tracker (default: python3 on PATH)")
    q.add_argument("--focal", type=float, default=0.0, help="focal length in pixels (default: estimated)")
    q.add_argument("--landmarks", type=Path, help="precomputed landmarks .npz instead of detection")
    q.add_argument("--embedding", type=Path, help="landmark embedding .npz for --landmarks")
    q.set_defaults(func=cmd_track)

    q = sub.add_parser("render", help=".blend -> PNG frames (+ MP4) through the scene camera")
    q.add_argument("blend", type=Path)
    q.add_argument("--output", type=Path, required=True, help="output folder")
    q.add_argument("--frames", type=frame_range, help="FIRST:LAST (default: the scene's range)")
    q.add_argument("--mp4", action="store_true", help="also encode preview.mp4")
    render_options(q, resolution=True)
    q.set_defaults(func=cmd_render)

    q = sub.add_parser("export", help=".blend's head -> FBX (Unity, Unreal) and glTF binary")
    q.add_argument("blend", type=Path)
    q.add_argument("--output", type=Path, required=True, help="output folder")
    q.add_argument("--formats", nargs="+", choices=("fbx", "glb"), default=["fbx", "glb"])
    q.set_defaults(func=cmd_export)
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(script_args(argv))
    try:
        args.func(args)
    except CliError as err:
        print(f"flame_cli.py {args.command}: error: {err}", file=sys.stderr)
        return 1
    except ImportError as err:
        print(f"flame_cli.py: error: {err.name or err} is not installed: run with the bpy wheel "
              "(pip install bpy) or inside Blender", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    code = main(sys.argv)
    sys.stdout.flush()
    sys.stderr.flush()
    if "bpy" in sys.modules and not sys.modules["bpy"].app.binary_path:
        os._exit(code)  # the bpy module can hang in interpreter shutdown after rendering
    sys.exit(code)
