"""Blender side of retargeting between a FLAME head and the user's own character mesh.

The maths lives in :mod:`..core.retarget`; this module reads and writes Blender data in bulk and
answers closest-point queries with ``mathutils.bvhtree``. Every function computes first and writes
last, so a :class:`~..core.errors.RetargetError` leaves the scene as it was.

What a fit stores on the character (saved with the file, so later steps need no refit):

- point attributes of its mesh: ``flame_face`` (INT, FLAME triangle), ``flame_bary``
  (FLOAT_VECTOR, barycentric weights) and ``flame_offset`` (FLOAT, distance along the triangle's
  normal, FLAME metres): the binding of every character vertex to FLAME's surface;
- custom properties of the object: ``flame_head`` (the head's armature name), ``flame_fit_matrix``
  (4x4, FLAME space -> the character's local space) and the fit's quality: ``flame_fit_rms`` /
  ``flame_fit_p99`` in the character's units and ``flame_fit_rms_m`` / ``flame_fit_p99_m`` in FLAME
  metres, over the vertices on the head (within ``MATCH_DISTANCE`` of FLAME; their fraction is
  ``flame_fit_counted``), so extra geometry such as shoulders does not count.

Retargeting compares FLAME and the character's keys at the character's own face-region vertices,
through the binding (FLAME's displacement sampled there), so neither side is resampled twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np
from mathutils import Matrix
from mathutils.bvhtree import BVHTree

from ..core import rig, rotations
from ..core.errors import RetargetError
from ..core.model import JOINT_NAMES, PARENTS, FlameModel
from ..core.retarget import binding as bindings
from ..core.retarget import fit as fitting
from ..core.retarget import livelink, solve
from ..core.retarget.similarity import umeyama
from . import compat, head
from .keyframes import sample_channels, set_scene_timing, write_channels
from .progress import Report
from .transaction import group_weights

ATTR_FACE, ATTR_BARY, ATTR_OFFSET = "flame_face", "flame_bary", "flame_offset"
PROP_HEAD, PROP_MATRIX = "flame_head", "flame_fit_matrix"
PROP_RMS, PROP_P99, PROP_RMS_M, PROP_P99_M = "flame_fit_rms", "flame_fit_p99", "flame_fit_rms_m", "flame_fit_p99_m"
PROP_COUNTED = "flame_fit_counted"
LANDMARK_PREFIX = "flame_lmk."
MATCH_DISTANCE = 0.015  # character vertices farther than this (FLAME m) from FLAME take no part in solving
MIN_RANGE = 0.01  # a key's slider range below this counts as zero (Blender keeps max >= min + 0.001)
WEIGHT_STEPS = 4096  # skin weights are rounded to 1/4096 so one vertex-group call covers many vertices


def _silent(fraction: float, message: str = "") -> None:
    pass


# ------------------------------------------------------------------------------------ reading data
def build_mesh(context: bpy.types.Context, name: str, vertices: np.ndarray, loop_vertices: np.ndarray,
               loop_totals: np.ndarray) -> bpy.types.Object:
    """A mesh object of n-gons, built in bulk: vertices (N, 3), loop_vertices (L,), loop_totals (P,)."""
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(vertices))
    mesh.vertices.foreach_set("co", vertices.astype(np.float32).ravel())
    mesh.loops.add(len(loop_vertices))
    mesh.loops.foreach_set("vertex_index", loop_vertices.astype(np.int32))
    mesh.polygons.add(len(loop_totals))
    mesh.polygons.foreach_set("loop_start", (np.cumsum(loop_totals) - loop_totals).astype(np.int32))  # totals follow
    mesh.update(calc_edges=True)
    mesh.polygons.foreach_set("use_smooth", np.ones(len(loop_totals), dtype=bool))
    obj = bpy.data.objects.new(name, mesh)
    context.collection.objects.link(obj)
    return obj


def character(name: str) -> bpy.types.Object:
    """The character mesh object called ``name``; RetargetError if missing or not a usable mesh."""
    obj = bpy.data.objects.get(name) if name else None
    if obj is None:
        raise RetargetError(f"no character mesh given (mesh='{name}')" if not name else f"no object named '{name}'")
    if obj.type != "MESH":
        raise RetargetError(f"'{name}' is a {obj.type.lower()}, not a mesh: pick the character's mesh object")
    if head.find_head(obj) is not None and obj.parent is not None and obj.parent.flame.mesh == obj:
        raise RetargetError(f"'{name}' is a FLAME head's own mesh, not a character")
    if len(obj.data.polygons) == 0:
        raise RetargetError(f"'{name}' has no faces")
    return obj


def _co(collection, n: int) -> np.ndarray:
    co = np.empty(3 * n, dtype=np.float32)
    collection.foreach_get("co", co)
    return co.reshape(n, 3).astype(np.float64)


def rest_vertices(obj: bpy.types.Object) -> np.ndarray:
    """The mesh's rest vertices (N, 3), local space (its basis shape key if it has keys)."""
    keys = obj.data.shape_keys
    n = len(obj.data.vertices)
    return _co(keys.reference_key.data if keys else obj.data.vertices, n)


def _matrix(obj: bpy.types.Object) -> np.ndarray:
    return np.array(obj.matrix_world, dtype=np.float64)


def _apply(M: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ M[:3, :3].T + M[:3, 3]


def triangles(mesh: bpy.types.Mesh) -> np.ndarray:
    """The mesh's loop triangles as vertex indices (Ft, 3)."""
    mesh.calc_loop_triangles()
    tris = np.empty(3 * len(mesh.loop_triangles), dtype=np.int32)
    mesh.loop_triangles.foreach_get("vertices", tris)
    return tris.reshape(-1, 3).astype(np.int64)


def _nearest(tree: BVHTree, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closest surface points (N, 3), unit normals (N, 3) and triangle indices (N,). mathutils has no
    batched query, so this is one call per point (about 5 us each)."""
    loc, nrm, idx = np.empty_like(points), np.empty_like(points), np.empty(len(points), dtype=np.int64)
    for i, p in enumerate(points):
        hit = tree.find_nearest(p)
        loc[i], nrm[i], idx[i] = hit[0], hit[1], hit[2]
    return loc, nrm, idx


def _tree(vertices: np.ndarray, tris: np.ndarray) -> BVHTree:
    return BVHTree.FromPolygons(vertices.tolist(), tris.tolist(), all_triangles=True)


def _key_deltas(blocks, names: list[str], basis: np.ndarray) -> np.ndarray:
    """Offsets (K, V, 3) of the named shape keys from ``basis`` (V, 3)."""
    out = np.empty((len(names), *basis.shape))
    for k, name in enumerate(names):
        out[k] = _co(blocks[name].data, len(basis)) - basis
    return out


def _skin_weights(mesh_obj: bpy.types.Object) -> np.ndarray:
    """FLAME's skin weights (V, J) read back from the head's vertex groups."""
    weights = np.zeros((len(mesh_obj.data.vertices), len(JOINT_NAMES)))
    found = group_weights(mesh_obj, [name for name in JOINT_NAMES if name in mesh_obj.vertex_groups])
    for name, (indices, values) in found.items():
        weights[indices, JOINT_NAMES.index(name)] = values
    return weights


def head_model(armature: bpy.types.Object, n_shape: int | None = None, full: bool = True) -> FlameModel:
    """The head's FLAME model read back from its shape keys, vertex groups and stored regressor.

    n_shape: identity components to read (default all); ``full=False`` skips expression,
    correctives and weights (all a fit needs)."""
    props, mesh_obj = armature.flame, armature.flame.mesh
    blocks = mesh_obj.data.shape_keys.key_blocks
    basis = _co(blocks[0].data, len(mesh_obj.data.vertices))
    V = len(basis)
    faces = np.empty(3 * len(mesh_obj.data.polygons), dtype=np.int32)
    mesh_obj.data.loops.foreach_get("vertex_index", faces)  # FLAME's faces are triangles, in order
    S = props.n_shape if n_shape is None else min(n_shape, props.n_shape)

    def dirs(names: list[str]) -> np.ndarray:
        return np.moveaxis(_key_deltas(blocks, names, basis), 0, 2) if names else np.zeros((V, 3, 0))

    shape_names = head.shape_key_names(S, 0)
    expr_names = head.shape_key_names(0, props.n_expr) if full else []
    pose_names = [f"{head.POSE_PREFIX}{k:02d}" for k in range(36)] if full else []
    return FlameModel(
        v_template=basis, faces=faces.reshape(-1, 3), shapedirs=dirs(shape_names), exprdirs=dirs(expr_names),
        posedirs=dirs(pose_names) if full else np.zeros((V, 3, 36)),
        J_regressor=head.joint_regressor(armature),
        weights=_skin_weights(mesh_obj) if full else np.zeros((V, len(JOINT_NAMES))),
        parents=np.array(PARENTS), name=props.model_name)


def _landmarks(head_mesh: bpy.types.Object, obj: bpy.types.Object, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Landmark hints present on both meshes: FLAME weights (L, V) and character points (L, 3).

    A landmark is a vertex group ``flame_lmk.<name>`` on the character and the same group on the
    head's mesh; its position is the weighted mean of the group's vertices."""
    def groups(mesh_obj: bpy.types.Object) -> dict[str, np.ndarray]:
        out = {}
        for name, (indices, values) in group_weights(
                mesh_obj, [g.name for g in mesh_obj.vertex_groups if g.name.startswith(LANDMARK_PREFIX)]).items():
            out[name] = np.zeros(len(mesh_obj.data.vertices))
            out[name][indices] = values
        return {n: w / w.sum() for n, w in out.items() if w.sum() > 0}

    ours, theirs = groups(head_mesh), groups(obj) if any(
        g.name.startswith(LANDMARK_PREFIX) for g in obj.vertex_groups) else {}
    names = sorted(set(ours) & set(theirs))
    if not names:
        return np.zeros((0, len(head_mesh.data.vertices))), np.zeros((0, 3))
    return np.stack([ours[n] for n in names]), np.stack([theirs[n] @ points for n in names])


# ---------------------------------------------------------------------------------------------- fit
@dataclass
class FitSummary:
    rms: float  # character units
    p99: float
    rms_m: float  # FLAME metres
    p99_m: float
    counted: float  # fraction of the character's vertices on the head (within MATCH_DISTANCE of FLAME)
    n_landmarks: int


def fit(context: bpy.types.Context, armature: bpy.types.Object, obj: bpy.types.Object, n_shape: int = 100,
        max_rms: float = 0.01, report: Report = _silent) -> FitSummary:
    """Fit the head to the character ``obj`` and bind the character to it (see the module docstring)."""
    report(0.02, "reading")
    model = head_model(armature, n_shape, full=False)
    M_char = _matrix(obj)
    local = rest_vertices(obj)
    points = _apply(M_char, local)
    tris = triangles(obj.data)
    if not len(tris):
        raise RetargetError(f"'{obj.name}' has no faces")
    tree = _tree(points, tris)

    def closest(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        loc, nrm, _ = _nearest(tree, x)
        return loc, nrm

    lmk_weights, lmk_points = _landmarks(armature.flame.mesh, obj, points)
    if len(lmk_points) >= 3:
        init = umeyama(lmk_weights @ model.v_template, lmk_points)
    else:
        init = fitting.initial_alignment(model.v_template, rig.FLAME_TO_BLENDER[:3, :3], points)
    landmarks = fitting.Landmarks(lmk_weights, lmk_points) if len(lmk_points) else None
    surface = fitting.HeadSurface(model.v_template, model.shapedirs, model.faces)
    result = fitting.fit_head(surface, closest, init, landmarks=landmarks, n_shape=n_shape, max_rms=max_rms,
                              on_progress=lambda f: report(0.05 + 0.75 * f, "fitting"))
    report(0.85, "binding")
    M = result.matrix
    s = result.scale
    fitted = surface.vertices(result.shape)  # FLAME space
    inside = _apply(np.linalg.inv(M), points)  # character vertices in FLAME space
    _, _, face = _nearest(_tree(fitted, model.faces), inside)
    bound = bindings.bind(inside, fitted, model.faces, face)
    rms_m, p99_m, counted = bindings.fit_report(bound, MATCH_DISTANCE)
    char_scale = float(np.cbrt(abs(np.linalg.det(M_char[:3, :3]))))

    # Commit: nothing above changed the scene.
    shape = np.zeros(armature.flame.n_shape)
    shape[:len(result.shape)] = result.shape[:armature.flame.n_shape]
    head.set_shape(armature.flame.mesh, shape)
    armature.matrix_world = Matrix(M.tolist())
    head.update_joints(context, armature)
    _write_attributes(obj.data, face, bound.bary, bound.offset)
    obj[PROP_HEAD] = armature.name
    obj[PROP_MATRIX] = (np.linalg.inv(M_char) @ M).ravel().tolist()
    summary = FitSummary(rms_m * s / char_scale, p99_m * s / char_scale, rms_m, p99_m, counted, len(lmk_points))
    obj[PROP_RMS], obj[PROP_P99], obj[PROP_RMS_M], obj[PROP_P99_M], obj[PROP_COUNTED] = (
        summary.rms, summary.p99, summary.rms_m, summary.p99_m, summary.counted)
    context.view_layer.update()  # the head's mesh follows its armature's new transform now, for scripts
    report(1.0, "done")
    return summary


def _write_attributes(mesh: bpy.types.Mesh, face: np.ndarray, bary: np.ndarray, offset: np.ndarray) -> None:
    for name, kind, field, values in ((ATTR_FACE, "INT", "value", face.astype(np.int32)),
                                      (ATTR_BARY, "FLOAT_VECTOR", "vector", bary.astype(np.float32)),
                                      (ATTR_OFFSET, "FLOAT", "value", offset.astype(np.float32))):
        if name in mesh.attributes:
            mesh.attributes.remove(mesh.attributes[name])
        mesh.attributes.new(name, kind, "POINT").data.foreach_set(field, values.ravel())


# ------------------------------------------------------------------------------------ a fit's data
@dataclass
class Fitted:
    """A character's stored fit: binding (character -> FLAME triangles), flame_to_local (4, 4) FLAME
    space -> the character's local space."""

    binding: bindings.Binding
    flame_to_local: np.ndarray


def fitted(armature: bpy.types.Object, obj: bpy.types.Object, faces: np.ndarray) -> Fitted:
    """Read the fit stored on ``obj``; RetargetError if it has none or was fitted to another head."""
    mesh = obj.data
    if ATTR_FACE not in mesh.attributes or PROP_MATRIX not in obj:
        raise RetargetError(f"'{obj.name}' has no fit yet: run Fit to Mesh (flame.fit_to_mesh) first")
    if obj.get(PROP_HEAD) != armature.name:
        raise RetargetError(f"'{obj.name}' was fitted to '{obj.get(PROP_HEAD)}', not to '{armature.name}'")
    n = len(mesh.vertices)
    face = np.empty(n, dtype=np.int32)
    bary = np.empty(3 * n, dtype=np.float32)
    offset = np.empty(n, dtype=np.float32)
    mesh.attributes[ATTR_FACE].data.foreach_get("value", face)
    mesh.attributes[ATTR_BARY].data.foreach_get("vector", bary)
    mesh.attributes[ATTR_OFFSET].data.foreach_get("value", offset)
    if face.max(initial=0) >= len(faces) or face.min(initial=0) < 0:
        raise RetargetError(f"'{obj.name}': its binding does not match the head's mesh; fit again")
    offset = offset.astype(np.float64)
    bound = bindings.Binding(faces[face].astype(np.int64), bary.reshape(n, 3).astype(np.float64),
                             offset, np.abs(offset), np.abs(offset) < MATCH_DISTANCE)
    return Fitted(bound, np.asarray(obj[PROP_MATRIX], dtype=np.float64).reshape(4, 4))


# ------------------------------------------------------------------------------------ transfer rig
def transferred_key_names(armature: bpy.types.Object) -> list[str]:
    """The head's keys that a rig transfer copies: expression, correctives, eyelids when present."""
    blocks = armature.flame.mesh.data.shape_keys.key_blocks
    names = head.shape_key_names(0, armature.flame.n_expr) + [f"{head.POSE_PREFIX}{k:02d}" for k in range(36)]
    return names + [n for n in ("eyelid.L", "eyelid.R") if n in blocks]


def transfer_rig(context: bpy.types.Context, armature: bpy.types.Object, obj: bpy.types.Object,
                 report: Report = _silent) -> int:
    """Skin weights, an Armature modifier and the head's expression / corrective keys (each driven
    by the head's same-named key) on the character. Returns the number of keys transferred."""
    report(0.05, "reading")
    model = head_model(armature)
    fit_ = fitted(armature, obj, model.faces)
    head_blocks = armature.flame.mesh.data.shape_keys.key_blocks
    names = transferred_key_names(armature)
    deltas = _key_deltas(head_blocks, names, model.v_template)  # (K, V, 3) FLAME space
    local = fit_.binding.interpolate(deltas) @ fit_.flame_to_local[:3, :3].T  # (K, N, 3) character space
    weights = fit_.binding.interpolate(model.weights)
    weights = np.round(weights / np.maximum(weights.sum(1, keepdims=True), 1e-12) * WEIGHT_STEPS) / WEIGHT_STEPS
    basis = rest_vertices(obj)

    report(0.4, "vertex groups")
    for name in JOINT_NAMES:
        if name in obj.vertex_groups:
            obj.vertex_groups.remove(obj.vertex_groups[name])
    head.add_vertex_groups(obj, weights)
    modifier = next((m for m in obj.modifiers if m.type == "ARMATURE" and m.object == armature), None)
    if modifier is None:
        modifier = obj.modifiers.new("FLAME", "ARMATURE")
        modifier.object = armature
        obj.modifiers.move(len(obj.modifiers) - 1, 0)  # deform before subdivision and the like
    if obj.parent is None:
        world = obj.matrix_world.copy()
        obj.parent = armature
        obj.matrix_parent_inverse = armature.matrix_world.inverted()
        obj.matrix_world = world

    report(0.5, "shape keys")
    if obj.data.shape_keys is None:
        obj.shape_key_add(name="Basis", from_mix=False)
    blocks = obj.data.shape_keys.key_blocks
    source = armature.flame.mesh.data.shape_keys
    for k, name in enumerate(names):
        kb = blocks.get(name) or obj.shape_key_add(name=name, from_mix=False)
        kb.slider_min, kb.slider_max = head_blocks[name].slider_min, head_blocks[name].slider_max
        kb.data.foreach_set("co", (basis + local[k]).astype(np.float32).ravel())
        kb.driver_remove("value")
        driver = kb.driver_add("value").driver
        driver.type = "SCRIPTED"
        var = driver.variables.new()
        var.name, var.type = "v", "SINGLE_PROP"
        var.targets[0].id_type = "KEY"
        var.targets[0].id = source
        var.targets[0].data_path = f'key_blocks["{name}"].value'
        driver.expression = "v"
        if k % 20 == 0:
            report(0.5 + 0.5 * k / len(names), "shape keys")
    report(1.0, "done")
    return len(names)


# ---------------------------------------------------------------------------- character's own keys
def own_keys(obj: bpy.types.Object, armature: bpy.types.Object | None = None) -> list[bpy.types.ShapeKey]:
    """The character's own shape keys: all but the basis and keys named like the head's."""
    keys = obj.data.shape_keys
    if keys is None or len(keys.key_blocks) < 2:
        raise RetargetError(f"'{obj.name}' has no shape keys of its own to retarget to")
    flame = set(transferred_key_names(armature)) if armature is not None else set()
    flame |= {n for n in keys.key_blocks.keys()[1:] if n.startswith(head.SHAPE_PREFIX) and n[5:].isdigit()}
    own = [kb for kb in keys.key_blocks[1:] if kb.name not in flame]
    if not own:
        raise RetargetError(f"'{obj.name}' has no shape keys of its own (only FLAME's) to retarget to")
    flat = [kb for kb in own if not kb.slider_max - kb.slider_min >= MIN_RANGE]
    if flat:
        raise RetargetError(f"'{obj.name}': shape key '{flat[0].name}' has zero range (slider "
                            f"{flat[0].slider_min:g}..{flat[0].slider_max:g}); widen its range")
    return own


@dataclass
class FaceSample:
    """The character's vertices on FLAME's face region. region: (m,) FLAME vertex ids; points: (n,)
    character vertex ids; sample: their binding with corners indexing ``region``; deltas: (K, n, 3)
    the character's own keys there, in FLAME axes and metres."""

    region: np.ndarray
    points: np.ndarray
    sample: bindings.Binding
    deltas: np.ndarray


def _face_sample(model: FlameModel, fit_: Fitted, obj: bpy.types.Object, keys: list[bpy.types.ShapeKey]) -> FaceSample:
    region = solve.face_region(model)
    position = np.full(model.n_verts, -1)
    position[region] = np.arange(len(region))
    corners = position[fit_.binding.corners]
    points = np.flatnonzero((corners >= 0).all(axis=1) & fit_.binding.over_surface)
    if not len(points):
        raise RetargetError(f"'{obj.name}': none of its vertices lies on FLAME's face region; check the fit")
    b = fit_.binding
    sample = bindings.Binding(corners[points], b.bary[points], b.offset[points], b.distance[points],
                              b.over_surface[points])
    n = len(obj.data.vertices)
    deltas = np.stack([(_co(kb.data, n) - _co(kb.relative_key.data, n))[points] for kb in keys])
    deltas = deltas @ np.linalg.inv(fit_.flame_to_local[:3, :3]).T
    if not np.any(np.abs(deltas) > 0):
        raise RetargetError(f"'{obj.name}': its shape keys do not move the face region that FLAME fitted")
    return FaceSample(region, points, sample, deltas)


def _sample(owner: bpy.types.ID | None, frames: np.ndarray) -> dict[tuple[str, int], np.ndarray]:
    action = compat.action_of(owner)
    return sample_channels(action, frames) if action else {}


def _head_performance(armature: bpy.types.Object, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The head's expression (T, E), bone quaternions (T, J, 4) and locations (T, J, 3) at frames,
    from its actions (unanimated channels keep their current values)."""
    props = armature.flame
    blocks = props.mesh.data.shape_keys.key_blocks
    keyed = _sample(props.mesh.data.shape_keys, frames)
    names = head.shape_key_names(0, props.n_expr)
    expr = np.stack([keyed.get((f'key_blocks["{n}"].value', 0), np.full(len(frames), blocks[n].value))
                     for n in names], 1) if names else np.zeros((len(frames), 0))
    bones = _sample(armature, frames)
    quats = np.empty((len(frames), len(JOINT_NAMES), 4))
    locs = np.empty((len(frames), len(JOINT_NAMES), 3))
    for j, name in enumerate(JOINT_NAMES):
        pb = armature.pose.bones[name]
        for i in range(4):
            quats[:, j, i] = bones.get((f'pose.bones["{name}"].rotation_quaternion', i), pb.rotation_quaternion[i])
        for i in range(3):
            locs[:, j, i] = bones.get((f'pose.bones["{name}"].location', i), pb.location[i])
    return expr, quats, locs


def bone_deformations(heads: np.ndarray, quats: np.ndarray, locs: np.ndarray) -> np.ndarray:
    """Rest -> pose matrices (T, J, 4, 4) in armature space of the FLAME rig (identity rest
    orientations): bone j's pose is T(loc_j) R_j at its head, after its parent's."""
    T, J = quats.shape[:2]
    R = rotations.quaternion_to_matrix(quats)
    out = np.zeros((T, J, 4, 4))
    for j in range(J):
        local = np.zeros((T, 4, 4))
        local[:, :3, :3] = R[:, j]
        local[:, :3, 3] = heads[j] + locs[:, j] - np.einsum("trc,c->tr", R[:, j], heads[j])
        local[:, 3, 3] = 1.0
        out[:, j] = local if PARENTS[j] < 0 else out[:, PARENTS[j]] @ local
    return out


def _prepare(armature: bpy.types.Object, obj: bpy.types.Object, frame_start: int, frame_end: int,
             report: Report) -> tuple[FlameModel, list[bpy.types.ShapeKey], FaceSample, np.ndarray]:
    """What both key directions read: the head's model, the character's own keys on the face region
    and the frames (T,)."""
    if frame_end <= frame_start:
        raise RetargetError(f"frame range {frame_start}..{frame_end} is empty")
    report(0.05, "reading")
    model = head_model(armature)
    fit_ = fitted(armature, obj, model.faces)
    keys = own_keys(obj, armature)
    on_face = _face_sample(model, fit_, obj, keys)
    return model, keys, on_face, np.arange(frame_start, frame_end + 1, dtype=np.float64)


def retarget_to_keys(context: bpy.types.Context, armature: bpy.types.Object, obj: bpy.types.Object,
                     frame_start: int, frame_end: int, head_bone: str = "", eye_bones: tuple[str, str] = ("", ""),
                     report: Report = _silent) -> np.ndarray:
    """Key the character's own shape keys so they reproduce the head's expression and jaw over
    ``frame_start..frame_end``; rigid head motion onto the object (or ``head_bone``), eye rotations
    onto ``eye_bones`` (left, right) when named. Returns the weights (T, K)."""
    model, keys, on_face, frames = _prepare(armature, obj, frame_start, frame_end, report)
    expr, quats, locs = _head_performance(armature, frames)
    face = solve.face_model(model, head.coefficient_values(armature)[0], on_face.region)
    report(0.3, "solving")
    target = solve.displacement(face, expr, rotations.quaternion_to_matrix(quats[:, 2]))
    lower = np.array([kb.slider_min for kb in keys])
    upper = np.array([kb.slider_max for kb in keys])
    weights = solve.keys_from_head(on_face.deltas, on_face.sample, target, lower, upper)
    rig_bones = _character_bones(obj, head_bone, eye_bones)
    report(0.7, "keyframes")
    write_channels(obj.data.shape_keys, f"{obj.name}_retarget", frames,
                   [(f'key_blocks["{kb.name}"].value', 0, weights[:, k]) for k, kb in enumerate(keys)])
    heads = np.array([armature.data.bones[n].head_local for n in JOINT_NAMES])
    _key_rigid_motion(armature, obj, frames, bone_deformations(heads, quats, locs), rig_bones)
    report(1.0, "done")
    return weights


def character_rig(obj: bpy.types.Object) -> bpy.types.Object | None:
    """The character's own armature (its parent, else its Armature modifier's), never a FLAME head."""
    if obj.parent is not None and obj.parent.type == "ARMATURE" and not obj.parent.flame.is_head:
        return obj.parent
    return next((m.object for m in obj.modifiers if m.type == "ARMATURE" and m.object is not None
                 and not m.object.flame.is_head), None)


def _character_bones(obj: bpy.types.Object, head_bone: str, eye_bones: tuple[str, str]):
    """(character armature, head bone name, eye bone names) checked to exist, or None if none named."""
    named = [n for n in (head_bone, *eye_bones) if n]
    if not named:
        return None
    rig_obj = character_rig(obj)
    if rig_obj is None:
        raise RetargetError(f"bones named ({', '.join(named)}) but '{obj.name}' has no armature of its own")
    missing = [n for n in named if n not in rig_obj.pose.bones]
    if missing:
        raise RetargetError(f"armature '{rig_obj.name}' has no bone '{missing[0]}'")
    return rig_obj, head_bone, eye_bones


def _key_rigid_motion(armature: bpy.types.Object, obj: bpy.types.Object, frames: np.ndarray,
                      deform: np.ndarray, rig_bones) -> None:
    """The head's rigid motion (neck bone's deformation) onto the character object or a head bone,
    the eyes' rotations relative to the neck onto eye bones."""
    M_arm = _matrix(armature)
    world = M_arm @ deform[:, 1] @ np.linalg.inv(M_arm)  # (T, 4, 4) world-space motion
    if rig_bones is None:
        base = _matrix(obj)
        parent = _matrix(obj.parent) @ np.array(obj.matrix_parent_inverse) if obj.parent else np.eye(4)
        basis = np.linalg.inv(parent) @ world @ base  # (T, 4, 4) object's matrix_basis
        scale = np.linalg.norm(basis[:, :3, :3], axis=1)  # column norms (T, 3)
        quat = rotations.continuous_quaternions(rotations.matrix_to_quaternion(basis[:, :3, :3] / scale[:, None]))
        obj.rotation_mode = "QUATERNION"
        write_channels(obj, f"{obj.name}_head_motion", frames,
                       [("location", i, basis[:, i, 3]) for i in range(3)]
                       + [("rotation_quaternion", i, quat[:, i]) for i in range(4)])
        return
    rig_obj, head_bone, eye_bones = rig_bones
    M_rig = _matrix(rig_obj)
    channels = []
    to_rig = np.linalg.inv(M_rig) @ M_arm
    axes = to_rig[:3, :3] / np.cbrt(np.linalg.det(to_rig[:3, :3]))
    targets = ((head_bone, np.linalg.inv(M_rig) @ world @ M_rig),
               (eye_bones[0], _rotation_about(axes, deform, 3)), (eye_bones[1], _rotation_about(axes, deform, 4)))
    for name, delta in targets:
        if not name:
            continue
        B = np.array(rig_obj.data.bones[name].matrix_local)
        basis = np.linalg.inv(B) @ delta @ B
        quat = rotations.continuous_quaternions(rotations.matrix_to_quaternion(basis[:, :3, :3]))
        rig_obj.pose.bones[name].rotation_mode = "QUATERNION"
        path = f'pose.bones["{name}"]'
        channels += [(f"{path}.rotation_quaternion", i, quat[:, i]) for i in range(4)]
        channels += [(f"{path}.location", i, basis[:, i, 3]) for i in range(3)]
    write_channels(rig_obj, f"{rig_obj.name}_head_motion", np.asarray(frames), channels)


def _rotation_about(axes: np.ndarray, deform: np.ndarray, joint: int) -> np.ndarray:
    """An eye's rotation relative to the neck, in the character rig's axes: (T, 4, 4), no translation."""
    rel = np.linalg.inv(deform[:, 1]) @ deform[:, joint]
    out = np.tile(np.eye(4), (len(deform), 1, 1))
    out[:, :3, :3] = axes @ rel[:, :3, :3] @ axes.T
    return out


# ------------------------------------------------------------------------------- keys -> FLAME
def retarget_from_keys(context: bpy.types.Context, armature: bpy.types.Object, obj: bpy.types.Object,
                       frame_start: int, frame_end: int, report: Report = _silent) -> tuple[np.ndarray, np.ndarray]:
    """Key the head's expression and jaw so it reproduces the character's own-key animation over
    ``frame_start..frame_end``. Returns expression (T, E) and jaw axis-angle (T, 3)."""
    model, keys, on_face, frames = _prepare(armature, obj, frame_start, frame_end, report)
    keyed = _sample(obj.data.shape_keys, frames)
    values = np.stack([keyed.get((f'key_blocks["{kb.name}"].value', 0), np.full(len(frames), kb.value))
                       for kb in keys], 1)  # (T, K)
    face = solve.face_model(model, head.coefficient_values(armature)[0], on_face.region)
    report(0.3, "solving")
    target = np.einsum("tk,knc->tnc", values, on_face.deltas)
    expr, jaw = solve.head_from_keys(face, on_face.sample, target)
    report(0.8, "keyframes")
    _key_head_expression(context, armature, frames, expr, jaw)
    report(1.0, "done")
    return expr, jaw


def _key_head_expression(context, armature: bpy.types.Object, frames: np.ndarray, expr: np.ndarray,
                         jaw: np.ndarray) -> None:
    """Expression keys and the jaw (rotation, and the location that keeps its joint exact)."""
    props = armature.flame
    shape = head.coefficient_values(armature)[0]
    J0 = head.joints_for(armature, shape, np.zeros(props.n_expr))
    head.set_rest_joints(context, armature, J0)
    basis = head.joint_basis(armature)[1 + props.n_shape:]
    R = np.tile(np.eye(3), (len(frames), len(JOINT_NAMES), 1, 1))
    R[:, 2] = rotations.axis_angle_to_matrix(jaw)
    locations = rig.bone_locations(R, np.einsum("te,ejc->tjc", expr, basis))
    quat = rotations.continuous_quaternions(rotations.matrix_to_quaternion(R[:, 2]))
    write_channels(props.mesh.data.shape_keys, f"{armature.name}_from_keys", frames,
                   [(f'key_blocks["{n}"].value', 0, expr[:, e])
                    for e, n in enumerate(head.shape_key_names(0, props.n_expr))])
    path = 'pose.bones["jaw"]'
    write_channels(armature, f"{armature.name}_jaw_from_keys", frames,
                   [(f"{path}.rotation_quaternion", i, quat[:, i]) for i in range(4)]
                   + [(f"{path}.location", i, locations[:, 2, i]) for i in range(3)])


# ------------------------------------------------------------------------------------ Live Link
def _arkit_keys(obj: bpy.types.Object) -> dict[int, str]:
    keys = obj.data.shape_keys
    found = livelink.match_names(keys.key_blocks.keys()[1:]) if keys else {}
    if not found:
        raise RetargetError(f"'{obj.name}' has none of ARKit's 52 shape keys (eyeBlinkLeft, jawOpen, ...)")
    return found


def import_livelink(context: bpy.types.Context, obj: bpy.types.Object, filepath: str, frame_start: int = 1,
                    head_bone: str = "", eye_bones: tuple[str, str] = ("", "")) -> livelink.Take:
    """Key the character's ARKit-named keys from a Live Link Face take; the scene's fps follows the
    take. Head and eye rotations (yaw about the bone's Y, pitch about X, roll about Z, radians) go
    onto the named bones of the character's armature."""
    take = livelink.read_take(filepath)
    found = _arkit_keys(obj)
    rig_bones = _character_bones(obj, head_bone, eye_bones)
    frames = frame_start + take.times * take.fps
    blocks = obj.data.shape_keys.key_blocks
    write_channels(obj.data.shape_keys, f"{obj.name}_livelink", frames,
                   [(f'key_blocks["{name}"].value', 0, np.clip(take.weights[:, i], blocks[name].slider_min,
                                                                blocks[name].slider_max))
                    for i, name in sorted(found.items())])
    if rig_bones is not None:
        rig_obj, *_ = rig_bones
        channels = []
        for name, cols in ((head_bone, slice(0, 3)), (eye_bones[0], slice(3, 6)), (eye_bones[1], slice(6, 9))):
            if name:
                yaw, pitch, roll = take.rotations[:, cols].T
                q = rotations.continuous_quaternions(rotations.matrix_to_quaternion(
                    rotations.axis_angle_to_matrix(np.stack([np.zeros_like(yaw), yaw, np.zeros_like(yaw)], 1))
                    @ rotations.axis_angle_to_matrix(np.stack([pitch, np.zeros_like(pitch), np.zeros_like(pitch)], 1))
                    @ rotations.axis_angle_to_matrix(np.stack([np.zeros_like(roll), np.zeros_like(roll), roll], 1))))
                rig_obj.pose.bones[name].rotation_mode = "QUATERNION"
                channels += [(f'pose.bones["{name}"].rotation_quaternion', i, q[:, i]) for i in range(4)]
        write_channels(rig_obj, f"{rig_obj.name}_livelink", frames, channels)
    set_scene_timing(context.scene, take.fps, int(frames[0]), int(np.ceil(frames[-1])))
    return take


def export_livelink(context: bpy.types.Context, obj: bpy.types.Object, filepath: str, frame_start: int,
                    frame_end: int) -> int:
    """Write the character's ARKit key animation over the frames as a Live Link Face CSV (missing
    keys and the rotation columns are 0). Returns the number of rows."""
    if frame_end <= frame_start:
        raise RetargetError(f"frame range {frame_start}..{frame_end} needs at least 2 frames")
    found = _arkit_keys(obj)
    frames = np.arange(frame_start, frame_end + 1, dtype=np.float64)
    keyed = _sample(obj.data.shape_keys, frames)
    blocks = obj.data.shape_keys.key_blocks
    weights = np.zeros((len(frames), len(livelink.ARKIT_NAMES)))
    for i, name in found.items():
        weights[:, i] = keyed.get((f'key_blocks["{name}"].value', 0), blocks[name].value)
    scene = context.scene
    livelink.write_take(bpy.path.abspath(filepath), weights, scene.render.fps / scene.render.fps_base)
    return len(frames)
