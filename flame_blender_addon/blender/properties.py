"""Per-head state stored on the armature object (saved with the .blend, per model)."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, IntProperty, PointerProperty, StringProperty


class FlameHeadProperties(bpy.types.PropertyGroup):
    """``Object.flame``: identifies a FLAME armature and records where its model came from."""

    is_head: BoolProperty(name="FLAME head", default=False)
    mesh: PointerProperty(name="Mesh", type=bpy.types.Object, description="The head's skinned mesh")
    model_name: StringProperty(name="Model file", description="File name of the FLAME model")
    model_path: StringProperty(name="Model path", subtype="FILE_PATH",
                               description="Where the model was loaded from (empty for the demo head)")
    model_sha256: StringProperty(name="Model SHA-256", description="Hash of the model file")
    version: StringProperty(name="FLAME version")
    n_shape: IntProperty(name="Identity components", min=0)
    n_expr: IntProperty(name="Expression components", min=0)
    sequence_path: StringProperty(name="Sequence", description="The tracked sequence last imported onto this head")
    sequence_source: StringProperty(name="Sequence format")
    sequence_frame_start: IntProperty(name="Sequence start frame", default=1,
                                      description="Scene frame of the imported sequence's frame 0")
    sliders_shown: IntProperty(name="Sliders shown", default=10, min=0, max=300,
                               description="How many identity and expression sliders the panel lists")
