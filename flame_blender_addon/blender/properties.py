"""Per-head state stored on the armature object (saved with the .blend, per model)."""

from __future__ import annotations

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    FloatProperty,
    FloatVectorProperty,
    IntProperty,
    IntVectorProperty,
    PointerProperty,
    StringProperty,
)

from . import posing


class FlameTake(bpy.types.PropertyGroup):
    """One imported performance of a head (``name`` is the take's). Its actions and camera data are
    held here, so earlier takes survive saving and can be switched back to (:mod:`.takes`).
    The identity and rest joints of the take are ID properties ``shape`` (S,) and ``rest_joints`` (J*3,)."""

    head_action: PointerProperty(type=bpy.types.Action, name="Head action",
                                 description="Bones, and the head object's motion with a static camera")
    expression_action: PointerProperty(type=bpy.types.Action, name="Expression action")
    camera_action: PointerProperty(type=bpy.types.Action, name="Camera action",
                                   description="The camera's motion (moving camera)")
    camera_data: PointerProperty(type=bpy.types.Camera, name="Camera data",
                                 description="Lens, sensor and background frames of the take's camera")
    camera_mode: StringProperty(name="Camera mode")
    base_matrix: FloatVectorProperty(name="Head transform", size=16,
                                     description="The head object's matrix (row-major) when no take moves it")
    frame_start: IntProperty(name="Start frame")
    frame_end: IntProperty(name="End frame")
    fps: IntProperty(name="fps", default=25)
    fps_base: FloatProperty(name="fps base", default=1.0)
    resolution: IntVectorProperty(name="Resolution", size=2, default=(1920, 1080))
    sequence_path: StringProperty(name="Sequence", subtype="FILE_PATH")
    sequence_source: StringProperty(name="Sequence format")


class FlameHeadProperties(bpy.types.PropertyGroup):
    """``Object.flame``: identifies a FLAME armature and records where its model came from."""

    is_head: BoolProperty(name="FLAME head", default=False)
    mesh: PointerProperty(name="Mesh", type=bpy.types.Object, description="The head's skinned mesh")
    model_name: StringProperty(name="Model file", description="File name of the FLAME model")
    model_path: StringProperty(name="Model path", subtype="FILE_PATH",
                               description="Where the model was loaded from (empty for the demo head)")
    model_sha256: StringProperty(name="Model SHA-256", description="Hash of the model file")
    edition: StringProperty(name="FLAME edition", description="Which FLAME edition the model is "
                            "(an id of core.editions.EDITIONS), from its file name; decides the licence exports name")
    n_shape: IntProperty(name="Identity components", min=0)
    n_expr: IntProperty(name="Expression components", min=0)
    sequence_path: StringProperty(name="Sequence", description="The tracked sequence last imported onto this head")
    sequence_source: StringProperty(name="Sequence format")
    sequence_frame_start: IntProperty(name="Sequence start frame", default=1,
                                      description="Scene frame of the imported sequence's frame 0")
    sliders_shown: IntProperty(name="Sliders shown", default=10, min=0, max=300,
                               description="How many identity and expression sliders the panel lists")
    camera: PointerProperty(name="Camera", type=bpy.types.Object,
                            description="The head's tracked camera, reused by every take")
    takes: CollectionProperty(type=FlameTake, name="Takes")
    active_take: IntProperty(name="Active take", default=-1, description="Index of the take now on the head")

    # display only: they read and write the bones' quaternions (the rig contract), nothing is stored
    neck_rotation: FloatVectorProperty(name="Neck", **posing.euler_slider("neck", 60.0))
    jaw_rotation: FloatVectorProperty(name="Jaw", **posing.euler_slider("jaw", 40.0))
    eye_l_rotation: FloatVectorProperty(name="Left eye", **posing.euler_slider("eye.L", 40.0))
    eye_r_rotation: FloatVectorProperty(name="Right eye", **posing.euler_slider("eye.R", 40.0))
    use_correctives: BoolProperty(name="Correctives", get=posing.correctives_on, set=posing.set_correctives,
                                  description="FLAME's pose-corrective shape keys follow the pose (off: plain "
                                              "skinning, as in the official add-on)")
