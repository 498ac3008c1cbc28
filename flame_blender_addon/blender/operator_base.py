"""What the ``flame.*`` operators share: one way to report errors, one rule for "a head to act on"."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import bpy
from bpy.props import StringProperty

from ..core.errors import FlameError
from . import head

log = logging.getLogger(__name__)

NO_HEAD = "Needs a FLAME head: select one, or add one (File > Import > FLAME Model, Add > FLAME Demo Head)"

OperatorMethod = Callable[..., set[str]]


def has_ui() -> bool:
    """Whether dialogs, file browsers and modal operators can be shown (not ``--background``)."""
    return not bpy.app.background


def reports_errors(method: OperatorMethod) -> OperatorMethod:
    """Wrap an operator's ``execute`` (or ``run``): instead of raising, it reports an ERROR and returns
    ``{'CANCELLED'}``. FlameError and OSError carry a message for the user; anything else is a bug,
    logged with its traceback. What the method built is undone by :func:`.transaction.rollback_on_error`."""

    @functools.wraps(method)
    def wrapper(self: bpy.types.Operator, context: bpy.types.Context, *args) -> set[str]:
        try:
            return method(self, context, *args)
        except FlameError as err:
            self.report({"ERROR"}, str(err))
        except OSError as err:
            self.report({"ERROR"}, f"{err.filename}: {err.strerror or err}" if err.filename else str(err))
        except Exception as err:
            log.exception("%s failed", self.bl_idname)
            self.report({"ERROR"}, f"{self.bl_label} failed: {err!r}")
        return {"CANCELLED"}

    return wrapper


def poll_head(cls: type, context: bpy.types.Context) -> bool:
    """The poll of every operator that acts on a head: the active object is one, or the scene has one
    (``target`` may name it; properties are unknown to a poll). Otherwise it says why it is greyed out."""
    if head.find_head(context.active_object) is not None or head.scene_heads(context.scene):
        return True
    cls.poll_message_set(NO_HEAD)
    return False


class HeadOperator:
    """Mixin for operators acting on one head: ``target`` names it (default: the active object's head);
    ``execute`` resolves it and calls ``run(context, armature)``, reporting errors."""

    target: StringProperty(name="Target", description="FLAME head object (default: the active one)",
                           options={"SKIP_SAVE"})

    @classmethod
    def poll(cls, context):
        return poll_head(cls, context)

    @reports_errors
    def execute(self, context):
        armature = head.target_head(context, self.target)
        if armature is None:
            raise FlameError(f"'{self.target or 'active object'}' is not a FLAME head")
        return self.run(context, armature)

    def run(self, context, armature: bpy.types.Object) -> set[str]:
        raise NotImplementedError
