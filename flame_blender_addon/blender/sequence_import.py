"""Apply a tracked :class:`~..core.sequence.FlameSequence` to a FLAME head as keyframed animation.

Identity is set once and the rest joints follow it. Every frame is exact, including FLAME's
expression-dependent joints: the rig rests at the identity's joints J0 and each bone's keyed
location is (I - R) (J(t) - J0) (plus the translation on the root), see :func:`..core.rig.bone_locations`.
All keys are written in bulk (:mod:`.keyframes`).
"""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix

from ..core import camera as cameras
from ..core import rig, rotations
from ..core.formats.footage import Footage
from ..core.formats.per_frame import numbered_images
from ..core.model import JOINT_NAMES
from ..core.sequence import FlameSequence
from . import compat, head, takes
from .keyframes import set_scene_timing, write_channels
from .progress import Report
from .transaction import key_co

CAMERA_MODES = (
    ("MOVING_CAMERA", "Moving camera", "The head stays put and the tracker's camera moves around it"),
    ("STATIC_CAMERA", "Static camera", "The camera stays put and the head moves in front of it "
                                       "(for export and retargeting)"),
    ("NONE", "No camera", "Animate the head only"),
)
STATIC_OFFSET_KEY, EYELID_KEYS = "static_offset", ("eyelid.L", "eyelid.R")


def _ensure_offset_key(mesh_obj: bpy.types.Object, name: str, offset: np.ndarray, limit: float) -> bpy.types.ShapeKey:
    """A shape key ``name`` = Basis + offset (V, 3), created or overwritten."""
    blocks = mesh_obj.data.shape_keys.key_blocks
    kb = blocks.get(name) or mesh_obj.shape_key_add(name=name, from_mix=False)
    kb.slider_min, kb.slider_max = -limit, limit
    kb.data.foreach_set("co", key_co(blocks[0]) + np.asarray(offset, dtype=np.float32).ravel())
    return kb


def _set_identity(context, armature: bpy.types.Object, seq: FlameSequence,
                  keep_identity: bool) -> tuple[np.ndarray, np.ndarray]:
    """Set shape (and VHAP static offsets) once; place the rest joints. Returns (J0 (J, 3), B_e (E, J, 3))."""
    props, mesh_obj = armature.flame, armature.flame.mesh
    blocks = mesh_obj.data.shape_keys.key_blocks
    if keep_identity:
        shape = head.coefficient_values(armature)[0]
    else:
        shape = seq.shape
        head.set_shape(mesh_obj, shape)
    J0 = head.joints_for(armature, shape, np.zeros(props.n_expr))
    if seq.static_offset is not None and not keep_identity:
        _ensure_offset_key(mesh_obj, STATIC_OFFSET_KEY, seq.static_offset, 1.0).value = 1.0
        J0 = J0 + head.joint_regressor(armature) @ seq.static_offset
    elif STATIC_OFFSET_KEY in blocks and not keep_identity:
        blocks[STATIC_OFFSET_KEY].value = 0.0
    head.set_rest_joints(context, armature, J0)
    return J0, head.joint_basis(armature)[1 + props.n_shape:]


def _key_head(armature: bpy.types.Object, seq: FlameSequence, frames: np.ndarray,
              expr_joints: np.ndarray) -> list[tuple[str, int, np.ndarray]]:
    """Key expression and eyelids on the shape keys; return the armature's bone channels."""
    d = np.einsum("te,ejc->tjc", seq.expr, expr_joints)  # joint shift by expression (T, J, 3)
    locations = rig.bone_locations(seq.rotations, d, seq.translation)
    quats = rotations.continuous_quaternions(rotations.matrix_to_quaternion(seq.rotations))
    channels = []
    for j, name in enumerate(JOINT_NAMES):
        channels += [(head.bone_path(name, "rotation_quaternion"), i, quats[:, j, i]) for i in range(4)]
        channels += [(head.bone_path(name, "location"), i, locations[:, j, i]) for i in range(3)]

    mesh_obj = armature.flame.mesh
    key_channels = [(head.key_value_path(name), 0, values)
                    for name, values in head.slider_series(mesh_obj, head.shape_key_names(0, seq.n_expr), seq.expr)]
    if seq.eyelids is not None and seq.eyelid_dirs is not None:
        for k, name in enumerate(EYELID_KEYS):
            _ensure_offset_key(mesh_obj, name, seq.eyelid_dirs[k], 10.0)
            key_channels.append((head.key_value_path(name), 0, seq.eyelids[:, k]))
    write_channels(mesh_obj.data.shape_keys, f"{armature.name}_expression", frames, key_channels)
    return channels


def _transform_channels(matrices: np.ndarray) -> list[tuple[str, int, np.ndarray]]:
    """Object location + quaternion channels for rigid (T, 4, 4) matrices."""
    quats = rotations.continuous_quaternions(rotations.matrix_to_quaternion(matrices[:, :3, :3]))
    return ([("location", i, matrices[:, i, 3]) for i in range(3)]
            + [("rotation_quaternion", i, quats[:, i]) for i in range(4)])


def _add_camera(context, armature: bpy.types.Object, seq: FlameSequence, frames: np.ndarray, mode: str,
                ) -> tuple[bpy.types.Camera, list[tuple[str, int, np.ndarray]]]:
    """The tracker's camera as the scene camera (perspective, or orthographic for DECA / SMIRK), with
    render resolution and intrinsics.

    Returns the camera data and the armature object's transform channels in static-camera mode (else none)."""
    blender_cam = cameras.opencv_to_blender(seq.camera)
    data = bpy.data.cameras.new(f"{armature.name}_camera")
    data.sensor_fit, data.sensor_width = blender_cam.sensor_fit, blender_cam.sensor_width
    data.clip_start, data.clip_end = 0.01, 100.0
    cam = takes.head_camera(armature)  # one camera object per head; each take has its camera data
    if cam is None:
        cam = bpy.data.objects.new(data.name, data)
        context.collection.objects.link(cam)
        armature.flame.camera = cam
    cam.data = data
    compat.assign_action(cam, None)
    cam.rotation_mode = "QUATERNION"
    head_channels = []
    if mode == "MOVING_CAMERA":  # child of the head's armature object: its matrix is FLAME space
        cam.parent = armature
        cam.matrix_parent_inverse = Matrix.Identity(4)
        write_channels(cam, f"{cam.name}_motion", frames, _transform_channels(blender_cam.cam2world))
    else:  # camera fixed where the first frame has it; the head object moves in front of it
        cam.parent = None
        base = np.array(armature.matrix_world)
        cam.matrix_world = Matrix((base @ np.eye(4)).tolist())
        heads = base @ cameras.head_in_fixed_camera(seq.camera.R, seq.camera.t)
        armature.rotation_mode = "QUATERNION"
        head_channels = _transform_channels(heads)
    orthographic = blender_cam.ortho_scale is not None  # DECA / SMIRK: batch_orth_proj on the crop
    data.type = "ORTHO" if orthographic else "PERSP"
    scale = ("ortho_scale", blender_cam.ortho_scale) if orthographic else ("lens", blender_cam.lens)
    intrinsics = {scale[0]: scale[1], "shift_x": blender_cam.shift_x, "shift_y": blender_cam.shift_y}
    varying = [(name, 0, v) for name, v in intrinsics.items() if np.ptp(v) > 1e-9]
    for name, values in intrinsics.items():
        setattr(data, name, float(values[0]))
    if varying:
        write_channels(data, f"{data.name}_intrinsics", frames, varying)
    render = context.scene.render
    render.resolution_x, render.resolution_y = blender_cam.resolution
    render.resolution_percentage, render.pixel_aspect_x, render.pixel_aspect_y = 100, 1.0, 1.0
    context.scene.camera = cam
    return data, head_channels


def _add_background(data: bpy.types.Camera, footage: Footage, frame_start: int) -> list[str]:
    """The footage as the camera's background, frame-accurate: scene frame ``frame_start + f`` shows the
    footage's frame for sequence frame id f (a movie clip, or an image sequence). Returns warnings."""
    if footage.kind == "video":
        try:
            clip = bpy.data.movieclips.load(str(footage.path), check_existing=False)
        except RuntimeError:
            return [f"{footage.path}: Blender cannot read this video; no camera background"]
        clip.frame_start = frame_start - footage.frame_offset  # the scene frame of the video's first frame
        bg = data.background_images.new()
        bg.source, bg.clip = "MOVIE_CLIP", clip
    else:
        files = numbered_images(footage.path)
        first, last = min(files), max(files)
        image = bpy.data.images.load(str(files[first]), check_existing=True)
        image.source = "SEQUENCE"
        bg = data.background_images.new()
        bg.image = image
        bg.image_user.frame_start = frame_start + first - footage.frame_offset  # the scene frame of `first`
        bg.image_user.frame_duration = last - first + 1
        bg.image_user.frame_offset = first - 1
    bg.alpha, bg.display_depth = 1.0, "BACK"
    data.show_background_images = True
    return []


def slider_note(seq: FlameSequence, keep_identity: bool) -> list[str]:
    """A line for the import report when coefficients pass the sliders' +-10 (their rest is on overflow keys)."""
    parts = []
    identity = np.zeros((1, 0)) if keep_identity else seq.shape[None]  # retargeting keeps the head's own
    for what, values in (("identity", identity), ("expression", seq.expr)):
        beyond = np.abs(values) > rig.SLIDER_LIMIT
        if beyond.any():
            parts.append(f"{int(beyond.any(axis=0).sum())} {what} (up to {np.abs(values).max():.1f})")
    if not parts:
        return []
    return [f"{' and '.join(parts)} coefficients pass the sliders' +-{rig.SLIDER_LIMIT:g}: the rest is on "
            f"their '{head.OVERFLOW_SUFFIX}' keys, so the head is exact"]


def apply_sequence(context, armature: bpy.types.Object, seq: FlameSequence, *, frame_start: int = 1,
                   keep_identity: bool = False, camera_mode: str = "MOVING_CAMERA",
                   footage: Footage | None = None, take: str = "",
                   report: Report = lambda f, m: None) -> list[str]:
    """Animate ``armature`` with ``seq`` (already fitted to the head's component counts) as a new take
    named ``take`` (default: the sequence file's stem); the head's earlier takes are kept.

    Sequence frame i lands on scene frame ``frame_start + frame_ids[i]``; the scene's fps and frame
    range follow the sequence; ``footage`` becomes the camera's background. Returns notes for the
    import report; problems with the footage are added to the sequence's ``warnings`` (the user's to see)."""
    takes.stash(context, armature)
    base_matrix = armature.matrix_world.copy()
    frames = frame_start + seq.frame_ids.astype(np.float64)
    notes = slider_note(seq, keep_identity)
    report(0.1, "identity and joints")
    _, expr_joints = _set_identity(context, armature, seq, keep_identity)
    report(0.3, "keyframes")
    channels = _key_head(armature, seq, frames, expr_joints)
    if seq.camera is None:
        camera_mode = "NONE"
    if camera_mode != "NONE":
        report(0.8, "camera")
        camera, head_channels = _add_camera(context, armature, seq, frames, camera_mode)
        channels += head_channels
        if footage is not None:
            seq.warnings += _add_background(camera, footage, frame_start)
    write_channels(armature, f"{armature.name}_performance", frames, channels)
    set_scene_timing(context.scene, seq.fps, int(frames[0]), int(frames[-1]))
    context.scene.frame_set(int(frames[0]))
    props = armature.flame
    props.sequence_path, props.sequence_source = seq.path, seq.source
    props.sequence_frame_start = frame_start
    takes.record(context, armature, take or Path(seq.path).stem, camera_mode, base_matrix)
    report(1.0, "done")
    return notes
