"""A tracker's appearance in Blender: a UV map, an albedo image and a material shaded by SH lighting.

The trackers render ``albedo(uv) * shading(normal)``, the shading being 9 spherical-harmonic bands
(:mod:`..core.sh_lighting`), and compare it with the video's gamma-encoded values. The material
does the same: the node group ``FLAME SH Shading`` evaluates the 9 bands at the shading normal,
multiplies the albedo (an image read as raw values, Non-Color) and emits the sRGB-decoded result,
so a render with the *Standard* view transform shows the tracker's own image, in Eevee and Cycles
alike, whatever lights the scene has. The SH frame is per material: ``CAMERA`` (the photometric
stage's ``flame_sequence.npz``: the OpenCV camera frame, normals through the scene camera) or
``OBJECT`` (metrical-tracker: FLAME space, which is the head mesh's object space).

A ``flame_sequence.npz`` written with ``--photometric`` holds ``albedo`` (R, R, 3) on the UVs
``vt`` / ``ft``, ``sh`` (9, 3) and, with ``--per-frame-light``, ``sh_frames`` (T, 9, 3);
:func:`read_appearance` and :func:`apply_appearance` import it. Per-frame lighting is keyed on the
node group's SH inputs (:func:`key_sh`, an action on the material's node tree).
Without lighting (:mod:`.texture_space` alone) the SH is :data:`UNLIT`: the render shows the
albedo itself. For scene lighting instead, connect the image to a Principled BSDF's Base Color
through a colour-space conversion (the image holds sRGB-encoded values marked Non-Color).
"""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np

from ..core.errors import FlameError, SequenceError
from ..core.sh_lighting import BAND_GAIN, BASIS_SCALE, Y0
from . import compat, keyframes

KEYS = ("albedo", "sh", "vt", "ft")
FRAMES_KEY = "sh_frames"  # per-frame lighting (T, 9, 3), in the npz and in FlameSequence.appearance
GROUP = "FLAME SH Shading"
SH_FRAMES = ("CAMERA", "OBJECT")
UNLIT = np.outer(np.eye(9)[0] / Y0, np.ones(3))  # uniform white light: shading 1 at every normal
# the polynomial of each basis function (sh_lighting's order); 3 z^2 - 1 and x^2 - y^2 are built apart
_MONOMIALS = ((), ("y",), ("z",), ("x",), ("x", "y"), ("y", "z"), "3zz-1", ("x", "z"), "xx-yy")


def read_appearance(path: Path) -> dict[str, np.ndarray] | None:
    """The appearance arrays of a flame_sequence.npz, or None when it has none (or is not an npz);
    SequenceError when they do not have the shapes of the module docstring."""
    if path.suffix.lower() != ".npz" or not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as npz:
        if not all(k in npz.files for k in KEYS):
            return None
        arrays = {k: npz[k] for k in KEYS + (FRAMES_KEY,) if k in npz.files}
    for key, expected, ok in (("albedo", "(H, W, 3)", lambda s: len(s) == 3 and s[2] == 3),
                              ("sh", "(9, 3)", lambda s: s == (9, 3)),
                              (FRAMES_KEY, "(T, 9, 3)", lambda s: len(s) == 3 and s[1:] == (9, 3)),
                              ("vt", "(N, 2)", lambda s: len(s) == 2 and s[1] == 2),
                              ("ft", "(F, 3)", lambda s: len(s) == 2 and s[1] == 3)):
        if key in arrays and not ok(arrays[key].shape):
            raise SequenceError(f"{path.name}: '{key}' is {arrays[key].shape}, expected {expected}")
    ft, n_uv = arrays["ft"], len(arrays["vt"])
    if ft.size and not (np.issubdtype(ft.dtype, np.integer) and ft.min() >= 0 and ft.max() < n_uv):
        raise SequenceError(f"{path.name}: 'ft' holds {ft.min()}..{ft.max()}, not indices of the {n_uv} UVs of 'vt'")
    return arrays


def apply_appearance(context: bpy.types.Context, mesh_obj: bpy.types.Object, arrays: dict[str, np.ndarray],
                     frames: np.ndarray, name: str = "flame_albedo") -> bpy.types.Material:
    """The photometric stage's UVs, albedo and SH lighting (camera frame) on a head mesh; per-frame
    lighting keyed at the scene ``frames`` (T,) of the sequence's frames."""
    set_uvs(mesh_obj.data, arrays["vt"], arrays["ft"])
    image = albedo_image(name, np.asarray(arrays["albedo"], dtype=np.float32))
    material = albedo_material(name, image, np.asarray(arrays["sh"], dtype=np.float64), "CAMERA")
    if FRAMES_KEY in arrays:
        key_sh(material, frames, arrays[FRAMES_KEY])
    return assign(mesh_obj, material)


def set_uvs(mesh: bpy.types.Mesh, vt: np.ndarray, ft: np.ndarray) -> None:
    """Per-loop UVs ``vt[ft]`` on the ``UVMap`` layer of a mesh built from the model's faces in order
    (loop 3 f + k is corner k of face f)."""
    ft = np.asarray(ft, dtype=np.int64)
    if ft.shape != (len(mesh.polygons), 3) or len(mesh.loops) != 3 * len(ft):
        raise FlameError(f"UVs for {len(ft)} triangles do not fit the head mesh's {len(mesh.polygons)} faces")
    uv_layer = mesh.uv_layers.get("UVMap") or mesh.uv_layers.new(name="UVMap")
    uv_layer.data.foreach_set("uv", np.asarray(vt, dtype=np.float32)[ft].ravel())


def albedo_image(name: str, rgb: np.ndarray) -> bpy.types.Image:
    """A float image of ``rgb`` (R, R, 3), row 0 at v = 1, packed into the .blend, read as raw values
    (Non-Color: the trackers' gamma-encoded albedo, which the SH shading multiplies before decoding)."""
    image = bpy.data.images.new(name, rgb.shape[1], rgb.shape[0], alpha=False, float_buffer=True)
    image.colorspace_settings.name = "Non-Color"  # before the pixels: changing it converts them
    write_pixels(image, rgb)
    image.file_format = "OPEN_EXR"
    image.pack()
    return image


def write_pixels(image: bpy.types.Image, rgb: np.ndarray) -> None:
    """Set an image's pixels to ``rgb`` (R, R, 3) given top-down (Blender's rows go up)."""
    rgba = np.ones(rgb.shape[:2] + (4,), dtype=np.float32)
    rgba[..., :3] = rgb[::-1]
    image.pixels.foreach_set(rgba.ravel())
    image.update()


def albedo_material(name: str, image: bpy.types.Image, sh: np.ndarray, frame: str = "CAMERA") -> bpy.types.Material:
    """A material showing ``image`` (:func:`albedo_image`) on ``UVMap`` under ``sh`` (9, 3) lighting in
    ``frame`` (emission, module docstring); :data:`UNLIT` shows the albedo as it is."""
    material = bpy.data.materials.new(name)
    compat.use_nodes(material)
    tree = material.node_tree
    nodes, links = tree.nodes, tree.links
    uv = nodes.new("ShaderNodeUVMap")
    uv.uv_map = "UVMap"
    tex = nodes.new("ShaderNodeTexImage")
    tex.image = image
    links.new(uv.outputs["UV"], tex.inputs["Vector"])
    output = next(n for n in nodes if n.type == "OUTPUT_MATERIAL")
    for node in [n for n in nodes if n.type == "BSDF_PRINCIPLED"]:
        nodes.remove(node)
    group = nodes.new("ShaderNodeGroup")
    group.node_tree = sh_node_group()
    set_sh(group, sh)
    links.new(tex.outputs["Color"], group.inputs["Albedo"])
    links.new(_normal_in(tree, frame), group.inputs["Normal"])
    links.new(group.outputs["Emission"], output.inputs["Surface"])
    return material


def set_sh(group: bpy.types.ShaderNodeGroup, sh: np.ndarray) -> None:
    """The 9 SH coefficients (9, 3) of a ``FLAME SH Shading`` node."""
    for k, rgb in enumerate(np.asarray(sh, dtype=np.float64).reshape(9, 3)):
        group.inputs[f"SH {k}"].default_value = tuple(rgb)


def key_sh(material: bpy.types.Material, frames: np.ndarray, sh_frames: np.ndarray) -> bpy.types.Action:
    """Key the SH inputs of a material made by :func:`albedo_material` to ``sh_frames`` (T, 9, 3) at the
    scene ``frames`` (T,), linear between them, in one new action on its node tree."""
    sh_frames = np.asarray(sh_frames, dtype=np.float64)
    if len(sh_frames) != len(frames):
        raise SequenceError(f"per-frame lighting for {len(sh_frames)} frames, but the sequence has {len(frames)}")
    group = sh_node(material)
    channels = [(group.inputs[f"SH {k}"].path_from_id("default_value"), c, sh_frames[:, k, c])
                for k in range(9) for c in range(3)]
    return keyframes.write_channels(material.node_tree, f"{material.name}_lighting", frames, channels)


def sh_node(material: bpy.types.Material | None) -> bpy.types.ShaderNodeGroup | None:
    """The ``FLAME SH Shading`` node of a material made by :func:`albedo_material`, or None."""
    nodes = material.node_tree.nodes if material is not None and material.node_tree else ()
    return next((n for n in nodes if n.type == "GROUP" and n.node_tree and n.node_tree.name == GROUP), None)


def lighting_of(material: bpy.types.Material) -> tuple[np.ndarray | None, str]:
    """The SH (9, 3) and frame of a material made by :func:`albedo_material`; (None, "OBJECT") for another."""
    group = sh_node(material)
    if group is None:
        return None, "OBJECT"
    transform = next((n for n in material.node_tree.nodes if n.type == "VECT_TRANSFORM"), None)
    sh = np.array([tuple(group.inputs[f"SH {k}"].default_value) for k in range(9)])
    return sh, transform.convert_to if transform is not None else "OBJECT"


def assign(mesh_obj: bpy.types.Object, material: bpy.types.Material) -> bpy.types.Material:
    mesh_obj.data.materials.clear()
    mesh_obj.data.materials.append(material)
    return material


def _normal_in(tree: bpy.types.NodeTree, frame: str) -> bpy.types.NodeSocket:
    """The shading normal in the SH's frame: OpenCV camera axes or object space. The node's camera space
    is the renderers' (x right, y up, z forward: Cycles', which Eevee matches), so OpenCV's is (x, -y, z)."""
    if frame not in SH_FRAMES:
        raise FlameError(f"SH frame {frame!r}: expected one of {', '.join(SH_FRAMES)}")
    geometry = tree.nodes.new("ShaderNodeNewGeometry")
    transform = tree.nodes.new("ShaderNodeVectorTransform")
    transform.vector_type, transform.convert_from, transform.convert_to = "NORMAL", "WORLD", frame
    tree.links.new(geometry.outputs["Normal"], transform.inputs["Vector"])
    if frame == "OBJECT":
        return transform.outputs["Vector"]
    flip = tree.nodes.new("ShaderNodeVectorMath")
    flip.operation = "MULTIPLY"
    flip.inputs[1].default_value = (1.0, -1.0, 1.0)
    tree.links.new(transform.outputs["Vector"], flip.inputs[0])
    return flip.outputs["Vector"]


def sh_node_group() -> bpy.types.ShaderNodeTree:
    """The shared ``FLAME SH Shading`` group (made on first use): inputs Albedo (raw colour), Normal
    (unit, in the SH's frame), SH 0..8 (RGB as vectors); output Emission = sRGB-decoded
    ``albedo * sum_k A_k sh_k Y_k(normal)``."""
    group = bpy.data.node_groups.get(GROUP)
    if group is not None and group.bl_idname == "ShaderNodeTree":
        return group
    group = bpy.data.node_groups.new(GROUP, "ShaderNodeTree")
    face = group.interface
    face.new_socket("Albedo", in_out="INPUT", socket_type="NodeSocketColor")
    face.new_socket("Normal", in_out="INPUT", socket_type="NodeSocketVector")
    for k in range(9):
        face.new_socket(f"SH {k}", in_out="INPUT", socket_type="NodeSocketVector")
    face.new_socket("Emission", in_out="OUTPUT", socket_type="NodeSocketShader")
    g = _Graph(group)
    inputs = group.nodes.new("NodeGroupInput")
    unit = g.vector("NORMALIZE", inputs.outputs["Normal"])
    xyz = group.nodes.new("ShaderNodeSeparateXYZ")
    group.links.new(unit, xyz.inputs[0])
    axis = {a: xyz.outputs[a.upper()] for a in "xyz"}
    total = None
    for k, monomial in enumerate(_MONOMIALS):
        if monomial == "3zz-1":
            term = g.math("MULTIPLY_ADD", g.math("MULTIPLY", axis["z"], axis["z"]), 3.0, -1.0)
        elif monomial == "xx-yy":
            xx, yy = g.math("MULTIPLY", axis["x"], axis["x"]), g.math("MULTIPLY", axis["y"], axis["y"])
            term = g.math("SUBTRACT", xx, yy)
        elif len(monomial) == 2:
            term = g.math("MULTIPLY", axis[monomial[0]], axis[monomial[1]])
        else:
            term = axis[monomial[0]] if monomial else 1.0
        weight = g.math("MULTIPLY", term, float(BAND_GAIN[k] * BASIS_SCALE[k]))
        band = g.vector("SCALE", inputs.outputs[f"SH {k}"], scale=weight)
        total = band if total is None else g.vector("ADD", total, band)
    shaded = group.nodes.new("ShaderNodeSeparateXYZ")
    group.links.new(g.vector("MULTIPLY", total, inputs.outputs["Albedo"]), shaded.inputs[0])
    linear = group.nodes.new("ShaderNodeCombineXYZ")
    for channel in "XYZ":
        group.links.new(_srgb_to_linear(g, shaded.outputs[channel]), linear.inputs[channel])
    emission = group.nodes.new("ShaderNodeEmission")
    emission.inputs["Strength"].default_value = 1.0
    group.links.new(linear.outputs[0], emission.inputs["Color"])
    outputs = group.nodes.new("NodeGroupOutput")
    group.links.new(emission.outputs["Emission"], outputs.inputs["Emission"])
    return group


def _srgb_to_linear(g: _Graph, c: bpy.types.NodeSocket) -> bpy.types.NodeSocket:
    """The sRGB transfer function's inverse: c / 12.92 below 0.04045, ((c + 0.055) / 1.055)^2.4 above."""
    curve = g.math("POWER", g.math("MULTIPLY_ADD", c, 1 / 1.055, 0.055 / 1.055), 2.4)
    straight = g.math("MULTIPLY", c, 1 / 12.92)
    below = g.math("LESS_THAN", c, 0.04045)
    return g.math("MULTIPLY_ADD", below, g.math("SUBTRACT", straight, curve), curve)


class _Graph:
    """Math and Vector Math nodes in a node tree; an operand is a socket to link or a constant."""

    def __init__(self, tree: bpy.types.NodeTree):
        self.tree = tree

    def _node(self, kind: str, operation: str, operands) -> bpy.types.Node:
        node = self.tree.nodes.new(kind)
        node.operation = operation
        for socket, value in zip(node.inputs, operands, strict=False):
            if isinstance(value, bpy.types.NodeSocket):
                self.tree.links.new(value, socket)
            else:
                socket.default_value = value
        return node

    def math(self, operation: str, *operands) -> bpy.types.NodeSocket:
        return self._node("ShaderNodeMath", operation, operands).outputs[0]

    def vector(self, operation: str, *operands, scale=None) -> bpy.types.NodeSocket:
        node = self._node("ShaderNodeVectorMath", operation, operands)
        if scale is not None:
            self.tree.links.new(scale, node.inputs["Scale"])
        return node.outputs["Vector"]
