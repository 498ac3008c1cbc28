"""The add-on's single registration list; ``unregister`` is its exact mirror."""

from __future__ import annotations

import logging

import bpy

from .. import cli
from . import (
    export,
    operators,
    panel,
    preferences,
    properties,
    retarget_operators,
    sequence_operators,
    track_operator,
    tracker_job,
)
from .render import operator as render_operator

log = logging.getLogger(__name__)
_cli_commands = []  # handles of bpy.utils.register_cli_command

CLASSES = (properties.FlameHeadProperties, preferences.FlamePreferences, *operators.CLASSES,
           *sequence_operators.CLASSES, *track_operator.CLASSES, *export.CLASSES, *render_operator.CLASSES,
           *panel.CLASSES, *retarget_operators.CLASSES)


def _menu_import(self, context):
    self.layout.operator(operators.FLAME_OT_import_model.bl_idname, text="FLAME Model (.pkl/.npz)")
    self.layout.operator(sequence_operators.FLAME_OT_import_sequence.bl_idname, text="FLAME Sequence (tracker output)")


def _menu_export(self, context):
    self.layout.operator(sequence_operators.FLAME_OT_export_sequence.bl_idname,
                         text="FLAME Sequence (.npz, checkpoints)")


def _menu_add(self, context):
    self.layout.operator(operators.FLAME_OT_add_demo_head.bl_idname, icon="USER")


MENUS = ((bpy.types.TOPBAR_MT_file_import, _menu_import), (bpy.types.TOPBAR_MT_file_export, _menu_export),
         (bpy.types.VIEW3D_MT_add, _menu_add), (bpy.types.TOPBAR_MT_file_export, export.menu_export),
         (bpy.types.TOPBAR_MT_render, render_operator.menu_render))


@bpy.app.handlers.persistent
def _stop_tracker_jobs(*_args) -> None:
    """Loading another file ends running tracker processes (their operator is gone)."""
    tracker_job.cancel_all()


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Object.flame = bpy.props.PointerProperty(type=properties.FlameHeadProperties)
    retarget_operators.register_properties()
    for menu, func in MENUS:
        menu.append(func)
    bpy.app.handlers.load_pre.append(_stop_tracker_jobs)
    _cli_commands.append(bpy.utils.register_cli_command(cli.COMMAND, cli.main))  # blender -c flame ...


def unregister() -> None:
    tracker_job.cancel_all()
    while _cli_commands:
        bpy.utils.unregister_cli_command(_cli_commands.pop())
    if _stop_tracker_jobs in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_stop_tracker_jobs)
    for menu, func in reversed(MENUS):
        menu.remove(func)
    retarget_operators.unregister_properties()
    if hasattr(bpy.types.Object, "flame"):
        del bpy.types.Object.flame
    for cls in reversed(CLASSES):
        try:
            bpy.utils.unregister_class(cls)
        except RuntimeError as err:
            log.warning("could not unregister %s: %s", cls.__name__, err)
