"""Frames: rendering the scene's camera to numbered PNGs and compositing them with their source frames
(:mod:`.sources`; plain numpy on the pixels, no compositor node trees, whose API changed in 5.0).

Rendering goes frame by frame (``render.render(write_still=True)``), so progress is reported after
every frame, and Esc (the modal operator) or Ctrl-C (the command line) stops between frames.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import bpy
import numpy as np

from ...core.errors import FlameError
from ..progress import Report

FRAME_PATTERN = "{:04d}.png"


def render_scene(scene: bpy.types.Scene, **options) -> None:
    """``bpy.ops.render.render`` of ``scene``; its failure (a RuntimeError) becomes a FlameError."""
    try:
        bpy.ops.render.render(scene=scene.name, **options)
    except RuntimeError as err:
        raise FlameError(f"rendering '{scene.name}' failed: {str(err).strip()}") from None


def render_frame(scene: bpy.types.Scene, folder: Path, frame: int) -> Path:
    """Render scene ``frame`` as ``folder/NNNN.png`` (inside :func:`kept_frame_and_output`)."""
    if scene.camera is None:
        raise FlameError(f"scene '{scene.name}' has no camera to render from")
    folder.mkdir(parents=True, exist_ok=True)
    scene.frame_set(frame)
    path = folder / FRAME_PATTERN.format(frame)
    scene.render.filepath = str(path)
    render_scene(scene, write_still=True)
    return path


@contextlib.contextmanager
def kept_frame_and_output(scene: bpy.types.Scene) -> Iterator[None]:
    """Restore the scene's current frame and output path after rendering frames."""
    current, filepath = scene.frame_current, scene.render.filepath
    try:
        yield
    finally:
        scene.render.filepath = filepath
        scene.frame_set(current)


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


def composite_frames(paths: Sequence[Path], frames: Sequence[int], source: Callable[[int], np.ndarray | None],
                     overlay: bool, side_by_side: bool, report: Report = lambda f, m: None) -> list[int]:
    """Rewrite each rendered PNG in place composed with its source frame (``source(scene frame)``: pixels
    as :func:`load_rgba` gives them, or None); returns the frames that had none."""
    missing = []
    for i, (path, frame) in enumerate(zip(paths, frames, strict=True)):
        pixels = source(frame)
        if pixels is None:
            missing.append(frame)
        save_rgba(compose(load_rgba(path), pixels, overlay, side_by_side), path)
        report((i + 1) / len(paths), f"compositing frame {frame}")
    return missing

