"""Scheduling the clips' stages on Ray: the only module that imports ``ray``.

With no address, a local Ray runtime is started with ``workers`` CPUs (one clip per CPU at a time);
``address="auto"`` or ``"ray://host:10001"`` joins a running cluster, to which the add-on's package is
shipped (``py_modules``); the output folder must then be on a filesystem every node can write.
Tracking tasks ask for ``gpus_per_track`` GPUs when the cluster has any (else they run on the CPU).
A task whose worker dies, or whose child process is killed, is retried up to ``retries`` times; then
the clip is recorded as an ``error``. Ctrl-C cancels every task, removes their staging folders and
returns what had finished. The dashboard and usage statistics stay off (no network).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import FlameError
from . import layout
from .processes import PACKAGE_DIR, package_env
from .stages import ClipJob

POLL_SECONDS = 0.5


@dataclass(frozen=True)
class RaySettings:
    address: str | None = None  # None: a local runtime
    workers: int | None = None  # local runtime's CPUs (default: all)
    retries: int = 2
    gpus_per_track: float = 1.0


@dataclass(frozen=True)
class Outcome:
    """records: clip name -> record of the clips that ended or were cancelled; seconds: from the first
    task's submission to the end; ray_start_seconds: starting or joining Ray."""

    records: dict[str, dict[str, Any]]
    interrupted: bool
    seconds: float
    ray_start_seconds: float


@dataclass
class Progress:
    """What the progress line shows. frames: of clips finished in this run, for frames/s."""

    total: int
    done: int = 0
    failed: int = 0
    running: int = 0
    frames: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def ended(self) -> int:
        return self.done + self.failed

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        return (f"{self.ended}/{self.total} clips: {self.done} done, {self.failed} failed, {self.running} running, "
                f"{self.frames / elapsed:.1f} frames/s")


def import_ray():
    try:
        import ray
    except ImportError:
        raise FlameError("the batch command needs Ray in this Python: pip install 'flame-blender-addon[batch]' "
                         "(or pip install ray)") from None
    return ray


def start(ray, settings: RaySettings) -> None:
    """A local runtime, or a connection to ``settings.address`` (no dashboard, no usage statistics)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    quiet = {"logging_level": "ERROR", "log_to_driver": False}
    try:
        if settings.address:
            ray.init(address=settings.address, runtime_env={"py_modules": [str(PACKAGE_DIR)]}, **quiet)
        else:
            ray.init(num_cpus=settings.workers or os.cpu_count(), include_dashboard=False,
                     runtime_env={"env_vars": {"PYTHONPATH": package_env()["PYTHONPATH"]}}, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise FlameError(f"cannot start Ray{' at ' + settings.address if settings.address else ''}: {err}") from None


def _remote(ray, settings: RaySettings):
    """The track and build tasks, and the tracker's device."""

    def stage_task(package: str, stage: str, job: dict[str, Any], *args: Any) -> dict[str, Any]:
        """A stage in a Ray worker. A local function, so Ray sends it by value; it imports the stages by
        the package's folder name, so the same code runs when the add-on is an installed Blender
        extension (whose package name only Blender knows)."""
        import importlib

        stages = importlib.import_module(f"{package}.batch.stages")
        return getattr(stages, stage)(stages.ClipJob(**job), *args)

    gpus, device = tracker_resources(ray.cluster_resources(), settings.gpus_per_track)
    retry = {"max_retries": settings.retries, "retry_exceptions": True}
    track = ray.remote(num_cpus=1, num_gpus=gpus, **retry)(stage_task)
    build = ray.remote(num_cpus=1, **retry)(stage_task)
    return track, build, device


def tracker_resources(cluster: dict[str, float], gpus_per_track: float) -> tuple[float, str]:
    """(GPUs per tracking task, tracker device): ``gpus_per_track`` and cuda when the cluster has that
    many GPUs, else (0, cpu)."""
    on_gpu = 0 < gpus_per_track <= cluster.get("GPU", 0.0)
    return (gpus_per_track, "cuda") if on_gpu else (0.0, "cpu")


def _failure(err: Exception, retries: int) -> str:
    """One line for a task that Ray gave up on."""
    text = str(err).strip().splitlines()
    cause = next((line for line in reversed(text) if line.strip()), type(err).__name__)
    return f"gave up after {retries + 1} attempts: {type(err).__name__}: {cause.strip()}"[:400]


def run(jobs: list[ClipJob], settings: RaySettings, show: Callable[[Progress], None],
        ended: Callable[[dict[str, Any]], None]) -> Outcome:
    """Run every job. ``show`` gets the progress every poll, ``ended`` each clip's record as it ends."""
    ray = import_ray()
    package = PACKAGE_DIR.name
    records: dict[str, dict[str, Any]] = {}
    pending: dict[Any, tuple[ClipJob, str]] = {}
    started = time.monotonic()
    start(ray, settings)
    progress = Progress(len(jobs))

    def outcome(interrupted: bool) -> Outcome:
        return Outcome(records, interrupted, time.monotonic() - progress.started, progress.started - started)

    try:
        track, build, device = _remote(ray, settings)
        for job in jobs:
            layout.remove_staging(Path(job.out), job.name)  # left by a run that was killed
            if job.tracker is not None:
                pending[track.remote(package, "track", asdict(job), device)] = (job, "track")
            else:
                pending[build.remote(package, "build", asdict(job))] = (job, "build")
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=POLL_SECONDS)
            for ref in ready:
                job, stage = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as err:  # noqa: BLE001 - Ray's errors for dead workers and tasks it gave up on
                    result = job.finish(layout.ERROR, f"{stage}: {_failure(err, settings.retries)}")
                if result["status"] == "tracked":
                    pending[build.remote(package, "build", asdict(job), result)] = (job, "build")
                    continue
                records[job.name] = result
                progress.done += result["status"] == layout.DONE
                progress.failed += result["status"] != layout.DONE
                progress.frames += result.get("frames") or 0
                ended(result)
            progress.running = sum((layout.staging(Path(j.out), j.name) / layout.LOG).exists()
                                   for j, _ in pending.values())
            show(progress)
        return outcome(False)
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        ray.wait(list(pending), num_returns=len(pending), timeout=10)
        for job, _ in pending.values():
            layout.remove_staging(Path(job.out), job.name)
            committed = layout.previous(Path(job.out), job.name)  # ended just before Ctrl-C reached us?
            records[job.name] = committed if layout.is_finished(committed, job.fingerprint) else \
                job.record(layout.CANCELLED, "cancelled by Ctrl-C")
        return outcome(True)
    finally:
        ray.shutdown()
        sys.stdout.flush()
