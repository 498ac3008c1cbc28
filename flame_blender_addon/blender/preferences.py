"""Add-on preferences: where your FLAME models are, and how to run the external tracker."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import bpy
from bpy.props import EnumProperty, StringProperty

from ..core.model_folder import find_models
from .help import section
from .operator_base import reports_errors
from .tracker_check import LAST, check_tracker

ADDON_PACKAGE = __package__.rpartition(".")[0]  # "flame_blender_addon" or "bl_ext.<repo>.flame_head"

DEVICES = (("auto", "Automatic", "CUDA when the tracker's torch sees a GPU, else CPU"),
           ("cuda", "CUDA", "NVIDIA GPU"), ("cpu", "CPU", "Processor only"))


class FlamePreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    model_folder: StringProperty(
        name="Model folder", subtype="DIR_PATH",
        description="Folder holding your FLAME downloads (generic_model.pkl, female_model.pkl, flame2023.pkl ...)")
    python: StringProperty(
        name="Tracker Python", subtype="FILE_PATH",
        description="Python executable of an environment with torch, mediapipe and PyAV (Check shows what it has)")
    device: EnumProperty(name="Device", items=DEVICES, default="auto")
    command_template: StringProperty(
        name="External tracker command",
        description="Optional: run your own tracker instead, with {input}, {output} and {model} placeholders")

    def draw(self, context):
        col = section(self.layout, "Models", icon="FILE_FOLDER")
        col.prop(self, "model_folder")
        models = find_models(Path(bpy.path.abspath(self.model_folder))) if self.model_folder else []
        for model in models:
            col.label(text=f"{model.label}: {model.path.name}", icon="CHECKMARK")
        if self.model_folder and not models:
            col.label(text="No FLAME model files found there", icon="ERROR")

        col = section(self.layout, "Tracker", "track", icon="TRACKER")
        col.prop(self, "python")
        col.prop(self, "device")
        col.prop(self, "command_template")
        col.operator("flame.check_tracker", icon="CHECKMARK")
        check = LAST.get(tracker_python(context))
        if check is not None:
            for line in check.lines:
                col.label(text=line, icon="CHECKMARK" if check.ok else "ERROR")
            if check.fix:
                col.label(text="Fix:")
                col.label(text=check.fix)


def get(context: bpy.types.Context) -> FlamePreferences | None:
    addon = context.preferences.addons.get(ADDON_PACKAGE)
    return addon.preferences if addon else None


def tracker_python(context: bpy.types.Context, override: str = "") -> str:
    """The Python that runs the tracker: ``override``, else the preference, else python3 on PATH."""
    prefs = get(context)
    return override or (bpy.path.abspath(prefs.python) if prefs and prefs.python else "") or \
        shutil.which("python3") or sys.executable


def model_folder(context: bpy.types.Context) -> Path | None:
    """The Model folder preference as a path, or None when unset."""
    prefs = get(context)
    return Path(bpy.path.abspath(prefs.model_folder)) if prefs and prefs.model_folder else None


class FLAME_OT_check_tracker(bpy.types.Operator):
    """Run the tracker's Python and show its torch, mediapipe and PyAV versions and CUDA"""

    bl_idname = "flame.check_tracker"
    bl_label = "Check Tracker"
    bl_options = {"REGISTER", "INTERNAL"}

    @reports_errors
    def execute(self, context):
        python, prefs = tracker_python(context), get(context)
        result = LAST[python] = check_tracker(python, configured=bool(prefs and prefs.python))
        for line in result.lines:
            self.report({"INFO"}, line)
        if not result.ok:
            self.report({"ERROR"}, f"The tracker cannot run: {'; '.join(result.lines[1:] or result.lines)}. "
                                   f"Fix: {result.fix}")
            return {"CANCELLED"}
        return {"FINISHED"}


CLASSES = (FlamePreferences, FLAME_OT_check_tracker)
