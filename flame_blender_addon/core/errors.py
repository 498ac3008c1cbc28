"""Errors a user can act on. Operators turn them into reports; the CLI into one line and exit 1.

Every failure of a loader is a :class:`FlameError` whose message is one line naming the file, the
key and what is wrong. :func:`guarded` wraps the public loaders so that nothing else escapes: a
failure nobody foresaw becomes :class:`InternalError` ("internal error in <file>: ...") and its
traceback goes to the log.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger("flame_blender_addon")


class FlameError(Exception):
    """Base class: the message is shown to the user as it is, always on one line."""

    def __init__(self, message: Any = "") -> None:
        text = str(message)
        super().__init__(text.replace("\r", "\\r").replace("\n", "\\n"))


class UnsafePickleError(FlameError):
    """A pickle asked for a class, function or operation outside the allowlist; nothing was executed."""


class ModelLoadError(FlameError):
    """A FLAME model file is missing, unreadable or has wrong keys or shapes."""


class SequenceError(FlameError):
    """A tracked sequence is missing, unreadable or inconsistent."""


class IdentityError(FlameError):
    """An identity file or mesh cannot give the head's shape coefficients (wrong size, vertices or units)."""


class TrackerError(FlameError):
    """The tracking process failed or was given bad input."""


class FileFormatError(FlameError):
    """A file is damaged or is not the format its name says (truncated, wrong header, bad zip)."""


class FileAccessError(FlameError):
    """A file is missing or unreadable, not a regular file (FIFO, device, folder), or a link leaving
    the folder the user chose."""


class LimitError(FlameError):
    """A file exceeds a safety limit (size, element count, nesting); nothing that large was allocated."""


class InternalError(FlameError):
    """A failure that no check foresaw: a bug to report, with the traceback in the log."""


class AssetError(FlameError):
    """A file of the FLAME ecosystem beside the model (masks, template UVs, landmark embedding) is unreadable
    or does not fit the head (another topology, wrong vertex count, missing keys)."""


class RetargetError(FlameError):
    """A character cannot be fitted, bound or retargeted (bad mesh, no fit yet, bad keys or take)."""


def clipped(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending in '...' where it was cut (file data in messages)."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


F = TypeVar("F", bound=Callable[..., Any])


def guarded(func: F) -> F:
    """Let only FlameError out of ``func(path, ...)``: the unforeseen becomes InternalError naming the file.

    MemoryError is foreseeable (a large file on a small machine) and becomes LimitError.
    """

    @functools.wraps(func)
    def wrapper(path: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return func(path, *args, **kwargs)
        except FlameError:
            raise
        except MemoryError:
            raise LimitError(f"{_name(path)}: not enough memory to read it") from None
        except Exception as err:  # the guard itself: nothing but FlameError leaves a loader
            log.exception("internal error in %s (%s)", _name(path), func.__qualname__)
            raise InternalError(f"internal error in {_name(path)}: {type(err).__name__}: {err} "
                                "(please report this; the traceback is in the console)") from err

    return wrapper  # type: ignore[return-value]


def _name(path: Any) -> str:
    try:
        return Path(path).name or str(path)
    except TypeError:
        return repr(path)
