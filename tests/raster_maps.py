"""Rasterise a mesh with the tracker's renderer, for the Blender tier (run by the tracker's Python).

    python tests/raster_maps.py IN.npz OUT.npz

IN holds ``points`` (V, 3) OpenCV camera-space vertices, ``faces`` (F, 3), ``K`` (3, 3) and
``image_size`` (H, W); OUT gets ``face_map`` (H, W) (-1 where empty), ``bary`` (H, W, 3)
perspective-correct barycentrics, ``depth`` (H, W) camera z (NaN where empty) and ``uv`` (V, 2)
the projected vertices. Back faces are drawn too, as a ray cast sees them.
"""

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flame_blender_addon.tracking import raster  # noqa: E402


def main(src: str, dst: str) -> None:
    d = np.load(src)
    H, W = (int(v) for v in d["image_size"])
    faces = torch.as_tensor(d["faces"], dtype=torch.int64)
    points = torch.as_tensor(d["points"], dtype=torch.float32)[None]
    screen, depth = raster.project(points, torch.as_tensor(d["K"], dtype=torch.float32))
    frags = raster.rasterize(screen, depth, faces, (H, W), cull_backfaces=False)
    bary = raster.barycentrics(screen, depth, faces, frags)
    z = raster.interpolate(depth[..., None], faces, frags, bary)
    np.savez(dst, face_map=frags.face_map[0].numpy(), uv=screen[0].numpy(),
             bary=raster.to_image(bary, frags, float("nan"))[0].numpy(),
             depth=raster.to_image(z, frags, float("nan"))[0, ..., 0].numpy())


if __name__ == "__main__":
    main(*sys.argv[1:3])
