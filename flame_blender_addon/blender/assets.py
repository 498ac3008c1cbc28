"""The FLAME ecosystem's files on a head: mask vertex groups, the template's UV map, a texture
space's albedo material (:mod:`.texture_space`), landmark points.

UVs: a texture space's own ``vt``/``ft`` (FLAME_texture.npz may hold them) make the ``UVMap``, since
its images are laid out on them; else the template's (head_template.obj), which a BFM space needs.

Landmarks: one mesh object per embedding, ``<head>.lmk.<embedding>``, a child of the armature with
one vertex per landmark in the embedding's order and the landmark's number (68-point or MediaPipe
index) in the integer point attribute ``landmark``. A Geometry Nodes modifier places each vertex at
``sum_c w_c * P[corner_c]`` of the head mesh's *evaluated* positions P (shape keys, correctives,
armature), read through an Object Info node in the relative space. That is FLAME's barycentric
formula, exact at every frame, in the viewport, renders and exports alike, with no handler. A small
sphere instanced on each point shows it in the viewport (the evaluated mesh stays the L points; the
object is hidden in renders).
"""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np

from ..core.formats.assets import Assets
from ..core.formats.embeddings import Embedding
from . import appearance, texture_space

MASK_PREFIX = "mask."
LANDMARK_INFIX = ".lmk."
LANDMARK_ATTRIBUTE = "landmark"
LANDMARKS_PROP = "flame_landmarks"  # on a landmark object: its embedding's name
_CORNER, _WEIGHT = "flame_corner_{}", "flame_weight_{}"  # point attributes the node group reads
MARKER_RADIUS = 0.002  # metres


def head_faces(mesh: bpy.types.Mesh) -> np.ndarray:
    """The head mesh's triangles (F, 3), in the model's order (the mesh is built from them)."""
    corners = np.empty(len(mesh.loops), dtype=np.int32)
    mesh.loops.foreach_get("vertex_index", corners)
    return corners.reshape(-1, 3) if len(corners) == 3 * len(mesh.polygons) else corners[:0].reshape(0, 3)


def add_masks(mesh_obj: bpy.types.Object, regions: dict[str, np.ndarray]) -> None:
    """A vertex group ``mask.<region>`` of weight 1 per region (replacing one of that name): one call each."""
    everything = list(range(len(mesh_obj.data.vertices)))
    for region, indices in regions.items():
        name = MASK_PREFIX + region
        group = mesh_obj.vertex_groups.get(name) or mesh_obj.vertex_groups.new(name=name)
        group.remove(everything)
        group.add(indices.tolist(), 1.0, "REPLACE")


def _landmark_nodes(name: str, head_mesh: bpy.types.Object) -> bpy.types.NodeTree:
    """A node group (one per landmark object; the head is set in its Object Info node, which works on
    every Blender version, unlike modifier inputs holding objects): each point set to the barycentric
    mix of ``head_mesh``'s evaluated positions at its three corners."""
    tree = bpy.data.node_groups.new(name, "GeometryNodeTree")
    tree.interface.new_socket("Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    tree.interface.new_socket("Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    nodes, links = tree.nodes, tree.links
    group_in, group_out = nodes.new("NodeGroupInput"), nodes.new("NodeGroupOutput")
    info = nodes.new("GeometryNodeObjectInfo")
    info.transform_space = "RELATIVE"  # the head's geometry in this object's space
    info.inputs["Object"].default_value = head_mesh
    position = nodes.new("GeometryNodeInputPosition")
    total = None
    for c in range(3):
        corner, weight = (nodes.new("GeometryNodeInputNamedAttribute") for _ in range(2))
        corner.data_type, corner.inputs["Name"].default_value = "INT", _CORNER.format(c)
        weight.data_type, weight.inputs["Name"].default_value = "FLOAT", _WEIGHT.format(c)
        sample = nodes.new("GeometryNodeSampleIndex")
        sample.data_type, sample.domain = "FLOAT_VECTOR", "POINT"
        links.new(info.outputs["Geometry"], sample.inputs["Geometry"])
        links.new(position.outputs["Position"], sample.inputs["Value"])
        links.new(corner.outputs["Attribute"], sample.inputs["Index"])
        scaled = nodes.new("ShaderNodeVectorMath")
        scaled.operation = "SCALE"
        links.new(sample.outputs["Value"], scaled.inputs[0])
        links.new(weight.outputs["Attribute"], scaled.inputs["Scale"])
        if total is None:
            total = scaled
        else:
            added = nodes.new("ShaderNodeVectorMath")
            added.operation = "ADD"
            links.new(total.outputs["Vector"], added.inputs[0])
            links.new(scaled.outputs["Vector"], added.inputs[1])
            total = added
    set_position = nodes.new("GeometryNodeSetPosition")
    links.new(group_in.outputs["Geometry"], set_position.inputs["Geometry"])
    links.new(total.outputs["Vector"], set_position.inputs["Position"])
    sphere, markers = nodes.new("GeometryNodeMeshIcoSphere"), nodes.new("GeometryNodeInstanceOnPoints")
    sphere.inputs["Radius"].default_value, sphere.inputs["Subdivisions"].default_value = MARKER_RADIUS, 1
    links.new(set_position.outputs["Geometry"], markers.inputs["Points"])
    links.new(sphere.outputs["Mesh"], markers.inputs["Instance"])
    joined = nodes.new("GeometryNodeJoinGeometry")
    links.new(set_position.outputs["Geometry"], joined.inputs[0])
    links.new(markers.outputs["Instances"], joined.inputs[0])
    links.new(joined.outputs["Geometry"], group_out.inputs["Geometry"])
    return tree


def add_landmarks(context: bpy.types.Context, armature: bpy.types.Object, embedding: Embedding,
                  faces: np.ndarray) -> bpy.types.Object:
    """The landmark object of ``embedding`` on the head of triangles ``faces`` (F, 3) (:func:`head_faces`;
    see the module notes); returns it."""
    mesh_obj = armature.flame.mesh
    corners = embedding.corners(faces)
    rest = np.empty(3 * len(mesh_obj.data.vertices), dtype=np.float32)
    mesh_obj.data.vertices.foreach_get("co", rest)
    name = f"{armature.name}{LANDMARK_INFIX}{embedding.name}"
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(embedding))
    mesh.vertices.foreach_set("co", embedding.positions(faces, rest.reshape(-1, 3)).astype(np.float32).ravel())
    points = embedding.points if embedding.points is not None else np.arange(len(embedding))
    mesh.attributes.new(LANDMARK_ATTRIBUTE, "INT", "POINT").data.foreach_set("value", points.astype(np.int32))
    for c in range(3):
        mesh.attributes.new(_CORNER.format(c), "INT", "POINT").data.foreach_set("value", corners[:, c].astype(np.int32))
        mesh.attributes.new(_WEIGHT.format(c), "FLOAT", "POINT").data.foreach_set(
            "value", embedding.bary[:, c].astype(np.float32))
    obj = bpy.data.objects.new(name, mesh)
    obj[LANDMARKS_PROP] = embedding.name
    context.collection.objects.link(obj)
    obj.parent = armature
    obj.show_in_front, obj.hide_render = True, True
    modifier = obj.modifiers.new("Landmarks", "NODES")
    modifier.node_group = _landmark_nodes(name, mesh_obj)
    return obj


def landmark_objects(armature: bpy.types.Object) -> list[bpy.types.Object]:
    """The head's landmark objects."""
    return [obj for obj in armature.children if LANDMARKS_PROP in obj]


def node_groups(obj: bpy.types.Object) -> list[bpy.types.NodeTree]:
    """The node groups of ``obj``'s Geometry Nodes modifiers."""
    return [m.node_group for m in obj.modifiers if m.type == "NODES" and m.node_group is not None]


def apply_assets(context: bpy.types.Context, armature: bpy.types.Object, assets: Assets) -> str:
    """Put what ``assets`` holds on the head (UVs before the texture space, see the module notes); returns
    a summary ("14 mask vertex groups, UVMap (5118 UVs), ...") or "" when there was nothing; a texture
    space that finds no UVs is left out with a warning in ``assets.warnings``. Call inside
    :func:`.transaction.rollback_on_error`."""
    mesh_obj, added, space = armature.flame.mesh, [], assets.texture
    if assets.masks:
        add_masks(mesh_obj, assets.masks)
        added.append(f"{len(assets.masks)} mask vertex groups ({MASK_PREFIX}*)")
    if space is not None and space.vt is not None:
        added.append(f"UVMap ({len(space.vt)} UVs of {Path(space.path).name}"
                     + ("; the template's not used)" if assets.uvs is not None else ")"))
    elif assets.uvs is not None:
        appearance.set_uvs(mesh_obj.data, *assets.uvs)
        added.append(f"UVMap ({len(assets.uvs[0])} UVs)")
    if space is not None and texture_space.finds_no_uvs(mesh_obj.data, space):
        assets.warnings.append(f"{Path(space.path).name}: not added: it stores no UVs and the head has no UVMap "
                               "(put head_template.obj beside it, or import UVs first)")
    elif space is not None:
        texture_space.remember(space)
        material = texture_space.apply_to_head(context, mesh_obj, space)  # its vt/ft, if any, make the UVMap
        added.append(f"albedo {texture_space.describe(space, material)}")
    faces = head_faces(mesh_obj.data) if assets.embeddings else None
    for embedding in assets.embeddings:
        obj = add_landmarks(context, armature, embedding, faces)
        added.append(f"{obj.name} ({len(embedding)} landmarks)")
    return ", ".join(added)
