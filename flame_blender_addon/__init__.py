"""FLAME heads in Blender: build from the user's model file, import tracked sequences, export.

This file only delegates to :mod:`.blender.registration`, importing Blender lazily, so that
``python -m flame_blender_addon.tracking`` and the numpy ``core`` run where ``bpy`` is absent.
"""


def register() -> None:
    from .blender import registration

    registration.register()


def unregister() -> None:
    from .blender import registration

    registration.unregister()
