"""The subcommands (``demo``, ``build``, ``import``, ``track``, ``render``, ``export``) and their Blender steps.

Each ``cmd_<name>(args, console)`` gets the parsed arguments of :mod:`.parsing`; bpy is imported
when a command runs, so ``--help`` and argument errors need no Blender.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from .console import CliError, Console, OperatorOutput, ProgressBar, staged_output

ENGINES = ("WORKBENCH", "EEVEE", "CYCLES")
DEFAULT_SAMPLES = {"WORKBENCH": 1, "EEVEE": 16, "CYCLES": 16}  # Workbench: anti-aliasing samples, 1 = off
EXPORT_CHOICES = {  # CLI name -> export.FORMATS ids
    "fbx": ("fbx_unreal", "fbx_unity"), "fbx-unreal": ("fbx_unreal",), "fbx-unity": ("fbx_unity",),
    "glb": ("glb",), "abc": ("abc",), "usd": ("usd",), "obj": ("obj",), "ply": ("ply",),
}
ALL_EXPORTS = ["fbx", "glb", "abc", "usd", "obj", "ply"]
EXPORT_STEM = "head"


def blender():
    """Import bpy and register this add-on (unless it, or an installed copy, already is)."""
    try:
        import bpy
    except ImportError:
        raise CliError("bpy is not installed: run with the bpy wheel (pip install bpy, Python 3.11) or inside "
                       "Blender (blender -c flame ...)") from None
    if not hasattr(bpy.types, "FLAME_OT_import_model"):
        from .. import register

        register()
    return bpy


def run_operator(console: Console, op: Callable[..., set[str]], **kwargs) -> None:
    """Call an operator, showing what it prints and reports; its ERROR report (a RuntimeError) becomes
    a CliError, printed once."""
    try:
        with contextlib.redirect_stdout(OperatorOutput(console)):
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
    from ..blender.head import scene_heads

    heads = scene_heads(bpy.context.scene)
    if name:
        heads = [o for o in heads if o.name == name]
        if not heads:
            raise CliError(f"the scene has no FLAME head named '{name}'")
    if not heads:
        raise CliError("the scene has no FLAME head")
    return heads[0]


def save_blend(bpy, path: Path) -> None:
    """Save a copy of the scene; file paths in it (the footage) stay absolute, as the .blend is saved in
    a staging folder and then moved, which would break paths made relative to it."""
    bpy.ops.wm.save_as_mainfile(filepath=str(path), compress=True, copy=True, relative_remap=False)


def write_blend(bpy, output: Path, console: Console) -> None:
    """Save the scene to ``output`` through a staging folder beside it."""
    with staged_output(output.parent) as stage:
        save_blend(bpy, stage / output.name)
    console.info(f"wrote {output}")


def render_settings(args, resolution: tuple[int, int] | None = None, frames: tuple[int, int, int] | None = None):
    from ..blender.render.settings import RenderSettings

    samples = args.samples or DEFAULT_SAMPLES[args.engine]
    return RenderSettings(engine=args.engine, resolution=resolution, samples=samples, device=args.device, frames=frames)


def render_into(bpy, console: Console, stage: Path, settings, video: bool, source=None, overlay=False,
                side_by_side=False) -> None:
    """Render the scene's camera into ``stage/frames`` (+ ``stage/preview.mp4``) with a progress bar."""
    from ..blender.render.preview import render_preview

    result = render_preview(bpy.context, stage / "frames", settings,
                                   video=stage / "preview.mp4" if video else None, source=source,
                                   overlay=overlay, side_by_side=side_by_side,
                                   report=ProgressBar(console, f"render ({settings.engine.lower()})"))
    console.info(f"rendered {len(result.frames)} frames, {result.seconds_per_frame:.2f} s/frame "
                 f"({settings.engine.lower()}, {bpy.context.scene.render.resolution_x}x"
                 f"{bpy.context.scene.render.resolution_y})")
    if result.missing_sources:
        console.info(f"warning: {len(result.missing_sources)} frames had no source frame")


def export_into(bpy, console: Console, stage: Path, armature, formats: list[str], frames=None) -> None:
    from ..blender import export

    ids = tuple(dict.fromkeys(i for name in formats for i in EXPORT_CHOICES[name]))
    written = export.export_all(bpy.context, armature, stage, EXPORT_STEM, ids, frames,
                                report=ProgressBar(console, "export"))
    console.info("exported " + ", ".join(f"{k} ({len(v)} files)" if len(v) > 1 else k for k, v in written.items()))
    licence_note(console, armature)


def licence_note(console: Console, armature) -> None:
    """Remind the user of the head's licence when it is non-commercial or unknown (never refuses)."""
    from ..blender import export

    reminder = export.licence_reminder(armature)
    if reminder:
        console.info(f"note: {reminder}")


def cmd_demo(args, console: Console) -> None:
    bpy = blender()
    from ..blender import head, sequence_import
    from ..blender.render.settings import add_preview_lighting
    from ..core.sequence import fit_components
    from ..demo.head import demo_model
    from ..demo.performance import demo_performance

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
        if args.character:
            console.info("fitting the stylised demo character and rigging it ...")
            add_demo_character(bpy, console, seq)
        add_preview_lighting(bpy.context)
        save_blend(bpy, stage / "demo.blend")
        if not args.no_render:
            render_into(bpy, console, stage, render_settings(args), video=not args.no_video)
        if args.formats:
            export_into(bpy, console, stage, armature, args.formats)
    console.info(f"demo written to {args.output}")


def add_demo_character(bpy, console: Console, seq, offset: float = 0.4):
    """The stylised demo character beside the demo head, rigged to its own fitted FLAME rig that plays
    ``seq`` (camera-free), so the built-in performance drives it. Returns the character object."""
    from ..blender import head, retarget, sequence_import
    from ..demo.character import UNITS, demo_character
    from ..demo.head import demo_model

    c = demo_character()
    obj = retarget.build_mesh(bpy.context, "stylised_character", c.vertices, c.loop_vertices, c.loop_totals)
    obj.scale = (1 / UNITS,) * 3  # its mesh holds centimetres
    obj.location = (offset, 0.0, 0.0)
    rig = head.build_head(bpy.context, demo_model().truncated(seq.n_shape, seq.n_expr), "stylised_character_rig")
    run_operator(console, bpy.ops.flame.fit_to_mesh, target=rig.name, mesh=obj.name, n_shape=min(100, seq.n_shape))
    run_operator(console, bpy.ops.flame.transfer_rig, target=rig.name, mesh=obj.name)
    sequence_import.apply_sequence(bpy.context, rig, seq, keep_identity=True, camera_mode="NONE")
    rig.flame.mesh.hide_render = rig.flame.mesh.hide_viewport = True
    return obj


def _load_character(bpy, console: Console, path: Path, name: str):
    """Open or import the character file; returns its mesh object (``name``, else the largest mesh)."""
    suffix = path.suffix.lower()
    importers = {".fbx": ("import_scene", "fbx"), ".glb": ("import_scene", "gltf"), ".gltf": ("import_scene", "gltf"),
                 ".obj": ("wm", "obj_import")}
    if suffix == ".blend":
        open_blend(bpy, path)
    elif suffix in importers:
        module, op = importers[suffix]
        if module == "import_scene":
            import addon_utils

            addon_utils.enable("io_scene_fbx" if op == "fbx" else "io_scene_gltf2", default_set=True)
        run_operator(console, getattr(getattr(bpy.ops, module), op), filepath=str(path))
    else:
        raise CliError(f"{path}: unsupported character file (use .blend, .fbx, .glb, .gltf or .obj)")
    meshes = [o for o in bpy.context.scene.objects if o.type == "MESH" and not o.flame.is_head
              and (o.parent is None or not o.parent.flame.is_head)]
    if name:
        meshes = [o for o in meshes if o.name == name]
    if not meshes:
        raise CliError(f"{path}: has no mesh" + (f" named '{name}'" if name else ""))
    return max(meshes, key=lambda o: len(o.data.vertices))


def cmd_retarget(args, console: Console) -> None:
    bpy = blender()
    from ..blender import export

    bpy.ops.wm.read_homefile(use_empty=True)
    obj = _load_character(bpy, console, args.character, args.mesh)
    if args.model is None:
        run_operator(console, bpy.ops.flame.add_demo_head, n_shape=args.n_shape, n_expr=args.n_expr)
    else:
        run_operator(console, bpy.ops.flame.import_model, filepath=str(args.model), n_shape=args.n_shape,
                     n_expr=args.n_expr)
    armature = bpy.context.view_layer.objects.active
    console.info(f"fitting FLAME to {obj.name} ({len(obj.data.vertices)} vertices) ...")
    run_operator(console, bpy.ops.flame.fit_to_mesh, target=armature.name, mesh=obj.name,
                 n_shape=min(args.n_shape, 100))
    console.info(f"fit RMS {obj['flame_fit_rms_m'] * 1000:.2f} mm, p99 {obj['flame_fit_p99_m'] * 1000:.2f} mm "
                 "(FLAME scale)")
    run_operator(console, bpy.ops.flame.import_sequence, filepath=str(args.sequence),
                 model_filepath=str(args.model or ""), keep_identity=True, camera_mode="NONE", fps=args.fps,
                 frame_start=args.frame_start)
    if args.keys:
        run_operator(console, bpy.ops.flame.retarget_to_shape_keys, target=armature.name, mesh=obj.name,
                     head_bone=args.head_bone)
    else:
        run_operator(console, bpy.ops.flame.transfer_rig, target=armature.name, mesh=obj.name)
    armature.flame.mesh.hide_render = True
    with staged_output(args.output) as stage:
        save_blend(bpy, stage / "character.blend")
        if not args.keys:
            export.export_fbx(bpy.context, armature, stage / "character.fbx", "UNREAL", None, meshes=[obj])
            licence_note(console, armature)
    console.info(f"retargeted {args.sequence.name} onto {obj.name} into {args.output}")


def cmd_build(args, console: Console) -> None:
    bpy = blender()
    bpy.ops.wm.read_homefile(use_empty=True)
    run_operator(console, bpy.ops.flame.import_model, filepath=str(args.model), n_shape=args.n_shape,
                 n_expr=args.n_expr)
    write_blend(bpy, args.output, console)


def cmd_import(args, console: Console) -> None:
    bpy = blender()
    bpy.ops.wm.read_homefile(use_empty=True)
    if args.model is None:
        run_operator(console, bpy.ops.flame.add_demo_head)
    run_operator(console, bpy.ops.flame.import_sequence, filepath=str(args.sequence),
                 model_filepath=str(args.model or ""), fps=args.fps, target_fps=args.target_fps,
                 camera_mode=args.camera, frame_start=args.frame_start, eyelid_folder=str(args.eyelids or ""))
    write_blend(bpy, args.output, console)


def cmd_track(args, console: Console) -> None:
    bpy = blender()
    bpy.ops.wm.read_homefile(use_empty=True)
    options = {"filepath": str(args.input or ""), "output_dir": str(args.work_dir or ""),
               "model_filepath": str(args.model or ""), "python": args.python or "", "focal": args.focal,
               "landmarks_filepath": str(args.landmarks or ""), "embedding_filepath": str(args.embedding or ""),
               "command_template": args.tracker_command or ""}
    if args.device:
        options["device"] = args.device
    with staged_output(args.output.parent) as stage:
        run_operator(console, bpy.ops.flame.track_video, **options)  # prints the tracker's progress lines
        save_blend(bpy, stage / args.output.name)
    console.info(f"wrote {args.output}")


def cmd_render(args, console: Console) -> None:
    bpy = blender()
    from ..blender.head import scene_heads
    from ..blender.render import sources

    open_blend(bpy, args.blend)
    scene = bpy.context.scene
    resolution = None
    if args.resolution:
        width, height = args.resolution
        resolution = (width, height or max(1, round(width * scene.render.resolution_y / scene.render.resolution_x)))
    source = None
    if args.source:  # its first frame is the sequence's frame 0, wherever the import put that
        heads = scene_heads(scene)
        source = sources.given_frames(args.source, heads[0].flame.sequence_frame_start if heads else scene.frame_start)
    elif args.overlay or args.side_by_side:
        source = sources.camera_background_frames(scene)
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
