"""The command line's terminal: Blender's own output kept in a log, a progress bar, all-or-nothing outputs."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn, TextIO


class CliError(Exception):
    """A problem the user can act on: printed as one line, exit code 1."""


class Console:
    """The terminal's stdout/stderr, kept aside while Blender's C code prints into a log file."""

    def __init__(self, prog: str, verbose: bool) -> None:
        self.prog = prog
        sys.stdout.flush()
        sys.stderr.flush()
        self.out: TextIO = os.fdopen(os.dup(1), "w", buffering=1)
        self.err: TextIO = os.fdopen(os.dup(2), "w", buffering=1)
        self.log_path: Path | None = None
        if not verbose:
            fd, name = tempfile.mkstemp(prefix="flame_cli-", suffix=".log")
            self.log_path = Path(name)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.close(fd)

    def info(self, message: str) -> None:
        self.out.write(message + "\n")

    def error(self, message: str) -> None:
        self.err.write(f"{self.prog}: error: {message}\n")

    def close(self, keep_log: bool) -> None:
        """Restore the terminal; the log is deleted unless ``keep_log``."""
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self.out.fileno(), 1)
        os.dup2(self.err.fileno(), 2)
        if self.log_path is not None and not keep_log:
            self.log_path.unlink(missing_ok=True)


class OperatorOutput(io.TextIOBase):
    """What an operator prints while the CLI runs it (its own lines, such as the tracker's progress,
    then Blender's copy of its reports: ``Info: ...``, ``Warning: ...``, ``Error: ...``), passed on to
    the terminal line by line. The error, and any line after it, is dropped: it comes back as the
    operator's exception and the CLI prints it once."""

    def __init__(self, console: Console) -> None:
        self.console, self.pending, self.failed = console, "", False

    def write(self, text: str) -> int:
        *lines, self.pending = (self.pending + text).split("\n")
        for line in lines:
            self.failed = self.failed or line.startswith("Error: ")
            if not self.failed:
                self.console.info("warning: " + line.removeprefix("Warning: ") if line.startswith("Warning: ")
                                  else line.removeprefix("Info: "))
        return len(text)


class ProgressBar:
    """``label [#######.......]  45%  frame 57  eta 12 s`` on one line (a line per 10% when piped)."""

    WIDTH = 28

    def __init__(self, console: Console, label: str, message_width: int = 24) -> None:
        self.console, self.label, self.message_width = console, label, message_width
        self.started, self.shown = time.monotonic(), -1
        self.tty = console.out.isatty()

    def __call__(self, fraction: float, message: str = "") -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        step = int(fraction * 10)
        if not self.tty and step == self.shown and fraction < 1.0:
            return
        self.shown = step
        elapsed = time.monotonic() - self.started
        eta = f"{elapsed * (1.0 - fraction) / fraction:4.0f} s" if fraction > 0 else "   ? s"
        filled = int(self.WIDTH * fraction)
        line = (f"{self.label} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {100 * fraction:3.0f}%  "
                f"{message:<{self.message_width}.{self.message_width}}  eta {eta}")
        end = "\n" if fraction >= 1.0 or not self.tty else ""
        self.console.out.write(("\r" if self.tty else "") + line + end)
        self.console.out.flush()

    def note(self, message: str) -> None:
        """A line of its own above the bar (the bar is drawn again at its next update)."""
        self.console.out.write(("\r\x1b[2K" if self.tty else "") + message + "\n")


@contextlib.contextmanager
def staged_output(folder: Path) -> Iterator[Path]:
    """A staging folder inside ``folder``; its entries replace those in ``folder`` only if the block
    succeeds. On failure the staging folder (and ``folder``, if this created it) is removed."""
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=".flame-cli-", dir=folder))
    except OSError as err:
        raise CliError(f"{folder}: cannot write there ({err.strerror or err})") from None
    try:
        yield stage
        for item in stage.iterdir():
            target = folder / item.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(item, target)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        if created:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    stage.rmdir()


def leave(code: int) -> NoReturn:
    """Exit without the bpy module's interpreter shutdown, which can hang or crash after rendering
    (a static destructor waits on a thread), and remove Blender's session temp folder it would have."""
    sys.stdout.flush()
    sys.stderr.flush()
    bpy = sys.modules.get("bpy")
    if bpy is not None and not bpy.app.binary_path:
        tempdir = Path(bpy.app.tempdir)
        if tempdir.name.startswith("blender_"):
            shutil.rmtree(tempdir, ignore_errors=True)
        os._exit(code)
    sys.exit(code)
