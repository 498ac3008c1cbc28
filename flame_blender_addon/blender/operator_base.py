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


def heads_in_reach(context: bpy.types.Context) -> list[bpy.types.Object]:
    """The active object's head, else the scene's heads (what a poll can know of ``target``)."""
    active = head.find_head(context.active_object)
    return [active] if active is not None else head.scene_heads(context.scene)


def poll_head(cls: type, context: bpy.types.Context) -> bool:
    """The poll of every operator that acts on a head: the active object is one, or the scene has one
    (``target`` may name it; properties are unknown to a poll). Otherwise it says why it is greyed out."""
    if heads_in_reach(context):
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
        head.check_head(armature)
        for warning in head.repair_head(armature):
            self.report({"WARNING"}, warning)
        return self.run(context, armature)

    def run(self, context, armature: bpy.types.Object) -> set[str]:
        raise NotImplementedError


class ModalFileJob:
    """Mixin for operators that pick a file or folder in the file browser, then run a long job: from
    the UI, ``invoke`` opens the browser and the job then runs modally (``start_modal`` in
    ``execute``): TIMER events go to ``tick``, Esc to ``stop``, with a progress bar meanwhile. In
    background mode ``invoke`` runs ``execute``, which runs the job synchronously."""

    timer_seconds = 0.2
    _interactive = False  # set by invoke from the UI
    _job = None
    _timer = None

    def invoke(self, context, event):
        if not has_ui():
            return self.execute(context)
        self._interactive = True
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def start_modal(self, context: bpy.types.Context, job) -> set[str]:
        self._job = job
        wm = context.window_manager
        self._timer = wm.event_timer_add(self.timer_seconds, window=context.window)
        wm.progress_begin(0, 1000)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def end_modal(self, context: bpy.types.Context) -> None:
        wm = context.window_manager
        wm.event_timer_remove(self._timer)
        wm.progress_end()
        context.workspace.status_text_set(None)

    def show_progress(self, context: bpy.types.Context, fraction: float, status: str) -> None:
        context.window_manager.progress_update(int(1000 * min(max(fraction, 0.0), 1.0)))
        context.workspace.status_text_set(f"{status} (Esc to stop)")

    def modal(self, context, event):
        if event.type == "ESC":
            self.end_modal(context)
            return self.stop(context)
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        return self.tick(context)

    def tick(self, context) -> set[str]:
        """One timer event: advance the job; when it is done, ``end_modal`` and return its result."""
        raise NotImplementedError

    def stop(self, context) -> set[str]:
        """Esc: stop the job and say so."""
        raise NotImplementedError
