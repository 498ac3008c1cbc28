"""Preview images of a fit (numpy only): the face cropped from the frame and scaled to a fixed
size, side by side with the fitted mesh drawn over it, shaded.

Left: the crop with the detected (red) and fitted (green) landmarks. Right: the same crop under the
posed mesh, flat-shaded and half transparent. The mesh is rasterised with the painter's algorithm,
vectorised: every pixel centre inside a front-facing triangle becomes a candidate, and candidates
are written far to near.
"""

from __future__ import annotations

import numpy as np

SIZE = 384  # pixels of each half (a face is readable; 512 took 1.8x as long to render and write)
MARGIN = 1.6  # crop side / the landmarks' larger extent
DETECTED, FITTED, MESH = (255, 50, 50), (40, 230, 40), (170, 200, 255)
MESH_ALPHA = 0.55


def face_box(points: np.ndarray, margin: float = MARGIN) -> tuple[float, float, float]:
    """Square crop (x0, y0, side) in pixels around the finite points (N, 2)."""
    pts = points[np.isfinite(points).all(axis=1)]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    side = max(8.0, margin * float((hi - lo).max()))
    cx, cy = (lo + hi) / 2
    return float(cx - side / 2), float(cy - side / 2), side


def to_crop(uv: np.ndarray, box: tuple[float, float, float], size: int = SIZE) -> np.ndarray:
    """Frame pixels (..., 2) -> crop pixels (..., 2)."""
    x0, y0, side = box
    return (uv - (x0, y0)) * (size / side)


def crop(rgb: np.ndarray, box: tuple[float, float, float], size: int = SIZE) -> np.ndarray:
    """The crop of ``rgb`` (H, W, 3) resampled bilinearly to (size, size, 3), black outside the frame."""
    x0, y0, side = box
    H, W = rgb.shape[:2]
    centres = (np.arange(size) + 0.5) * (side / size) - 0.5
    xs, ys = x0 + centres, y0 + centres
    ix, iy = np.floor(xs).astype(np.int64), np.floor(ys).astype(np.int64)
    fx, fy = (xs - ix).astype(np.float32)[None, :, None], (ys - iy).astype(np.float32)[:, None, None]

    # interpolate along x on each source row needed once, then along y
    rows, where = np.unique(np.concatenate([iy, iy + 1]), return_inverse=True)

    def at(c: np.ndarray) -> np.ndarray:  # (rows, size, 3) the samples of columns c; only they become float
        inside = ((rows >= 0) & (rows < H))[:, None] & ((c >= 0) & (c < W))[None, :]
        return rgb[np.clip(rows, 0, H - 1)][:, np.clip(c, 0, W - 1)] * inside[..., None].astype(np.float32)

    across = at(ix) * (1 - fx) + at(ix + 1) * fx
    top, bottom = across[where[:size]], across[where[size:]]
    return np.clip(top * (1 - fy) + bottom * fy + 0.5, 0, 255).astype(np.uint8)


def shade_mesh(img: np.ndarray, uv: np.ndarray, camera_points: np.ndarray, faces: np.ndarray,
               color: tuple[int, int, int] = MESH, alpha: float = MESH_ALPHA) -> np.ndarray:
    """``img`` (H, W, 3) with the mesh blended over it, flat-shaded by the angle to the viewer.

    uv: (V, 2) pixel positions in ``img``; camera_points: (V, 3) OpenCV camera coordinates
    (+Z forward, so depth is Z); faces: (F, 3) counter-clockwise seen from outside.
    """
    H, W = img.shape[:2]
    tri = uv[faces]  # (F, 3, 2)
    p = camera_points[faces]
    normal = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    centre = p.mean(axis=1)
    facing = -(normal * centre).sum(1) / (np.linalg.norm(normal, axis=1) * np.linalg.norm(centre, axis=1) + 1e-12)
    lo, hi = np.floor(tri.min(axis=1)), np.ceil(tri.max(axis=1))
    keep = ((facing > 0) & (centre[:, 2] > 0) & np.isfinite(tri).all(axis=(1, 2)) & (hi[:, 0] >= 0)
            & (hi[:, 1] >= 0) & (lo[:, 0] < W) & (lo[:, 1] < H) & ((hi - lo) < max(H, W)).all(axis=1))
    order = np.flatnonzero(keep)[np.argsort(-centre[keep, 2])]  # far to near
    if not len(order):
        return img
    # one candidate per pixel of each triangle's bounding box (int32 / float32: ~1M candidates)
    lo, span = lo[order].astype(np.int32), (hi[order] - lo[order]).astype(np.int32) + 1
    counts = span[:, 0] * span[:, 1]
    owner = np.repeat(np.arange(len(order), dtype=np.int32), counts)
    local = np.arange(counts.sum(), dtype=np.int32) - np.repeat(np.cumsum(counts, dtype=np.int32) - counts, counts)
    px = lo[owner, 0] + local % span[owner, 0]
    py = lo[owner, 1] + local // span[owner, 0]
    # barycentric coordinates from the triangle's edge vectors, precomputed per triangle
    t = tri[order].astype(np.float32)
    e1, e2 = t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]
    area = _cross(e1, e2)
    qx, qy = px + np.float32(0.5) - t[owner, 0, 0], py + np.float32(0.5) - t[owner, 0, 1]
    w1 = (qx * e2[owner, 1] - qy * e2[owner, 0]) / area[owner]
    w2 = (e1[owner, 0] * qy - e1[owner, 1] * qx) / area[owner]
    inside = (w1 >= 0) & (w2 >= 0) & (w1 + w2 <= 1) & (px >= 0) & (px < W) & (py >= 0) & (py < H)
    shade = (0.35 + 0.65 * facing[order])[owner[inside]]
    out = img.astype(np.float32)
    rows, cols = py[inside], px[inside]
    out[rows, cols] = (1 - alpha) * out[rows, cols] + alpha * shade[:, None] * np.asarray(color, np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]


def draw_points(img: np.ndarray, uv: np.ndarray, color: tuple[int, int, int], radius: int = 2) -> np.ndarray:
    """A copy of ``img`` (H, W, 3) with filled discs at the finite positions ``uv`` (N, 2)."""
    out = img.copy()
    H, W = img.shape[:2]
    pts = uv[np.isfinite(uv).all(axis=1)]
    d = np.arange(-radius, radius + 1)
    dx, dy = np.meshgrid(d, d)
    disc = dx * dx + dy * dy <= radius * radius + radius
    xs = (np.floor(pts[:, 0])[:, None] + dx[disc][None]).astype(np.int64)
    ys = (np.floor(pts[:, 1])[:, None] + dy[disc][None]).astype(np.int64)
    inside = (xs >= 0) & (xs < W) & (ys >= 0) & (ys < H)
    out[ys[inside], xs[inside]] = color
    return out


def side_by_side(rgb: np.ndarray, detected: np.ndarray, fitted: np.ndarray, mesh_uv: np.ndarray,
                 mesh_camera: np.ndarray, faces: np.ndarray, size: int = SIZE) -> np.ndarray:
    """The preview (size, 2 size, 3) of one frame: rgb (H, W, 3); detected, fitted: (L, 2) pixels
    (detected may be all NaN); mesh_uv (V, 2) pixels and mesh_camera (V, 3) of the posed mesh."""
    box = face_box(detected if np.isfinite(detected).any() else fitted)
    face = crop(rgb, box, size)
    left = draw_points(draw_points(face, to_crop(detected, box, size), DETECTED), to_crop(fitted, box, size), FITTED)
    right = shade_mesh(face, to_crop(mesh_uv, box, size), mesh_camera, faces)
    return np.concatenate([left, right], axis=1)
