"""The tracking job: model and embedding -> landmarks -> fit -> staged outputs (torch).

:func:`run` reports through ``emit`` (protocol messages, see :mod:`..core.tracker_protocol`) and raises
:class:`~..core.errors.TrackerError` (or ModelLoadError) with a message for the user.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core import camera, lbs
from ..core import tracker_protocol as protocol
from ..core.errors import FlameError, TrackerError
from ..core.limits import FPS_RANGE, IMAGE_SIDE
from ..core.model import FlameModel, load_model
from ..core.rotations import axis_angle_to_matrix
from ..demo import head as demo_head
from ..demo.embedding import demo_embedding_arrays
from . import detection_process, media, outputs, photometric_stage, preview, solver
from . import landmark_model as lm
from . import landmarks as lmk

Emit = Callable[[dict[str, Any]], None]
# OpenCV camera of the fit: at the origin looking along FLAME's -Z (landmark_model's projection)
CAM_R = np.diag([1.0, -1.0, -1.0])
DEFAULT_FPS = 25.0
DEMO_MODEL = "demo"  # --model demo: demo.head, with demo.embedding unless --embedding is given


@dataclass(frozen=True)
class Options:
    """Command-line options of ``track`` (see :mod:`.__main__`)."""

    model: Path
    output: Path
    input: Path | None = None
    device: str = "cpu"
    focal: float | None = None
    landmarks: Path | None = None
    embedding: Path | None = None
    n_shape: int = 100
    n_expr: int = 100
    fps: float | None = None
    previews: int = 12
    trim: media.Trim = field(default_factory=media.Trim)
    write_frames: bool = True
    settings: solver.FitSettings = field(default_factory=solver.FitSettings)
    photometric: photometric_stage.Options = field(default_factory=photometric_stage.Options)


class Reporter:
    """Maps stage-local fractions to the job's monotone progress and emits messages."""

    SPANS = {"load": (0.0, 0.05), "read": (0.05, 0.1), "detect": (0.1, 0.6), "fit": (0.6, 0.92),
             "write": (0.92, 1.0)}

    def __init__(self, emit: Emit, detecting: bool, photometric: bool = False) -> None:
        self.emit = emit
        self.spans = dict(self.SPANS) if detecting else {**self.SPANS, "detect": (0.1, 0.1), "fit": (0.1, 0.92)}
        if photometric:  # the landmark fit gets the first fifth of its span, the photometric stage the rest
            a, b = self.spans["fit"]
            self.spans["fit"], self.spans["photometric"] = (a, a + 0.2 * (b - a)), (a + 0.2 * (b - a), b)

    def __call__(self, stage: str, fraction: float, message: str = "") -> None:
        a, b = self.spans[stage]
        self.emit(protocol.progress(stage, a + (b - a) * min(1.0, max(0.0, fraction)), message))

    def log(self, message: str, level: str = "info") -> None:
        self.emit(protocol.log(message, level))


def is_demo(opts: Options) -> bool:
    return str(opts.model) == DEMO_MODEL


def load_flame(opts: Options) -> FlameModel:
    """The --model file, or the procedural demo head for ``--model demo`` (only the identity
    components the fit uses are built)."""
    return demo_head.demo_model(n_shape=opts.n_shape) if is_demo(opts) else load_model(opts.model)


def resolve_embedding(opts: Options, model: FlameModel, report: Reporter) -> lmk.Embedding:
    """The --embedding file, else the demo head's own (``--model demo``) or one stored in the model
    file, else an error saying what to pass."""
    if opts.embedding is not None:
        embedding = lmk.load_embedding(opts.embedding)
    elif is_demo(opts):
        embedding = lmk.embedding_from_arrays(demo_embedding_arrays(), "the demo head's MediaPipe embedding")
    else:
        embedding = lmk.embedding_in_model_file(opts.model)
        if embedding is None:
            raise TrackerError(
                f"no landmark embedding for {model.name}: pass --embedding with a file in metrical-tracker's "
                "mediapipe_landmark_embedding.npz schema (lmk_face_idx, lmk_b_coords, landmark_indices) for "
                "your FLAME model, or use a model .npz that stores those keys")
    lmk.check_embedding(embedding, model)
    with_iris = lmk.with_irises(embedding, model)
    if len(with_iris) > len(embedding):
        report.log("eye gaze from the MediaPipe irises (FLAME eyeball vertices)")
    elif embedding.points is not None and not np.isin(lmk.IRIS_POINTS, embedding.points).any():
        report.log("no iris landmarks for this model: eyes stay looking ahead", "warning")
    return with_iris


def read_landmarks(opts: Options, detection: detection_process.Detection | None,
                   report: Reporter) -> tuple[lmk.Track, np.ndarray]:
    """Precomputed landmarks trimmed by ``opts.trim``, or those of the detection process (which
    trimmed the source). Returns the track and the source frame number of each of its frames, (T,) int64."""
    if detection is not None:
        return detection.track(report)
    track = lmk.load_track(opts.landmarks)
    kept = opts.trim.indices(track.n_frames)
    if not len(kept):
        raise TrackerError(f"{opts.landmarks.name}: --start/--end/--step keep none of its {track.n_frames} frames")
    report("read", 1.0, f"{len(kept)} frames of landmarks")
    return lmk.Track(track.points[kept], track.conf[kept], track.image_size, track.fps), kept


def device_of(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise TrackerError("--device cuda was asked for, but this torch has no usable CUDA GPU; use --device cpu")
    if name not in ("cpu", "cuda"):
        raise TrackerError(f"--device must be cpu or cuda, not {name!r}")
    return torch.device(name)


def sequence_arrays(fit: solver.FitResult, track: lmk.Track, fps: float, n_expr: int, source_frames: np.ndarray,
                    source_path: str) -> dict[str, np.ndarray]:
    """The ``flame_sequence.npz`` arrays (core.sequence's schema, VHAP key names) of a fit.

    The world is FLAME space with the head's mean position at the origin; the fixed OpenCV camera
    (``cam_R``, ``cam_t``) looks at it from +Z. Neck and eyelids are zero (head motion is in the root).
    Extra keys: ``face_found`` (T,) bool, ``face_confidence`` (T,) MediaPipe's (:mod:`.detect`: 1 where
    the face mesh followed the face), ``landmark_error_px`` (T,) mean distance of fitted and detected
    landmarks (NaN without a face),
    ``source_frames`` (T,) int64 the input's frame number of each frame, ``source_path`` () str the
    input (absolute; empty for landmarks without footage).
    """
    has_face = track.face_found()
    image_size = track.image_size
    f = fit.frames
    T = len(f)
    centre = fit.translation[has_face].mean(axis=0)
    H, W = image_size
    K = np.array([[fit.focal, 0.0, W / 2], [0.0, fit.focal, H / 2], [0.0, 0.0, 1.0]])
    arrays = {
        "shape": fit.beta, "expr": f[:, lm.N_POSE:lm.N_POSE + n_expr], "rotation": f[:, lm.ROT],
        "neck_pose": np.zeros((T, 3)), "jaw_pose": f[:, lm.JAW],
        "eyes_pose": np.concatenate([f[:, lm.EYE_L], f[:, lm.EYE_R]], axis=1),
        "translation": fit.translation - centre, "eyelids": np.zeros((T, 2)), "fps": np.array(fps),
        "frame_ids": np.arange(T), "K": K, "cam_R": CAM_R, "cam_t": CAM_R @ centre,
        "image_size": np.array(image_size), "face_found": has_face, "face_confidence": track.conf.max(axis=1),
        "landmark_error_px": fit.error_px, "source_frames": source_frames,
    }
    ints = ("frame_ids", "image_size", "source_frames")
    out = {k: np.array(v, dtype=np.int64 if k in ints else bool if k == "face_found" else np.float64, order="C")
           for k, v in arrays.items()}
    out["source_path"] = np.array(source_path)
    return out


def landmark_arrays(track: lmk.Track, embedding: lmk.Embedding, fps: float,
                    source_frames: np.ndarray) -> dict[str, np.ndarray]:
    """The ``landmarks.npz`` arrays: the detections the fit used, in embedding order.

    ``lmk`` (T, L, 2) pixels (NaN where missing), ``conf`` (T, L), ``mp_index`` (L,) the MediaPipe
    point of each row (-1 when unknown), ``face_idx`` (L,) and ``bary`` (L, 3) the embedding on the
    model's triangles, ``image_size`` [H, W], ``fps`` and ``source_frames`` (T,) as in the sequence.
    It is also a valid ``--landmarks`` file for the same model and embedding.
    """
    mp_index = embedding.points if embedding.points is not None else np.full(len(embedding), -1)
    return {"lmk": track.points.astype(np.float64), "conf": track.conf.astype(np.float64),
            "mp_index": mp_index.astype(np.int64), "face_idx": embedding.face_idx.astype(np.int64),
            "bary": embedding.bary.astype(np.float64), "image_size": np.array(track.image_size, dtype=np.int64),
            "fps": np.array(float(fps)), "source_frames": source_frames.astype(np.int64)}


def posed_vertices(model: FlameModel, arrays: dict[str, np.ndarray], frames: np.ndarray) -> np.ndarray:
    """World-space vertices (N, V, 3) of the selected frames of a flame_sequence array dict."""
    aa = np.concatenate([arrays["rotation"][frames], arrays["neck_pose"][frames], arrays["jaw_pose"][frames],
                         arrays["eyes_pose"][frames]], axis=1).reshape(-1, 5, 3)
    S, E = len(arrays["shape"]), arrays["expr"].shape[1]
    return lbs.forward(model.truncated(S, E), arrays["shape"], arrays["expr"][frames], axis_angle_to_matrix(aa),
                       arrays["translation"][frames]).vertices


def write_previews(folder: Path, source: media.Source, source_frames: np.ndarray, model: FlameModel,
                   arrays: dict[str, np.ndarray], track: lmk.Track, fitted_uv: np.ndarray, count: int) -> int:
    """``count`` evenly spaced frames as PNG (:func:`.preview.side_by_side`), named by sequence frame;
    ``source_frames`` (T,) are the frame numbers in ``source`` of the sequence's frames. Returns how
    many were written."""
    T = len(arrays["expr"])
    chosen = np.unique(np.linspace(0, T - 1, min(count, T)).round().astype(int))
    verts = posed_vertices(model, arrays, chosen)
    by_source = dict(zip(source_frames[chosen].tolist(), range(len(chosen)), strict=True))
    folder.mkdir()

    def write(frame: tuple[int, np.ndarray]) -> None:
        index, rgb = frame
        k = by_source[index]
        t = chosen[k]
        cam = verts[k] @ arrays["cam_R"].T + arrays["cam_t"]
        uv = camera.project_opencv(verts[k], arrays["K"], arrays["cam_R"], arrays["cam_t"])
        img = preview.side_by_side(rgb, track.points[t], fitted_uv[t], uv, cam, model.faces)
        (folder / f"{t:05d}.png").write_bytes(media.png_bytes(img))

    # two at a time: numpy's array work and zlib release the GIL, and the second core is idle by now
    with ThreadPoolExecutor(max_workers=2) as pool:
        return len(list(pool.map(write, media.frames(source, only=by_source))))


def write_checkpoints(stage: Path, npz: Path, model: FlameModel, report: Reporter,
                      extra: photometric_stage.Outputs | None = None) -> Path | None:
    """metrical-tracker ``checkpoint/*.frame`` files through core.formats, read back from the npz, with
    the photometric stage's leaves (``extra``) when it ran."""
    try:
        from ..core.formats.metrical import write_metrical_checkpoints
        from ..core.formats.npz import read_flame_npz
    except ImportError:
        report.log("metrical-tracker checkpoints skipped: core.formats has no checkpoint writer", "warning")
        return None
    try:
        for warning in write_metrical_checkpoints(
                stage, read_flame_npz(npz), model, extra_flame=extra and extra.checkpoint_keys,
                sh=extra and extra.sh):
            report.log(warning, "warning")
    except FlameError as err:
        report.log(f"metrical-tracker checkpoints skipped: {err}", "warning")
        return None
    return stage / protocol.CHECKPOINT_DIR


# Room the results need: the npz and checkpoints (~4 KB a frame) and the preview PNGs (~1 MB each).
BYTES_PER_FRAME, BYTES_PER_PREVIEW = 4096, 1 << 20


def check_inputs(track: lmk.Track, fps: float, where: Path | None) -> None:
    """The frame rate and image size the result will carry must be importable (see core.limits)."""
    low, high = FPS_RANGE
    if not low <= fps <= high:
        raise TrackerError(f"{where}: a frame rate of {fps:g} fps cannot be imported (expected {low:g} to {high:g}); "
                           "pass --fps")
    low, high = IMAGE_SIDE
    if not all(low <= side <= high for side in track.image_size):
        raise TrackerError(f"{where}: images of {track.image_size[1]} x {track.image_size[0]} pixels; expected "
                           f"{low} to {high} per side")


def run(opts: Options, emit: Emit, started: detection_process.Started | None = None) -> dict[str, Any]:
    """Track; returns (and emits) the result message. Inputs and the output folder are checked before
    anything slow runs; results are staged (:class:`.outputs.Staging`) and moved into place at the end.
    ``started``: the job's staging folder and detection process, started early by ``__main__`` for
    ``opts`` (the caller leaves it); by default they are started here."""
    if started is not None:
        return _run(opts, emit, started)
    with detection_process.start(opts.output, opts.input, opts.landmarks, opts.trim, opts.write_frames) as started:
        return _run(opts, emit, started)


def _run(opts: Options, emit: Emit, started: detection_process.Started) -> dict[str, Any]:
    began = time.perf_counter()
    device = device_of(opts.device)
    photometric = opts.photometric.active(device)
    if photometric and opts.input is None:
        if opts.photometric.enabled:
            raise TrackerError("the photometric stage needs the video: give --input with --landmarks")
        photometric = False
    report = Reporter(emit, detecting=opts.landmarks is None, photometric=photometric)
    report("load", 0.0, "loading the model")
    model = load_flame(opts)
    for warning in model.warnings:
        report.log(f"{model.name}: {warning}", "warning")
    embedding = resolve_embedding(opts, model, report)
    n_shape, n_expr = min(opts.n_shape, model.n_shape), min(opts.n_expr, model.n_expr)
    source = media.open_source(opts.input) if opts.input is not None else None
    report("load", 1.0, f"{model.name}: fitting {n_shape} identity and {n_expr} expression components")

    stage, frames_dir = started.stage, started.frames_dir
    track, source_frames = read_landmarks(opts, started.detection, report)
    fps = (opts.fps or track.fps or (source.fps if source else None) or DEFAULT_FPS) / opts.trim.step
    check_inputs(track, fps, opts.input if opts.landmarks is None else opts.landmarks)
    outputs.check_free_space(opts.output, track.n_frames * BYTES_PER_FRAME + opts.previews * BYTES_PER_PREVIEW)
    points = lmk.select(track, embedding)
    has_face = points.face_found()
    if not has_face.any():
        where = opts.input if opts.landmarks is None else opts.landmarks
        raise TrackerError(f"{where}: no face found in any of its {track.n_frames} frames")
    gaps = lmk.runs(~has_face)
    if gaps:
        text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in gaps[:20]) + (" ..." if len(gaps) > 20 else "")
        report.log(f"no face in {int((~has_face).sum())} of {len(has_face)} frames ({text}); "
                   f"bridged from the neighbouring frames", "warning")

    report("fit", 0.0, f"fitting {track.n_frames} frames on {device.type}")
    fit_started = time.perf_counter()
    basis = lm.build_basis(model, embedding.face_idx, embedding.bary, n_shape, n_expr, device=device)
    problem = solver.make_problem(basis, points.points, points.conf, track.image_size, opts.focal, opts.settings,
                                  lmk.roles(embedding))
    fit = solver.fit(problem, lambda fraction, message: report("fit", fraction, message))
    fit_seconds = time.perf_counter() - fit_started
    report.log(f"fitted {track.n_frames} frames in {fit_seconds:.2f} s ({track.n_frames / fit_seconds:.0f} frames/s); "
               f"mean landmark error {np.nanmean(fit.error_px):.2f} px; focal {fit.focal:.0f} px"
               + ("" if opts.focal else " (estimated)") + f"; largest |identity| {np.abs(fit.beta).max():.2f}")

    extra = None
    if photometric:  # analysis by synthesis: texture, lighting and a dense refinement of the fit
        fit, extra = photometric_stage.run(
            opts.photometric, model, is_demo(opts),
            (rgb for _, rgb in media.frames(source, only=set(source_frames.tolist()))), embedding, points, fit,
            problem, n_shape, n_expr, device, lambda fraction, message: report("photometric", fraction, message))
        rate = track.n_frames / extra.seconds
        report.log(f"photometric stage: {track.n_frames} frames in {extra.seconds:.1f} s ({rate:.2f} frames/s); "
                   f"mean landmark error {np.nanmean(fit.error_px):.2f} px")
        if extra.warning:
            report.log(extra.warning, "warning")

    report("write", 0.0, "writing outputs")
    source_path = str(opts.input.resolve()) if opts.input is not None else ""
    arrays = sequence_arrays(fit, points, fps, n_expr, source_frames, source_path)
    try:
        staged_npz = stage.path / protocol.SEQUENCE_FILE
        outputs.write_npz(staged_npz, {**arrays, **(extra.arrays if extra else {})})
        if extra:
            (stage.path / protocol.ALBEDO_FILE).write_bytes(extra.albedo_png)
        outputs.write_npz(stage.path / protocol.LANDMARKS_FILE, landmark_arrays(points, embedding, fps, source_frames))
        checkpoint = write_checkpoints(stage.path, staged_npz, model, report, extra)
        report("write", 0.4, "previews")
        previews = 0
        if source is not None and opts.previews > 0:  # from the frames written, if any: no second decoding
            footage, numbers = ((media.open_source(frames_dir), np.arange(len(source_frames))) if frames_dir
                                else (source, source_frames))
            previews = write_previews(stage.path / protocol.PREVIEW_DIR, footage, numbers, model, arrays, points,
                                      fit.uv, opts.previews)
        final = stage.commit()
    except OSError as err:
        raise outputs.write_error(err, opts.output) from None
    folder = lambda name, present: str((opts.output / name).resolve()) if present else None  # noqa: E731
    message = protocol.result(
        str(final.resolve()), output_dir=str(opts.output.resolve()), frames=int(track.n_frames),
        frames_without_face=int((~has_face).sum()), fps=float(fps), focal=float(fit.focal),
        landmark_error_px=float(np.nanmean(fit.error_px)), fit_seconds=round(fit_seconds, 3),
        seconds=round(time.perf_counter() - began, 3),
        checkpoint_dir=folder(protocol.CHECKPOINT_DIR, checkpoint), preview_dir=folder(protocol.PREVIEW_DIR, previews),
        frames_dir=folder(protocol.FRAMES_DIR, frames_dir is not None),
        landmarks_path=folder(protocol.LANDMARKS_FILE, True),
        albedo_path=folder(protocol.ALBEDO_FILE, extra is not None))
    report("write", 1.0, "done")
    emit(message)
    return message
