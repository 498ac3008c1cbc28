"""Render settings of a preview: engine, samples, device, size, the preview lights, and restoring it all."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import bpy
from mathutils import Vector

from ...core.errors import FlameError
from .. import compat

ENGINES = (
    ("WORKBENCH", "Workbench", "Fast solid shading (OpenGL); the default for previews"),
    ("EEVEE", "Eevee", "Real-time PBR (OpenGL); compiles shaders on first use (20-25 s without a GPU)"),
    ("CYCLES", "Cycles", "Path tracing on the CPU or a GPU"),
)
DEVICES = (("CPU", "CPU", "Render on the processor"),
           ("GPU", "GPU", "Cycles on a GPU (OptiX, CUDA, HIP, oneAPI or Metal)"))
_GPU_BACKENDS = ("OPTIX", "CUDA", "HIP", "ONEAPI", "METAL")
_WORKBENCH_AA = {1: "OFF", 5: "5", 8: "8", 11: "11", 16: "16", 32: "32"}  # samples -> display.render_aa
PREVIEW_LIGHTS = (  # name, energy (W), location (Blender axes, metres), colour
    ("flame_key", 15.0, (0.9, -1.1, 0.6), (1.0, 0.96, 0.9)),
    ("flame_fill", 5.0, (-1.0, -0.9, 0.1), (0.85, 0.9, 1.0)),
    ("flame_rim", 10.0, (0.2, 1.0, 0.8), (1.0, 1.0, 1.0)),
)


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


def _settings_owners(scene: bpy.types.Scene) -> list[tuple[bpy.types.bpy_struct, tuple[str, ...]]]:
    """Everything :func:`configure` and :func:`.frames.render_frames` change, as (owner, attribute names)."""
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
def restored_render_settings(scene: bpy.types.Scene) -> Iterator[None]:
    """Restore the render settings a preview changes (engine, size, samples, shading, output) afterwards."""
    saved = [(owner, name, getattr(owner, name)) for owner, names in _settings_owners(scene) for name in names]
    saved = [(owner, name, tuple(value) if hasattr(value, "__len__") and not isinstance(value, str) else value)
             for owner, name, value in saved]
    try:
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)

