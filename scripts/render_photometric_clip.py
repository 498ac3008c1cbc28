"""Render a ground-truth ``flame_sequence.npz`` with its albedo, UVs and SH lighting in Blender (Cycles),
through its camera, to PNG frames the tracker reads (a folder of frames is a valid ``--input``).

    .venvs/bpy-4.5.15/bin/python scripts/render_photometric_clip.py SEQUENCE.npz OUT \\
        [--background FRAMES] [--samples 16] [--threads 0]

The demo head gets the sequence through ``flame.import_sequence``, which adds the ``FLAME SH
Shading`` material: an emission of albedo x SH shading, sRGB-decoded. Cycles renders it with a
one-pixel box filter (``--samples`` stratified samples per pixel: the pixel's area average) and the
Standard view transform without dither, so a frame's 8-bit value is albedo x shading itself (within
1/255) wherever the head covers the whole pixel. ``--background``: a folder of numbered frames,
composed under the head by its coverage (the preview's overlay).
The photometric stage's tests and ``scripts/bench_photometric.py --renderer blender`` use it
(tests/tracking/textured_clip.py writes the truth).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flame_blender_addon.cli.commands import blender  # noqa: E402


def set_up_scene(bpy, sequence: Path) -> None:
    """An empty scene, the demo head and the imported sequence (animation, camera, albedo material)."""
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.flame.add_demo_head()
    bpy.ops.flame.import_sequence(filepath=str(sequence))


def exact_colours(scene, threads: int) -> None:
    """Pixel values = the emitted values encoded to sRGB: Standard view, no look, no dither; a box
    filter one pixel wide, a fixed number of samples."""
    view = scene.view_settings
    view.view_transform, view.look, view.exposure, view.gamma = "Standard", "None", 0.0, 1.0
    scene.display_settings.display_device = "sRGB"
    scene.render.dither_intensity = 0.0
    scene.render.image_settings.color_depth = "8"
    scene.cycles.pixel_filter_type, scene.cycles.filter_width = "BOX", 1.0
    scene.cycles.use_adaptive_sampling = False
    scene.render.threads_mode = "FIXED" if threads else "AUTO"
    scene.render.threads = max(threads, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sequence", type=Path, help="flame_sequence.npz with albedo, vt, ft, sh and a camera")
    parser.add_argument("output", type=Path, help="folder for the frames (NNNN.png, scene frame numbers)")
    parser.add_argument("--background", type=Path, help="folder of numbered frames under the head")
    parser.add_argument("--samples", type=int, default=16, help="Cycles samples per pixel (default 16)")
    parser.add_argument("--threads", type=int, default=0, help="render threads (default 0: all cores)")
    args = parser.parse_args()

    bpy = blender()
    from flame_blender_addon.blender.head import scene_heads
    from flame_blender_addon.blender.render import sources
    from flame_blender_addon.blender.render.preview import render_preview
    from flame_blender_addon.blender.render.settings import RenderSettings

    set_up_scene(bpy, args.sequence)
    scene = bpy.context.scene
    exact_colours(scene, args.threads)
    source = None
    if args.background is not None:
        source = sources.given_frames(args.background, scene_heads(scene)[0].flame.sequence_frame_start)
    result = render_preview(bpy.context, args.output, RenderSettings(engine="CYCLES", samples=args.samples),
                            source=source, overlay=source is not None)
    print(f"rendered {len(result.frames)} frames into {args.output} ({result.seconds_per_frame:.2f} s/frame)")


if __name__ == "__main__":
    main()
