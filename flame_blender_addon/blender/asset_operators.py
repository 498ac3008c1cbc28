"""``flame.import_assets``: the FLAME ecosystem's files in a folder onto a head (masks, UVs, albedo, landmarks)."""

from __future__ import annotations

import os
from pathlib import Path

import bpy
from bpy.props import BoolProperty, IntProperty, StringProperty

from ..core.errors import AssetError
from ..core.formats.assets import Assets, find_assets, read_assets
from ..core.formats.embeddings import EMBEDDING_FILES
from ..core.formats.masks import MASKS_FILE
from ..core.formats.template_obj import UV_FILES
from ..core.formats.texture_space import TEXTURE_FILES
from . import assets, head, texture_space
from .help import section
from .operator_base import HeadOperator, has_ui
from .transaction import rollback_on_error

LOOKED_FOR = ", ".join((MASKS_FILE, *UV_FILES, *EMBEDDING_FILES, *TEXTURE_FILES))
TEXTURE_COMPONENTS = 50  # as DECA and metrical-tracker fit: 150 MB at 512² instead of 600 MB, read 4x faster


def texture_components_property() -> IntProperty:
    return IntProperty(name="Texture components", default=TEXTURE_COMPONENTS, min=0, max=1000,
                       description="Components of a texture space to load (0: all; each costs 3 MB at 512²; "
                                   "at least as many as the head's albedo material has coefficients)")


def texture_components(n: int, mesh_obj: bpy.types.Object | None = None) -> int | None:
    """Components to read (None: all) for the option ``n``, no fewer than the head's material keeps."""
    kept = len(texture_space.kept_coefficients(mesh_obj)) if mesh_obj is not None else 0
    return max(n, kept) if n else None


def report_assets(operator: bpy.types.Operator, found: Assets, summary: str, folder: Path) -> None:
    """One INFO line for what was added (none when nothing was), then a WARNING per repaired or skipped file."""
    if summary:
        operator.report({"INFO"}, f"Added from {folder}: {summary}")
    for warning in found.warnings:
        operator.report({"WARNING"}, warning)


class FLAME_OT_import_assets(HeadOperator, bpy.types.Operator):
    """Add FLAME masks (vertex groups), template UVs, a texture space's albedo and landmarks from a folder"""

    bl_idname = "flame.import_assets"
    bl_label = "Import FLAME Assets"
    bl_options = {"REGISTER", "UNDO"}

    directory: StringProperty(name="Folder", subtype="DIR_PATH",
                              description="Folder with FLAME_masks.pkl, head_template.obj, landmark embeddings, "
                                          "a texture space (also searched: its subfolders and parent); "
                                          "default: the model's folder")
    texture_components: texture_components_property()
    filter_folder: BoolProperty(default=True, options={"HIDDEN"})  # the file browser lists folders only

    def invoke(self, context, event):
        armature = head.target_head(context, self.target)
        if not self.directory and armature is not None and armature.flame.model_path:
            self.directory = str(Path(armature.flame.model_path).parent) + os.sep  # open the browser there
        if not has_ui():
            return self.execute(context)
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def draw(self, context):
        col = section(self.layout, "Head", "assets", icon="ARMATURE_DATA")
        col.prop_search(self.properties, "target", context.scene, "objects", icon="OUTLINER_OB_ARMATURE")
        col.prop(self.properties, "texture_components")

    def run(self, context, armature):
        folder = Path(bpy.path.abspath(self.directory)) if self.directory else Path(armature.flame.model_path).parent
        if not folder.is_dir():
            raise AssetError(f"{folder}: not a folder; choose the folder with your FLAME files")
        files = find_assets(folder)
        if not files.paths():
            raise AssetError(f"{folder}: no FLAME files found there, in its subfolders or its parent "
                             f"(looked for {LOOKED_FOR})")
        mesh = armature.flame.mesh.data
        found = read_assets(files, assets.head_faces(mesh), len(mesh.vertices),
                            n_texture=texture_components(self.texture_components, armature.flame.mesh))
        with rollback_on_error(context, edited_head=armature):
            summary = assets.apply_assets(context, armature, found)
        report_assets(self, found, summary, folder)
        return {"FINISHED"}


CLASSES = (FLAME_OT_import_assets,)
