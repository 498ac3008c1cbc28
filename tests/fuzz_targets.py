"""Property-based fuzzing of every loader (hypothesis), seeded from the project's own writers.

Property: whatever the bytes, a loader returns or raises a FlameError with a one-line message,
never an InternalError, another exception, a crash, a hang or memory exhaustion, and never
modifies the allowlisted functions or stub classes.

Each target writes a valid seed (model pickle and npz, metrical ``.frame`` with numpy or tensor
leaves, flame_sequence / VHAP npz, GaussianAvatars per-frame folder, eyelid ``.npy``, landmark and
embedding npz, ``FLAME_masks.pkl`` text pickle, ``landmark_embedding.npy`` with legacy torch tensors) and
mutates it: bytes of a pickle or of one zip member (re-zipped so its CRC is right), the zip container
itself, or whole arrays (removed, NaN, retyped, reshaped, enlarged).

``python tests/fuzz_targets.py --seconds S --work DIR [--targets a,b]`` runs in a child process
(RLIMIT_AS, an alarm per example) and prints one JSON line per target; before each example it
records the example's path in ``DIR/current.json``, so that the parent (:func:`fuzz`) can keep the
input of a crash or hang under ``tests/regressions/<loader>/``. Failures found in the child are
shrunk by hypothesis and kept the same way.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

TESTS = Path(__file__).resolve().parent
REGRESSIONS = TESTS / "regressions"
MEMORY_MB = 2048


# --------------------------------------------------------------------------------------------------
# mutations


_INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 2**63 - 1, 2**64 - 1)


def mutate_bytes(data: bytes, ops: list[tuple[str, int, bytes, int]]) -> bytes:
    """Apply (kind, position, payload, extra) edits: flip a bit, overwrite, insert, delete, truncate,
    write an interesting integer, duplicate a slice."""
    buf = bytearray(data)
    for kind, pos, payload, extra in ops:
        i = pos % (len(buf) + 1)
        if kind == "flip" and buf:
            buf[i % len(buf)] ^= 1 << (extra % 8)
        elif kind == "set":
            buf[i:i + len(payload)] = payload
        elif kind == "insert":
            buf[i:i] = payload
        elif kind == "delete":
            del buf[i:i + 1 + extra % 64]
        elif kind == "truncate":
            del buf[i:]
        elif kind == "int":
            width = (1, 2, 4, 8)[extra % 4]
            value = _INTERESTING[(extra >> 2) % len(_INTERESTING)] % (1 << (8 * width))
            buf[i:i + width] = value.to_bytes(width, "little")
        elif kind == "dup":
            j = extra % (len(buf) + 1)
            buf[i:i] = buf[j:j + 1 + pos % 256]
    return bytes(buf)


def mutate_array(value: np.ndarray, kind: str, extra: int) -> np.ndarray | None:
    """One structural change of an array: None removes the key (an impossible change keeps it as it is)."""
    try:
        return _mutate_array(value, kind, extra)
    except (ValueError, TypeError, IndexError, OverflowError):  # e.g. text retyped to int, 0-d sliced
        return value


def _mutate_array(value: np.ndarray, kind: str, extra: int) -> np.ndarray | None:
    if kind == "drop":
        return None
    if kind == "nan" and value.dtype.kind == "f" and value.size:
        value = value.copy()
        value.reshape(-1)[extra % value.size] = (np.nan, np.inf, -np.inf, 1e308)[extra % 4]
        return value
    if kind == "retype":
        return value.astype((np.int8, np.bool_, np.float16, np.uint64, "U3", np.complex64)[extra % 6])
    if kind == "reshape":
        return (value.reshape(-1), value[..., None], value[:0], value.T, value[..., :-1] if value.ndim else value,
                np.repeat(value, 2, axis=0) if value.ndim else value)[extra % 6]
    if kind == "scale" and value.dtype.kind in "fiu":
        return value * (10.0 ** ((extra % 40) - 20))
    return value


# --------------------------------------------------------------------------------------------------
# targets


class Target:
    """A loader, a seed (name -> bytes of the files it reads) and where the loader is pointed."""

    def __init__(self, name: str, loader: str, seed: Callable[[], dict[str, bytes]], entry: str,
                 arrays: Callable[[], dict[str, np.ndarray]] | None = None, pack: Callable | None = None):
        self.name, self.loader, self.seed, self.entry = name, loader, seed, entry
        self.arrays, self.pack = arrays, pack  # array-level mutation: arrays -> files dict


def _zip_members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _rezip(members: dict[str, bytes], compression: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def _npz_bytes(arrays: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    np.savez(out, **{k: v for k, v in arrays.items() if v is not None})
    return out.getvalue()


def _npy_bytes(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


def targets() -> list[Target]:
    import pickle

    import asset_files as af
    import hostile_corpus as hc
    import legacy_pickle
    from regressor_files import regressor_codes, write_ply
    from tracker_files import gaussian_avatars_arrays, vhap_arrays

    def model_npz() -> dict[str, np.ndarray]:
        return {k: v for k, v in hc.model_arrays().items() if k not in ("bs_style", "bs_type")}

    def frame_files(tensors: bool) -> dict[str, bytes]:
        frame = hc.frame_dict()
        if not tensors:  # the project's own writer (numpy leaves)
            with tempfile.TemporaryDirectory() as tmp:
                hc.write_torch_zip(Path(tmp) / "00000.frame", frame)
                return {"out/checkpoint/00000.frame": (Path(tmp) / "00000.frame").read_bytes()}
        data, storages = torch_style_pickle(frame)
        members = {"00000/data.pkl": data, "00000/version": b"3\n",
                   **{f"00000/data/{k}": v for k, v in storages.items()}}
        return {"out/checkpoint/00000.frame": _rezip(members, zipfile.ZIP_STORED)}

    def ga_files(arrays: dict[str, np.ndarray]) -> dict[str, bytes]:
        shared = {"shape", "static_offset"}
        return {f"flame_param/{i:05d}.npz": _npz_bytes({k: v if k in shared or v is None else v[i:i + 1]
                                                        for k, v in arrays.items()}) for i in range(2)}

    def ply_bytes(binary: bool) -> dict[str, bytes]:
        vertices = np.random.default_rng(9).normal(scale=50.0, size=(30, 3))
        with tempfile.TemporaryDirectory() as tmp:
            return {"mesh.ply": write_ply(Path(tmp) / "mesh.ply", vertices, np.arange(30).reshape(10, 3),
                                          binary).read_bytes()}

    deca = lambda: regressor_codes(np.random.default_rng(8), 1)[0]  # noqa: E731
    deca_folder = lambda a: {"deca/0001.npz": _npz_bytes(a), "deca/0002.npz": _npz_bytes(deca())}  # noqa: E731
    smirk = regressor_codes(np.random.default_rng(8), 2, smirk=True)
    emoca = lambda: {f"emoca/0001_00/{k}.npy": _npy_bytes(v[0]) for k, v in deca().items()}  # noqa: E731
    identity = lambda: {"identity": np.random.default_rng(8).normal(size=300).astype(np.float32)}  # noqa: E731
    vhap = lambda: vhap_arrays(np.random.default_rng(6), 3, n_verts=30)  # noqa: E731
    ga = lambda: gaussian_avatars_arrays(np.random.default_rng(7), 2, n_verts=30)  # noqa: E731
    eyelids = lambda: {f"{k}.npy": _npy_bytes(v) for k, v in hc.eyelid_arrays().items()}  # noqa: E731
    rng = np.random.default_rng(8)
    masks = legacy_pickle.dumps_text(af.mask_regions(rng, 60))
    with tempfile.TemporaryDirectory() as tmp:
        lmk_npy = af.write_landmark_embedding(Path(tmp) / "e.npy", af.landmark_embedding_dict(rng, 40)).read_bytes()
    return [
        Target("model-pkl", "model", lambda: {"generic_model.pkl": legacy_pickle.dumps_flame(hc.model_arrays())},
               "generic_model.pkl"),
        Target("model-npz", "model", lambda: {"flame.npz": _npz_bytes(model_npz())}, "flame.npz", model_npz,
               lambda a: {"flame.npz": _npz_bytes(a)}),
        Target("frame", "sequence", lambda: frame_files(False), "out"),
        Target("frame-tensors", "sequence", lambda: frame_files(True), "out"),
        Target("flame_sequence-npz", "sequence", lambda: {"flame_sequence.npz": _npz_bytes(hc.own_npz_arrays())},
               "flame_sequence.npz", hc.own_npz_arrays, lambda a: {"flame_sequence.npz": _npz_bytes(a)}),
        Target("vhap-npz", "sequence", lambda: {"tracked_flame_params.npz": _npz_bytes(vhap())},
               "tracked_flame_params.npz", vhap, lambda a: {"tracked_flame_params.npz": _npz_bytes(a)}),
        Target("gaussian-avatars-folder", "sequence", lambda: ga_files(ga()), ".", ga, ga_files),
        Target("deca-npz-folder", "sequence", lambda: deca_folder(deca()), "deca", deca, deca_folder),
        Target("smirk-pkl-folder", "sequence",
               lambda: {f"smirk/{i:04d}.pkl": pickle.dumps(c, protocol=2) for i, c in enumerate(smirk)}, "smirk"),
        Target("emoca-folders", "sequence", emoca, "emoca"),
        Target("identity-npy", "identity", lambda: {"identity.npy": _npy_bytes(identity()["identity"])},
               "identity.npy", identity, lambda a: {"identity.npy": _npy_bytes(a["identity"])} if a["identity"]
               is not None else {}),
        Target("mesh-ply", "mesh", lambda: ply_bytes(True), "mesh.ply"),
        Target("mesh-ply-ascii", "mesh", lambda: ply_bytes(False), "mesh.ply"),
        Target("eyelid-npy", "eyelids", eyelids, ".", hc.eyelid_arrays,
               lambda a: {f"{k}.npy": _npy_bytes(v) for k, v in a.items() if v is not None}),
        Target("landmarks-npz", "landmarks", lambda: {"lmk.npz": _npz_bytes(hc.landmark_arrays())}, "lmk.npz",
               hc.landmark_arrays, lambda a: {"lmk.npz": _npz_bytes(a)}),
        Target("masks-pkl", "masks", lambda: {"FLAME_masks.pkl": masks}, "FLAME_masks.pkl"),
        Target("landmark-embedding-npy", "asset-embedding", lambda: {"landmark_embedding.npy": lmk_npy},
               "landmark_embedding.npy"),
        Target("embedding-npz", "embedding", lambda: {"emb.npz": _npz_bytes(hc.embedding_arrays())}, "emb.npz",
               hc.embedding_arrays, lambda a: {"emb.npz": _npz_bytes(a)}),
    ]


def torch_style_pickle(tree: dict) -> tuple[bytes, dict[str, bytes]]:
    """A protocol-2 pickle of ``tree`` whose float arrays are torch tensors over raw storages, as
    ``torch.save`` writes them (without torch), and the storages by key."""
    import hostile_corpus as hc

    storages: dict[str, bytes] = {}

    def value(v: Any) -> bytes:
        if isinstance(v, dict):
            return b"}(" + b"".join(hc.pstr(k.encode()) + value(x) for k, x in v.items()) + b"u"
        if isinstance(v, np.ndarray) and v.dtype == np.float32:
            key = str(len(storages))
            storages[key] = np.ascontiguousarray(v).tobytes()
            strides = [s // 4 for s in np.ascontiguousarray(v).strides]
            pid = hc.ptuple(hc.pstr(b"storage"), hc.glob("torch", "FloatStorage"), hc.pstr(key.encode()),
                            hc.pstr(b"cpu"), hc.pint(v.size))
            return (hc.glob("torch._utils", "_rebuild_tensor_v2")
                    + hc.ptuple(pid + b"Q", hc.pint(0), hc.ptuple(*map(hc.pint, v.shape)),
                                hc.ptuple(*map(hc.pint, strides)), b"\x89", hc.glob("collections", "OrderedDict")
                                + b")R") + b"R")
        if isinstance(v, str):
            return b"X" + len(v.encode()).to_bytes(4, "little") + v.encode()
        if isinstance(v, (int, np.integer)):
            return hc.pint(int(v))
        return hc.ndarray_pickle(v.shape, v.tobytes(), hc.dtype_pickle(v.dtype.str[1:].encode()))

    return hc.p2(value(tree)), storages


def mutated_files(target: Target, draw: Any) -> dict[str, bytes]:
    """Draw one mutation of the target's seed (hypothesis ``data.draw``)."""
    from hypothesis import strategies as st

    ops = st.lists(st.tuples(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "int", "dup"]),
                             st.integers(0, 2**32 - 1), st.binary(max_size=8), st.integers(0, 2**32 - 1)),
                   min_size=1, max_size=6)
    modes = ["bytes", "container"] + (["arrays"] if target.arrays else [])
    mode = draw(st.sampled_from(modes))
    if mode == "arrays":
        arrays = target.arrays()
        for _ in range(draw(st.integers(1, 3))):
            key = draw(st.sampled_from(sorted(arrays)))
            if arrays[key] is not None:
                kind = draw(st.sampled_from(["drop", "nan", "retype", "reshape", "scale"]))
                arrays[key] = mutate_array(np.asarray(arrays[key]), kind, draw(st.integers(0, 2**16)))
        return target.pack(arrays)
    files = target.seed()
    name = draw(st.sampled_from(sorted(files)))
    data = files[name]
    if mode == "container" or not data.startswith(b"PK"):
        files[name] = mutate_bytes(data, draw(ops))
        return files
    members = _zip_members(data)
    member = draw(st.sampled_from(sorted(members)))
    members[member] = mutate_bytes(members[member], draw(ops))
    files[name] = _rezip(members, draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])))
    return files


# --------------------------------------------------------------------------------------------------
# child: the fuzzing loop


def _child(seconds: float, work: Path, names: list[str]) -> None:
    import signal

    from hostile_harness import CaseTimeout, _fingerprint, child_setup

    loaders, before = child_setup(MEMORY_MB)
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    from flame_blender_addon.core.errors import FlameError, InternalError

    example = work / "example"

    def prop(target: Target, stats: dict[str, int]) -> Callable[[Any], None]:
        def run(data: Any) -> None:
            files = mutated_files(target, data.draw)
            shutil.rmtree(example, ignore_errors=True)
            for rel, content in files.items():
                (example / rel).parent.mkdir(parents=True, exist_ok=True)
                (example / rel).write_bytes(content)
            entry = example / target.entry
            (work / "current.json").write_text(json.dumps({"target": target.name, "loader": target.loader,
                                                           "entry": str(entry)}))
            signal.alarm(10)
            try:
                loaders[target.loader](entry)
                outcome = "ok"
            except InternalError:
                raise
            except FlameError as err:
                outcome = type(err).__name__
                assert "\n" not in str(err) and "not enough memory" not in str(err), str(err)
            finally:
                signal.alarm(0)
            assert _fingerprint() == before, "an allowlisted function or stub class was modified"
            stats[outcome] = stats.get(outcome, 0) + 1
        return run

    for target in [t for t in targets() if not names or t.name in names]:
        stats: dict[str, int] = {}
        check = settings(max_examples=50, database=None, deadline=None, derandomize=False,
                         phases=(Phase.generate, Phase.shrink), suppress_health_check=list(HealthCheck))(
            given(st.data())(prop(target, stats)))
        failure, end = None, time.monotonic() + seconds
        while time.monotonic() < end and failure is None:
            try:
                check()
            except CaseTimeout:  # a BaseException: neither the loaders' guard nor hypothesis swallows it
                failure = "hang (10 s)"
            except Exception as err:  # noqa: BLE001 - the property's counterexample, reported below
                failure = f"{type(err).__name__}: {str(err)[:300]}"
        kept = keep_regression(work) if failure else None
        print(json.dumps({"target": target.name, "examples": sum(stats.values()), "outcomes": stats,
                          "failure": failure, "kept": kept}), flush=True)


def keep_regression(work: Path) -> str | None:
    """Copy the example named in ``work/current.json`` to tests/regressions/<loader>/<target>-<hash>."""
    try:
        current = json.loads((work / "current.json").read_text())
    except (OSError, ValueError):
        return None
    entry = Path(current["entry"])
    digest = hashlib.sha256()
    for path in sorted(p for p in (entry.rglob("*") if entry.is_dir() else [entry]) if p.is_file()):
        digest.update(path.name.encode() + path.read_bytes())
    dest = REGRESSIONS / current["loader"] / f"{current['target']}-{digest.hexdigest()[:12]}{entry.suffix}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    if entry.is_dir():
        shutil.copytree(entry, dest, dirs_exist_ok=True)
    else:
        shutil.copyfile(entry, dest)
    return str(dest.relative_to(TESTS.parent))


# --------------------------------------------------------------------------------------------------
# parent


def fuzz(seconds_per_target: float, work: Path, names: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the fuzzer in child processes; a crash or hang of the child is kept as a regression too."""
    names = names or [t.name for t in targets()]
    reports: list[dict[str, Any]] = []
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(TESTS.parent), str(TESTS)]), PYTHONDONTWRITEBYTECODE="1")
    while names:
        work.mkdir(parents=True, exist_ok=True)
        (work / "current.json").unlink(missing_ok=True)
        cmd = [sys.executable, str(Path(__file__)), "--seconds", str(seconds_per_target), "--work", str(work),
               "--targets", ",".join(names)]
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                                  timeout=seconds_per_target * len(names) + 120)
            stdout, died = proc.stdout, proc.returncode != 0
            reason = f"exit {proc.returncode}: {proc.stderr[-1500:]}"
        except subprocess.TimeoutExpired as err:
            stdout, died, reason = (err.stdout or b"").decode(), True, "hang"
        done = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
        reports += done
        names = names[len(done):]
        if died and names:
            current = json.loads((work / "current.json").read_text()) if (work / "current.json").exists() else {}
            reports.append({"target": names[0], "examples": None, "outcomes": {},
                            "failure": f"child died ({reason})", "kept": keep_regression(work),
                            "current": current})
            names = names[1:]
    return reports


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, required=True, help="fuzzing time per target")
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--targets", default="", help="comma-separated target names (default: all)")
    args = parser.parse_args()
    sys.path[:0] = [str(TESTS.parent), str(TESTS)]
    _child(args.seconds, args.work, [n for n in args.targets.split(",") if n])
