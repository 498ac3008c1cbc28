"""The photometric stage's appearance in Blender: a UV map, an albedo material and a light rig.

A ``flame_sequence.npz`` written with ``--photometric`` holds ``albedo`` (R, R, 3) on the UVs
``vt`` / ``ft``, and ``sh`` (9, 3) lighting in the tracker's OpenCV camera frame. The SH becomes a
world colour (the ambient) plus a sun (the directional part, :func:`..core.sh_lighting.to_light`),
parented to the scene camera so the light keeps its place relative to the view, as in the footage.
The tracker's colours are in the video's gamma-encoded values and Blender shades linearly, so the
rig is fitted through a 2.2 power: it matches the footage where a surface faces the light and where
it faces away (ambient only); in between it is approximate. Band 2 of the SH is not reproduced.
Without a scene camera the sun keeps the same orientation in the world's axes.
"""

from __future__ import annotations

import math
from pathlib import Path

import bpy
import numpy as np
from mathutils import Vector

from ..core.errors import SequenceError
from ..core.sh_lighting import to_light
from . import compat

KEYS = ("albedo", "sh", "vt", "ft")
GAMMA = 2.2
FACING_LIGHT = (1 + 3 * (2 / 3) ** 2 + 5 * 0.25 ** 2) / (4 * math.pi)  # white shading facing a unit lobe


def read_appearance(path: Path) -> dict[str, np.ndarray] | None:
    """The appearance arrays of a flame_sequence.npz, or None when it has none (or is not an npz);
    SequenceError when they do not have the shapes of the module docstring."""
    if path.suffix.lower() != ".npz" or not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as npz:
        if not all(k in npz.files for k in KEYS):
            return None
        arrays = {k: npz[k] for k in KEYS}
    for key, expected, ok in (("albedo", "(H, W, 3)", lambda s: len(s) == 3 and s[2] == 3),
                              ("sh", "(9, 3)", lambda s: s == (9, 3)),
                              ("vt", "(N, 2)", lambda s: len(s) == 2 and s[1] == 2),
                              ("ft", "(F, 3)", lambda s: len(s) == 2 and s[1] == 3)):
        if not ok(arrays[key].shape):
            raise SequenceError(f"{path.name}: '{key}' is {arrays[key].shape}, expected {expected}")
    ft, n_uv = arrays["ft"], len(arrays["vt"])
    if ft.size and not (np.issubdtype(ft.dtype, np.integer) and ft.min() >= 0 and ft.max() < n_uv):
        raise SequenceError(f"{path.name}: 'ft' holds {ft.min()}..{ft.max()}, not indices of the {n_uv} UVs of 'vt'")
    return arrays


def apply_appearance(context: bpy.types.Context, mesh_obj: bpy.types.Object, arrays: dict[str, np.ndarray],
                     name: str = "flame_albedo") -> None:
    """UV map, albedo image (packed), material and light rig on a head mesh built from the model's faces
    in order (loop 3 f + k is corner k of face f)."""
    mesh = mesh_obj.data
    vt, ft = np.asarray(arrays["vt"], dtype=np.float32), np.asarray(arrays["ft"], dtype=np.int64)
    if ft.shape != (len(mesh.polygons), 3) or len(mesh.loops) != 3 * len(ft):
        raise SequenceError(f"the albedo's UVs have {len(ft)} triangles, the head mesh {len(mesh.polygons)} faces")
    uv_layer = mesh.uv_layers.get("UVMap") or mesh.uv_layers.new(name="UVMap")
    uv_layer.data.foreach_set("uv", vt[ft].ravel())

    albedo = np.clip(np.asarray(arrays["albedo"], dtype=np.float32), 0, 1)
    R = albedo.shape[0]
    image = bpy.data.images.new(name, R, albedo.shape[1], alpha=False)
    rgba = np.concatenate([albedo[::-1], np.ones(albedo.shape[:2] + (1,), np.float32)], -1)  # Blender rows go up
    image.pixels.foreach_set(rgba.ravel())
    image.pack()

    material = bpy.data.materials.new(name)
    compat.use_nodes(material)
    nodes = material.node_tree.nodes
    bsdf = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
    tex = nodes.new("ShaderNodeTexImage")
    tex.image = image
    material.node_tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    bsdf.inputs["Roughness"].default_value = 0.7
    mesh.materials.clear()
    mesh.materials.append(material)
    add_light_rig(context, np.asarray(arrays["sh"], dtype=np.float64), name)


def add_light_rig(context: bpy.types.Context, sh: np.ndarray, name: str) -> bpy.types.Object:
    """World colour and a sun for SH lighting (OpenCV camera frame); returns the sun object."""
    direction, colour, ambient = to_light(sh)
    scene = context.scene
    world = bpy.data.worlds.new(f"{name}_world")
    compat.use_nodes(world)
    background = next(n for n in world.node_tree.nodes if n.type == "BACKGROUND")
    background.inputs["Color"].default_value = (*(ambient ** GAMMA), 1.0)
    background.inputs["Strength"].default_value = 1.0
    scene.world = world
    facing = (ambient + FACING_LIGHT * colour) ** GAMMA - ambient ** GAMMA  # linear shading the sun adds
    strength = float(math.pi * facing.max())
    light = bpy.data.lights.new(f"{name}_sun", "SUN")
    light.energy = strength
    light.color = tuple(facing / max(facing.max(), 1e-9))
    sun = bpy.data.objects.new(f"{name}_sun", light)
    scene.collection.objects.link(sun)
    towards_light = Vector((direction[0], -direction[1], -direction[2]))  # OpenCV -> Blender camera axes
    sun.rotation_mode = "QUATERNION"
    sun.rotation_quaternion = towards_light.to_track_quat("Z", "Y")  # a sun shines along its -Z
    if scene.camera is not None:
        sun.parent = scene.camera
    return sun
