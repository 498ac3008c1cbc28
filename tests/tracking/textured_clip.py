"""Synthetic videos of the demo head with known identity, motion, albedo and lighting, and the
errors of a fit against them (for the photometric stage's tests and benchmark).

The ground-truth vertices come from the numpy FLAME (:func:`..core.lbs.forward`), the frames from
:class:`.photometric.Renderer` (checked against Blender's own projection and ray casts by the
Blender tier) or, given a bpy Python, from Blender itself (Cycles, scripts/render_photometric_clip.py
on the truth written as a ``flame_sequence.npz``), over a textured background, with a little pixel
noise; the landmarks are the demo head's MediaPipe embedding projected with Gaussian noise.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import synthetic
import torch

from flame_blender_addon.core import rotations, sh_lighting
from flame_blender_addon.core.camera import CameraTrack
from flame_blender_addon.core.formats import npz
from flame_blender_addon.core.model import FlameModel
from flame_blender_addon.core.sequence import FlameSequence
from flame_blender_addon.demo import head as demo_head
from flame_blender_addon.demo import surface as demo_surface
from flame_blender_addon.demo.embedding import demo_embedding_arrays
from flame_blender_addon.tracking import landmark_model as lm
from flame_blender_addon.tracking import media, raster, solver
from flame_blender_addon.tracking import mesh_model as mm
from flame_blender_addon.tracking import photometric as ph
from flame_blender_addon.tracking.landmarks import Embedding, Track, embedding_from_arrays
from flame_blender_addon.tracking.photometric import Appearance, Renderer

SKIN = np.array([0.78, 0.58, 0.48])
LIGHT_DIRECTION = np.array([0.5, -0.45, -0.74])  # OpenCV camera frame: from the image's upper right, in front
RENDER_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "render_photometric_clip.py"


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
              light_turn_deg: float = 0.0, seed: int = 0, blender: str | None = None) -> TexturedClip:
    """A clip of the demo head: smooth head turns, jaw, gaze and expressions
    (:func:`.synthetic.smooth_clip` at 25 fps, every ``stride``-th frame kept), the
    :func:`demo_albedo` texture, a light from the upper right plus ambient, 0.5 % pixel noise
    and ``noise_px`` landmark noise. ``light_turn_deg``: the light turns this far about the camera's
    vertical axis over the clip (then ``sh`` is per frame). ``blender``: a bpy Python; the frames
    are then rendered by Blender (:func:`blender_render`), else by the tracker's renderer."""
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
    backdrop = background(image_size, seed)
    if blender is None:
        images = render(model, verts, focal, image_size, albedo, light, backdrop)
    else:
        images = blender_render(blender, clip, albedo, light, backdrop)
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


def truth_arrays(clip: synthetic.Clip, albedo: np.ndarray, sh: np.ndarray) -> dict[str, np.ndarray]:
    """The truth as a ``flame_sequence.npz`` (core's schema plus the photometric stage's ``albedo``,
    ``vt``, ``ft``, ``sh`` and, for (T, 9, 3) lighting, ``sh_frames``). The clip's camera (at the
    origin looking along -Z, :func:`.synthetic.project`) is the OpenCV camera R = diag(1, -1, -1)."""
    T = len(clip.expr)
    camera = CameraTrack(np.repeat(camera_matrix(clip.focal, clip.image_size)[None], T, 0),
                         np.repeat(np.diag([1.0, -1.0, -1.0])[None], T, 0), np.zeros((T, 3)), clip.image_size)
    seq = FlameSequence(shape=clip.shape, expr=clip.expr, rotations=rotations.axis_angle_to_matrix(clip.pose),
                        translation=clip.translation, frame_ids=np.arange(T), fps=25.0, camera=camera)
    vt, ft = demo_surface.uv_layout()
    per_frame = sh.ndim == 3
    arrays = {**npz.sequence_arrays(seq), "albedo": albedo, "vt": vt, "ft": ft, "sh": sh.mean(0) if per_frame else sh}
    return {**arrays, "sh_frames": sh} if per_frame else arrays


def blender_render(python: str, clip: synthetic.Clip, albedo: np.ndarray, sh: np.ndarray, backdrop: np.ndarray,
                   samples: int = 16) -> np.ndarray:
    """Frames (T, H, W, 3) float in [0, 1] of the clip rendered by Blender: the bpy Python ``python``
    runs scripts/render_photometric_clip.py (Cycles) on :func:`truth_arrays` over ``backdrop``
    (H, W, 3); the tracker's own reader reads the PNGs back."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        np.savez(folder / "flame_sequence.npz", **truth_arrays(clip, albedo, sh))
        (folder / "background").mkdir()
        png = media.png_bytes((np.clip(backdrop, 0, 1) * 255).round().astype(np.uint8))
        for t in range(len(clip.expr)):
            (folder / "background" / f"{t:04d}.png").write_bytes(png)
        run = subprocess.run([python, RENDER_SCRIPT, folder / "flame_sequence.npz", folder / "frames",
                              "--background", folder / "background", "--samples", str(samples)],
                             capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
        if run.returncode != 0:
            raise RuntimeError(f"{RENDER_SCRIPT.name} failed:\n{run.stdout[-2000:]}{run.stderr[-2000:]}")
        frames = [rgb for _, rgb in media.frames(media.open_source(folder / "frames"))]
    return np.stack(frames).astype(np.float64) / 255


# ------------------------------------------------------------------------------- fits


@dataclass(frozen=True)
class Fitted:
    """A clip, its landmark-only fit (``solver``) and the whole mesh the photometric stage fits."""

    clip: TexturedClip
    problem: solver.Problem
    fit: solver.FitResult
    mesh: mm.MeshModel


def landmark_fit(clip: TexturedClip, n_shape: int, n_expr: int, device: str = "cpu") -> Fitted:
    """The landmark-only fit of the clip (``n_shape`` identity, ``n_expr`` expression components),
    the mesh on ``device``."""
    model = demo_head.demo_model()
    basis = lm.build_basis(model, clip.embedding.face_idx, clip.embedding.bary, n_shape, n_expr)
    problem = solver.make_problem(basis, clip.track.points, clip.track.conf, clip.track.image_size,
                                  clip.clip.focal, solver.FitSettings())
    mesh = mm.mesh_model(model, n_shape, n_expr, device=torch.device(device))
    return Fitted(clip, problem, solver.fit(problem), mesh)


def refine(fitted: Fitted, appearance: Appearance, settings: ph.Settings) -> ph.Result:
    """The photometric stage on the clip's frames, started from the landmark fit (on the CPU)."""
    clip, problem, fit = fitted.clip, fitted.problem, fitted.fit
    boxes = ph.face_boxes(fit.uv, clip.track.face_found(), settings.crop_margin)
    obs = ph.observations(iter(clip.images), boxes, fit.focal, clip.track.image_size, clip.track.points,
                          clip.track.conf, problem.sigma, settings.resolution, torch.device("cpu"))
    return ph.refine(fitted.mesh, appearance, obs, fit.beta, fit.frames, (clip.embedding.face_idx, clip.embedding.bary),
                     ph.fit_priors(problem), settings)


def fit_errors(fitted: Fitted, beta: np.ndarray, frames: np.ndarray) -> tuple[float, float]:
    """:func:`dense_errors` of the fit ``beta`` (S,), ``frames`` (T, P) against the clip's truth."""
    f32 = dict(dtype=torch.float32)
    verts = mm.vertices(fitted.mesh, torch.as_tensor(beta, **f32), torch.as_tensor(frames, **f32)).numpy()
    clip = fitted.clip
    return dense_errors(clip.vertices, verts, demo_surface.face_region(), clip.clip.focal, clip.clip.image_size)


def made_up_space(albedo: np.ndarray, size: int) -> tuple[Appearance, np.ndarray]:
    """A 3-component texture space on the demo UVs (low-frequency colour waves) that holds
    ``albedo`` exactly: -> (its appearance, the true coefficients (3,))."""
    rng = np.random.default_rng(5)
    v = np.linspace(0, 1, size)
    waves = [np.sin(2 * np.pi * (a * v[:, None] + b * v[None, :]))[..., None] * rng.uniform(0.05, 0.1, 3)
             for a, b in ((3, 1), (1, 4), (5, 5))]
    basis = np.stack(waves, -1).astype(np.float32)  # (Rt, Rt, 3, 3)
    truth = np.array([1.0, -0.8, 0.6])
    mean = (albedo - basis @ truth).astype(np.float32)
    look = demo_appearance()
    return Appearance(look.vt, look.ft, look.region, ph.TextureSpace(mean=mean, basis=basis)), truth


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
