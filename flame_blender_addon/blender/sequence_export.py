"""Read a head's animation back into a :class:`~..core.sequence.FlameSequence` (the inverse of
:mod:`.sequence_import`), for ``flame_sequence.npz`` and metrical-tracker checkpoints.

Values come from the F-curves (no per-frame scene evaluation); channels without animation keep
their current value. Translation is recovered from the root bone's location by removing the
expression-dependent joint term (I - R0)(J0(t) - J0), see :func:`..core.rig.bone_locations`.
"""

from __future__ import annotations

import bpy
import numpy as np

from ..core import camera as cameras
from ..core import rotations
from ..core.model import JOINT_NAMES
from ..core.sequence import FlameSequence
from . import compat, head
from .keyframes import sample_channels
from .sequence_import import EYELID_KEYS, STATIC_OFFSET_KEY


def _channels(owner: bpy.types.ID | None, frames: np.ndarray) -> dict[tuple[str, int], np.ndarray]:
    action = compat.action_of(owner)
    return sample_channels(action, frames) if action is not None else {}


def _series(channels: dict, path: str, size: int, current, frames: np.ndarray) -> np.ndarray:
    """(T, size) values of ``path[0..size)``: animated ones sampled, the rest held at ``current``."""
    current = np.atleast_1d(np.asarray(current, dtype=np.float64))
    return np.stack([channels.get((path, i), np.full(len(frames), current[i])) for i in range(size)], axis=1)


def keyed_frames(armature: bpy.types.Object, scene: bpy.types.Scene) -> np.ndarray:
    """The scene frames holding keys of the head's performance, else the scene's frame range."""
    frames = set()
    for owner in (armature, armature.flame.mesh.data.shape_keys):
        if (action := compat.action_of(owner)) is not None:
            for fc in compat.action_fcurves(action):
                co = np.empty(2 * len(fc.keyframe_points), dtype=np.float32)
                fc.keyframe_points.foreach_get("co", co)
                frames.update(np.round(co[0::2]).astype(int).tolist())
    return np.array(sorted(frames)) if frames else np.arange(scene.frame_start, scene.frame_end + 1)


def _camera(context, armature: bpy.types.Object, frames: np.ndarray) -> cameras.CameraTrack | None:
    """The scene camera as an OpenCV track in FLAME space, if it belongs to this head."""
    cam = context.scene.camera
    if cam is None or cam.type != "CAMERA":
        return None
    base = np.array(armature.matrix_world)
    if cam.parent == armature:  # moving camera: its local matrix is FLAME space
        ch = _channels(cam, frames)
        loc = _series(ch, "location", 3, cam.location, frames)
        quat = _series(ch, "rotation_quaternion", 4, cam.rotation_quaternion, frames)
        cam2world = np.tile(np.eye(4), (len(frames), 1, 1))
        cam2world[:, :3, :3], cam2world[:, :3, 3] = rotations.quaternion_to_matrix(quat), loc
    elif compat.action_of(armature) is not None:  # static camera, moving head
        ch = _channels(armature, frames)
        loc = _series(ch, "location", 3, armature.location, frames)
        quat = _series(ch, "rotation_quaternion", 4, armature.rotation_quaternion, frames)
        heads = np.tile(np.eye(4), (len(frames), 1, 1))
        heads[:, :3, :3], heads[:, :3, 3] = rotations.quaternion_to_matrix(quat), loc
        # the camera's pose in the head's FLAME space, frame by frame
        cam2world = np.linalg.inv(heads) @ np.array(cam.matrix_world)
    else:
        cam2world = np.tile(np.linalg.inv(base) @ np.array(cam.matrix_world), (len(frames), 1, 1))
    ch = _channels(cam.data, frames)
    orthographic = cam.data.type == "ORTHO"
    lens, shift_x, shift_y = (_series(ch, name, 1, getattr(cam.data, name), frames)[:, 0]
                              for name in ("ortho_scale" if orthographic else "lens", "shift_x", "shift_y"))
    render = context.scene.render
    return cameras.blender_to_opencv(cam2world, lens, shift_x, shift_y, cam.data.sensor_width,
                                     (render.resolution_x, render.resolution_y), orthographic)


def read_performance(context, armature: bpy.types.Object, frames: np.ndarray | None = None,
                     frame_start: int = 1) -> FlameSequence:
    """The head's animation at scene ``frames`` (default: its keyed frames) as a sequence whose
    frame ids are ``frames - frame_start``."""
    props, mesh_obj = armature.flame, armature.flame.mesh
    frames = keyed_frames(armature, context.scene) if frames is None else np.asarray(frames)
    key = mesh_obj.data.shape_keys
    blocks = key.key_blocks
    shape = head.coefficient_values(armature)[0]
    kch = _channels(key, frames)
    def key_series(name: str) -> np.ndarray:
        return kch.get((head.key_value_path(name), 0), np.full(len(frames), blocks[name].value))

    expr = head.coefficients_of(blocks, head.shape_key_names(0, props.n_expr), key_series) if props.n_expr \
        else np.zeros((len(frames), 0))

    ach = _channels(armature, frames)
    quats = np.stack([_series(ach, head.bone_path(n, "rotation_quaternion"), 4,
                              armature.pose.bones[n].rotation_quaternion, frames) for n in JOINT_NAMES], axis=1)
    root_loc = _series(ach, head.bone_path("root", "location"), 3, armature.pose.bones["root"].location, frames)
    R = rotations.quaternion_to_matrix(quats)
    rest = np.array([b.head_local for b in armature.data.bones], dtype=np.float64)
    static_offset = None
    if STATIC_OFFSET_KEY in blocks and blocks[STATIC_OFFSET_KEY].value != 0:
        static_offset = head.key_offset(mesh_obj, STATIC_OFFSET_KEY) * blocks[STATIC_OFFSET_KEY].value
    basis = head.joint_basis(armature)
    identity_root = head.joints_for(armature, shape, np.zeros(props.n_expr))[0]
    d0 = np.einsum("te,ec->tc", expr, basis[1 + props.n_shape:, 0]) + (identity_root - rest[0])
    if static_offset is not None:
        d0 = d0 + head.joint_regressor(armature)[0] @ static_offset
    translation = root_loc - (d0 - np.einsum("trc,tc->tr", R[:, 0], d0))

    eyelids, eyelid_dirs = None, None
    if all(name in blocks for name in EYELID_KEYS):
        eyelids = np.stack([key_series(n) for n in EYELID_KEYS], axis=1)
        eyelid_dirs = np.stack([head.key_offset(mesh_obj, n) for n in EYELID_KEYS])
    fps = context.scene.render.fps / context.scene.render.fps_base
    return FlameSequence(shape=shape, expr=expr, rotations=R, translation=translation,
                         frame_ids=frames.astype(np.int64) - frame_start, fps=fps, fps_from_file=True,
                         eyelids=eyelids, camera=_camera(context, armature, frames), static_offset=static_offset,
                         eyelid_dirs=eyelid_dirs, source="blender", path=bpy.data.filepath)
