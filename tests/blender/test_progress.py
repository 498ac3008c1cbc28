"""The progress context manager drives the window manager and always ends the bar."""

from unittest.mock import MagicMock

import pytest

from flame_blender_addon.blender.progress import progress


def test_reports_clamped_fractions_and_ends_on_error():
    context = MagicMock()
    with pytest.raises(ValueError), progress(context, "Building") as report:
        report(0.5, "shape keys")
        report(1.7)
        raise ValueError("boom")
    wm = context.window_manager
    wm.progress_begin.assert_called_once_with(0, 1000)
    assert [c.args for c in wm.progress_update.call_args_list] == [(500,), (1000,)]
    wm.progress_end.assert_called_once()
