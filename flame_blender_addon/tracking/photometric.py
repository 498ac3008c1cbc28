"""The photometric stage: analysis by synthesis after the landmark fit (torch, CPU or CUDA).

Every frame is rendered (:mod:`.raster`) as albedo times spherical-harmonic shading (:mod:`.sh`)
and compared with a square crop of the video around the face; the identity (shared, within the
landmark fit's bound), the per-frame rotation, translation, jaw, eyes and expression, one albedo
texture and one SH lighting per clip (or per frame with ``per_frame_light``, under a temporal
smoothness prior) are refined together with Adam, keeping the landmark term of the landmark fit:

    E = w_photo mean_t sum_p m_p rho(I_p - a(uv_p) s(n_p)) / n_ref      robust colour term (Charbonnier)
      + w_landmark mean_t mean_l c_tl huber(|uv_tl - x_tl| / sigma)     the landmark fit's data term
      + priors of the landmark fit (expression, jaw, eyes, identity) and its temporal smoothness
      + a prior on the texture-space coefficients |tex|^2 (with a texture space)
      + w_light_temporal mean_t |L_t+1 - L_t|^2 / 2                    (per-frame lighting L_t only)

m_p is the face region (FLAME's ``face`` mask, or the demo head's) interpolated at the pixel, so
hair, neck and background do not pull the fit. It is held fixed within a step (no gradient): else
the colour term, a sum over the face's pixels, could be lowered by shrinking the face's footprint.
At the head's silhouette the rendering is blended over the frame by its analytic coverage
(:func:`.raster.antialias`). The albedo lives on the model's UVs: coefficients of a texture space
(``FLAME_texture.npz``-like: mean and basis on the same UVs), optimised with the rest, or a free
texel image. The free image is not left to Adam: after every pass it is set to its exact minimiser
given the geometry and lighting of that pass, the per-texel least-squares albedo of the face-region
pixels that look it up, under a membrane (smoothness) prior of strength ``w_smooth`` that also
fills texels no pixel saw. The first passes run at half resolution (the landmark fit can be a few
pixels off), and the visible triangles are found again every ``raster_every`` passes while
barycentrics and everything after them are recomputed at every step.

Shapes: T frames, P per-frame parameters (``landmark_model.FRAME_LAYOUT``), S identity, L
landmarks, R working resolution (square crops), Rt texture size, V vertices, F triangles.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as Fn

from ..core.sh_lighting import Y0
from . import detect, raster, sh, solver
from . import landmark_model as lm
from . import mesh_model as mm

Progress = Callable[[float, str], None]
LOW_BANDS = 4  # SH coefficients of bands 0 and 1: the lighting the stage starts from
MAX_UNDONE = 8  # diverging steps undone before the stage stops and keeps the landmark fit


@dataclass(frozen=True)
class Settings:
    """Stage settings. Learning rates are Adam step sizes in parameter units (radians, metres,
    coefficient standard deviations, albedo and SH values)."""

    resolution: int = 256
    texture_size: int = 256
    epochs: int = 80  # passes over the clip, each of ceil(T / batch) steps: each frame gets this many steps
    coarse_fraction: float = 0.4  # share of the epochs at half resolution
    batch: int = 16  # consecutive frames per step
    raster_every: int = 4  # epochs between visibility updates
    warmup: int = 10  # steps over which the per-frame parameters' step sizes rise linearly
    crop_margin: float = 1.9  # crop side / the landmarks' bounding-box side
    lr_rotation: float = 2e-3
    lr_translation: float = 2e-4
    lr_articulation: float = 4e-3
    lr_expr: float = 0.4
    lr_shape: float = 0.05  # 0.2 let the identity wander (texture-space fits lost their gain)
    lr_sh: float = 3e-2
    lr_tex: float = 5e-2
    w_photo: float = 4.0
    w_landmark: float = 0.02
    w_prior: float = 0.0001  # the landmark fit's priors, weaker: the pixels determine what landmarks cannot
    w_temporal: float = 0.002
    w_smooth: float = 0.5  # free albedo: membrane prior relative to a typical texel's data weight
    charbonnier: float = 0.02
    huber: float = 3.0
    silhouette: bool = True
    per_frame_light: bool = False  # one SH lighting per frame (else one per clip)
    w_light_temporal: float = 1.0  # per-frame lighting: smoothness prior on its frame-to-frame change


@dataclass(frozen=True)
class TextureSpace:
    """A linear albedo model on the model's UVs: mean (Rt, Rt, 3) and basis (Rt, Rt, 3, n), RGB in
    [0, 1], image row 0 at v = 1."""

    mean: np.ndarray
    basis: np.ndarray


@dataclass(frozen=True)
class Appearance:
    """Where the albedo lives. vt: (Nvt, 2) UVs; ft: (F, 3) UV index per triangle corner;
    region: (V,) vertex weights of the face region; space: a texture space, else a free texture."""

    vt: np.ndarray
    ft: np.ndarray
    region: np.ndarray
    space: TextureSpace | None = None


@dataclass(frozen=True)
class Observations:
    """The clip as the stage sees it (tensors on the fitting device).

    images: (T, R, R, 3) uint8 crops; valid: (T, R, R) bool pixels inside the video frame;
    K: (T, 3, 3) OpenCV intrinsics of the crops; target: (T, L, 2) landmarks in crop pixels (0
    where missing); conf: (T, L) landmark weights; sigma: (T,) landmark noise in crop pixels;
    boxes: (T, 3) crop (x0, y0, side) in video pixels.
    """

    images: torch.Tensor
    valid: torch.Tensor
    K: torch.Tensor
    target: torch.Tensor
    conf: torch.Tensor
    sigma: torch.Tensor
    boxes: torch.Tensor

    @property
    def n_frames(self) -> int:
        return self.images.shape[0]


@dataclass
class Result:
    """Refined parameters (numpy, float64) and the appearance.

    beta: (S,); frames: (T, P); translation: (T, 3) FLAME translation; uv: (T, L, 2) landmarks in
    video pixels; error_px: (T,) mean landmark distance (NaN without a face); albedo: (Rt, Rt, 3)
    RGB, row 0 at v = 1; seen: (Rt, Rt) bool texels the face region showed; sh: (9, 3) lighting in
    the OpenCV camera frame, (T, 9, 3) with ``Settings.per_frame_light``; tex: (n,) texture-space
    coefficients or None; loss: (epochs,) mean energy per frame; residual: (T,) mean absolute
    colour error over each frame's face region (NaN where none).
    """

    beta: np.ndarray
    frames: np.ndarray
    translation: np.ndarray
    uv: np.ndarray
    error_px: np.ndarray
    albedo: np.ndarray
    seen: np.ndarray
    sh: np.ndarray
    tex: np.ndarray | None
    loss: np.ndarray
    residual: np.ndarray
    seconds: float = 0.0
    warning: str = ""  # set when diverging steps were undone or the stage stopped (then the landmark fit is kept)


# ------------------------------------------------------------------------------- inputs


def face_boxes(uv: np.ndarray, has_face: np.ndarray, margin: float) -> np.ndarray:
    """Square crops (T, 3) ``(x0, y0, side)`` in video pixels: one side for the clip (``margin``
    times the largest landmark bounding box), centred on each frame's landmarks, interpolated
    through frames without a face. uv: (T, L, 2) fitted landmarks; has_face: (T,) bool."""
    lo, hi = np.nanmin(uv, axis=1), np.nanmax(uv, axis=1)
    side = float(np.ceil(margin * np.max((hi - lo)[has_face])))
    centre = 0.5 * (lo + hi)
    t = np.arange(len(uv))
    centre = np.stack([np.interp(t, t[has_face], centre[has_face, k]) for k in range(2)], 1)
    return np.concatenate([np.round(centre - side / 2), np.full((len(uv), 1), side)], axis=1)


def crop(frame: np.ndarray, box: np.ndarray, size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A square crop (x0, y0, side) of an RGB uint8 frame (H, W, 3), zero outside, resized to
    size^2 with antialiasing -> image (size, size, 3) uint8 and valid-pixel mask (size, size) bool."""
    x0, y0, side = (int(v) for v in box)
    opaque = np.broadcast_to(np.uint8(255), frame.shape[:2] + (1,))  # alpha 255 inside the frame, 0 outside
    padded = np.concatenate([detect.crop(frame, x0, y0, side), detect.crop(opaque, x0, y0, side)], axis=-1)
    x = torch.as_tensor(padded, device=device).permute(2, 0, 1)[None].float()
    x = Fn.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
    x = x.permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8)
    return x[..., :3], x[..., 3] == 255


def observations(frames: Iterable[np.ndarray], boxes: np.ndarray, focal: float, image_size: tuple[int, int],
                 target: np.ndarray, conf: np.ndarray, sigma: float, size: int,
                 device: torch.device) -> Observations:
    """Crop the video frames (an iterable of (H, W, 3) uint8, at least T) and move the landmark
    targets (T, L, 2) video pixels, NaN where missing, into the crops."""
    T = len(boxes)
    images, valid = [], []
    for t, frame in zip(range(T), frames, strict=False):  # frames may run longer than the clip
        img, ok = crop(np.asarray(frame), boxes[t], size, device)
        images.append(img)
        valid.append(ok)
    if len(images) != T:
        raise ValueError(f"the video has {len(images)} frames, the landmark fit {T}")
    H, W = image_size
    scale = size / boxes[:, 2]
    K = np.zeros((T, 3, 3))
    K[:, 0, 0] = K[:, 1, 1] = focal * scale
    K[:, 0, 2] = (W / 2 - boxes[:, 0]) * scale
    K[:, 1, 2] = (H / 2 - boxes[:, 1]) * scale
    K[:, 2, 2] = 1.0
    missing = ~np.isfinite(target).all(-1)
    tgt = (np.nan_to_num(target) - boxes[:, None, :2]) * scale[:, None, None]
    f32 = dict(dtype=torch.float32, device=device)
    return Observations(images=torch.stack(images), valid=torch.stack(valid), K=torch.as_tensor(K, **f32),
                        target=torch.as_tensor(np.where(missing[..., None], 0.0, tgt), **f32),
                        conf=torch.as_tensor(np.where(missing, 0.0, conf), **f32),
                        sigma=torch.as_tensor(sigma * scale, **f32), boxes=torch.as_tensor(boxes, **f32))


# ------------------------------------------------------------------------------ rendering


class Renderer:
    """Renders a model with an albedo texture and SH lighting (all tensors on one device)."""

    def __init__(self, mesh: mm.MeshModel, appearance: Appearance) -> None:
        dev = mesh.template.device
        self.mesh = mesh
        self.faces = mesh.faces
        self.corner_uv = torch.as_tensor(np.asarray(appearance.vt)[np.asarray(appearance.ft)], dtype=torch.float32,
                                         device=dev)  # (F, 3, 2)
        self.region = torch.as_tensor(np.asarray(appearance.region, dtype=np.float32)[:, None], device=dev)
        self.adjacency = torch.as_tensor(raster.edge_adjacency(np.asarray(mesh.faces.cpu())), device=dev)

    def surface(self, verts: torch.Tensor, K: torch.Tensor, size: int, frags: raster.Fragments | None = None):
        """Project OpenCV camera-space vertices (B, V, 3) and find (or reuse) the visible surface.
        -> screen (B, V, 2), depth (B, V), fragments, barycentrics (N, 3)."""
        screen, depth = raster.project(verts, K)
        if frags is None:
            frags = raster.rasterize(screen, depth, self.faces, (size, size))
        return screen, depth, frags, raster.barycentrics(screen, depth, self.faces, frags)

    def shade(self, verts: torch.Tensor, frags: raster.Fragments, bary: torch.Tensor, albedo: torch.Tensor,
              light: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Colour (N, 3), face-region weight (N,), texture coordinates (N, 2) and shading (N, 3)
        of the fragments. albedo: (3, Rt, Rt); light: (9, 3), or (B, 9, 3) one per image."""
        normals, uv, region = self.attributes(verts, frags, bary)
        shading = self.shading(normals, light, frags.batch)
        return sample(albedo, uv) * shading, region, uv, shading

    def attributes(self, verts: torch.Tensor, frags: raster.Fragments,
                   bary: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Unit normals (N, 3), texture coordinates (N, 2) and face-region weight (N,) of the fragments."""
        normals = raster.interpolate(raster.vertex_normals(verts, self.faces), self.faces, frags, bary)
        uv = raster.interpolate_corners(self.corner_uv, frags, bary)
        region = raster.interpolate(self.region, self.faces, frags, bary)[:, 0]
        return Fn.normalize(normals, dim=-1), uv, region

    @staticmethod
    def shading(normals: torch.Tensor, light: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """Shading (N, 3) at unit normals (N, 3) of fragments of images batch (N,) under light (9, 3),
        or (B, 9, 3) one per image."""
        return sh.shading(normals, light if light.dim() == 2 else light[batch])

    def render(self, verts: torch.Tensor, K: torch.Tensor, size: int, albedo: torch.Tensor, light: torch.Tensor,
               background: torch.Tensor) -> torch.Tensor:
        """Antialiased images (B, size, size, 3) over ``background`` (B, size, size, 3)."""
        screen, depth, frags, bary = self.surface(verts, K, size)
        colour = self.shade(verts, frags, bary, albedo, light)[0]
        return self.composite(colour, frags, screen, depth, bary, background)

    def composite(self, colour: torch.Tensor, frags: raster.Fragments, screen: torch.Tensor, depth: torch.Tensor,
                  bary: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
        image = raster.to_image(colour, frags, background)
        depth_map = raster.to_image(raster.interpolate(depth[..., None], self.faces, frags, bary).detach(), frags,
                                    float("inf"))[..., 0]
        pixels, colours = raster.antialias(image, frags, screen, depth_map, self.faces, self.adjacency)
        return image.reshape(-1, image.shape[-1]).index_put((pixels,), colours).reshape(image.shape)


def sample(texture: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear texture lookup. texture: (C, Rt, Rt) with row 0 at v = 1; uv: (N, 2) -> (N, C).
    Non-finite UVs read the texture's centre: grid_sample indexes memory with them (torch 2.13's
    CPU backward crashed with a segmentation fault on NaN)."""
    uv = torch.nan_to_num(uv, nan=0.5)
    grid = torch.stack([2 * uv[:, 0] - 1, 1 - 2 * uv[:, 1]], -1).clamp(-1, 1)[None, None]
    out = Fn.grid_sample(texture[None], grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out[0, :, 0].T


def splat(shape: tuple[int, int, int], uv: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """The adjoint of :func:`sample`: values (N, C) spread onto a (C, Rt, Rt) texture with the
    bilinear weights of their lookups (no gradients)."""
    with torch.enable_grad():
        tex = torch.zeros(shape, dtype=values.dtype, device=values.device, requires_grad=True)
        (grad,) = torch.autograd.grad((sample(tex, uv.detach()) * values.detach()).sum(), tex)
    return grad


# ---------------------------------------------------------------------------------- stage


def _huber(e: torch.Tensor, k: float) -> torch.Tensor:
    return torch.where(e <= k, e * e, 2 * k * e - k * k)


class _Problem:
    """Parameters, priors and the energy of one refinement."""

    def __init__(self, renderer: Renderer, appearance: Appearance, obs: Observations, beta: np.ndarray,
                 frames: np.ndarray, embedding: tuple[np.ndarray, np.ndarray], priors: dict[str, np.ndarray],
                 settings: Settings) -> None:
        dev = obs.images.device
        f32 = dict(dtype=torch.float32, device=dev)
        self.r, self.obs, self.s = renderer, obs, settings
        self.beta = torch.tensor(beta, **f32, requires_grad=True)
        self.frames0 = torch.tensor(frames, **f32)
        rates = np.full(frames.shape[1], settings.lr_expr)
        rates[lm.ROT], rates[lm.TRANS] = settings.lr_rotation, settings.lr_translation
        rates[lm.JAW.start:lm.EYE_R.stop] = settings.lr_articulation
        self.rates = torch.as_tensor(rates, **f32)  # Adam steps of about one unit move each column this much
        self.delta = torch.zeros_like(self.frames0, requires_grad=True)
        self.lmk_corners = renderer.faces[torch.as_tensor(embedding[0], device=dev)]
        self.lmk_bary = torch.as_tensor(embedding[1], **f32)
        self.prior_w, self.vel_w = (torch.as_tensor(priors[k], **f32) for k in ("frame", "velocity"))
        self.shape_w = float(priors["shape"])
        Rt = settings.texture_size
        self.space = None
        if appearance.space is not None:
            sp = appearance.space
            self.space = (torch.as_tensor(sp.mean, **f32).permute(2, 0, 1),
                          torch.as_tensor(sp.basis, **f32).permute(2, 0, 1, 3))
            self.tex = torch.zeros(sp.basis.shape[-1], **f32, requires_grad=True)
        else:
            self.tex = None
            self.albedo_free = torch.full((3, Rt, Rt), 0.5, **f32)
            self.normal_eq = torch.zeros((6, Rt, Rt), **f32)  # sum w s I and sum w s^2 per texel and channel
        light = np.zeros((len(frames), 9, 3) if settings.per_frame_light else (9, 3))
        light[..., 0, :] = 1 / Y0
        self.light = torch.tensor(light, **f32, requires_grad=True)
        self.shape_bound = float(priors["shape_bound"])

    def light_of(self, idx: torch.Tensor) -> torch.Tensor:
        """The lighting of frames idx: (9, 3) per clip or (B, 9, 3) per frame."""
        return self.light[idx] if self.s.per_frame_light else self.light

    def albedo(self) -> torch.Tensor:
        if self.space is None:
            return self.albedo_free
        mean, basis = self.space
        return mean + basis @ self.tex

    @property
    def frames(self) -> torch.Tensor:
        return self.frames0 + self.delta * self.rates

    def vertices(self, idx: torch.Tensor) -> torch.Tensor:
        return mm.to_opencv(mm.vertices(self.r.mesh, self.beta, self.frames[idx]))

    def landmarks(self, verts: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
        """Landmark pixels (B, L, 2) of OpenCV camera-space vertices (B, V, 3)."""
        pts = (self.lmk_bary[..., None] * verts[:, self.lmk_corners]).sum(2)
        return raster.project(pts, K)[0]

    def energy(self, idx: torch.Tensor, K: torch.Tensor, images: torch.Tensor, valid: torch.Tensor, scale: float,
               frags: raster.Fragments | None):
        """Energy of frames idx at crops (B, r, r, 3) float with intrinsics K (B, 3, 3), r = scale R.
        Returns it and the fragments used."""
        s, obs = self.s, self.obs
        size = images.shape[1]
        verts = self.vertices(idx)
        screen, depth, frags, bary = self.r.surface(verts, K, size, frags)
        colour, region, uv, shading = self.r.shade(verts, frags, bary, self.albedo(), self.light_of(idx))
        if self.space is None:
            w = region * valid.reshape(-1)[frags.pixel]
            self.accumulate(uv, shading, images.reshape(-1, 3)[frags.pixel], w)
        if s.silhouette:
            rendered = self.r.composite(colour, frags, screen, depth, bary, images)
            weight = raster.to_image(region.detach()[:, None], frags, 0.0)[..., 0]  # fixed pixels: no area bias
            weight = torch.nn.functional.max_pool2d(weight[:, None], 3, 1, 1)[:, 0] * valid  # reach edge pixels
            diff = rendered - images
        else:
            weight = region.detach() * valid.reshape(-1)[frags.pixel]
            diff = colour - images.reshape(-1, 3)[frags.pixel]
        rho = torch.sqrt((diff * diff).sum(-1) + s.charbonnier ** 2) - s.charbonnier
        n_ref = 0.25 * size * size  # a face filling a quarter of the crop
        photo = (weight * rho).sum() / (n_ref * len(idx))
        uv = self.landmarks(verts, K)
        e = torch.linalg.vector_norm(uv - scale * obs.target[idx], dim=-1) / (scale * obs.sigma[idx, None])
        lmk = (obs.conf[idx] * _huber(e, s.huber)).sum(-1).mean() / max(1, obs.conf.shape[1])
        p = self.frames
        prior = 0.5 * (self.prior_w * p * p).sum(-1).mean() + 0.5 * self.shape_w * (self.beta ** 2).sum() / len(p)
        temporal = 0.5 * (self.vel_w * (p[1:] - p[:-1]) ** 2).sum(-1).mean() if len(p) > 1 else p.sum() * 0
        total = s.w_photo * photo + s.w_landmark * lmk + s.w_prior * prior + s.w_temporal * temporal
        if self.space is not None:
            total = total + s.w_prior * 0.5 * (self.tex ** 2).sum() / len(p)
        if s.per_frame_light and len(p) > 1:
            total = total + s.w_light_temporal * 0.5 * ((self.light[1:] - self.light[:-1]) ** 2).sum() / len(p)
        return total, frags

    def accumulate(self, uv: torch.Tensor, shading: torch.Tensor, colour: torch.Tensor, w: torch.Tensor) -> None:
        """Add pixels (N,) to the free albedo's normal equations: residual ``a(uv) s - I`` (pixels
        with a non-finite value are left out)."""
        s, c, w = shading.detach(), colour.detach(), w.detach()[:, None]
        rows = torch.cat([w * s * c, w * s * s], 1)
        rows = torch.where(torch.isfinite(rows).all(1, keepdim=True) & torch.isfinite(uv).all(1, keepdim=True),
                           rows, 0.0)
        self.normal_eq += splat(self.normal_eq.shape, uv.detach(), rows)

    @torch.no_grad()
    def solve_albedo(self, iterations: int = 30) -> None:
        """Set the free albedo to the minimiser of its accumulated least squares plus the membrane
        prior (Jacobi iterations from the current albedo), and clear the accumulator."""
        rhs, W = self.normal_eq[:3], self.normal_eq[3:]
        seen = W > 1e-6
        lam = self.s.w_smooth * (W[seen].median() if seen.any() else W.new_tensor(1.0))
        a = self.albedo_free
        for _ in range(iterations):
            p = Fn.pad(a[None], (1, 1, 1, 1), mode="replicate")[0]
            neighbours = p[:, :-2, 1:-1] + p[:, 2:, 1:-1] + p[:, 1:-1, :-2] + p[:, 1:-1, 2:]
            a = (rhs + lam * neighbours) / (W + 4 * lam)
        self.albedo_free = a.clamp(0, 1)
        self.normal_eq.zero_()

    def unknowns(self) -> list[torch.Tensor]:
        """The tensors the optimiser and :meth:`solve_albedo` change."""
        return [self.delta, self.beta, self.light] + ([self.albedo_free] if self.space is None else [self.tex])

    def state(self) -> list[torch.Tensor]:
        return [x.detach().clone() for x in self.unknowns()]

    @torch.no_grad()
    def restore(self, state: list[torch.Tensor]) -> None:
        for x, saved in zip(self.unknowns(), state, strict=True):
            x.copy_(saved)

    def optimizer(self) -> torch.optim.Optimizer:
        s = self.s
        groups = [{"params": [self.delta], "lr": 1.0}, {"params": [self.beta], "lr": s.lr_shape},
                  {"params": [self.light], "lr": s.lr_sh}]
        if self.space is not None:
            groups.append({"params": [self.tex], "lr": s.lr_tex})
        return torch.optim.Adam(groups, betas=(0.9, 0.99))


def _pyramid(obs: Observations, level: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Crops (T, r, r, 3) float in [0, 1], valid (T, r, r), intrinsics and the scale 2^-level of
    a pyramid level."""
    img = obs.images.permute(0, 3, 1, 2).float() / 255.0
    valid = obs.valid[:, None].float()
    K = obs.K.clone()
    if level:
        img = Fn.avg_pool2d(img, 2 ** level)
        valid = Fn.avg_pool2d(valid, 2 ** level)
        K[:, :2] /= 2 ** level
    return img.permute(0, 2, 3, 1).contiguous(), valid[:, 0] > 0.999, K, 0.5 ** level


def init_appearance(problem: _Problem, level: tuple, reweightings: int = 8) -> None:
    """Lighting and albedo from the frames at the landmark fit: the ambient and directional (SH
    bands 0 and 1) lighting that best explains the face-region colours (band 2 is left to the
    refinement), then the free albedo for that geometry and lighting (:meth:`_Problem.solve_albedo`).

    The lighting is the robust (Charbonnier, like the colour term) least-squares fit over all
    frames, by ``reweightings`` iteratively reweighted solves, with the texture space's mean albedo
    or else a uniform albedo of 0.5 (brows, lips and eyes then count as outliers)."""
    img, valid, K, _ = level
    rows, rhs, looks = [], [], []
    with torch.no_grad():
        chunks = torch.arange(problem.obs.n_frames, device=img.device).split(problem.s.batch)
        for chunk in chunks:
            verts = problem.vertices(chunk)
            _, _, frags, bary = problem.r.surface(verts, K[chunk], img.shape[1])
            normals, uv, region = problem.r.attributes(verts, frags, bary)
            w = (region * valid[chunk].reshape(-1)[frags.pixel]).clamp(min=0).sqrt()[:, None]
            colour = img[chunk].reshape(-1, 3)[frags.pixel]
            albedo = sample(problem.albedo(), uv) if problem.space is not None else colour.new_tensor(0.5)
            B = sh.shading_basis(normals)[:, None, :LOW_BANDS]
            rows.append(B * (albedo * w)[..., None])  # (N, 1 or 3, LOW_BANDS): a system per channel
            rhs.append(colour * w)
            looks.append((normals, colour, w[:, 0] ** 2, uv, frags.batch))
        A = torch.cat(rows).expand(-1, 3, -1).transpose(0, 1)  # (3, N, LOW_BANDS)
        y = torch.cat(rhs).T[..., None]  # (3, N, 1)
        robust = torch.ones_like(y)
        for _ in range(reweightings):
            At = (A * robust).transpose(1, 2)
            x = torch.linalg.solve(At @ A + 1e-6 * torch.eye(LOW_BANDS, device=A.device), At @ y)  # (3, LOW_BANDS, 1)
            residual = (A @ x - y).square().sum(0, keepdim=True)  # (1, N, 1) over the channels
            robust = (residual + problem.s.charbonnier ** 2).rsqrt().expand_as(y)
        problem.light.data[..., :LOW_BANDS, :] = x[..., 0].T
        if problem.space is not None:
            return
        for chunk, (normals, colour, w, uv, batch) in zip(chunks, looks, strict=True):
            problem.accumulate(uv, Renderer.shading(normals, problem.light_of(chunk), batch), colour, w)
        problem.solve_albedo(iterations=200)


def fit_priors(problem: solver.Problem) -> dict[str, np.ndarray | float]:
    """The priors and identity bound of a landmark fit's problem, as :func:`refine` takes them."""
    return {"frame": problem.prior_w.cpu().numpy(), "velocity": problem.vel_w.cpu().numpy(),
            "shape": problem.shape_w, "shape_bound": problem.settings.shape_bound}


def refine(mesh: mm.MeshModel, appearance: Appearance, obs: Observations, beta: np.ndarray, frames: np.ndarray,
           embedding: tuple[np.ndarray, np.ndarray], priors: dict[str, np.ndarray], settings: Settings = Settings(),
           on_progress: Progress | None = None) -> Result:
    """Refine a landmark fit (beta (S,), frames (T, P) in ``FRAME_LAYOUT``) against the crops.

    embedding: (face_idx (L,), bary (L, 3)) of the landmark targets; priors: the landmark fit's
    (:func:`fit_priors`): inverse variances ``frame`` (P,), ``velocity`` (P,), ``shape`` () and the
    identity's bound ``shape_bound`` () (every |beta_k| is kept within it, as the fit does).
    """
    report = on_progress or (lambda fraction, message: None)
    started = time.perf_counter()
    s = settings
    renderer = Renderer(mesh, appearance)
    problem = _Problem(renderer, appearance, obs, beta, frames, embedding, priors, s)
    levels = {0: _pyramid(obs, 0), 1: _pyramid(obs, 1)}
    init_appearance(problem, levels[1])
    batches = torch.arange(obs.n_frames, device=obs.images.device).split(s.batch)
    steps = s.epochs * len(batches)
    start = problem.state()  # the landmark fit's geometry with the initial appearance
    last = start  # the state before the last step taken: a non-finite energy undoes that step
    opt = problem.optimizer()
    damping = 1.0  # halved at every undone step

    def rate(it: int) -> float:
        return 0.1 + 0.45 * (1 + math.cos(math.pi * it / steps))

    # the per-frame parameters' steps rise over the first steps: Adam moves every coordinate by
    # about its step size at first, whatever its gradient, and 100 expression components per frame
    # moved at once tripled the energy of a real clip
    warm = lambda it: min(1.0, (it + 1) / (s.warmup + 1)) * rate(it)  # noqa: E731
    schedules = [(g, g["lr"], warm if i == 0 else rate) for i, g in enumerate(opt.param_groups)]
    attempts = 0  # steps tried, undone ones included: the schedules' clock
    n_coarse = int(round(s.coarse_fraction * s.epochs))
    losses, warning, undone = [], "", 0
    cache: dict[int, raster.Fragments] = {}
    for epoch in range(s.epochs):
        level = 1 if epoch < n_coarse else 0
        img, valid, K, scale = levels[level]
        fresh = epoch == n_coarse or epoch % max(1, s.raster_every) == 0
        total = 0.0
        for b, idx in enumerate(batches):
            for group, base, schedule in schedules:
                group["lr"] = base * damping * schedule(attempts)
            attempts += 1
            before = problem.state()
            opt.zero_grad(set_to_none=True)
            loss, cache[b] = problem.energy(idx, K[idx], img[idx], valid[idx], scale, None if fresh else cache[b])
            loss.backward()
            ok = _finite([loss] + [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None])
            if ok:
                opt.step()
                with torch.no_grad():  # the landmark fit's hard bound on the identity
                    problem.beta.clamp_(-problem.shape_bound, problem.shape_bound)
                ok = _finite(problem.unknowns())
            if ok:
                last = before
            else:  # a diverging step: undo it, forget Adam's moments, halve the step sizes
                problem.restore(last)
                opt.state.clear()
                undone += 1
                damping *= 0.5
                if undone > MAX_UNDONE:
                    break
                continue
            total += float(loss.detach()) * len(idx)
        if undone > MAX_UNDONE:
            problem.restore(start)
            warning = (f"photometric stage diverged (non-finite values in {undone} steps, pass {epoch + 1}): "
                       f"stopped, the landmark fit's result is kept")
            break
        if problem.space is None:
            problem.solve_albedo()
        losses.append(total / obs.n_frames)
        report((epoch + 1) / s.epochs, f"photometric pass {epoch + 1}/{s.epochs}, loss {losses[-1]:.4f}")
    if undone and not warning:
        warning = f"photometric stage: {undone} diverging steps undone with smaller step sizes"
    return _result(problem, levels, losses, time.perf_counter() - started, warning)


def _finite(tensors: Iterable[torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(x).all()) for x in tensors)


def _result(problem: _Problem, levels: dict, losses: list[float], seconds: float, warning: str) -> Result:
    obs = problem.obs
    img, valid, K, _ = levels[0]
    np_ = lambda x: x.detach().cpu().numpy().astype(np.float64)  # noqa: E731
    with torch.no_grad():
        idx = torch.arange(obs.n_frames, device=img.device)
        uv, residual, seen = [], [], torch.zeros(problem.albedo().shape[1:], device=img.device)
        for chunk in idx.split(problem.s.batch):
            verts = problem.vertices(chunk)
            _, _, frags, bary = problem.r.surface(verts, K[chunk], img.shape[1])
            colour, region, tex_uv, _ = problem.r.shade(verts, frags, bary, problem.albedo(), problem.light_of(chunk))
            w = region * valid[chunk].reshape(-1)[frags.pixel]
            seen += splat((1,) + seen.shape, tex_uv, w[:, None])[0]
            uv.append(problem.landmarks(verts, K[chunk]))
            err = (colour - img[chunk].reshape(-1, 3)[frags.pixel]).abs().mean(-1) * w
            per_frame = torch.zeros((2, len(chunk)), device=img.device)
            per_frame[0].index_add_(0, frags.batch, err)
            per_frame[1].index_add_(0, frags.batch, w)
            residual.append(per_frame[0] / per_frame[1])
        uv = torch.cat(uv)
        scale = obs.images.shape[1] / obs.boxes[:, 2]  # crop pixels per video pixel
        err = solver.landmark_error(uv, obs.target, obs.conf > 0) / scale
        uv_video = uv / scale[:, None, None] + obs.boxes[:, None, :2]
        trans = mm.root_translation(problem.r.mesh, problem.beta, problem.frames)
        albedo = problem.albedo().clamp(0, 1).permute(1, 2, 0)
    return Result(beta=np_(problem.beta), frames=np_(problem.frames), translation=np_(trans), uv=np_(uv_video),
                  error_px=np_(err), albedo=albedo.detach().cpu().numpy().astype(np.float32),
                  seen=(seen > 0.05).cpu().numpy(), sh=np_(problem.light),
                  tex=None if problem.tex is None else np_(problem.tex), loss=np.array(losses),
                  residual=np_(torch.cat(residual)), seconds=seconds, warning=warning)
