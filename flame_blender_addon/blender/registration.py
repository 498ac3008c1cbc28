"""The add-on's single registration list; ``unregister`` is its exact mirror."""

from __future__ import annotations

import atexit
import logging

import bpy

from .. import cli
from . import (
    asset_operators,
    export,
    help,
    identity_operators,
    menus,
    operators,
    panel,
    preferences,
    properties,
    retarget_operators,
    sequence_operators,
    take_operators,
    texture_operator,
    texture_space,
    track_operator,
    tracker_job,
)
from .render import operator as render_operator

log = logging.getLogger(__name__)
_cli_commands = []  # handles of bpy.utils.register_cli_command

CLASSES = (properties.FlameTake, properties.FlameHeadProperties, *preferences.CLASSES, *help.CLASSES,
           *operators.CLASSES, *identity_operators.CLASSES, *asset_operators.CLASSES,
           *sequence_operators.CLASSES, *take_operators.CLASSES, *track_operator.CLASSES,
           *export.CLASSES, *render_operator.CLASSES, *menus.CLASSES, *panel.CLASSES, *retarget_operators.CLASSES,
           *texture_operator.CLASSES)
MENUS = menus.MENUS


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
    for name, handler in texture_space.HANDLERS:
        getattr(bpy.app.handlers, name).append(handler)
    _cli_commands.append(bpy.utils.register_cli_command(cli.COMMAND, cli.main))  # blender -c flame ...
    if not bpy.app.binary_path:
        # The bpy module (no Blender executable) hangs or crashes at interpreter exit while Python
        # classes or menu entries are registered (4.2, 4.5), so a script that never unregisters would
        # not end. atexit runs this before bpy's own exit handler, registered when bpy was imported.
        atexit.register(unregister)


def unregister() -> None:
    atexit.unregister(unregister)
    tracker_job.cancel_all()
    while _cli_commands:
        bpy.utils.unregister_cli_command(_cli_commands.pop())
    for name, handler in texture_space.HANDLERS:
        if handler in getattr(bpy.app.handlers, name):
            getattr(bpy.app.handlers, name).remove(handler)
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
