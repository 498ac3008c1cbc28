"""Every Blender-version switch of the add-on, in one place (4.2 LTS .. 5.2 LTS).

- Actions: 4.2/4.3 keep F-curves on ``Action.fcurves``; 4.4 introduced slotted (layered) actions,
  and 5.0 removed ``Action.fcurves``, so 4.4+ goes through slot -> layer -> strip -> channelbag.
- Render engine id of Eevee: ``BLENDER_EEVEE_NEXT`` on 4.2-4.5, ``BLENDER_EEVEE`` from 5.0.
- Video output: 5.0 first switches ``ImageFormatSettings.media_type`` to 'VIDEO'.
- Sequencer strips: ``SequenceEditor.strips`` from 4.4, ``sequences`` before; a strip's length is
  ``duration`` from 5.1 (``frame_final_duration`` deprecated).
- Node trees of materials and worlds: always on from 5.0 (``use_nodes`` deprecated), opt-in before.

5.1 and 5.2 need only the strip-length switch: the other types, enum items and operator arguments the
add-on uses are unchanged from 5.0 (their API change logs and RNA compared). 5.1 deprecates ``Strip.frame_start``
and ``frame_duration`` (removal in 6.0); the add-on uses neither, and the tests turn any deprecation
warning raised from the add-on into a failure. From 5.1 Blender runs Python 3.13 with numpy 2.
"""

from __future__ import annotations

from collections.abc import Iterator

import bpy

SLOTTED_ACTIONS = bpy.app.version >= (4, 4, 0)
EEVEE_ENGINE = "BLENDER_EEVEE" if bpy.app.version >= (5, 0, 0) else "BLENDER_EEVEE_NEXT"


def new_action(owner: bpy.types.ID, name: str) -> tuple[bpy.types.Action, bpy.types.bpy_prop_collection]:
    """Create an action, assign it to ``owner`` (an Object, Key, Camera... ID) and return it with
    the collection on which ``.new(data_path, index=i)`` creates its F-curves."""
    action = bpy.data.actions.new(name)
    anim = owner.animation_data or owner.animation_data_create()
    if not SLOTTED_ACTIONS:
        anim.action = action
        return action, action.fcurves
    slot = action.slots.new(id_type=owner.id_type, name=owner.name)
    strip = action.layers.new("Layer").strips.new(type="KEYFRAME")
    channelbag = strip.channelbag(slot, ensure=True)
    anim.action = action
    anim.action_slot = slot
    return action, channelbag.fcurves


def action_of(owner: bpy.types.ID | None) -> bpy.types.Action | None:
    """The action on ``owner`` (None: no owner, no animation data or no action)."""
    return owner.animation_data.action if owner is not None and owner.animation_data else None


def assign_action(owner: bpy.types.ID, action: bpy.types.Action | None) -> None:
    """Put ``action`` on ``owner`` (None takes it off); on 4.4+ with the action's slot for it, which
    :func:`new_action` made first."""
    if action is None:
        if owner.animation_data:
            owner.animation_data.action = None
        return
    anim = owner.animation_data or owner.animation_data_create()
    anim.action = action
    if SLOTTED_ACTIONS and anim.action_slot is None and len(action.slots):
        anim.action_slot = action.slots[0]


def action_fcurves(action: bpy.types.Action) -> Iterator[bpy.types.FCurve]:
    """All F-curves of an action, whatever the Blender version."""
    if not SLOTTED_ACTIONS:
        yield from action.fcurves
        return
    for layer in action.layers:
        for strip in layer.strips:
            for channelbag in strip.channelbags:
                yield from channelbag.fcurves


def set_video_output(image_settings: bpy.types.ImageFormatSettings) -> None:
    """Make render output an FFmpeg video."""
    if hasattr(image_settings, "media_type"):
        image_settings.media_type = "VIDEO"
    image_settings.file_format = "FFMPEG"


def sequencer_strips(editor: bpy.types.SequenceEditor) -> bpy.types.bpy_prop_collection:
    """The top-level strips of a sequence editor."""
    return editor.strips if hasattr(editor, "strips") else editor.sequences


def strip_duration(strip: bpy.types.Strip) -> int:
    """A strip's length in frames between its handles (``duration`` from 5.1, which deprecates
    ``frame_final_duration``)."""
    return strip.duration if bpy.app.version >= (5, 1, 0) else strip.frame_final_duration


def use_nodes(idblock: bpy.types.ID) -> None:
    """Give a material or world its node tree (5.0 always has one and deprecates ``use_nodes``)."""
    if bpy.app.version < (5, 0, 0):
        idblock.use_nodes = True
