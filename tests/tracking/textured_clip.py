"""Synthetic videos of the demo head with known identity, motion, albedo and lighting, and the
errors of a fit against them (for the photometric stage's tests and benchmark).

The ground-truth vertices come from the numpy FLAME (:func:`..core.lbs.forward`), the frames from
:class:`.photometric.Renderer` (checked against Blender's own projection and ray casts by the
Blender tier) over a textured background, with a little pixel noise; the landmarks are the demo
head's MediaPipe embedding projected with Gaussian noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import synthetic
import torch

from flame_blender_addon.core import sh_lighting
from flame_blender_addon.core.model import FlameModel
from flame_blender_addon.demo import head as demo_head
from flame_blender_addon.demo import surface as demo_surface
from flame_blender_addon.demo.embedding import demo_embedding_arrays
from flame_blender_addon.tracking import mesh_model as mm
from flame_blender_addon.tracking import raster
from flame_blender_addon.tracking.landmarks import Embedding, Track, embedding_from_arrays
from flame_blender_addon.tracking.photometric import Appearance, Renderer

SKIN = np.array([0.78, 0.58, 0.48])
LIGHT_DIRECTION = np.array([0.5, -0.45, -0.74])  # OpenCV camera frame: from the image's upper right, in front


@dataclass(frozen=True)
class TexturedClip:
    """Ground truth and observations. clip: parameters (``synthetic.Clip``); albedo: (Rt, Rt, 3)
    RGB on the demo UVs; sh: (9, 3) lighting, OpenCV camera frame, (T, 9, 3) for a turning light;
    vertices: (T, V, 3) in the
    fitting camera's frame; images: (T, H, W, 3) uint8; track: landmarks; embedding: theirs."""

    clip: synthetic.Clip
    albedo: np.ndarray
    sh: np.ndarray
    vertices: np.ndarray
    images: np.ndarray
    track: Track
    embedding: Embedding


def demo_appearance() -> Appearance:
    """The demo head's UVs and face region, with a free albedo texture."""
    vt, ft = demo_surface.uv_layout()
    return Appearance(vt=vt, ft=ft, region=demo_surface.face_region())


def texel_points(vt: np.ndarray, ft: np.ndarray, faces: np.ndarray, points: np.ndarray, size: int):
    """The surface point under every texel centre: rasterises the mesh in UV space.
    -> (size, size, 3) float64 (NaN where no triangle) and (size, size) int64 vertex of the
    nearest corner (-1 where none)."""
    uv = torch.as_tensor(vt[ft].reshape(1, -1, 2) * [size, -size] + [0, size], dtype=torch.float32)
    flat = torch.arange(uv.shape[1]).reshape(-1, 3)
    frags = raster.rasterize(uv, torch.ones(uv.shape[:2]), flat, (size, size), cull_backfaces=False)
    bary = raster.barycentrics(uv, torch.ones(uv.shape[:2]), flat, frags).numpy().astype(np.float64)
    corners = faces[frags.face.numpy()]
    out = np.full((size * size, 3), np.nan)
    out[frags.pixel.numpy()] = np.einsum("nc,ncx->nx", bary, points[corners])
    nearest = np.full(size * size, -1)
    nearest[frags.pixel.numpy()] = corners[np.arange(len(corners)), bary.argmax(1)]
    return out.reshape(size, size, 3), nearest.reshape(size, size)


def demo_albedo(size: int = 256, seed: int = 0) -> np.ndarray:
    """A made-up skin texture on the demo UVs: (size, size, 3) float32 RGB in [0, 1].

    Skin with mottling at 2-12 mm (so the image has texture to follow), darker brows, red lips,
    and eyes with white sclerae, brown irises and black pupils.
    """
    rng = np.random.default_rng(seed)
    model = demo_head.demo_model()
    vt, ft = demo_surface.uv_layout()
    p, vertex = texel_points(vt, ft, model.faces, model.v_template, size)
    found = vertex >= 0
    q = np.where(found[..., None], p, 0.0).reshape(-1, 3)
    colour = np.tile(SKIN, (len(q), 1))
    for n, radius, amplitude in ((150, 0.012, 0.10), (600, 0.005, 0.10), (1500, 0.002, 0.06)):
        centres = q[found.reshape(-1)][rng.choice(found.sum(), n, replace=False)]
        gains = rng.normal(scale=amplitude, size=(n, 3)) * [1.0, 1.2, 1.2] + rng.normal(scale=amplitude, size=(n, 1))
        for chunk in np.array_split(np.arange(len(q)), 16):
            d2 = ((q[chunk, None] - centres[None]) ** 2).sum(-1)
            colour[chunk] *= 1 + np.exp(-0.5 * d2 / radius ** 2) @ gains
    x, y, z = q.T
    brows = np.exp(-0.5 * (((y - 0.045) / 0.006) ** 2 + ((np.abs(x) - 0.035) / 0.018) ** 2)) * (z > 0)
    lips = np.exp(-0.5 * (((y + 0.051) / 0.007) ** 2 + (x / 0.022) ** 2)) * (z > 0.02)
    colour *= 1 - 0.55 * brows[:, None]
    colour = colour * (1 - lips[:, None]) + lips[:, None] * [0.72, 0.32, 0.33]
    eyes = (vertex.reshape(-1) >= demo_head.N_HEAD)
    centres = demo_head.eye_centres()[(q[:, 0] < 0).astype(int)]
    forward = (q[:, 2] - centres[:, 2]) / demo_head.EYE_RADIUS
    eye = np.select([forward[:, None] > 0.97, forward[:, None] > 0.8], [[0.03, 0.02, 0.02], [0.36, 0.22, 0.1]],
                    [0.9, 0.88, 0.85])
    colour = np.where(eyes[:, None], eye, colour)
    colour = np.where(found.reshape(-1, 1), colour, SKIN)
    return np.clip(colour, 0, 1).reshape(size, size, 3).astype(np.float32)


def background(image_size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A smooth coloured backdrop (H, W, 3) float32."""
    rng = np.random.default_rng(seed)
    H, W = image_size
    y, x = np.mgrid[0:H, 0:W] / max(H, W)
    out = 0.35 + 0.1 * np.sin(2 * np.pi * (x[..., None] * rng.uniform(1, 3, 3) + y[..., None] * rng.uniform(1, 3, 3)))
    return out.astype(np.float32)


def make_clip(n_frames: int = 12, n_shape: int = 30, n_expr: int = 30, image_size: tuple[int, int] = (256, 256),
              focal: float = 450.0, distance: float = 0.55, noise_px: float = 1.0, stride: int = 1,
              light_turn_deg: float = 0.0, seed: int = 0) -> TexturedClip:
    """A clip of the demo head: smooth head turns, jaw, gaze and expressions
    (:func:`.synthetic.smooth_clip` at 25 fps, every ``stride``-th frame kept), the
    :func:`demo_albedo` texture, a light from the upper right plus ambient, 0.5 % pixel noise
    and ``noise_px`` landmark noise. ``light_turn_deg``: the light turns this far about the camera's
    vertical axis over the clip (then ``sh`` is per frame)."""
    model = demo_head.demo_model()
    clip = synthetic.smooth_clip(n_frames * stride, n_shape, n_expr, seed=seed, focal=focal, image_size=image_size,
                                 distance=distance)
    keep = slice(None, None, stride)
    clip = synthetic.Clip(shape=clip.shape, expr=0.5 * clip.expr[keep], pose=clip.pose[keep],
                          translation=clip.translation[keep], focal=focal, image_size=image_size)
    verts = synthetic.vertices(model, clip)
    albedo = demo_albedo(256, seed)
    turn = np.radians(np.linspace(0, light_turn_deg, len(verts)))
    c, s = np.cos(turn), np.sin(turn)
    directions = np.stack([c * LIGHT_DIRECTION[0] + s * LIGHT_DIRECTION[2], np.full_like(c, LIGHT_DIRECTION[1]),
                           -s * LIGHT_DIRECTION[0] + c * LIGHT_DIRECTION[2]], 1)
    light = np.stack([sh_lighting.from_light(d, np.array([1.5, 1.45, 1.35]), np.array([0.4, 0.4, 0.45]))
                      for d in directions])
    light = light if light_turn_deg else light[0]
    images = render(model, verts, focal, image_size, albedo, light, background(image_size, seed))
    rng = np.random.default_rng(seed + 1)
    images = np.clip(images + rng.normal(scale=0.005, size=images.shape), 0, 1)
    emb = embedding_from_arrays(demo_embedding_arrays(), "demo embedding")
    emb = Embedding(emb.face_idx, emb.bary, None, emb.name)
    track = synthetic.observed_track(model, emb, clip, noise_px, seed=seed + 2)
    return TexturedClip(clip=clip, albedo=albedo, sh=light, vertices=verts,
                        images=(images * 255).round().astype(np.uint8), track=track, embedding=emb)


def camera_matrix(focal: float, image_size: tuple[int, int]) -> np.ndarray:
    H, W = image_size
    return np.array([[focal, 0, W / 2], [0, focal, H / 2], [0, 0, 1.0]])


def render(model: FlameModel, verts: np.ndarray, focal: float, image_size: tuple[int, int], albedo: np.ndarray,
           light: np.ndarray, backdrop: np.ndarray) -> np.ndarray:
    """Frames (T, H, W, 3) float in [0, 1] of vertices (T, V, 3) in the fitting camera's frame."""
    mesh = mm.mesh_model(model, 0, 0)
    renderer = Renderer(mesh, demo_appearance())
    f32 = dict(dtype=torch.float32)
    v = mm.to_opencv(torch.as_tensor(verts, **f32))
    K = torch.as_tensor(camera_matrix(focal, image_size), **f32)
    tex = torch.as_tensor(albedo, **f32).permute(2, 0, 1)
    bg = torch.as_tensor(backdrop, **f32).expand(len(verts), *backdrop.shape)
    with torch.no_grad():
        return renderer.render(v, K, image_size[0], tex, torch.as_tensor(light, **f32), bg).numpy()


# ------------------------------------------------------------------------------- errors


def similarity_align(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """src (N, 3) moved onto dst (N, 3) by the least-squares similarity (Umeyama) -> (N, 3)."""
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    U, S, Vt = np.linalg.svd(b.T @ a)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    R = U @ D @ Vt
    scale = np.trace(np.diag(S) @ D) / (a * a).sum()
    return md + scale * a @ R.T


def dense_errors(gt: np.ndarray, fit: np.ndarray, region: np.ndarray, focal: float,
                 image_size: tuple[int, int]) -> tuple[float, float]:
    """Mean per-vertex error over the face region (``region > 0.5``) of fitted vertices (T, V, 3)
    against the truth, both in the fitting camera's frame: in image pixels, and in millimetres
    after a per-frame similarity alignment."""
    face = region > 0.5
    px = np.linalg.norm(synthetic.project(gt[:, face], focal, image_size)
                        - synthetic.project(fit[:, face], focal, image_size), axis=-1).mean()
    mm_ = np.mean([np.linalg.norm(similarity_align(f[face], g[face]) - g[face], axis=-1).mean()
                   for f, g in zip(fit, gt, strict=True)]) * 1000
    return float(px), float(mm_)


def albedo_psnr(albedo: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """PSNR (dB, peak 1) of an albedo (Rt, Rt, 3) on texels ``mask`` (Rt, Rt) after one least-squares
    gain per channel: albedo and lighting are only determined up to such a gain."""
    a, t = albedo[mask].astype(np.float64), truth[mask].astype(np.float64)
    gain = (a * t).sum(0) / np.maximum((a * a).sum(0), 1e-12)
    mse = np.mean((a * gain - t) ** 2)
    return float(10 * np.log10(1.0 / max(mse, 1e-12)))


def direction_error_deg(light: np.ndarray, truth: np.ndarray) -> float:
    """Angle between the dominant light directions of two SH lightings (degrees)."""
    c = np.clip(sh_lighting.dominant_direction(light) @ sh_lighting.dominant_direction(truth), -1.0, 1.0)
    return float(np.degrees(np.arccos(c)))
