"""A differentiable triangle renderer in pure torch (CPU or CUDA), batched over images.

As nvdiffrast splits it: :func:`rasterize` finds the visible triangle at every pixel centre without
gradients; :func:`barycentrics` then recomputes the perspective-correct barycentric coordinates of
those pixels from the projected vertices, differentiably, so :func:`interpolate` gives attributes
whose gradients reach the vertex positions (and texture lookups at interpolated UVs reach them
through the texture's image gradient). Visibility changes at silhouettes get their gradients from
:func:`antialias`, which blends each pixel next to a silhouette edge by its analytic coverage.

Conventions: OpenCV cameras (x right, y down, z forward); pixel (row y, column x) has its centre at
``(x + 0.5, y + 0.5)`` in image coordinates whose origin is the top-left corner of the image, as
``K`` in :mod:`..core.camera`. B images of H x W, V vertices, F triangles, N covered pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

NEAR = 1e-3  # metres; triangles with a corner closer than this are not drawn
FRONT = -1.0  # sign of the image-space signed area of a front-facing (outward, counter-clockwise) triangle
MAX_PAIRS = 1 << 22  # (triangle, pixel) candidates tested at once; bounds rasterize's memory
MAX_COORD = 1e6  # pixels; triangles with a corner farther out (or not finite) are not drawn
_EMPTY = torch.iinfo(torch.int64).max


@dataclass
class Fragments:
    """The visible triangle at each covered pixel centre.

    pixel: (N,) int64 flat index ``(b H + y) W + x``; face: (N,) int64; batch: (N,) int64 image b;
    size: (B, H, W). face_map: (B, H, W) int64, -1 where nothing is drawn.
    """

    pixel: torch.Tensor
    face: torch.Tensor
    batch: torch.Tensor
    face_map: torch.Tensor

    @property
    def size(self) -> tuple[int, int, int]:
        B, H, W = self.face_map.shape
        return B, H, W

    def centres(self) -> torch.Tensor:
        """Image coordinates of the covered pixel centres: (N, 2) float32."""
        _, H, W = self.size
        return pixel_centres(self.pixel, H, W)


def pixel_centres(pixel: torch.Tensor, H: int, W: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Image coordinates (N, 2) of the centres of pixels (N,) given as flat indices ``(b H + y) W + x``."""
    rest = pixel % (H * W)
    return torch.stack([rest % W, rest // W], -1).to(dtype) + 0.5


def project(points: torch.Tensor, K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pinhole projection of OpenCV camera-space points (B, V, 3) with intrinsics K (3, 3) or
    (B, 3, 3) -> image coordinates (B, V, 2) and depth (B, V)."""
    K = K.expand(points.shape[0], 3, 3)
    z = points[..., 2]
    xy = points[..., :2] / z[..., None]
    uv = torch.einsum("bij,bvj->bvi", K[:, :2, :2], xy) + K[:, None, :2, 2]
    return uv, z


def _signed_area(tri: torch.Tensor) -> torch.Tensor:
    """Twice the signed area of image-space triangles (..., 3, 2) -> (...)."""
    a, b, c = tri.unbind(-2)
    return (b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (c[..., 0] - a[..., 0]) * (b[..., 1] - a[..., 1])


def _edge_functions(tri: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Edge functions of points p (..., 2) in triangles (..., 3, 2) -> (..., 3): the screen-space
    barycentrics times twice the signed area."""
    a, b, c = tri.unbind(-2)

    def cross(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        du, dv = u - p, v - p
        return du[..., 0] * dv[..., 1] - du[..., 1] * dv[..., 0]

    return torch.stack([cross(b, c), cross(c, a), cross(a, b)], -1)


def _plane_coefficients(tri: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
    """Rows M (..., 4, 3) with ``M @ (x, y, 1) = (l0, l1, l2, 1/z)`` at image point (x, y): the
    screen-space barycentrics and the inverse depth, affine in the image. tri: (..., 3, 2); depth: (..., 3)."""
    a, b, c = tri.unbind(-2)
    area = _signed_area(tri)[..., None]

    def edge(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:  # cross(u - p, v - p) as (ax, ay, 1)-coefficients
        return torch.stack([u[..., 1] - v[..., 1], v[..., 0] - u[..., 0],
                            u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]], -1)

    lam = torch.stack([edge(b, c), edge(c, a), edge(a, b)], -2) / area[..., None]  # (..., 3, 3)
    inv = (lam / depth[..., :, None]).sum(-2, keepdim=True)
    return torch.cat([lam, inv], -2)


@torch.no_grad()
def rasterize(screen: torch.Tensor, depth: torch.Tensor, faces: torch.Tensor, image_size: tuple[int, int],
              cull_backfaces: bool = True) -> Fragments:
    """The nearest triangle at every pixel centre (a z-buffer, no gradients).

    screen: (B, V, 2) image coordinates; depth: (B, V) camera z; faces: (F, 3) int64.
    Every (triangle, pixel in its bounding box) pair is tested at once, in batches of
    :data:`MAX_PAIRS`; the nearest is kept by an atomic minimum over (depth bits, face) keys.
    """
    H, W = image_size
    B, F = screen.shape[0], faces.shape[0]
    tri = screen[:, faces].float()  # (B, F, 3, 2)
    d = depth[:, faces].float()  # (B, F, 3)
    area = _signed_area(tri)
    ok = (d > NEAR).all(-1) & ((area * FRONT > 0) if cull_backfaces else (area != 0))
    ok &= (tri.abs() < MAX_COORD).all(-1).all(-1) & (d < float("inf")).all(-1)  # also false where NaN
    tri = torch.where(ok[..., None, None], tri, torch.zeros_like(tri))  # no integer bounds from NaN or inf
    lo = torch.ceil(tri.amin(2) - 0.5).clamp(min=0).long()  # (B, F, 2) first pixel column, row
    hi = torch.floor(tri.amax(2) - 0.5).long()
    hi = torch.minimum(hi, torch.tensor([W - 1, H - 1], device=hi.device))
    n = (hi - lo + 1).clamp(min=0)
    count = torch.where(ok, n[..., 0] * n[..., 1], torch.zeros_like(n[..., 0])).reshape(-1)
    cand = count.nonzero()[:, 0]  # flat (b F + f) of triangles touching a pixel centre
    count, lo, width = count[cand], lo.reshape(-1, 2)[cand], n.reshape(-1, 2)[cand, 0]
    planes = _plane_coefficients(tri.reshape(-1, 3, 2)[cand], d.reshape(-1, 3)[cand])  # (M, 4, 3)
    zbuf = torch.full((B * H * W,), _EMPTY, dtype=torch.int64, device=screen.device)
    ends = torch.cumsum(count, 0)
    start = 0
    while start < len(cand):
        base = int(ends[start - 1]) if start else 0
        stop = max(start + 1, int(torch.searchsorted(ends, base + MAX_PAIRS, right=True)))
        cnt = count[start:stop]
        owner = torch.repeat_interleave(torch.arange(start, stop, device=cnt.device), cnt)
        local = torch.arange(int(cnt.sum()), device=cnt.device) - (ends[owner] - count[owner] - base)
        x = lo[owner, 0] + local % width[owner]
        y = lo[owner, 1] + local // width[owner]
        M = planes[owner]
        val = M[..., 0] * (x.float() + 0.5)[:, None] + M[..., 1] * (y.float() + 0.5)[:, None] + M[..., 2]
        keep = (val[:, :3] >= -1e-6).all(-1) & (val[:, 3] > 0)
        z = (1.0 / val[keep, 3]).contiguous()
        key = (z.view(torch.int32).long() << 32) | (cand[owner[keep]] % F)
        b = cand[owner[keep]] // F
        zbuf.scatter_reduce_(0, (b * H + y[keep]) * W + x[keep], key, reduce="amin")
        start = stop
    pixel = (zbuf != _EMPTY).nonzero()[:, 0]
    face = zbuf[pixel] & 0xFFFFFFFF
    face_map = torch.full((B * H * W,), -1, dtype=torch.int64, device=screen.device)
    face_map[pixel] = face
    return Fragments(pixel=pixel, face=face, batch=pixel // (H * W), face_map=face_map.reshape(B, H, W))


def barycentrics(screen: torch.Tensor, depth: torch.Tensor, faces: torch.Tensor, frags: Fragments) -> torch.Tensor:
    """Perspective-correct barycentric coordinates (N, 3) of the covered pixel centres in their
    visible triangles, differentiable w.r.t. ``screen`` (B, V, 2) and ``depth`` (B, V).

    They are ``(e_k / z_k) / sum_j (e_j / z_j)``, e_k the edge functions (the screen barycentrics
    times the signed area, which cancels, so edge-on triangles divide by nothing small). Fragments
    reused after the vertices moved may lie outside their triangle: their coordinates are clamped
    to the triangle (e_k of the triangle's sign, >= 0; depths >= NEAR), so they stay in [0, 1]."""
    corners = faces[frags.face]  # (N, 3)
    b = frags.batch[:, None]
    tri = screen[b, corners]
    e = _edge_functions(tri, frags.centres().to(screen.dtype)) * torch.sign(_signed_area(tri.detach()))[:, None]
    w = e.clamp(min=0) / depth[b, corners].clamp(min=NEAR)
    return w / w.sum(-1, keepdim=True).clamp(min=torch.finfo(w.dtype).tiny)


def interpolate(values: torch.Tensor, faces: torch.Tensor, frags: Fragments, bary: torch.Tensor) -> torch.Tensor:
    """Vertex attributes at the covered pixels. values: (B, V, C) or (V, C) -> (N, C)."""
    corners = faces[frags.face]
    v = values[frags.batch[:, None], corners] if values.dim() == 3 else values[corners]
    return (bary[..., None] * v).sum(1)


def interpolate_corners(values: torch.Tensor, frags: Fragments, bary: torch.Tensor) -> torch.Tensor:
    """Face-corner attributes (UVs with seams) at the covered pixels. values: (F, 3, C) -> (N, C)."""
    return (bary[..., None] * values[frags.face]).sum(1)


def to_image(values: torch.Tensor, frags: Fragments, background: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Scatter per-pixel values (N, C) into images (B, H, W, C) over ``background`` (a scalar or
    (B, H, W, C)); differentiable w.r.t. both."""
    B, H, W = frags.size
    C = values.shape[-1]
    if torch.is_tensor(background):
        out = background.reshape(B * H * W, C).clone().to(values.dtype)
    else:
        out = torch.full((B * H * W, C), float(background), dtype=values.dtype, device=values.device)
    out = out.index_put((frags.pixel,), values)
    return out.reshape(B, H, W, C)


def vertex_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals of outward-wound meshes. verts: (B, V, 3) -> (B, V, 3)."""
    a, b, c = verts[:, faces].unbind(2)
    n = torch.cross(b - a, c - a, dim=-1)  # (B, F, 3), twice the area
    out = torch.zeros_like(verts)
    for k in range(3):
        out = out.index_add(1, faces[:, k], n)
    return torch.nn.functional.normalize(out, dim=-1, eps=1e-12)


def edge_adjacency(faces: np.ndarray) -> np.ndarray:
    """The triangle across each edge: (F, 3) int64, edge k joining corners k and k + 1 (mod 3),
    -1 on the mesh boundary (or where more than two triangles share an edge)."""
    a = faces.reshape(-1).astype(np.int64)
    b = np.roll(faces, -1, axis=1).reshape(-1).astype(np.int64)
    key = np.minimum(a, b) * (int(faces.max()) + 1) + np.maximum(a, b)
    _, inv, counts = np.unique(key, return_inverse=True, return_counts=True)
    order = np.argsort(inv.reshape(-1), kind="stable")
    first = (np.cumsum(counts) - counts)[counts == 2]
    i, j = order[first], order[first + 1]
    out = np.full(len(key), -1, dtype=np.int64)
    out[i], out[j] = j // 3, i // 3
    return out.reshape(-1, 3)


def _shift(x: torch.Tensor, dy: int, dx: int, fill) -> torch.Tensor:
    """x (B, H, W, ...) moved so that out[b, y, x] = x[b, y + dy, x + dx], ``fill`` outside."""
    out = torch.full_like(x, fill)
    H, W = x.shape[1:3]
    ys, yd = (slice(dy, H), slice(0, H - dy)) if dy >= 0 else (slice(0, H + dy), slice(-dy, H))
    xs, xd = (slice(dx, W), slice(0, W - dx)) if dx >= 0 else (slice(0, W + dx), slice(-dx, W))
    out[:, yd, xd] = x[:, ys, xs]
    return out


def _crossed_edge(screen: torch.Tensor, faces: torch.Tensor, silhouette: torch.Tensor, adjacency: torch.Tensor,
                  batch: torch.Tensor, face: torch.Tensor, p: torch.Tensor, q: torch.Tensor):
    """The silhouette edge between pixel centres p (M, 2) (outside) and q (M, 2) (inside triangle
    ``face`` (M,) of images ``batch`` (M,)): among the silhouette edges of that triangle and its
    three neighbours, the one with p outside and nearest. Returns the signed distances (pixels,
    positive inside) of p and q to its line, (M,) each, and (M,) bool whether one was found."""
    near = torch.cat([face[:, None], adjacency[face]], 1)  # (M, 4)
    tri = screen[batch[:, None, None], faces[near.clamp(min=0)]]  # (M, 4, 3, 2)
    e = tri.roll(-1, dims=2) - tri
    side = torch.sign(_signed_area(tri))[..., None] / torch.linalg.vector_norm(e, dim=-1).clamp(min=1e-9)

    def dist(x: torch.Tensor) -> torch.Tensor:
        rel = x[:, None, None] - tri
        return side * (e[..., 0] * rel[..., 1] - e[..., 1] * rel[..., 0])  # (M, 4, 3)

    dp, dq = dist(p), dist(q)
    ok = silhouette[batch[:, None], near.clamp(min=0)] & (near >= 0)[..., None] & (dp < 0) & (dq > dp)
    score = torch.where(ok, dp.detach(), torch.full_like(dp, -float("inf"))).reshape(len(p), -1)
    k = score.argmax(1)
    pick = lambda d: d.reshape(len(p), -1).gather(1, k[:, None])[:, 0]  # noqa: E731
    return pick(dp), pick(dq), ok.reshape(len(p), -1).any(1)


def antialias(image: torch.Tensor, frags: Fragments, screen: torch.Tensor, depth_map: torch.Tensor,
              faces: torch.Tensor, adjacency: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Coverage blending at silhouette edges, so that images are continuous functions of the
    vertex positions there. Returns the pixels to change (M,) (flat indices) and their colours (M, C).

    image: (B, H, W, C) shaded image (background where nothing is drawn); screen: (B, V, 2) with
    gradients; depth_map: (B, H, W) (+inf where empty); adjacency: (F, 3) from :func:`edge_adjacency`.
    A silhouette edge is one whose neighbouring triangle is missing or back-facing. A pixel p whose
    4-neighbour q shows a nearer triangle with such an edge is covered by that triangle to
    ``a_p = clamp(0.5 + s_p, 0, 1)`` and becomes ``a_p c_q + (1 - a_p) c_p`` (the neighbour giving
    the largest a_p wins); s is the signed distance (pixels, positive inside) of the pixel centre
    to the silhouette edge between p and q, found among the edges of q's triangle and of its
    neighbours (on fine meshes the edge often belongs to a neighbour). q itself is covered to
    ``a_q = clamp(0.5 + s_q, 0, 1)`` and mixes ``1 - a_q`` of its behind-neighbours' mean colour.
    """
    B, H, W = frags.size
    C = image.shape[-1]
    colour = image.reshape(-1, C)
    fmap = frags.face_map
    front = _signed_area(screen.detach()[:, faces]) * FRONT > 0  # (B, F)
    silhouette = front[..., None] & ((adjacency < 0) | ~front[:, adjacency.clamp(min=0)])  # (B, F, 3)
    has_sil = silhouette.any(-1)
    bidx = torch.arange(B, device=image.device)[:, None, None].expand(B, H, W)
    parts = []
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        fq = _shift(fmap, dy, dx, -1)  # the neighbour's triangle, seen from p
        cand = (fq >= 0) & (fq != fmap) & (_shift(depth_map, dy, dx, float("inf")) < depth_map)
        cand &= has_sil[bidx, fq.clamp(min=0)]
        b, y, x = cand.nonzero(as_tuple=True)
        p = (b * H + y) * W + x
        parts.append(torch.stack([b, p, p + dy * W + dx, fq[b, y, x]]))
    b, p, q, f = torch.cat(parts, 1)
    if not len(p):
        return p, colour[:0]

    # p: partly covered by the nearer triangle across the edge
    sp, sq, found = _crossed_edge(screen, faces, silhouette, adjacency, b, f, pixel_centres(p, H, W, screen.dtype),
                                  pixel_centres(q, H, W, screen.dtype))
    a = torch.where(found, (0.5 + sp).clamp(0, 1), torch.zeros_like(sp))
    best = torch.zeros(B * H * W, dtype=a.dtype, device=a.device).scatter_reduce(0, p, a.detach(), "amax")
    pair = torch.arange(len(p), device=p.device)
    win = (a > 0) & (a.detach() >= best[p])
    first = torch.full((B * H * W,), len(p), device=p.device).scatter_reduce(0, p[win], pair[win], "amin")
    win &= first[p] == pair
    p_pix, aw = p[win], a[win, None]
    p_col = aw * colour[q[win]] + (1 - aw) * colour[p_pix]
    # q: its coverage by the least covering of those edges, the rest from its behind-neighbours
    q_pix, inv = torch.unique(q[found], return_inverse=True)
    behind = torch.zeros((len(q_pix), C), dtype=colour.dtype, device=colour.device).index_add(0, inv, colour[p[found]])
    behind = behind / torch.bincount(inv, minlength=len(q_pix))[:, None]
    aq_pair = (0.5 + sq[found]).clamp(0, 1)
    worst = torch.ones(len(q_pix), dtype=a.dtype, device=a.device).scatter_reduce(0, inv, aq_pair.detach(), "amin")
    pick = torch.full((len(q_pix),), len(inv), device=p.device).scatter_reduce(
        0, inv, torch.where(aq_pair.detach() <= worst[inv], torch.arange(len(inv), device=p.device), len(inv)), "amin")
    aq = aq_pair[pick][:, None]
    q_col = aq * colour[q_pix] + (1 - aq) * behind
    only_q = ~torch.isin(q_pix, p_pix)
    return torch.cat([q_pix[only_q], p_pix]), torch.cat([q_col[only_q], p_col])
