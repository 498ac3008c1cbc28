"""Menu entries: File > Import (model, assets, sequence), one File > Export > FLAME submenu, Add > FLAME Demo
Head, Render."""

from __future__ import annotations

import bpy

# (idname, text, properties) of File > Export > FLAME, in order
EXPORTS = (
    ("flame.export_fbx", "FBX for Unreal (.fbx)", {"preset": "UNREAL"}),
    ("flame.export_fbx", "FBX for Unity (.fbx)", {"preset": "UNITY"}),
    ("flame.export_gltf", "glTF Binary (.glb)", {}),
    ("flame.export_alembic", "Alembic (.abc)", {}),
    ("flame.export_usd", "USD (.usd)", {}),
    ("flame.export_mesh_frames", "Mesh per Frame (.obj/.ply)", {}),
    ("flame.export_closed_mesh", "Closed Mesh for 3-D Printing (.stl/.obj)", {}),
    ("flame.export_sequence", "Sequence (flame_sequence.npz, checkpoints)", {}),
)


class TOPBAR_MT_file_export_flame(bpy.types.Menu):
    """Every FLAME export in one place."""

    bl_idname = "TOPBAR_MT_file_export_flame"
    bl_label = "FLAME"

    def draw(self, context):
        for idname, text, values in EXPORTS:
            op = self.layout.operator(idname, text=text)
            for name, value in values.items():
                setattr(op, name, value)


def menu_import(self, context):
    self.layout.operator("flame.import_model", text="FLAME Model (.pkl/.npz)")
    self.layout.operator("flame.import_assets", text="FLAME Assets (masks, UVs, albedo, landmarks)")
    self.layout.operator("flame.import_sequence", text="FLAME Sequence (tracker output)")
    self.layout.operator("flame.import_identity", text="FLAME Identity (MICA, DECA, EMOCA, SMIRK, mesh)")
    self.layout.operator("flame.import_texture_space", text="FLAME Texture Space (albedo)")


def menu_export(self, context):
    self.layout.menu(TOPBAR_MT_file_export_flame.bl_idname)


def menu_add(self, context):
    self.layout.operator("flame.add_demo_head", icon="USER")


def menu_render(self, context):
    self.layout.operator("flame.render_preview", text="FLAME Preview (.png/.mp4)", icon="RENDER_ANIMATION")


CLASSES = (TOPBAR_MT_file_export_flame,)
MENUS = ((bpy.types.TOPBAR_MT_file_import, menu_import), (bpy.types.TOPBAR_MT_file_export, menu_export),
         (bpy.types.VIEW3D_MT_add, menu_add), (bpy.types.TOPBAR_MT_render, menu_render))
