"""Add-on preferences: how to run the external tracker."""

from __future__ import annotations

import bpy
from bpy.props import EnumProperty, StringProperty

ADDON_PACKAGE = __package__.rpartition(".")[0]  # "flame_blender_addon" or "bl_ext.<repo>.flame_head"

DEVICES = (("auto", "Automatic", "CUDA when the tracker's torch sees a GPU, else CPU"),
           ("cuda", "CUDA", "NVIDIA GPU"), ("cpu", "CPU", "Processor only"))


class FlamePreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    python: StringProperty(
        name="Tracker Python", subtype="FILE_PATH",
        description="Python executable of an environment with torch installed "
                    "(pip install -e \".[tracker]\" in this add-on's repository)")
    device: EnumProperty(name="Device", items=DEVICES, default="auto")
    command_template: StringProperty(
        name="External tracker command",
        description="Optional: run your own tracker (e.g. metrical-tracker) instead. Placeholders "
                    "{input}, {output}, {model}; its output folder is imported when it finishes")

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "python")
        layout.prop(self, "device")
        layout.prop(self, "command_template")


def get(context: bpy.types.Context) -> FlamePreferences | None:
    addon = context.preferences.addons.get(ADDON_PACKAGE)
    return addon.preferences if addon else None
