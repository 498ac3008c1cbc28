"""Progress in Blender's UI (window-manager progress + status text), harmless in background mode."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import bpy

Report = Callable[[float, str], None]
"""A progress callback: ``report(fraction in [0, 1], message)``."""


@contextlib.contextmanager
def progress(context: bpy.types.Context, label: str) -> Iterator[Report]:
    """Yield ``report(fraction, message)``; shows a progress bar and status-bar text meanwhile."""
    wm = context.window_manager
    workspace = getattr(context, "workspace", None)
    wm.progress_begin(0, 1000)

    def report(fraction: float, message: str = "") -> None:
        wm.progress_update(int(1000 * min(max(fraction, 0.0), 1.0)))
        if workspace is not None and not bpy.app.background:
            workspace.status_text_set(f"{label}: {message}" if message else label)

    try:
        yield report
    finally:
        wm.progress_end()
        if workspace is not None and not bpy.app.background:
            workspace.status_text_set(None)
