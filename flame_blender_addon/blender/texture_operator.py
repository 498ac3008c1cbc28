"""``flame.import_texture_space``: a texture space (FLAME_texture.npz, FLAME_albedo_from_BFM.npz) on a head."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import IntProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from ..core.errors import FlameError
from . import texture_space
from .help import section
from .operator_base import HeadOperator
from .transaction import rollback_on_error


class FLAME_OT_import_texture_space(HeadOperator, ImportHelper, bpy.types.Operator):
    """Give the head an albedo from a texture space, its coefficients keyable on the material (tex000, ...)"""

    bl_idname = "flame.import_texture_space"
    bl_label = "Import Texture Space"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(name="File Path", subtype="FILE_PATH",
                             description="FLAME_texture.npz or FLAME_albedo_from_BFM.npz")
    filter_glob: StringProperty(default="*.npz", options={"HIDDEN"})
    n_components: IntProperty(name="Components", default=0, min=0, max=1000,
                              description="Components to load (0: all; each costs 3 MB at 512²)")

    def draw(self, context):
        col = section(self.layout, "Texture space", "appearance", icon="TEXTURE")
        col.prop_search(self.properties, "target", context.scene, "objects", icon="OUTLINER_OB_ARMATURE")
        col.prop(self.properties, "n_components")

    def run(self, context, armature):
        if not self.filepath:
            raise FlameError("No texture space given: choose FLAME_texture.npz or FLAME_albedo_from_BFM.npz")
        space = texture_space.load(Path(bpy.path.abspath(self.filepath)), self.n_components or None)
        with rollback_on_error(context, edited_head=armature):  # the current coefficients and lighting are kept
            material = texture_space.apply_to_head(context, armature.flame.mesh, space)
        for warning in space.warnings:
            self.report({"WARNING"}, warning)
        self.report({"INFO"}, f"Texture space on {armature.name}: {texture_space.describe(space, material)}")
        return {"FINISHED"}


CLASSES = (FLAME_OT_import_texture_space,)
