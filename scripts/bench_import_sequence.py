"""Benchmark: import a 1000-frame metrical-tracker folder as keyframed animation.

    python scripts/bench_import_sequence.py [--frames 1000]   # with the bpy wheel installed

Times ``flame.import_sequence`` (reading the 1000 ``.frame`` files included) onto an existing
FLAME-sized head, then writes the same keys with one ``keyframe_insert`` per key and frame, the
way most scripts do, and prints the ratio.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import bpy  # noqa: E402
import numpy as np
from bench_common import flame_sized_model, machine

import flame_blender_addon  # noqa: E402
from flame_blender_addon.blender import compat  # noqa: E402
from flame_blender_addon.core import rotations  # noqa: E402
from flame_blender_addon.core.camera import CameraTrack  # noqa: E402
from flame_blender_addon.core.formats.metrical import write_metrical_checkpoints  # noqa: E402
from flame_blender_addon.core.sequence import FlameSequence  # noqa: E402


def make_sequence(n: int) -> FlameSequence:
    rng = np.random.default_rng(0)
    rot = np.tile(np.eye(3), (n, 5, 1, 1))
    rot[:, 2:] = rotations.axis_angle_to_matrix(rng.normal(scale=0.1, size=(n, 3, 3)))
    K = np.tile([[2500.0, 0, 256], [0, 2500, 256], [0, 0, 1]], (n, 1, 1))
    R = np.tile(np.diag([1.0, -1, -1]), (n, 1, 1))
    t = np.tile([0.0, 0, 1], (n, 1)) + rng.normal(scale=0.01, size=(n, 3))
    return FlameSequence(shape=rng.normal(size=300), expr=rng.normal(size=(n, 100)), rotations=rot,
                         translation=np.zeros((n, 3)), frame_ids=np.arange(n), eyelids=rng.random((n, 2)),
                         camera=CameraTrack(K, R, t, (512, 512)))


def naive_keys(armature, seq: FlameSequence) -> None:
    """One keyframe_insert per channel and frame (what the SMPL-X add-on and most scripts do)."""
    blocks = armature.flame.mesh.data.shape_keys.key_blocks
    quats = rotations.matrix_to_quaternion(seq.rotations)
    for i, frame in enumerate(seq.frame_ids + 1):
        for e in range(seq.n_expr):
            blocks[f"exp{e:03d}"].value = seq.expr[i, e]
            blocks[f"exp{e:03d}"].keyframe_insert("value", frame=frame)
        for j, bone in enumerate(armature.pose.bones):
            bone.rotation_quaternion = quats[i, j]
            bone.keyframe_insert("rotation_quaternion", frame=frame)
            bone.keyframe_insert("location", frame=frame)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000)
    args = parser.parse_args()
    flame_blender_addon.register()
    folder = Path(tempfile.mkdtemp())
    model_path = flame_sized_model(folder)
    seq = make_sequence(args.frames)
    write_metrical_checkpoints(folder / "tracked", seq)

    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.flame.import_model(filepath=str(model_path))
    armature = bpy.context.view_layer.objects.active
    t0 = time.perf_counter()
    bpy.ops.flame.import_sequence(filepath=str(folder / "tracked"))
    t_ours = time.perf_counter() - t0
    n_keys = sum(len(fc.keyframe_points) for owner in (armature, armature.flame.mesh.data.shape_keys)
                 for fc in compat.action_fcurves(owner.animation_data.action))

    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.flame.import_model(filepath=str(model_path))
    armature = bpy.context.view_layer.objects.active
    t0 = time.perf_counter()
    naive_keys(armature, seq)
    t_naive = time.perf_counter() - t0

    print(f"machine: {machine()}")
    print(f"{args.frames}-frame metrical-tracker folder, {n_keys} keys (expression and 5 bones' rotation and "
          f"location) plus the camera")
    print(f"flame.import_sequence (reading included, keyframe_points.add + foreach_set): {t_ours:.2f} s")
    print(f"naive keyframe_insert per key (keys only, no reading, no camera): {t_naive:.2f} s")
    print(f"ratio naive / ours: {t_naive / t_ours:.1f}x")


if __name__ == "__main__":
    main()
