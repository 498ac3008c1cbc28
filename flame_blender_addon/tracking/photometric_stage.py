"""The photometric stage inside the tracking job: its options, inputs (UVs, texture space, face
masks) and outputs (``albedo.png``, extra ``flame_sequence.npz`` keys, checkpoint keys).

Outputs beside the landmark fit's: ``albedo.png`` (the albedo texture on the model's UVs, row 0 at
v = 1) and, in ``flame_sequence.npz``, ``albedo`` (Rt, Rt, 3) float32 RGB, ``sh`` (9, 3) lighting
(:mod:`.sh`; OpenCV camera frame of the fit), ``vt`` (Nvt, 2) / ``ft`` (F, 3) the UVs the albedo
lives on, ``tex`` (n,) texture-space coefficients when a texture space was given, and
``photometric_error`` (T,) the mean colour residual of the face region per frame. With per-frame
lighting (``--per-frame-light``) ``sh`` is the clip's mean lighting and ``sh_frames`` (T, 9, 3)
holds each frame's. metrical-tracker checkpoints get ``flame.sh`` (1, 9, 3) in metrical-tracker's
convention (:func:`..core.formats.metrical.write_metrical_checkpoints`) and, with a texture space,
``flame.tex`` (1, n).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as Fn

from ..core.errors import TrackerError, guarded
from ..core.formats.masks import read_masks
from ..core.formats.template_obj import read_template_uvs
from ..core.formats.texture_space import read_texture_space
from ..core.model import FlameModel
from ..demo import surface as demo_surface
from . import mesh_model as mm
from . import photometric as ph
from . import solver
from .landmarks import Embedding, Track
from .media import png_bytes


@dataclass(frozen=True)
class Options:
    """``--photometric`` and its files. enabled: None = on when the fit runs on CUDA."""

    enabled: bool | None = None
    texture_space: Path | None = None
    uv: Path | None = None
    masks: Path | None = None
    n_tex: int = 50
    settings: ph.Settings = field(default_factory=ph.Settings)

    def active(self, device: torch.device) -> bool:
        return self.enabled if self.enabled is not None else device.type == "cuda"


@dataclass
class Outputs:
    """What the stage adds to the tracker's outputs."""

    arrays: dict[str, np.ndarray]
    checkpoint_keys: dict[str, np.ndarray]  # leaves of every checkpoint's ``flame`` dict
    sh: np.ndarray  # lighting (9, 3), or (T, 9, 3) per frame, camera frame: the checkpoints' ``flame.sh``
    albedo_png: bytes
    seconds: float
    warning: str  # non-empty when the fit diverged (see photometric.Result.warning)


# ------------------------------------------------------------------------------- inputs


@guarded
def load_texture_space(path: Path, size: int, n_tex: int) -> tuple[ph.TextureSpace, np.ndarray | None,
                                                                    np.ndarray | None]:
    """A texture space file (:mod:`..core.formats.texture_space`: FLAME_texture.npz or
    FLAME_albedo_from_BFM.npz) resampled to size^2, with its first n_tex components, and its vt / ft
    when stored."""
    read = read_texture_space(path, n_tex)
    R, n = read.mean.shape[0], read.n_components

    def resample(a: np.ndarray) -> np.ndarray:  # (R, R, C) -> (size, size, C)
        x = torch.as_tensor(np.ascontiguousarray(a)).permute(2, 0, 1)[None]
        return Fn.interpolate(x, size=(size, size), mode="area")[0].permute(1, 2, 0).numpy()

    basis = resample(np.moveaxis(read.basis, 0, -1).reshape(R, R, 3 * n)).reshape(size, size, 3, n)
    return ph.TextureSpace(mean=resample(read.mean), basis=basis), read.vt, read.ft


@guarded
def face_region(path: Path | None, model: FlameModel, demo: bool) -> np.ndarray:
    """Vertex weights (V,) of the face: the ``face`` mask of a ``FLAME_masks.pkl`` (or an .npz with
    a ``face`` index array), else the demo head's face region; every vertex when neither applies."""
    if path is None:
        if demo:
            return np.asarray(demo_surface.face_region())
        return np.ones(model.n_verts)
    regions, _ = read_masks(path, model.n_verts)
    if "face" not in regions:
        raise TrackerError(f"{path.name}: no 'face' vertex mask in it")
    region = np.zeros(model.n_verts)
    region[regions["face"]] = 1.0
    return region


def appearance(opts: Options, model: FlameModel, demo: bool) -> ph.Appearance:
    """UVs (the demo head's own, an OBJ, or the texture space's), face region and texture space."""
    size = opts.settings.texture_size
    space, vt, ft = (load_texture_space(opts.texture_space, size, opts.n_tex) if opts.texture_space
                     else (None, None, None))
    if opts.uv is not None:
        vt, ft = read_template_uvs(opts.uv, model.faces)
    elif vt is None and demo:
        vt, ft = demo_surface.uv_layout()
    if vt is None or ft is None:
        raise TrackerError("the photometric stage needs the model's UVs: pass --uv head_template.obj (FLAME's "
                           "template with texture coordinates) or a --texture-space file that stores vt and ft")
    if len(ft) != len(model.faces) or np.asarray(ft).max() >= len(vt):
        raise TrackerError(f"the UVs have {len(ft)} faces for {len(vt)} texture coordinates; the model has "
                           f"{len(model.faces)} faces")
    return ph.Appearance(vt=np.asarray(vt, dtype=np.float64), ft=np.asarray(ft, dtype=np.int64),
                         region=face_region(opts.masks, model, demo), space=space)


# -------------------------------------------------------------------------------- running


def run(opts: Options, model: FlameModel, demo: bool, frames, embedding: Embedding, track: Track,
        fit: solver.FitResult, problem: solver.Problem, n_shape: int, n_expr: int, device: torch.device,
        report: Callable[[float, str], None]) -> tuple[solver.FitResult, Outputs]:
    """Refine ``fit`` against the video ``frames`` (an iterable of RGB uint8 arrays); returns the
    refined fit and the extra outputs."""
    look = appearance(opts, model, demo)
    has_face = track.face_found()
    s = opts.settings
    boxes = ph.face_boxes(fit.uv, has_face, s.crop_margin)
    report(0.0, "cropping the frames")
    obs = ph.observations(frames, boxes, fit.focal, track.image_size, track.points, track.conf, problem.sigma,
                          s.resolution, device)
    mesh = mm.mesh_model(model, n_shape, n_expr, device=device)
    result = ph.refine(mesh, look, obs, fit.beta, fit.frames, (embedding.face_idx, embedding.bary),
                       ph.fit_priors(problem), s,
                       lambda fraction, message: report(0.05 + 0.95 * fraction, message))
    refined = dataclasses.replace(fit, beta=result.beta, frames=result.frames, translation=result.translation,
                                  uv=result.uv, error_px=np.where(has_face, result.error_px, np.nan))
    per_frame = result.sh.ndim == 3
    arrays = {"albedo": result.albedo, "sh": result.sh.mean(0) if per_frame else result.sh, "vt": look.vt,
              "ft": look.ft, "photometric_error": result.residual}
    keys = {}
    if per_frame:
        arrays["sh_frames"] = result.sh
    if result.tex is not None:
        arrays["tex"], keys["tex"] = result.tex, result.tex[None]
    return refined, Outputs(arrays=arrays, checkpoint_keys=keys, sh=result.sh,
                            albedo_png=png_bytes((result.albedo * 255).round().astype(np.uint8)),
                            seconds=result.seconds, warning=result.warning)
