"""Benchmark: build a FLAME-sized head (5023 vertices, 436 shape keys, 36 drivers) in Blender.

    python scripts/bench_import_model.py        # with the bpy wheel installed

Times ``flame.import_model`` (reading the pickle included) against the same mesh, shape keys and
skin weights written naively with per-vertex Python loops, and prints the ratio.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import bpy  # noqa: E402  (bench_common sets Blender's user folders first)
from bench_common import flame_sized_model, machine

import flame_blender_addon  # noqa: E402
from flame_blender_addon.core.model import load_model  # noqa: E402


def naive_build(model) -> None:
    """What a straightforward add-on does: one Python call per vertex, key and weight."""
    mesh = bpy.data.meshes.new("naive")
    mesh.from_pydata(model.v_template.tolist(), [], model.faces.tolist())
    obj = bpy.data.objects.new("naive", mesh)
    bpy.context.collection.objects.link(obj)
    for j in range(5):
        group = obj.vertex_groups.new(name=f"j{j}")
        for v, w in enumerate(model.weights[:, j]):
            if w > 0:
                group.add([v], float(w), "REPLACE")
    obj.shape_key_add(name="Basis")
    dirs = [model.shapedirs, model.exprdirs, model.posedirs]
    for block in dirs:
        for k in range(block.shape[2]):
            kb = obj.shape_key_add(name=f"k{k}")
            for v in range(model.n_verts):
                kb.data[v].co = model.v_template[v] + block[v, :, k]


def main() -> None:
    flame_blender_addon.register()
    folder = Path(tempfile.mkdtemp())
    path = flame_sized_model(folder)
    bpy.ops.wm.read_homefile(use_empty=True)

    t0 = time.perf_counter()
    model = load_model(path)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    bpy.ops.flame.import_model(filepath=str(path))
    t_ours = time.perf_counter() - t0

    bpy.ops.wm.read_homefile(use_empty=True)
    t0 = time.perf_counter()
    naive_build(model)
    t_naive = time.perf_counter() - t0 + t_load

    print(f"machine: {machine()}")
    print(f"FLAME-sized model: {model.n_verts} vertices, {len(model.faces)} faces, "
          f"{model.n_shape + model.n_expr + 36} shape keys, 36 corrective drivers")
    print(f"reading the pickle (restricted unpickler): {t_load:.2f} s")
    print(f"flame.import_model (read + build, bulk foreach_set): {t_ours:.2f} s")
    print(f"naive per-vertex build (same read): {t_naive:.2f} s")
    print(f"ratio naive / ours: {t_naive / t_ours:.1f}x")


if __name__ == "__main__":
    main()
