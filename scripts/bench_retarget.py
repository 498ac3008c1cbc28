"""Benchmark: retargeting onto a 20k-vertex character.

    python scripts/bench_retarget.py [--frames 1000]   # with the bpy wheel installed

Times, on the demo head (5023 vertices, 100 identity + 100 expression components) and the
stylised demo character resampled to about 20k vertices: ``flame.fit_to_mesh``,
``flame.transfer_rig`` (136 driven keys) and ``flame.retarget_to_shape_keys`` of a ``--frames``
performance onto 52 ARKit-named keys. Then it writes the same 52 x frames weights with one
``keyframe_insert`` per key and frame, the way most scripts do, and prints the ratio.
"""

from __future__ import annotations

import argparse
import time

import bpy  # noqa: E402
import numpy as np
from bench_common import machine

import flame_blender_addon  # noqa: E402
from flame_blender_addon.blender import compat, retarget  # noqa: E402
from flame_blender_addon.blender.keyframes import write_channels  # noqa: E402
from flame_blender_addon.core import rotations
from flame_blender_addon.core.retarget import livelink  # noqa: E402
from flame_blender_addon.demo import character as demo_character  # noqa: E402


def arkit_keys(armature, obj) -> None:
    """52 ARKit-named keys on the character, each a random sparse FLAME expression carried through the fit."""
    model = retarget.head_model(armature)
    fit = retarget.fitted(armature, obj, model.faces)
    rng = np.random.default_rng(0)
    combos = rng.normal(size=(52, model.n_expr)) * (rng.random((52, model.n_expr)) < 0.1)
    deltas = fit.binding.interpolate(np.einsum("vce,ke->kvc", model.exprdirs, combos)) @ fit.flame_to_local[:3, :3].T
    obj.shape_key_add(name="Basis", from_mix=False)
    basis = retarget.rest_vertices(obj)
    for name, delta in zip(livelink.ARKIT_NAMES, deltas, strict=True):
        obj.shape_key_add(name=name, from_mix=False).data.foreach_set("co", (basis + delta).astype(np.float32).ravel())


def performance(armature, frames: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    T = len(frames)
    expr = rng.normal(scale=0.5, size=(T, armature.flame.n_expr))
    q = rotations.axis_angle_to_quaternion(rng.normal(scale=0.1, size=(T, 5, 3)))
    write_channels(armature.flame.mesh.data.shape_keys, "perf", frames,
                   [(f'key_blocks["exp{e:03d}"].value', 0, expr[:, e]) for e in range(expr.shape[1])])
    write_channels(armature, "perf_bones", frames, [(f'pose.bones["{b.name}"].rotation_quaternion', i, q[:, j, i])
                                                    for j, b in enumerate(armature.pose.bones) for i in range(4)])


def naive_keys(obj, weights: np.ndarray, frames: np.ndarray) -> None:
    """One keyframe_insert per key and frame."""
    blocks = obj.data.shape_keys.key_blocks
    for i, frame in enumerate(frames):
        for k, name in enumerate(livelink.ARKIT_NAMES):
            blocks[name].value = weights[i, k]
            blocks[name].keyframe_insert("value", frame=frame)


def timed(label: str, call):
    start = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - start
    print(f"{label:<44} {seconds:7.2f} s")
    return result, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000)
    args = parser.parse_args()
    flame_blender_addon.register()
    bpy.ops.wm.read_homefile(use_empty=True)
    print(machine())
    bpy.ops.flame.add_demo_head(n_shape=100, n_expr=100)
    armature = bpy.context.view_layer.objects.active
    c = demo_character.demo_character(density=2.2, columns=176)
    obj = retarget.build_mesh(bpy.context, "character", c.vertices, c.loop_vertices, c.loop_totals)
    print(f"character: {len(obj.data.vertices)} vertices, {len(obj.data.polygons)} polygons")
    timed("flame.fit_to_mesh (100 identity components)", lambda: bpy.ops.flame.fit_to_mesh(
        target=armature.name, mesh=obj.name, n_shape=100))
    print(f"  fit RMS {obj[retarget.PROP_RMS_M] * 1000:.2f} mm, p99 {obj[retarget.PROP_P99_M] * 1000:.2f} mm "
          "(FLAME scale; the character is stylised, outside FLAME's space)")
    timed("flame.transfer_rig (136 driven keys)", lambda: bpy.ops.flame.transfer_rig(
        target=armature.name, mesh=obj.name))
    for kb in list(obj.data.shape_keys.key_blocks):  # keep only the character's own keys for the retarget
        obj.shape_key_remove(kb)
    arkit_keys(armature, obj)
    frames = np.arange(1, args.frames + 1, dtype=np.float64)
    performance(armature, frames)
    _, ours = timed(f"flame.retarget_to_shape_keys ({args.frames} frames, 52 keys)",
                    lambda: bpy.ops.flame.retarget_to_shape_keys(target=armature.name, mesh=obj.name,
                                                                  frame_start=1, frame_end=args.frames))
    action = obj.data.shape_keys.animation_data.action
    weights = np.stack([np.array([fc.evaluate(f) for f in frames]) for fc in compat.action_fcurves(action)], 1)
    _, bulk = timed("  of which: the same keys written in bulk", lambda: write_channels(
        obj.data.shape_keys, "bulk", frames, [(f'key_blocks["{n}"].value', 0, weights[:, k])
                                              for k, n in enumerate(livelink.ARKIT_NAMES)]))
    obj.data.shape_keys.animation_data_clear()
    _, naive = timed("naive keyframe_insert per key and frame", lambda: naive_keys(obj, weights, frames))
    print(f"ratio naive / ours: writing keys {naive / bulk:.1f}x, whole retarget {naive / ours:.1f}x")


if __name__ == "__main__":
    main()
