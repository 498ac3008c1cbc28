"""All-or-nothing scene edits: a failed import leaves no half-built datablocks behind, the scene's settings
(frame rate, range and current frame, render resolution, camera), an existing head and other objects it
changed (a retarget's character and its armature) as they were. The one rollback mechanism of the
add-on's operators."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence

import bpy
import numpy as np

from . import compat

# The ID collections an import can add to; new members are removed if the block fails.
_COLLECTIONS = ("objects", "meshes", "armatures", "shape_keys", "actions", "cameras", "images",
                "collections", "materials", "node_groups", "movieclips", "worlds", "lights")


# Scene settings an import sets (sequence_import: frame rate and range, render size, scene camera;
# appearance: the world).
_SCENE_SETTINGS = ("render.fps", "render.fps_base", "render.resolution_x", "render.resolution_y",
                   "render.resolution_percentage", "render.pixel_aspect_x", "render.pixel_aspect_y",
                   "frame_start", "frame_end", "frame_current", "camera", "world")


def _snapshot() -> dict[str, set[int]]:
    return {name: {id_.as_pointer() for id_ in getattr(bpy.data, name)} for name in _COLLECTIONS}


def _owner(scene: bpy.types.Scene, path: str) -> tuple[object, str]:
    *parents, attribute = path.split(".")
    return functools.reduce(getattr, parents, scene), attribute


class _SceneState:
    """The values of :data:`_SCENE_SETTINGS` of a scene."""

    def __init__(self, scene: bpy.types.Scene):
        self.scene = scene
        self.values = {path: getattr(*_owner(scene, path)) for path in _SCENE_SETTINGS}

    def restore(self) -> None:
        for _ in range(2):  # frame_start and frame_end clamp each other: the second pass lands
            for path, value in self.values.items():
                setattr(*_owner(self.scene, path), value)


class _HeadState:
    """What an import can change on an existing head: shape key values (and added keys), the offset keys it
    rewrites, the vertex groups it adds, the members and weights of the mask groups it rewrites, its UV
    maps (added ones, and the values of those it had), its materials, rest joints, actions, the armature
    object's and its bones' transforms, its takes, the names of what it owns (a take renames actions),
    the sequence it names and its camera object."""

    def __init__(self, armature: bpy.types.Object):
        from . import takes
        from .assets import MASK_PREFIX
        from .sequence_import import EYELID_KEYS, STATIC_OFFSET_KEY

        props = self.props = armature.flame
        self.armature = armature
        self.n_takes, self.active_take = len(props.takes), props.active_take
        self.sequence = props.sequence_path, props.sequence_source, props.sequence_frame_start
        self.camera = props.camera
        self.camera_state = _camera_state(self.camera) if self.camera is not None else None
        self.blocks = props.mesh.data.shape_keys.key_blocks
        self.values = np.empty(len(self.blocks), dtype=np.float32)
        self.blocks.foreach_get("value", self.values)
        self.rewritten = {kb.name: (key_co(kb), kb.slider_min, kb.slider_max) for kb in self.blocks
                          if kb.name in (STATIC_OFFSET_KEY, *EYELID_KEYS)}
        self.groups = {g.name for g in props.mesh.vertex_groups}
        self.masks = group_weights(props.mesh, [name for name in self.groups if name.startswith(MASK_PREFIX)])
        self.uv_maps = {uv.name: _uvs(uv) for uv in props.mesh.data.uv_layers}
        self.materials = list(props.mesh.data.materials)
        self.joints = np.array([b.head_local for b in armature.data.bones])
        self.owners = [armature, props.mesh.data.shape_keys]
        self.actions = [compat.action_of(o) for o in self.owners]
        self.transform = _transform(armature)
        self.bones = {b.name: _transform(b) for b in armature.pose.bones}
        self.names = [(id_, id_.name) for id_ in takes.owned_ids(armature)]

    def restore(self, context: bpy.types.Context) -> None:
        """Everything but the names (see :meth:`rename`)."""
        from .head import set_rest_joints  # head uses this module's active_in_mode

        for owner, action in zip(self.owners, self.actions, strict=True):
            compat.assign_action(owner, action)
        for name in [kb.name for kb in self.blocks][len(self.values):]:
            self.props.mesh.shape_key_remove(self.blocks[name])
        self.blocks.foreach_set("value", self.values)
        for name, (co, low, high) in self.rewritten.items():
            kb = self.blocks[name]
            kb.data.foreach_set("co", co)
            kb.slider_min, kb.slider_max = low, high
        mesh_obj = self.props.mesh
        for group in [g for g in mesh_obj.vertex_groups if g.name not in self.groups]:
            mesh_obj.vertex_groups.remove(group)
        for name, (indices, weights) in self.masks.items():
            group = mesh_obj.vertex_groups[name]
            group.remove(list(range(len(mesh_obj.data.vertices))))
            set_group_weights(group, indices, weights)
        for uv_map in [uv for uv in mesh_obj.data.uv_layers if uv.name not in self.uv_maps]:
            mesh_obj.data.uv_layers.remove(uv_map)
        for name, uvs in self.uv_maps.items():
            mesh_obj.data.uv_layers[name].data.foreach_set("uv", uvs)
        if list(mesh_obj.data.materials) != self.materials:
            mesh_obj.data.materials.clear()
            for material in self.materials:
                mesh_obj.data.materials.append(material)
        set_rest_joints(context, self.armature, self.joints)
        _set_transform(self.armature, self.transform)
        for bone in self.armature.pose.bones:
            _set_transform(bone, self.bones[bone.name])
        props = self.props
        while len(props.takes) > self.n_takes:
            props.takes.remove(len(props.takes) - 1)
        props.active_take, props.camera = self.active_take, self.camera
        props.sequence_path, props.sequence_source, props.sequence_frame_start = self.sequence
        if self.camera_state is not None:
            data, parent, parent_inverse, transform, action = self.camera_state
            self.camera.data, self.camera.parent, self.camera.matrix_parent_inverse = data, parent, parent_inverse
            _set_transform(self.camera, transform)
            compat.assign_action(self.camera, action)

    def rename(self) -> None:
        """The head's datablocks' names back, once the block's datablocks (which may hold them) are gone."""
        for id_, name in self.names:
            if id_.name != name:
                id_.name = name


def _uvs(uv_map: bpy.types.MeshUVLoopLayer) -> np.ndarray:
    uvs = np.empty(2 * len(uv_map.data), dtype=np.float32)
    uv_map.data.foreach_get("uv", uvs)
    return uvs


def group_weights(mesh_obj: bpy.types.Object, names: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Members (N,) int64 and their weights (N,) float32 of ``mesh_obj``'s vertex groups ``names``. Blender
    has no bulk getter for vertex-group weights, so this walks the vertices once (not at all without names)."""
    index = {mesh_obj.vertex_groups[name].index: name for name in names}
    members: dict[str, tuple[list[int], list[float]]] = {name: ([], []) for name in names}
    if index:
        for v in mesh_obj.data.vertices:
            for g in v.groups:
                if g.group in index:
                    indices, weights = members[index[g.group]]
                    indices.append(v.index)
                    weights.append(g.weight)
    return {name: (np.array(i, dtype=np.int64), np.array(w, dtype=np.float32)) for name, (i, w) in members.items()}


def set_group_weights(group: bpy.types.VertexGroup, indices: np.ndarray, weights: np.ndarray) -> None:
    """Add vertices ``indices`` (N,) to ``group`` with ``weights`` (N,). Blender has no bulk setter, so the
    vertices sharing a weight are added in one call: one call per distinct value, not per vertex."""
    values, inverse = np.unique(weights.astype(np.float32), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(values) + 1))
    for k, value in enumerate(values):
        group.add(indices[order[bounds[k]:bounds[k + 1]]].tolist(), float(value), "REPLACE")


def key_co(kb: bpy.types.ShapeKey) -> np.ndarray:
    """A shape key's coordinates, (3 V,) float32 as Blender stores them."""
    co = np.empty(3 * len(kb.data), dtype=np.float32)
    kb.data.foreach_get("co", co)
    return co


class _ObjectState:
    """What an operator can change on an object it edits (a retarget's character, its armature): transform
    and parent, its bones' transforms, action, custom properties, added modifiers and, through a copy made
    beforehand, its mesh as a whole (vertices, attributes, vertex groups, shape keys with their drivers)."""

    def __init__(self, obj: bpy.types.Object):
        self.obj = obj
        self.parent, self.parent_inverse = obj.parent, obj.matrix_parent_inverse.copy()
        self.transform, self.action = _transform(obj), compat.action_of(obj)
        self.bones = {b.name: _transform(b) for b in obj.pose.bones} if obj.pose else {}
        registered = type(obj).bl_rna.properties
        self.props = {k: plain_value(v) for k, v in obj.items() if k not in registered}
        self.modifiers = {m.name for m in obj.modifiers}
        self.mesh = obj.data.copy() if obj.type == "MESH" else None  # made before the block: not rolled back

    def restore(self) -> None:
        obj = self.obj
        if self.mesh is not None:
            _replace(obj.data, self.mesh)
            self.mesh = None
        for modifier in [m for m in obj.modifiers if m.name not in self.modifiers]:
            obj.modifiers.remove(modifier)
        obj.parent, obj.matrix_parent_inverse = self.parent, self.parent_inverse
        _set_transform(obj, self.transform)
        for bone in obj.pose.bones if obj.pose else ():
            _set_transform(bone, self.bones[bone.name])
        compat.assign_action(obj, self.action)
        for key in [k for k, _ in obj.items() if k not in type(obj).bl_rna.properties and k not in self.props]:
            del obj[key]
        for key, value in self.props.items():
            obj[key] = value

    def discard(self) -> None:
        """After success: delete the copy of the mesh."""
        if self.mesh is not None:
            _remove_mesh(self.mesh)


def plain_value(value):
    """A custom property's value as Python data (ID property groups and arrays are views into Blender)."""
    return value.to_dict() if hasattr(value, "to_dict") else value.to_list() if hasattr(value, "to_list") else value


def _remove_mesh(mesh: bpy.types.Mesh) -> None:
    """Delete a mesh and its shape keys (which would otherwise linger without users)."""
    key = mesh.shape_keys.as_pointer() if mesh.shape_keys is not None else None
    bpy.data.meshes.remove(mesh)
    bpy.data.batch_remove([k for k in bpy.data.shape_keys if k.as_pointer() == key])


def _replace(mesh: bpy.types.Mesh, copy: bpy.types.Mesh) -> None:
    """Put ``copy`` everywhere ``mesh`` is used, delete ``mesh`` and give ``copy`` its names."""
    name, key_name = mesh.name, mesh.shape_keys.name if mesh.shape_keys is not None else None
    mesh.user_remap(copy)
    _remove_mesh(mesh)
    copy.name = name
    if copy.shape_keys is not None and key_name is not None:
        copy.shape_keys.name = key_name


_TRANSFORM = ("rotation_mode", "location", "rotation_euler", "rotation_quaternion", "rotation_axis_angle", "scale")


def _transform(obj: bpy.types.Object | bpy.types.PoseBone) -> dict:
    """An object's or pose bone's own transform channels: restoring them is exact, unlike setting ``matrix_world``."""
    return {name: getattr(obj, name) if name == "rotation_mode" else tuple(getattr(obj, name)) for name in _TRANSFORM}


def _set_transform(obj: bpy.types.Object | bpy.types.PoseBone, transform: dict) -> None:
    for name, value in transform.items():
        setattr(obj, name, value)


def _camera_state(camera: bpy.types.Object) -> tuple:
    return camera.data, camera.parent, camera.matrix_parent_inverse.copy(), _transform(camera), compat.action_of(camera)


@contextlib.contextmanager
def rollback_on_error(context: bpy.types.Context, edited_head: bpy.types.Object | None = None,
                      edited: Sequence[bpy.types.Object] = ()) -> Iterator[None]:
    """Run a block that creates datablocks; if it raises, delete every datablock it created, restore
    the scene's settings (:data:`_SCENE_SETTINGS`), ``edited_head`` (an existing FLAME armature the
    block changes, see :class:`_HeadState`), the ``edited`` objects (see :class:`_ObjectState`), the
    active object, selection and mode, and re-raise."""
    object_states = [_ObjectState(obj) for obj in edited]
    before = _snapshot()
    scene_state = _SceneState(context.scene)
    head_state = _HeadState(edited_head) if edited_head is not None else None
    active = context.view_layer.objects.active
    selected = [o for o in context.view_layer.objects if o.select_get()]
    try:
        yield
    except BaseException:
        if context.object is not None and context.object.mode != "OBJECT":
            bpy.ops.object.mode_set(mode="OBJECT")
        scene_state.restore()  # first: the scene's camera may be one the block created
        if head_state is not None:  # first too: the head's camera may hold camera data made by the block
            head_state.restore(context)
        for state in object_states:  # first too: a character may be parented to an object the block made
            state.restore()
        created = [id_ for name in _COLLECTIONS for id_ in getattr(bpy.data, name)
                   if id_.as_pointer() not in before[name]]
        bpy.data.batch_remove(created)
        if head_state is not None:
            head_state.rename()
        for obj in context.view_layer.objects:
            if obj is not None:  # bases of objects just removed can linger until the layer syncs
                obj.select_set(obj in selected)
        context.view_layer.objects.active = active
        raise
    else:
        for state in object_states:
            state.discard()


@contextlib.contextmanager
def active_in_mode(context: bpy.types.Context, obj: bpy.types.Object, mode: str) -> Iterator[None]:
    """Make ``obj`` active in ``mode`` for the block, then restore the previous active object and mode."""
    previous = context.view_layer.objects.active
    previous_mode = previous.mode if previous is not None else "OBJECT"
    if previous is not None and previous_mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode=mode)
    try:
        yield
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
        context.view_layer.objects.active = previous
        if previous is not None and previous_mode != "OBJECT":
            bpy.ops.object.mode_set(mode=previous_mode)
