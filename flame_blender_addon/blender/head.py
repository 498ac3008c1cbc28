"""Build a rigged FLAME head from a :class:`~..core.model.FlameModel`, and keep its joints current.

The head is an armature object (bones ``root``, ``neck``, ``jaw``, ``eye.L``, ``eye.R`` at the
regressed joints, identity rest orientation in FLAME axes) with a child mesh whose data stays in
FLAME coordinates: shape keys ``shape000..``, ``exp000..`` and 36 ``pose00..`` correctives driven by
simple-expression drivers of the bone quaternions, vertex groups with the skin weights and an
Armature modifier. Only the armature object's transform turns FLAME's Y-up into Blender's Z-up.

A coefficient beyond the sliders' +-10 keeps +-10 on its key and the rest on an overflow key
``<name>.x10`` (ten times the component's offset), made when first needed:
coefficient = value(name) + 10 value(name.x10), see :func:`..core.rig.split_for_sliders`.
"""

from __future__ import annotations

from collections.abc import Callable

import bpy
import numpy as np
from mathutils import Matrix

from ..core import editions, rig
from ..core.errors import FlameError
from ..core.model import JOINT_NAMES, N_POSE_FEATURES, FlameModel
from .progress import Report
from .transaction import active_in_mode, key_co, set_group_weights

SHAPE_PREFIX, EXPR_PREFIX, POSE_PREFIX = "shape", "exp", "pose"
OVERFLOW_SUFFIX = f".x{rig.OVERFLOW_SCALE:g}"
JOINT_BASIS_PROP = "flame_joint_basis"
J_REGRESSOR_PROP = "flame_J_regressor"


def shape_key_names(n_shape: int, n_expr: int) -> list[str]:
    """Names of the blendshape keys in model order: identity then expression."""
    return [f"{SHAPE_PREFIX}{i:03d}" for i in range(n_shape)] + [f"{EXPR_PREFIX}{i:03d}" for i in range(n_expr)]


def overflow_name(name: str) -> str:
    """The overflow key of a blendshape key, e.g. ``exp007.x10``."""
    return name + OVERFLOW_SUFFIX


def is_coefficient_key(name: str, prefix: str) -> bool:
    """True for ``<prefix>NNN`` and its overflow key ``<prefix>NNN.x10``."""
    return name.startswith(prefix) and name[len(prefix):].removesuffix(OVERFLOW_SUFFIX).isdigit()


def key_value_path(name: str) -> str:
    """Data path of a shape key's value on the mesh's Key, e.g. ``key_blocks["exp000"].value``."""
    return f'key_blocks["{name}"].value'


def bone_path(bone: str, prop: str) -> str:
    """Data path of a pose bone's property on the armature, e.g. ``pose.bones["jaw"].rotation_quaternion``."""
    return f'pose.bones["{bone}"].{prop}'


def _build_mesh(name: str, model: FlameModel) -> bpy.types.Mesh:
    mesh = bpy.data.meshes.new(name)
    V, F = model.n_verts, len(model.faces)
    mesh.vertices.add(V)
    mesh.vertices.foreach_set("co", model.v_template.astype(np.float32).ravel())
    mesh.loops.add(3 * F)
    mesh.loops.foreach_set("vertex_index", model.faces.astype(np.int32).ravel())
    mesh.polygons.add(F)
    mesh.polygons.foreach_set("loop_start", np.arange(0, 3 * F, 3, dtype=np.int32))
    mesh.update(calc_edges=True)
    mesh.polygons.foreach_set("use_smooth", np.ones(F, dtype=bool))
    return mesh


def add_vertex_groups(obj: bpy.types.Object, weights: np.ndarray) -> None:
    """One group per joint, of the vertices it weighs more than 0."""
    for j, name in enumerate(JOINT_NAMES):
        column = weights[:, j].astype(np.float32)
        nonzero = np.flatnonzero(column > 0)
        set_group_weights(obj.vertex_groups.new(name=name), nonzero, column[nonzero])


def _add_shape_keys(obj: bpy.types.Object, model: FlameModel, report: Report) -> None:
    obj.shape_key_add(name="Basis", from_mix=False)
    blendshapes = np.concatenate([model.shapedirs, model.exprdirs], 2)
    blocks = [(shape_key_names(model.n_shape, model.n_expr), blendshapes, 10.0),
              ([f"{POSE_PREFIX}{k:02d}" for k in range(model.posedirs.shape[2])], model.posedirs, 2.0)]
    total, done = sum(len(names) for names, _, _ in blocks), 0
    for names, dirs, limit in blocks:
        coords = (model.v_template[None] + np.moveaxis(dirs, 2, 0)).astype(np.float32)  # (K, V, 3)
        for name, co in zip(names, coords, strict=True):
            kb = obj.shape_key_add(name=name, from_mix=False)
            kb.slider_min, kb.slider_max = -limit, limit
            kb.value = 0.0  # Blender 5.0 starts new keys at 1.0; a new head is neutral
            kb.data.foreach_set("co", co.ravel())
            done += 1
            if done % 50 == 0:
                report(0.2 + 0.7 * done / total, "shape keys")


def _add_corrective_drivers(mesh_obj: bpy.types.Object, armature: bpy.types.Object) -> None:
    for k, (bone, expression) in enumerate(rig.corrective_drivers()):
        driver = mesh_obj.data.shape_keys.key_blocks[f"{POSE_PREFIX}{k:02d}"].driver_add("value").driver
        driver.type = "SCRIPTED"
        for i, component in enumerate("wxyz"):
            var = driver.variables.new()
            var.name, var.type = component, "SINGLE_PROP"
            var.targets[0].id = armature
            var.targets[0].data_path = f"{bone_path(bone, 'rotation_quaternion')}[{i}]"
        driver.expression = expression


def set_rest_joints(context: bpy.types.Context, armature: bpy.types.Object, joints: np.ndarray) -> None:
    """Move the bones' rest heads to ``joints`` (J, 3), tails along +Y (identity rest orientation)."""
    tails = rig.bone_tails(joints)
    with active_in_mode(context, armature, "EDIT"):
        edit_bones = armature.data.edit_bones
        for j, name in enumerate(JOINT_NAMES):
            bone = edit_bones.get(name) or edit_bones.new(name)
            bone.head, bone.tail, bone.roll = joints[j], tails[j], 0.0
        for name, parent in zip(JOINT_NAMES, rig.parent_names(), strict=True):
            edit_bones[name].parent = edit_bones[parent] if parent else None
            edit_bones[name].use_connect = False


def build_head(context: bpy.types.Context, model: FlameModel, name: str,
               report: Report = lambda f, m: None) -> bpy.types.Object:
    """Create armature + mesh for ``model`` in the active collection; returns the armature (active)."""
    report(0.0, "mesh")
    armature = bpy.data.objects.new(name, bpy.data.armatures.new(name))
    armature.data.display_type = "STICK"
    armature.show_in_front = True
    context.collection.objects.link(armature)
    armature.matrix_world = Matrix.Translation(context.scene.cursor.location) @ Matrix(rig.FLAME_TO_BLENDER.tolist())
    set_rest_joints(context, armature, model.rest_joints())
    for pose_bone in armature.pose.bones:
        pose_bone.rotation_mode = "QUATERNION"

    mesh_obj = bpy.data.objects.new(f"{name}_mesh", _build_mesh(f"{name}_mesh", model))
    context.collection.objects.link(mesh_obj)
    mesh_obj.parent = armature
    mesh_obj.matrix_parent_inverse = Matrix.Identity(4)
    mesh_obj.matrix_basis = Matrix.Identity(4)
    report(0.1, "skin weights")
    add_vertex_groups(mesh_obj, model.weights)
    modifier = mesh_obj.modifiers.new("Armature", "ARMATURE")
    modifier.object = armature
    _add_shape_keys(mesh_obj, model, report)
    _add_corrective_drivers(mesh_obj, armature)

    props = armature.flame
    props.is_head, props.mesh = True, mesh_obj
    props.model_name, props.model_path = model.name, model.path
    props.model_sha256, props.edition = model.sha256, model.edition
    props.n_shape, props.n_expr = model.n_shape, model.n_expr
    armature[JOINT_BASIS_PROP] = model.joint_basis().ravel().tolist()
    armature[J_REGRESSOR_PROP] = model.J_regressor.ravel().tolist()  # joints of VHAP offsets

    for obj in context.view_layer.objects:
        obj.select_set(obj is armature)
    context.view_layer.objects.active = armature
    report(1.0, "done")
    return armature


def find_head(obj: bpy.types.Object | None) -> bpy.types.Object | None:
    """The FLAME armature for ``obj`` (the armature itself or its head mesh), else None."""
    if obj is not None and obj.type == "MESH" and obj.parent is not None:
        obj = obj.parent
    if obj is not None and obj.type == "ARMATURE" and obj.flame.is_head and obj.flame.mesh is not None:
        return obj
    return None


def edition_of(armature: bpy.types.Object) -> editions.Edition:
    """The head's FLAME edition: the one it stored, else (a head saved before heads stored one) the one
    its model file's name and folder tell."""
    props = armature.flame
    return editions.edition(props.edition) if props.edition else editions.detect_edition(props.model_path
                                                                                        or props.model_name)


def scene_heads(scene: bpy.types.Scene) -> list[bpy.types.Object]:
    """The FLAME armatures of ``scene``, in the scene's object order."""
    return [obj for obj in scene.objects if obj.type == "ARMATURE" and find_head(obj) is obj]


def target_head(context: bpy.types.Context, name: str = "") -> bpy.types.Object | None:
    """The head an operator acts on: the object named ``name`` (or its head), else the active object's head."""
    return find_head(bpy.data.objects.get(name) if name else context.active_object)


def check_head(armature: bpy.types.Object) -> None:
    """Refuse (FlameError saying what is missing) a head an operator is about to change whose mesh,
    shape keys, bones or stored joint basis are gone or renamed (users edit heads): keys written to
    them would be lost silently, and re-creating bones would leave the renamed ones behind. Changes
    nothing; :func:`repair_head` fixes what needs no model data."""
    props, name = armature.flame, armature.name
    mesh = props.mesh
    if mesh is None or mesh.type != "MESH" or mesh.data.shape_keys is None:
        raise FlameError(f"{name}: the head's mesh or its shape keys are gone; rebuild the head")
    bones = armature.data.bones
    missing = [b for b in JOINT_NAMES if b not in bones]
    if missing:
        others = sorted(set(bones.keys()) - set(JOINT_NAMES))
        raise FlameError(f"{name}: bone(s) {', '.join(missing)} missing"
                         + (f" (renamed to {', '.join(others)}?)" if others else "")
                         + "; rename them back or rebuild the head")
    blocks = mesh.data.shape_keys.key_blocks
    wanted = shape_key_names(props.n_shape, props.n_expr) + [f"{POSE_PREFIX}{k:02d}" for k in range(N_POSE_FEATURES)]
    gone = [k for k in wanted if k not in blocks]
    if gone:
        raise FlameError(f"{name}: shape key(s) {', '.join(gone[:5])}{' ...' if len(gone) > 5 else ''} missing "
                         f"({len(gone)} in all; deleted or renamed?); rebuild the head from its model file")
    stored = len(armature.get(JOINT_BASIS_PROP, ()))
    if stored != (1 + props.n_shape + props.n_expr) * len(JOINT_NAMES) * 3:
        raise FlameError(f"{name}: the joint basis stored on the head does not match its {props.n_shape} identity "
                         f"and {props.n_expr} expression keys; rebuild the head")


def repair_head(armature: bpy.types.Object) -> list[str]:
    """Set pose bones switched to Euler rotation back to quaternions (Euler would ignore the quaternion
    keys and the correctives' drivers); returns a warning for each repair."""
    warnings, name = [], armature.name
    for bone_name in JOINT_NAMES:
        bone = armature.pose.bones[bone_name]
        if bone.rotation_mode != "QUATERNION":
            warnings.append(f"{name}: bone '{bone_name}' was set to {bone.rotation_mode} rotation; set back to "
                            "quaternion, which the head's keys and correctives use")
            bone.rotation_mode = "QUATERNION"
    return warnings


def key_offset(mesh_obj: bpy.types.Object, name: str) -> np.ndarray:
    """A shape key's offset from the basis, (V, 3) float64."""
    blocks = mesh_obj.data.shape_keys.key_blocks
    return (key_co(blocks[name]) - key_co(blocks[0])).astype(np.float64).reshape(-1, 3)


def identity_basis(armature: bpy.types.Object) -> tuple[np.ndarray, np.ndarray]:
    """The head's template (V, 3) and identity basis (V, 3, S) as its shape keys hold them (float32 precision)."""
    blocks = armature.flame.mesh.data.shape_keys.key_blocks
    basis = key_co(blocks[0])  # read once: S offsets from it
    offsets = [(key_co(blocks[n]) - basis).astype(np.float64).reshape(-1, 3)
               for n in shape_key_names(armature.flame.n_shape, 0)]
    return basis.astype(np.float64).reshape(-1, 3), np.stack(offsets, axis=2)


def joint_basis(armature: bpy.types.Object) -> np.ndarray:
    """The joint basis stored on the head (:meth:`..core.model.FlameModel.joint_basis`): (1 + S + E, J, 3)."""
    return np.asarray(armature[JOINT_BASIS_PROP], dtype=np.float64).reshape(-1, len(JOINT_NAMES), 3)


def joint_regressor(armature: bpy.types.Object) -> np.ndarray:
    """The model's ``J_regressor`` stored on the head: (J, V)."""
    return np.asarray(armature[J_REGRESSOR_PROP], dtype=np.float64).reshape(len(JOINT_NAMES), -1)


def _ensure_overflow_key(mesh_obj: bpy.types.Object, name: str) -> None:
    """Add ``name``'s overflow key (offset OVERFLOW_SCALE times ``name``'s) unless it exists."""
    blocks = mesh_obj.data.shape_keys.key_blocks
    if overflow_name(name) in blocks:
        return
    basis, co = key_co(blocks[0]), key_co(blocks[name])
    kb = mesh_obj.shape_key_add(name=overflow_name(name), from_mix=False)
    kb.slider_min, kb.slider_max = -rig.SLIDER_LIMIT, rig.SLIDER_LIMIT
    kb.data.foreach_set("co", basis + rig.OVERFLOW_SCALE * (co - basis))


def slider_series(mesh_obj: bpy.types.Object, names: list[str], values: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Key values that give coefficients ``values`` (T, K) of the keys ``names`` (K,) at every frame:
    (key name, (T,) values) for each key, then for each overflow key that is needed (made here) or
    already exists (zeros if not needed)."""
    keys, overflow = rig.split_for_sliders(values)
    blocks = mesh_obj.data.shape_keys.key_blocks
    series = [(name, keys[:, k]) for k, name in enumerate(names)]
    for k, name in enumerate(names):
        if overflow_name(name) in blocks or overflow[:, k].any():
            _ensure_overflow_key(mesh_obj, name)
            series.append((overflow_name(name), overflow[:, k]))
    return series


def zero_keys(mesh_obj: bpy.types.Object, which: Callable[[str], bool]) -> None:
    """Set every shape key whose name passes ``which`` to 0 (one bulk read and write)."""
    blocks = mesh_obj.data.shape_keys.key_blocks
    values = np.empty(len(blocks), dtype=np.float32)
    blocks.foreach_get("value", values)
    values[[i for i, kb in enumerate(blocks) if which(kb.name)]] = 0.0
    blocks.foreach_set("value", values)


def rest_bones(armature: bpy.types.Object) -> None:
    """Every pose bone back at rest: no rotation, offset or scale."""
    for pose_bone in armature.pose.bones:
        pose_bone.rotation_quaternion, pose_bone.location, pose_bone.scale = (1, 0, 0, 0), (0, 0, 0), (1, 1, 1)


def set_shape(mesh_obj: bpy.types.Object, shape: np.ndarray) -> None:
    """Set the identity keys to the coefficients ``shape`` (S,), overflow keys included."""
    blocks = mesh_obj.data.shape_keys.key_blocks
    for name, values in slider_series(mesh_obj, shape_key_names(len(shape), 0), np.asarray(shape)[None]):
        blocks[name].value = values[0]


def coefficients_of(blocks, names: list[str], value_of) -> np.ndarray:
    """Coefficients of the keys ``names`` (K,): ``value_of(key name)`` (a value or (T,) values) plus
    OVERFLOW_SCALE times that of its overflow key where there is one. Returns (K,) or (T, K)."""
    def coefficient(name: str):
        value = value_of(name)
        return value + rig.OVERFLOW_SCALE * value_of(overflow_name(name)) if overflow_name(name) in blocks else value

    return np.stack([coefficient(name) for name in names], axis=-1) if names else np.zeros(0)


def coefficient_values(armature: bpy.types.Object) -> tuple[np.ndarray, np.ndarray]:
    """Current shape (S,) and expression (E,) coefficients of the head (overflow keys included)."""
    blocks = armature.flame.mesh.data.shape_keys.key_blocks
    props = armature.flame
    values = coefficients_of(blocks, shape_key_names(props.n_shape, props.n_expr), lambda n: blocks[n].value)
    return values[: props.n_shape], values[props.n_shape:]


def joints_for(armature: bpy.types.Object, shape: np.ndarray, expr: np.ndarray) -> np.ndarray:
    """Rest joints (J, 3) for the given coefficients, from the basis stored on the armature."""
    basis = joint_basis(armature)
    return basis[0] + np.tensordot(np.concatenate([shape, expr]), basis[1:], axes=1)


def update_joints(context: bpy.types.Context, armature: bpy.types.Object) -> np.ndarray:
    """Place the rest joints where FLAME regresses them for the current shape and expression."""
    joints = joints_for(armature, *coefficient_values(armature))
    set_rest_joints(context, armature, joints)
    return joints
