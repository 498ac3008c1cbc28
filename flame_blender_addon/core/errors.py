"""Errors a user can act on. Operators turn them into reports; the CLI into one line and exit 1."""


class FlameError(Exception):
    """Base class: the message is shown to the user as it is."""


class UnsafePickleError(FlameError):
    """A pickle asked for a class or function outside the allowlist; nothing was executed."""


class ModelLoadError(FlameError):
    """A FLAME model file is missing, unreadable or has wrong keys or shapes."""


class SequenceError(FlameError):
    """A tracked sequence is missing, unreadable or inconsistent."""


class TrackerError(FlameError):
    """The tracking process failed or was given bad input."""


class RetargetError(FlameError):
    """A character cannot be fitted, bound or retargeted (bad mesh, no fit yet, bad keys or take)."""
