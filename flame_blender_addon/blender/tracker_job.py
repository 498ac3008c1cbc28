"""Run the external tracker process and read its JSON-lines protocol (no torch in Blender).

A :class:`TrackerJob` starts the process with an argv list (no shell), reads stdout in a thread
into a queue of :class:`~..core.tracker_protocol.Message`, keeps the last stderr lines for error
reports, and can be cancelled at any time (terminate, wait, kill, whole process group). Running
jobs are tracked so ``unregister`` and loading another file stop them.
"""

from __future__ import annotations

import collections
import os
import queue
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..core import tracker_protocol as protocol

ADDON_DIR = Path(__file__).resolve().parent.parent
_RUNNING: set[TrackerJob] = set()


def tracker_env() -> dict[str, str]:
    """The tracker's environment: unbuffered output, and this add-on's package importable."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ADDON_DIR.parent), env.get("PYTHONPATH")]))
    return env


def tracker_argv(python: str, *, model: str, source: str, output: str, device: str = "auto",
                 focal: float = 0.0, landmarks: str = "", embedding: str = "", photometric: str = "AUTO",
                 texture_space: str = "", uv: str = "", per_frame_light: bool = False) -> list[str]:
    """The command line of this add-on's own tracker, run as ``python -m <package>.tracking``.

    ``source`` may be empty when ``landmarks`` are given (no detection, no previews).
    ``photometric``: 'AUTO' (the tracker's default: on with CUDA), 'ON' or 'OFF'; ``per_frame_light``:
    the photometric stage fits one lighting per frame (not passed when the stage is off)."""
    argv = [python, "-m", f"{ADDON_DIR.name}.tracking", "track", "--model", model, "--output", output]
    if source:
        argv += ["--input", source]
    if device != "auto":
        argv += ["--device", device]
    if focal > 0:
        argv += ["--focal", repr(focal)]
    if landmarks:
        argv += ["--landmarks", landmarks]
    if embedding:
        argv += ["--embedding", embedding]
    if photometric != "AUTO":
        argv.append("--photometric" if photometric == "ON" else "--no-photometric")
    if per_frame_light and photometric != "OFF":
        argv.append("--per-frame-light")
    for flag, path in (("--texture-space", texture_space), ("--uv", uv)):
        if path:
            argv += [flag, path]
    return argv


def template_argv(template: str, *, model: str, source: str, output: str) -> list[str]:
    """A user's own tracker command from a template with ``{input}``, ``{output}``, ``{model}``."""
    try:
        return shlex.split(template.format(input=shlex.quote(source), output=shlex.quote(output),
                                           model=shlex.quote(model)))
    except (KeyError, IndexError, ValueError) as err:
        raise ValueError(f"tracker command template is not valid ({err}); use {{input}}, {{output}} "
                         "and {model}") from None


class TrackerJob:
    """One tracker process. ``messages()`` drains what it said so far (main thread only)."""

    def __init__(self, argv: list[str], output_dir: Path | None = None, stderr_lines: int = 40):
        self.argv, self.output_dir = argv, output_dir
        self.result: protocol.Message | None = None
        self.error: str = ""
        self.fraction = 0.0
        self.status = "starting"
        self.logs: list[str] = []
        self._queue: queue.Queue[protocol.Message] = queue.Queue()
        self._stderr: collections.deque[str] = collections.deque(maxlen=stderr_lines)
        flags = {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW} \
            if sys.platform == "win32" else {"start_new_session": True}
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, bufsize=1, env=tracker_env(), **flags)
        _RUNNING.add(self)
        self._threads = [threading.Thread(target=self._read_stdout, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for thread in self._threads:
            thread.start()

    def _read_stdout(self) -> None:
        for line in self.process.stdout:
            message = protocol.parse_line(line)
            if message is not None:
                self._queue.put(message)

    def _read_stderr(self) -> None:
        for line in self.process.stderr:
            self._stderr.append(line.rstrip())

    def messages(self) -> list[protocol.Message]:
        """Messages received since the last call; updates ``fraction``, ``status``, ``result``."""
        out = []
        while True:
            try:
                message = self._queue.get_nowait()
            except queue.Empty:
                return out
            if message.type == protocol.PROGRESS:
                self.fraction, self.status = message.fraction, message.message or message.stage
            elif message.type == protocol.RESULT:
                self.result = message
            elif message.type == protocol.ERROR:
                self.error = message.message
            else:
                self.logs.append(message.message)
            out.append(message)

    @property
    def finished(self) -> bool:
        """True once the process exited and its output was read completely."""
        return self.process.poll() is not None and not any(t.is_alive() for t in self._threads)

    def failure(self) -> str:
        """A report for a failed job: the error line, else the exit code, plus the log's tail."""
        code = self.process.returncode
        head = self.error or (f"the tracker stopped with exit code {code}" if code else "the tracker "
                              "finished without reporting a result")
        tail = [line for line in list(self._stderr)[-8:] if line.strip()] or self.logs[-4:]
        return head + ("\n" + "\n".join(tail) if tail else "")

    def succeeded(self) -> bool:
        return self.finished and self.process.returncode == 0 and self.result is not None and \
            Path(self.result.path).exists()

    def cancel(self, timeout: float = 5.0) -> None:
        """Stop the process and its children: terminate, wait, then kill."""
        if self.process.poll() is None:
            self._signal(signal.SIGTERM if sys.platform != "win32" else signal.CTRL_BREAK_EVENT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL if sys.platform != "win32" else signal.SIGTERM)
                self.process.wait(timeout)
        for thread in self._threads:
            thread.join(timeout)
        _RUNNING.discard(self)
        self.remove_staging()

    def remove_staging(self) -> None:
        """Delete the tracker's half-written staging folders (it cannot once killed)."""
        if self.output_dir is not None and self.output_dir.is_dir():
            for staging in self.output_dir.glob(protocol.TEMP_PREFIX + "*"):
                shutil.rmtree(staging, ignore_errors=True)

    def _signal(self, sig: int) -> None:
        try:
            if sys.platform == "win32":
                self.process.send_signal(sig)
            else:
                os.killpg(self.process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def wait(self, on_message: Callable[[protocol.Message], None] = lambda m: None,
             poll_seconds: float = 0.1) -> bool:
        """Block until the job ends (background mode, scripts); returns :meth:`succeeded`."""
        while not self.finished:
            for message in self.messages():
                on_message(message)
            time.sleep(poll_seconds)
        for message in self.messages():
            on_message(message)
        _RUNNING.discard(self)
        if not self.succeeded():
            self.remove_staging()
        return self.succeeded()


def cancel_all() -> None:
    """Stop every running job (``unregister``, loading another file)."""
    for job in list(_RUNNING):
        job.cancel()
