"""Long fuzzing run of every loader, and what the safe loaders cost next to unsafe ones on real-sized data.

    python scripts/bench_fuzz.py                          # 300 s per target; needs hypothesis
    python scripts/bench_fuzz.py --seconds 30 --frames 2000

1. Fuzzes each target of tests/fuzz_targets.py for ``--seconds`` in a child process (the CI test
   does the same for a few seconds) and prints examples and outcomes per target. A failure keeps
   its input under tests/regressions/ and makes the script exit 1.
2. Loads a FLAME-sized model pickle (distributed layout, 5023 vertices, 400 components) with the
   restricted, memory-safe unpickler and with plain ``pickle.loads`` of the same arrays (which would
   run any code in the file): the ratio is the price of safety.
3. Loads a ~400 MB pickle (FLAME's arrays plus a large extra array, the size of the biggest released
   files) and a metrical-tracker folder of ``--frames`` ``.frame`` files, printing time, peak memory
   and how much of the safety budget they use.
"""

from __future__ import annotations

import argparse
import json
import pickle
import resource
import sys
import tempfile
import time
from pathlib import Path

from bench_common import ROOT, best_of, flame_sized_model, machine

sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402
from fuzz_targets import fuzz, targets  # noqa: E402

from flame_blender_addon.core import limits, safe_pickle  # noqa: E402
from flame_blender_addon.core.formats.torch_zip import write_torch_zip  # noqa: E402
from flame_blender_addon.core.model import load_model  # noqa: E402
from flame_blender_addon.core.sequence import read_sequence  # noqa: E402


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fuzz_table(seconds: float, work: Path) -> bool:
    reports = fuzz(seconds, work, [t.name for t in targets()])
    print(f"\nfuzzing, {seconds:g} s per target")
    print(f"{'target':26} {'examples':>9}  outcomes")
    for r in reports:
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(r["outcomes"].items(), key=lambda kv: -kv[1]))
        print(f"{r['target']:26} {r['examples'] or 0:>9}  {outcomes}" + (f"  FAILURE: {r['failure']}" if r["failure"]
                                                                        else ""))
    total = sum(r["examples"] or 0 for r in reports)
    print(f"{'all':26} {total:>9}  failures: {sum(1 for r in reports if r['failure'])}")
    print(json.dumps({"fuzz": reports}))
    return not any(r["failure"] for r in reports)


def safety_price(folder: Path) -> None:
    """Our loader vs plain ``pickle.loads`` of the same file (with chumpy and scipy installed, as other
    FLAME tools load it), or, where they are not, of the same arrays pickled by numpy."""
    data = flame_sized_model(folder).read_bytes()
    ours = best_of(3, lambda: safe_pickle.loads(data, limits.Budget(limits.LARGE)))
    try:
        import chumpy  # noqa: F401
        import scipy.sparse  # noqa: F401

        naive, what = best_of(3, lambda: pickle.loads(data, encoding="latin1")), "the same file"
    except ImportError:
        plain = pickle.dumps(safe_pickle.loads(data, limits.Budget(limits.LARGE)), protocol=2)
        naive, what = best_of(3, lambda: pickle.loads(plain)), "its arrays pickled by numpy (no chumpy here)"
    print(f"\nFLAME-sized pickle ({len(data) / 2**20:.0f} MB): restricted memory-safe unpickler {ours:.3f} s, "
          f"plain pickle.loads of {what} {naive:.3f} s, ratio {ours / naive:.2f}")


def real_sized(folder: Path, frames: int) -> None:
    import legacy_pickle
    from synthetic_model import random_model_arrays
    from tracker_files import metrical_frame

    arrays = random_model_arrays(seed=2)
    arrays["extra_basis"] = np.random.default_rng(0).normal(size=(5023, 3, 2600))  # ~300 MB, as large files carry
    big = legacy_pickle.write_flame_pickle(folder / "flame2023.pkl", arrays)
    del arrays
    start = time.perf_counter()
    load_model(big)
    print(f"{big.stat().st_size / 2**20:.0f} MB model pickle: loaded in {time.perf_counter() - start:.2f} s, "
          f"peak RSS {peak_mb():.0f} MB (limits: file {limits.LARGE.file_bytes / 2**30:g} GiB, decoded "
          f"{limits.LARGE.decoded_bytes / 2**30:g} GiB)")
    rng = np.random.default_rng(1)
    out = folder / "actor" / "checkpoint"
    out.mkdir(parents=True)
    shape = rng.normal(size=300)
    for i in range(frames):
        write_torch_zip(out / f"{i:05d}.frame", metrical_frame(rng, i, shape=shape))
    size = sum(p.stat().st_size for p in out.iterdir())
    budget = limits.Budget(limits.FOLDER)
    from flame_blender_addon.core.formats.metrical import read_frame_file

    read_frame_file(out / "00000.frame", budget)
    per_frame = limits.FOLDER.decoded_bytes - budget.left
    start = time.perf_counter()
    seq = read_sequence(folder / "actor")
    print(f"{frames} .frame files ({size / 2**20:.0f} MB): read in {time.perf_counter() - start:.2f} s, "
          f"{seq.n_frames} frames; {per_frame:,} decoded bytes per frame, {per_frame * frames / 2**20:.0f} MB of "
          f"the {limits.FOLDER.decoded_bytes / 2**30:g} GiB folder budget")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="fuzzing time per target")
    parser.add_argument("--frames", type=int, default=10_000, help=".frame files in the folder test")
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        clean = fuzz_table(args.seconds, Path(tmp) / "fuzz")
        safety_price(Path(tmp))
        real_sized(Path(tmp), args.frames)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
