"""Landmark-fitting speed: the tracker's batched Gauss-Newton solver vs per-frame Adam with autograd.

    python scripts/bench_tracker.py [--frames 300] [--naive-frames 8] [--naive-iters 200] [--device cpu]

A FLAME-sized random model (5023 vertices, 300 + 100 components), 105 + 10 landmarks, a smooth
synthetic clip with 1 px noise and a few frames without a face. Both fit 100 identity and 100
expression components with the focal length known; detection is not timed. The naive fitter is
what metrical-style trackers do: for each frame in turn (warm-started from the previous one), Adam
steps on the landmark loss through a full-mesh LBS in float32 with autograd. It is timed on the
first ``--naive-frames`` frames and its rate extrapolated. Prints one line per method and the ratio.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "tracking")]  # the package, test fixtures

import synthetic  # noqa: E402
from synthetic_model import random_model_arrays  # noqa: E402

from flame_blender_addon.core.model import FlameModel, model_from_arrays  # noqa: E402
from flame_blender_addon.tracking import landmark_model as lm  # noqa: E402
from flame_blender_addon.tracking import landmarks as lmk  # noqa: E402
from flame_blender_addon.tracking import solver  # noqa: E402

N_SHAPE = N_EXPR = 100


def ours(model: FlameModel, emb: lmk.Embedding, track: lmk.Track, focal: float, device: str):
    """Fit with the tracker's solver -> (seconds, fitted landmarks (T, L, 2))."""
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    basis = lm.build_basis(model, emb.face_idx, emb.bary, N_SHAPE, N_EXPR, device=device)
    problem = solver.make_problem(basis, track.points, track.conf, track.image_size, focal, solver.FitSettings())
    fit = solver.fit(problem)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, fit.uv


def torch_lbs(m: dict, shape: torch.Tensor, expr: torch.Tensor, aa: torch.Tensor, trans: torch.Tensor) -> torch.Tensor:
    """Full-mesh FLAME for one frame (float32, autograd). aa: (5, 3) axis-angle -> vertices (V, 3)."""
    v = (m["v_template"] + torch.einsum("vck,k->vc", m["shapedirs"], shape)
         + torch.einsum("vck,k->vc", m["exprdirs"], expr))
    joints = m["J_regressor"] @ v
    R = lm.axis_angle_to_matrix(aa)
    v = v + torch.einsum("vcf,f->vc", m["posedirs"], (R[1:] - torch.eye(3)).reshape(-1))
    G = [torch.cat([R[0], joints[0, :, None]], 1)]
    for j, p in enumerate((0, 1, 1, 1), start=1):
        G.append(torch.cat([G[p][:, :3] @ R[j], (G[p][:, :3] @ (joints[j] - joints[p]) + G[p][:, 3])[:, None]], 1))
    G = torch.stack(G)  # (5, 3, 4)
    A = torch.cat([G[:, :, :3], (G[:, :, 3] - torch.einsum("jxy,jy->jx", G[:, :, :3], joints))[..., None]], 2)
    T = torch.einsum("vj,jxy->vxy", m["weights"], A)
    return torch.einsum("vxy,vy->vx", T[:, :, :3], v) + T[:, :, 3] + trans


def naive(model: FlameModel, emb: lmk.Embedding, track: lmk.Track, focal: float, n_frames: int, iters: int,
          device: str):
    """Per-frame Adam -> (seconds for n_frames, fitted landmarks (n_frames, L, 2))."""
    f32 = dict(dtype=torch.float32, device=device)
    m = {"v_template": model.v_template, "shapedirs": model.shapedirs[:, :, :N_SHAPE],
         "exprdirs": model.exprdirs[:, :, :N_EXPR], "posedirs": model.posedirs, "J_regressor": model.J_regressor,
         "weights": model.weights}
    m = {k: torch.as_tensor(v, **f32) for k, v in m.items()}
    corners = torch.as_tensor(model.faces[emb.face_idx], device=device, dtype=torch.long)
    bary = torch.as_tensor(emb.bary, **f32)
    H, W = track.image_size
    target = torch.as_tensor(np.nan_to_num(track.points), **f32)
    conf = torch.as_tensor(track.conf, **f32)
    shape = torch.zeros(N_SHAPE, **f32, requires_grad=True)
    expr = torch.zeros(N_EXPR, **f32, requires_grad=True)
    pose = torch.zeros(5, 3, **f32, requires_grad=True)
    trans = torch.tensor([0.0, 0.0, -0.55], **f32, requires_grad=True)
    out = []
    start = time.perf_counter()
    for t in range(n_frames):
        opt = torch.optim.Adam([shape, expr, pose, trans], lr=0.01)
        for _ in range(iters):
            opt.zero_grad()
            v = torch_lbs(m, shape, expr, pose, trans)
            p = torch.einsum("lc,lcx->lx", bary, v[corners])
            uv = torch.stack([W / 2 + focal * p[:, 0] / -p[:, 2], H / 2 - focal * p[:, 1] / -p[:, 2]], -1)
            data = (conf[t] * ((uv - target[t]) ** 2).sum(-1)).mean()
            loss = data + 1e-2 * (expr ** 2).sum() + 1e-2 * (shape ** 2).sum()
            loss.backward()
            opt.step()
        out.append(uv.detach().cpu().numpy())
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, np.stack(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--naive-frames", type=int, default=8)
    parser.add_argument("--naive-iters", type=int, default=200)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = parser.parse_args()
    model = model_from_arrays(random_model_arrays(seed=1))
    emb = synthetic.random_embedding(model, 115, seed=2)
    clip = synthetic.smooth_clip(args.frames, N_SHAPE, N_EXPR, seed=3)
    gaps = ((args.frames // 3, args.frames // 3 + 4),)
    track = synthetic.observed_track(model, emb, clip, 1.0, gaps, seed=4)
    clean = synthetic.project(synthetic.landmarks(model, emb, synthetic.vertices(model, clip)), clip.focal,
                              clip.image_size)
    face = track.face_found()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}; "
          f"{args.frames} frames, {len(emb)} landmarks, {N_SHAPE} identity + {N_EXPR} expression components")
    seconds, uv = ours(model, emb, track, clip.focal, args.device)
    err = np.linalg.norm(uv - clean, axis=-1)[face].mean()
    ours_fps = args.frames / seconds
    print(f"gauss-newton (batched, float64): {ours_fps:8.1f} frames/s  ({seconds:.2f} s; "
          f"landmark error vs truth {err:.2f} px)")
    n = min(args.naive_frames, args.frames)
    seconds, uv = naive(model, emb, track, clip.focal, n, args.naive_iters, args.device)
    err = np.linalg.norm(uv - clean[:n], axis=-1)[face[:n]].mean()
    naive_fps = n / seconds
    print(f"per-frame adam ({args.naive_iters} it, autograd):  {naive_fps:8.1f} frames/s  ({seconds:.2f} s for "
          f"{n} frames; landmark error vs truth {err:.2f} px)")
    print(f"speed-up: {ours_fps / naive_fps:.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
