"""Texture-space albedo: reading FLAME_texture.npz, and the image recomputed when coefficients change.

    python scripts/bench_texture.py [--side 512] [--components 200] [--repeat 10]

Writes a random texture space in FLAME_texture.npz's layout (float32 (R, R, 3, K), 0-255, BGR)
to a temporary folder, reads it with ``core.formats.texture_space`` with a quarter of the components
and with all (timed, with the read's peak of traced memory), then times one albedo recomputation three ways:

- ours: ``TextureSpace.albedo``, one matrix-vector product over the components-first float32
  basis made at load time, plus (under bpy) writing the image's pixels with ``foreach_set``; and
  ``TextureSpace.changed`` when one coefficient changed (what keying one coefficient costs);
- naive: what a loader keeping the file's layout does at every change: ``einsum`` over the
  (R, R, 3, K) array as stored, /255, BGR -> RGB, rows flipped;
- per-pixel Python over one row of texels, scaled to the whole image (the loop the brief rules out).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from bench_common import best_of, machine

from flame_blender_addon.core.formats.texture_space import read_texture_space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--components", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    R, K = args.side, args.components
    print(machine())
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "FLAME_texture.npz"
        stored = rng.uniform(0, 255, (R, R, 3, K)).astype(np.float32)
        np.savez(path, mean=rng.uniform(0, 255, (R, R, 3)).astype(np.float32), tex_dir=stored)
        for n in (K // 4, None):
            tracemalloc.start()
            start = time.perf_counter()
            space = read_texture_space(path, n)
            load = time.perf_counter() - start
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            print(f"read {R}² with {space.n_components} of {K} components (float32 file, "
                  f"{stored.nbytes / 2**20:.0f} MiB): {load:.2f} s, peak {peak:.0f} MiB, "
                  f"kept {space.basis.nbytes / 2**20:.0f} MiB")
    coeffs = rng.normal(size=K).astype(np.float32)
    mean = stored[..., 0] * 0  # stands for the stored mean in the naive formula
    ours = best_of(args.repeat, lambda: space.albedo(coeffs))
    naive = best_of(args.repeat, lambda: (np.einsum("hwck,k->hwc", stored, coeffs) + mean)[::-1, :, ::-1] / 255.0)
    row = best_of(1, lambda: [[stored[0, x, c] @ coeffs for c in range(3)] for x in range(R)]) * R
    assert np.allclose(space.albedo(coeffs)[::-1, :, ::-1] * 255,
                       np.einsum("hwck,k->hwc", stored, coeffs)[::-1] + space.mean[::-1, :, ::-1] * 255, atol=0.05 * K)
    print(f"albedo: ours {ours * 1e3:.0f} ms, naive einsum {naive * 1e3:.0f} ms ({naive / ours:.1f}x), "
          f"per-pixel Python ~{row:.1f} s ({row / ours:.0f}x)")
    before, shown = coeffs.copy(), space.albedo(coeffs)
    coeffs[3] += 0.5
    one = best_of(args.repeat, lambda: space.changed(shown, before, coeffs))
    print(f"one coefficient changed: {one * 1e3:.1f} ms ({naive / one:.0f}x faster than the naive recompute)")
    try:
        import bpy

        from flame_blender_addon.blender import appearance
    except ImportError:
        return
    image = bpy.data.images.new("bench", R, R, alpha=False, float_buffer=True)
    write = best_of(args.repeat, lambda: appearance.write_pixels(image, space.albedo(coeffs)))
    print(f"albedo + image pixels (Blender {bpy.app.version_string}): {write * 1e3:.0f} ms per change")


if __name__ == "__main__":
    main()
