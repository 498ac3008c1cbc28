"""Preview renders of a FLAME scene: PNG frames, optional overlay on the tracker's source frames or a
side-by-side comparison, and an MP4, with a progress callback (headless and in the UI).

Rendering goes frame by frame (``render.render(write_still=True)``), so progress and ETA are
reported after every frame and Ctrl-C stops between frames. Compositing over source frames is plain
numpy on the PNGs (no compositor node trees, whose API changed in 5.0). The MP4 is encoded by
Blender's own FFmpeg through a temporary sequencer scene, so nothing outside Blender is needed.
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import bpy
import numpy as np
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty
from mathutils import Vector

from ..core.errors import FlameError
from . import compat
from .progress import progress

ENGINES = (
    ("WORKBENCH", "Workbench", "Fast solid shading (OpenGL); the default for previews"),
    ("EEVEE", "Eevee", "Real-time PBR (OpenGL); compiles shaders on first use (20-25 s without a GPU)"),
    ("CYCLES", "Cycles", "Path tracing on the CPU or a GPU"),
)
DEVICES = (("CPU", "CPU", "Render on the processor"),
           ("GPU", "GPU", "Cycles on a GPU (OptiX, CUDA, HIP, oneAPI or Metal)"))
_GPU_BACKENDS = ("OPTIX", "CUDA", "HIP", "ONEAPI", "METAL")
_WORKBENCH_AA = {1: "OFF", 5: "5", 8: "8", 11: "11", 16: "16", 32: "32"}  # samples -> display.render_aa
FRAME_PATTERN = "{:04d}.png"
PREVIEW_LIGHTS = (  # name, energy (W), location (Blender axes, metres), colour
    ("flame_key", 15.0, (0.9, -1.1, 0.6), (1.0, 0.96, 0.9)),
    ("flame_fill", 5.0, (-1.0, -0.9, 0.1), (0.85, 0.9, 1.0)),
    ("flame_rim", 10.0, (0.2, 1.0, 0.8), (1.0, 1.0, 1.0)),
)

Report = Callable[[float, str], None]


def engine_id(engine: str) -> str:
    """Blender's render engine id for 'WORKBENCH', 'EEVEE' or 'CYCLES'."""
    ids = {"WORKBENCH": "BLENDER_WORKBENCH", "EEVEE": compat.EEVEE_ENGINE, "CYCLES": "CYCLES"}
    if engine not in ids:
        raise FlameError(f"unknown render engine '{engine}' (choose {', '.join(ids)})")
    return ids[engine]


@dataclass(frozen=True)
class RenderSettings:
    """What to render. resolution: (W, H) or None for the scene's; frames: (start, end, step) or None
    for the scene's range; samples: per pixel (Workbench: anti-aliasing samples, 1 = off)."""

    engine: str = "WORKBENCH"
    resolution: tuple[int, int] | None = None
    samples: int = 1
    device: str = "CPU"
    frames: tuple[int, int, int] | None = None
    transparent: bool = False


def frame_numbers(scene: bpy.types.Scene, frames: tuple[int, int, int] | None) -> list[int]:
    """The scene frames to render: ``frames`` = (start, end, step), inclusive, or the scene's range."""
    start, end, step = frames or (scene.frame_start, scene.frame_end, 1)
    if step < 1 or end < start:
        raise FlameError(f"frame range {start}-{end} step {step} is empty")
    return list(range(start, end + 1, step))


def _enable_gpu() -> None:
    """Turn on every GPU of the first backend (``_GPU_BACKENDS`` order) that has one, else FlameError."""
    prefs = bpy.context.preferences.addons["cycles"].preferences
    for backend in _GPU_BACKENDS:
        try:
            prefs.compute_device_type = backend
        except TypeError:  # backend not built into this Blender
            continue
        prefs.get_devices()
        gpus = [d for d in prefs.devices if d.type == backend]
        if gpus:
            for device in prefs.devices:
                device.use = device.type == backend
            return
    raise FlameError(f"Cycles found no GPU (tried {', '.join(_GPU_BACKENDS)}); render on the CPU instead")


def configure(scene: bpy.types.Scene, settings: RenderSettings) -> None:
    """Set engine, samples, device, resolution and film of ``scene`` for a preview render."""
    if settings.samples < 1:
        raise FlameError(f"samples must be at least 1, not {settings.samples}")
    render = scene.render
    render.engine = engine_id(settings.engine)
    if settings.resolution is not None:
        width, height = settings.resolution
        if width < 4 or height < 4:
            raise FlameError(f"resolution {width}x{height} is too small")
        render.resolution_x, render.resolution_y = width, height
    render.resolution_percentage = 100
    render.film_transparent = settings.transparent
    render.image_settings.file_format = "PNG"
    render.image_settings.color_mode = "RGBA" if settings.transparent else "RGB"
    if settings.engine == "WORKBENCH":
        scene.display.render_aa = _WORKBENCH_AA[max(s for s in _WORKBENCH_AA if s <= settings.samples)]
        shading = scene.display.shading
        shading.light, shading.color_type = "STUDIO", "SINGLE"
        shading.single_color = (0.8, 0.62, 0.52)
        shading.show_cavity = shading.show_shadows = False
    elif settings.engine == "EEVEE":
        scene.eevee.taa_render_samples = settings.samples
    else:
        scene.cycles.samples = settings.samples
        scene.cycles.use_denoising = False
        scene.cycles.device = "CPU"
        if settings.device == "GPU":
            _enable_gpu()
            scene.cycles.device = "GPU"


def add_preview_lighting(context: bpy.types.Context, lights: bool = True) -> list[bpy.types.ID]:
    """Three area lights aimed at the head (for Eevee and Cycles) and a dark grey world if the scene
    has none; returns what was created (objects, lights, world) so callers can remove it."""
    scene = context.scene
    created: list[bpy.types.ID] = []
    for name, energy, location, colour in PREVIEW_LIGHTS if lights else ():
        light = bpy.data.lights.new(name, "AREA")
        light.energy, light.size, light.color = energy, 0.6, colour
        obj = bpy.data.objects.new(name, light)
        scene.collection.objects.link(obj)
        obj.location = location
        obj.rotation_euler = (-Vector(location)).to_track_quat("-Z", "Y").to_euler()  # aim at the head
        created += [obj, light]
    if scene.world is None:
        scene.world = bpy.data.worlds.new("flame_preview_world")
        scene.world.color = (0.05, 0.05, 0.055)
        created.append(scene.world)
    return created


@contextlib.contextmanager
def preview_lighting(context: bpy.types.Context, engine: str) -> Iterator[None]:
    """Temporary preview lights (Eevee/Cycles, when the scene has none) and world (when it has none),
    removed afterwards."""
    lights = engine != "WORKBENCH" and not any(o.type == "LIGHT" for o in context.scene.objects)
    created = add_preview_lighting(context, lights)
    try:
        yield
    finally:
        if created:
            bpy.data.batch_remove(created)


def render_frames(scene: bpy.types.Scene, folder: Path, frames: Sequence[int],
                  report: Report = lambda f, m: None) -> list[Path]:
    """Render ``frames`` of ``scene`` as ``folder/NNNN.png``; returns the paths in order.

    ``report(fraction, message)`` is called after each frame. The scene's current frame and output
    path are restored afterwards.
    """
    folder.mkdir(parents=True, exist_ok=True)
    if scene.camera is None:
        raise FlameError(f"scene '{scene.name}' has no camera to render from")
    paths, current, filepath = [], scene.frame_current, scene.render.filepath
    try:
        for i, frame in enumerate(frames):
            scene.frame_set(frame)
            path = folder / FRAME_PATTERN.format(frame)
            scene.render.filepath = str(path)
            bpy.ops.render.render(write_still=True, scene=scene.name)
            paths.append(path)
            report((i + 1) / len(frames), f"frame {frame}")
    finally:
        scene.render.filepath = filepath
        scene.frame_set(current)
    return paths


# --------------------------------------------------------------------------------------------------
# source frames: overlay and side by side


def numbered_frames(folder: Path) -> dict[int, Path]:
    """Image files in ``folder`` whose name ends in a number: {number: path} (e.g. ``00042.png``)."""
    out = {}
    for path in folder.iterdir():
        match = re.search(r"(\d+)$", path.stem)
        if match and path.suffix.lower() in (".png", ".jpg", ".jpeg"):
            out[int(match.group(1))] = path
    return out


def camera_background_frames(scene: bpy.types.Scene) -> Callable[[int], Path | None] | None:
    """Source frame lookup from the scene camera's background image sequence (set by a tracked
    import): scene frame -> file, as Blender's image user maps it; None without such a sequence."""
    camera = scene.camera
    if camera is None or camera.type != "CAMERA":
        return None
    for bg in camera.data.background_images:
        if bg.image is not None and bg.image.source == "SEQUENCE":
            first = Path(bpy.path.abspath(bg.image.filepath))
            files = numbered_frames(first.parent)
            user = bg.image_user

            def lookup(frame: int, files=files, user=user) -> Path | None:
                index = min(max(frame - user.frame_start + 1, 1), user.frame_duration)
                return files.get(index + user.frame_offset)

            return lookup
    return None


def folder_frames(folder: Path, first_scene_frame: int) -> Callable[[int], Path | None]:
    """Source frame lookup for a folder of numbered images: the lowest number is ``first_scene_frame``."""
    if not folder.is_dir():
        raise FlameError(f"{folder}: no such folder of source frames")
    files = numbered_frames(folder)
    if not files:
        raise FlameError(f"{folder}: no numbered .png/.jpg frames found")
    offset = min(files) - first_scene_frame
    return lambda frame: files.get(frame + offset)


def load_rgba(path: Path) -> np.ndarray:
    """An image file as (H, W, 4) float32 in [0, 1], rows bottom to top (Blender's order), values as
    stored (no colour conversion)."""
    try:
        image = bpy.data.images.load(str(path), check_existing=False)
    except RuntimeError:
        raise FlameError(f"{path}: cannot be read as an image") from None
    try:
        width, height = image.size
        if width == 0 or height == 0:
            raise FlameError(f"{path}: cannot be read as an image")
        pixels = np.empty(width * height * 4, dtype=np.float32)
        image.pixels.foreach_get(pixels)
        if image.channels < 4:  # Blender pads to RGBA; make sure alpha is opaque
            pixels.reshape(-1, 4)[:, 3] = 1.0
        return pixels.reshape(height, width, 4)
    finally:
        bpy.data.images.remove(image)


def save_rgba(pixels: np.ndarray, path: Path) -> Path:
    """Write (H, W, 4) float32 pixels (rows bottom to top) as an 8-bit RGBA PNG."""
    height, width = pixels.shape[:2]
    image = bpy.data.images.new(path.stem, width, height, alpha=True)
    try:
        image.pixels.foreach_set(np.ascontiguousarray(pixels, dtype=np.float32).ravel())
        image.filepath_raw, image.file_format = str(path), "PNG"
        image.save()
    finally:
        bpy.data.images.remove(image)
    return path


def resize_nearest(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """(h, w, C) -> (height, width, C) by nearest neighbour (pixel centres)."""
    h, w = pixels.shape[:2]
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.int64), w - 1)
    return pixels[rows[:, None], cols[None, :]]


def compose(render: np.ndarray, source: np.ndarray | None, overlay: bool, side_by_side: bool) -> np.ndarray:
    """Combine a render (H, W, 4) straight alpha with its source frame (any size, resized to H x W).

    overlay: the render over the source (``over`` operator); side_by_side: [source | result].
    Returns (H, W or 2W, 4) float32, opaque.
    """
    height, width = render.shape[:2]
    background = np.zeros_like(render) if source is None else resize_nearest(source, width, height)
    alpha = render[..., 3:4] if overlay else np.ones_like(render[..., 3:4])
    result = render * alpha + background * (1.0 - alpha)
    result[..., 3] = 1.0
    if side_by_side:
        left = background.copy()
        left[..., 3] = 1.0
        result = np.concatenate([left, result], axis=1)
    return result.astype(np.float32)


def composite_frames(paths: Sequence[Path], frames: Sequence[int], source: Callable[[int], Path | None],
                     overlay: bool, side_by_side: bool, report: Report = lambda f, m: None) -> list[int]:
    """Rewrite each rendered PNG in place composed with its source frame; returns frames that had none."""
    missing = []
    for i, (path, frame) in enumerate(zip(paths, frames)):
        src_path = source(frame)
        if src_path is None:
            missing.append(frame)
        save_rgba(compose(load_rgba(path), None if src_path is None else load_rgba(src_path), overlay,
                          side_by_side), path)
        report((i + 1) / len(paths), f"compositing frame {frame}")
    return missing


# --------------------------------------------------------------------------------------------------
# video


def encode_video(paths: Sequence[Path], filepath: Path, fps: float) -> Path:
    """Encode PNG frames (same size, in order) as an H.264 MP4 with Blender's FFmpeg.

    Uses a temporary scene whose sequencer holds the frames as one image strip; H.264 needs even
    sizes, so an odd last row/column is cropped. The temporary scene is removed afterwards.
    """
    if not paths:
        raise FlameError("no frames to encode")
    first = bpy.data.images.load(str(paths[0]), check_existing=False)
    width, height = first.size
    bpy.data.images.remove(first)
    scene = bpy.data.scenes.new("flame_encode")
    try:
        strip = compat.sequencer_strips(scene.sequence_editor_create()).new_image("frames", str(paths[0]), 1, 1)
        for path in paths[1:]:
            strip.elements.append(path.name)
        render = scene.render
        render.resolution_x, render.resolution_y = width - width % 2, height - height % 2
        render.resolution_percentage = 100
        render.fps = max(1, round(fps))
        render.fps_base = render.fps / fps
        compat.set_video_output(render.image_settings)
        render.ffmpeg.format, render.ffmpeg.codec = "MPEG4", "H264"
        render.ffmpeg.constant_rate_factor, render.ffmpeg.ffmpeg_preset = "MEDIUM", "REALTIME"
        render.use_sequencer = True
        scene.frame_start, scene.frame_end = 1, len(paths)
        render.filepath = str(filepath)
        bpy.ops.render.render(animation=True, scene=scene.name)
    finally:
        bpy.data.scenes.remove(scene)
    if not filepath.is_file():
        raise FlameError(f"{filepath}: the video encoder wrote nothing")
    return filepath


# --------------------------------------------------------------------------------------------------
# everything together


@dataclass(frozen=True)
class PreviewResult:
    """Files written by :func:`render_preview` and the measured time per frame (s)."""

    frames: list[Path]
    video: Path | None
    seconds_per_frame: float
    missing_sources: list[int]


def render_preview(context: bpy.types.Context, folder: Path, settings: RenderSettings, *,
                   video: Path | None = None, source: Callable[[int], Path | None] | None = None,
                   overlay: bool = False, side_by_side: bool = False,
                   report: Report = lambda f, m: None) -> PreviewResult:
    """Render the scene's camera view to ``folder``, optionally composite it with source frames and
    encode ``video``. Render settings are restored afterwards; temporary lights are removed.

    Progress: rendering takes 0-0.85 of ``report``'s range, compositing 0.85-0.95, encoding the rest.
    """
    scene = context.scene
    if (overlay or side_by_side) and source is None:
        raise FlameError("overlay and side-by-side need source frames: import a tracked sequence with its "
                         "input frames, or give a folder of frames")
    frames = frame_numbers(scene, settings.frames)
    settings = RenderSettings(**{**settings.__dict__, "transparent": settings.transparent or overlay})
    with _restored_render_settings(scene), preview_lighting(context, settings.engine):
        configure(scene, settings)
        started = time.perf_counter()
        paths = render_frames(scene, folder, frames, lambda f, m: report(0.85 * f, m))
        per_frame = (time.perf_counter() - started) / len(frames)
    missing = []
    if overlay or side_by_side:
        missing = composite_frames(paths, frames, source, overlay, side_by_side,
                                   lambda f, m: report(0.85 + 0.1 * f, m))
    if video is not None:
        report(0.95, "encoding video")
        encode_video(paths, video, scene.render.fps / scene.render.fps_base)
    report(1.0, "done")
    return PreviewResult(paths, video, per_frame, missing)


def _settings_owners(scene: bpy.types.Scene) -> list[tuple[bpy.types.bpy_struct, tuple[str, ...]]]:
    """Everything :func:`configure` and :func:`render_frames` change, as (owner, attribute names)."""
    render = scene.render
    image = ("media_type", "file_format", "color_mode")  # media_type (5.0) must be restored first
    owners = [(render, ("engine", "resolution_x", "resolution_y", "resolution_percentage", "film_transparent",
                        "filepath")),
              (render.image_settings, tuple(a for a in image if hasattr(render.image_settings, a))),
              (scene.display, ("render_aa",)),
              (scene.display.shading, ("light", "color_type", "single_color", "show_cavity", "show_shadows")),
              (scene.eevee, ("taa_render_samples",))]
    if hasattr(scene, "cycles"):
        owners.append((scene.cycles, ("samples", "use_denoising", "device")))
    return owners


@contextlib.contextmanager
def _restored_render_settings(scene: bpy.types.Scene) -> Iterator[None]:
    """Restore the render settings a preview changes (engine, size, samples, shading, output) afterwards."""
    saved = [(owner, name, getattr(owner, name)) for owner, names in _settings_owners(scene) for name in names]
    saved = [(owner, name, tuple(value) if hasattr(value, "__len__") and not isinstance(value, str) else value)
             for owner, name, value in saved]
    try:
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


class FLAME_OT_render_preview(bpy.types.Operator):
    """Render the scene camera's view as PNG frames and an MP4 preview, optionally over the tracker's
    source frames (shows progress; blocks the interface until done)"""

    bl_idname = "flame.render_preview"
    bl_label = "Render FLAME Preview"
    bl_options = {"REGISTER"}

    directory: StringProperty(name="Output folder", subtype="DIR_PATH")
    engine: EnumProperty(name="Engine", items=ENGINES, default="WORKBENCH")
    device: EnumProperty(name="Device", items=DEVICES, default="CPU")
    samples: IntProperty(name="Samples", default=1, min=1, max=4096,
                         description="Samples per pixel (Workbench: anti-aliasing samples, 1 = off)")
    use_video: BoolProperty(name="MP4 video", default=True)
    overlay: BoolProperty(name="Overlay on source frames", default=False,
                          description="Composite the head over the tracker's input frames (camera background)")
    side_by_side: BoolProperty(name="Side by side", default=False,
                               description="Source frame on the left, render on the right")

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        if not self.directory:
            self.report({"ERROR"}, "No output folder given")
            return {"CANCELLED"}
        folder = Path(bpy.path.abspath(self.directory))
        settings = RenderSettings(engine=self.engine, samples=self.samples, device=self.device)
        try:
            with progress(context, "Rendering preview") as report:
                result = render_preview(context, folder, settings,
                                        video=folder / "preview.mp4" if self.use_video else None,
                                        source=camera_background_frames(context.scene), overlay=self.overlay,
                                        side_by_side=self.side_by_side, report=report)
        except (FlameError, OSError, RuntimeError) as err:
            self.report({"ERROR"}, str(err).strip())
            return {"CANCELLED"}
        if result.missing_sources:
            self.report({"WARNING"}, f"{len(result.missing_sources)} frames had no source frame")
        self.report({"INFO"}, f"Rendered {len(result.frames)} frames to {folder} "
                              f"({result.seconds_per_frame:.2f} s/frame)")
        return {"FINISHED"}


CLASSES = (FLAME_OT_render_preview,)
