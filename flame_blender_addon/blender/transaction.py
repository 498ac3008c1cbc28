"""All-or-nothing scene edits: a failed import leaves no half-built datablocks behind."""

from __future__ import annotations

import contextlib
from typing import Iterator

import bpy

# The ID collections an import can add to; new members are removed if the block fails.
_COLLECTIONS = ("objects", "meshes", "armatures", "shape_keys", "actions", "cameras", "images",
                "collections", "materials", "node_groups", "movieclips")


def _snapshot() -> dict[str, set[int]]:
    return {name: {id_.as_pointer() for id_ in getattr(bpy.data, name)} for name in _COLLECTIONS}


@contextlib.contextmanager
def rollback_on_error(context: bpy.types.Context) -> Iterator[None]:
    """Run a block that creates datablocks; if it raises, delete every datablock it created,
    restore the active object, selection and mode, and re-raise."""
    before = _snapshot()
    active = context.view_layer.objects.active
    selected = [o for o in context.view_layer.objects if o.select_get()]
    try:
        yield
    except BaseException:
        if context.object is not None and context.object.mode != "OBJECT":
            bpy.ops.object.mode_set(mode="OBJECT")
        created = [id_ for name in _COLLECTIONS for id_ in getattr(bpy.data, name)
                   if id_.as_pointer() not in before[name]]
        bpy.data.batch_remove(created)
        for obj in context.view_layer.objects:
            obj.select_set(obj in selected)
        context.view_layer.objects.active = active
        raise


@contextlib.contextmanager
def active_in_mode(context: bpy.types.Context, obj: bpy.types.Object, mode: str) -> Iterator[None]:
    """Make ``obj`` active in ``mode`` for the block, then restore the previous active object and mode."""
    previous = context.view_layer.objects.active
    previous_mode = previous.mode if previous is not None else "OBJECT"
    if previous is not None and previous_mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode=mode)
    try:
        yield
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
        context.view_layer.objects.active = previous
        if previous is not None and previous_mode != "OBJECT":
            bpy.ops.object.mode_set(mode=previous_mode)
