"""Hostile and broken files for every loader, built from the project's own writers and by hand.

Each case is ``Case(id, loader, build, expect)``: ``build(folder)`` writes the file(s) and returns
the path to load; ``expect`` is ``"ok"``, ``"clean"`` (success or a FlameError: never a crash,
hang, internal error or memory exhaustion) or ``(error_classes, regex)``. :func:`key_cases`
generates, per format, each used key missing, mistyped, mis-shaped, NaN and infinite.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import legacy_pickle
import numpy as np
from synthetic_model import random_model_arrays
from tracker_files import gaussian_avatars_arrays, metrical_frame, vhap_arrays, write_flame_param_folder

from flame_blender_addon.core.formats.npz import sequence_arrays, write_sequence_npz
from flame_blender_addon.core.formats.torch_zip import write_torch_zip
from flame_blender_addon.core.sequence import FlameSequence

REFUSED = ("UnsafePickleError",)
DAMAGED = ("FileFormatError",)
LIMIT = ("LimitError",)
ACCESS = ("FileAccessError",)


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    loader: str
    build: Callable[[Path], Path]
    expect: Any = "clean"
    ext: tuple = ()  # copyreg extensions (module, name, code) registered in the child


# --------------------------------------------------------------------------------------------------
# seeds: small valid files from the project's writers


def model_arrays() -> dict[str, np.ndarray]:
    return random_model_arrays(n_verts=24, n_faces=30, seed=1)


def frame_dict(frame_id: int = 0) -> dict:
    return metrical_frame(np.random.default_rng(frame_id), frame_id)


def sequence(n: int = 4) -> FlameSequence:
    from flame_blender_addon.core import camera
    from flame_blender_addon.core.rotations import axis_angle_to_matrix

    rng = np.random.default_rng(2)
    K = camera.intrinsics(np.full(n, 1000.0), np.full(n, 320.0), np.full(n, 240.0))
    track = camera.CameraTrack(K, np.tile(np.diag([1.0, -1, -1]), (n, 1, 1)), np.tile([0, 0, 1.0], (n, 1)), (480, 640))
    return FlameSequence(shape=rng.normal(size=10), expr=rng.normal(size=(n, 6)),
                         rotations=axis_angle_to_matrix(rng.normal(scale=0.1, size=(n, 5, 3))),
                         translation=rng.normal(scale=0.01, size=(n, 3)), frame_ids=np.arange(n), fps=30.0,
                         eyelids=rng.uniform(size=(n, 2)), camera=track,
                         static_offset=rng.normal(scale=1e-3, size=(24, 3)))


def own_npz_arrays() -> dict[str, np.ndarray]:
    return sequence_arrays(sequence())


def landmark_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(4)
    return {"lmk": rng.uniform(0, 500, size=(5, 7, 2)), "conf": rng.uniform(size=(5, 7)),
            "image_size": np.array([512, 512]), "fps": np.array(25.0)}


def embedding_arrays() -> dict[str, np.ndarray]:
    return {"lmk_face_idx": np.arange(7, dtype=np.uint32), "lmk_b_coords": np.full((7, 3), 1 / 3),
            "landmark_indices": np.arange(7)}


def eyelid_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    return {"l_eyelid": rng.normal(size=(24, 3)), "r_eyelid": rng.normal(size=(24, 3))}


# --------------------------------------------------------------------------------------------------
# writers


def write_npz(path: Path, arrays: dict[str, Any], compression: int = zipfile.ZIP_STORED) -> Path:
    """np.savez's layout (``<key>.npy`` members), stored or deflated."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for key, value in arrays.items():
            with zf.open(f"{key}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=True)
    return path


def npy_bytes(header: dict | str, data: bytes = b"", version: int = 1) -> bytes:
    """An .npy stream with a given header dict (or raw header text) and data."""
    text = header if isinstance(header, str) else repr(header)
    text += " " * ((64 - (len(text) + 11) % 64) % 64) + "\n"
    size = struct.pack("<H", len(text)) if version == 1 else struct.pack("<I", len(text))
    return b"\x93NUMPY" + bytes([version, 0]) + size + text.encode("latin1") + data


def write_zip(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def frame_zip(path: Path, pickle_bytes: bytes, storages: dict[str, bytes] | None = None,
              compression: int = zipfile.ZIP_STORED) -> Path:
    """A torch.save-style zip around ``pickle_bytes`` (``<stem>/data.pkl``) and raw storages."""
    stem = path.stem
    members = {f"{stem}/data.pkl": pickle_bytes, f"{stem}/version": b"3\n"}
    members.update({f"{stem}/data/{k}": v for k, v in (storages or {}).items()})
    return write_zip(path, members, compression)


def checkpoint(folder: Path, name: str = "00000.frame") -> Path:
    out = folder / "out" / "checkpoint"
    out.mkdir(parents=True, exist_ok=True)
    return out / name


def metrical_output(folder: Path, frames: dict[int, dict]) -> Path:
    for frame_id, frame in frames.items():
        write_torch_zip(checkpoint(folder, f"{frame_id:05d}.frame"), frame)
    return folder / "out"


def patch_zip_header(path: Path, flag_bits: int | None = None, method: int | None = None) -> Path:
    """Set the general-purpose flags / compression method of every member (local and central headers)."""
    data = bytearray(path.read_bytes())
    for sig, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        at = data.find(sig)
        while at >= 0:
            if flag_bits is not None:
                data[at + flag_at:at + flag_at + 2] = struct.pack("<H", flag_bits)
            if method is not None:
                data[at + method_at:at + method_at + 2] = struct.pack("<H", method)
            at = data.find(sig, at + 4)
    path.write_bytes(bytes(data))
    return path


# --------------------------------------------------------------------------------------------------
# hand-written pickles


def p2(body: bytes) -> bytes:
    return b"\x80\x02" + body + b"."


def glob(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def pstr(s: bytes) -> bytes:
    return b"U" + bytes([len(s)]) + s if len(s) < 256 else b"T" + struct.pack("<I", len(s)) + s


def pint(n: int) -> bytes:
    """BININT for 32-bit values, else LONG1."""
    if -2**31 <= n < 2**31:
        return b"J" + struct.pack("<i", n)
    raw = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def ptuple(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def dtype_pickle(descr: bytes = b"f8", state: bytes | None = None) -> bytes:
    """numpy.dtype(descr, 0, 1) + BUILD(state) as numpy writes it (state defaults to a plain '<' dtype)."""
    state = state if state is not None else ptuple(pint(3), pstr(b"<"), b"N", b"N", b"N", pint(-1), pint(-1), pint(0))
    return glob("numpy", "dtype") + ptuple(pstr(descr), pint(0), pint(1)) + b"R" + state + b"b"


def ndarray_pickle(shape: tuple, raw: bytes, dtype: bytes | None = None) -> bytes:
    """numpy's _reconstruct + BUILD((1, shape, dtype, False, raw))."""
    empty = ptuple(glob("numpy", "ndarray"), ptuple(pint(0)), pstr(b"b"))
    return (glob("numpy.core.multiarray", "_reconstruct") + empty + b"R"
            + ptuple(pint(1), ptuple(*[pint(n) for n in shape]), dtype if dtype is not None else dtype_pickle(),
                     b"\x89", pstr(raw)) + b"b")


def model_dict_pickle(key: str, value: bytes) -> bytes:
    """A model pickle: a dict whose ``key`` holds the hand-written ``value`` (other keys absent)."""
    return p2(b"}" + pstr(key.encode()) + value + b"s")


def tensor_pickle(storage: str, key: str, offset: int, size: tuple, stride: tuple) -> bytes:
    """{'flame': {'exp': _rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())}}."""
    pid = ptuple(pstr(b"storage"), glob("torch", storage), pstr(key.encode()), pstr(b"cpu"), pint(4))
    ints = lambda xs: ptuple(*[pint(x) for x in xs])  # noqa: E731
    tensor = (glob("torch._utils", "_rebuild_tensor_v2")
              + ptuple(pid + b"Q", pint(offset), ints(size), ints(stride), b"\x89",
                       glob("collections", "OrderedDict") + b")R") + b"R")
    return p2(b"}" + pstr(b"flame") + b"}" + pstr(b"exp") + tensor + b"ss")


def memo_dag(levels: int) -> bytes:
    """L0 = []; L(i+1) = [L(i), L(i)] (memo index i+1): a few bytes per level, 2**levels paths; leaves
    L(levels) on the stack."""
    body = b"]q\x00"
    for i in range(levels):
        get = b"h" + bytes([i])
        body += b"0]q" + bytes([i + 1]) + b"(" + get + get + b"e"
    return body


# --------------------------------------------------------------------------------------------------
# the corpus


def _file(name: str, data: bytes) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        (folder / name).write_bytes(data)
        return folder / name
    return build


def _frame(pickle_bytes: bytes, storages: dict[str, bytes] | None = None) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        frame_zip(checkpoint(folder), pickle_bytes, storages)
        return folder / "out"
    return build


_SYSTEM = glob("os", "system") + ptuple(pstr(b"touch PWNED")) + b"R"
_ROUTES = {  # every opcode path by which a pickle reaches a global
    "GLOBAL": p2(_SYSTEM),
    "STACK_GLOBAL": b"\x80\x04\x8c\x02os\x8c\x06system\x93\x8c\x0btouch PWNED\x85R.",
    "INST": b"(S'touch PWNED'\nios\nsystem\n.",
    "OBJ": b"\x80\x01(cos\nsystem\nS'touch PWNED'\no.",
    "EXT1": p2(b"\x82\x01" + ptuple(pstr(b"touch PWNED")) + b"R"),
    "EXT2": p2(b"\x83\x2c\x01" + ptuple(pstr(b"touch PWNED")) + b"R"),
    "EXT4": p2(b"\x84\x70\x11\x01\x00" + ptuple(pstr(b"touch PWNED")) + b"R"),
    "REDUCE-on-ndarray": p2(glob("numpy", "ndarray") + ptuple(ptuple(pint(10**9))) + b"R"),
    "NEWOBJ": p2(glob("numpy", "dtype") + ptuple(pstr(b"f8")) + b"\x81"),
    "NEWOBJ_EX": b"\x80\x04" + glob("collections", "OrderedDict") + b")}\x92.",
    "BUILD-on-function": p2(glob("copy_reg", "_reconstructor") + b"}" + pstr(b"__defaults__") + ptuple(pint(1))
                            + b"sb"),
    "BUILD-slots-on-function": p2(glob("copy_reg", "_reconstructor") + ptuple(b"N", b"}" + pstr(b"__defaults__")
                                                                              + ptuple(pint(1)) + b"s") + b"b"),
    "BUILD-on-stub-class": p2(glob("chumpy.ch", "Ch") + ptuple(b"N", b"}" + pstr(b"to_array") + b"Ns") + b"b"),
    "BUILD-on-array-twice": p2(ndarray_pickle((1,), b"\0" * 8) + ptuple(pint(1), ptuple(pint(1)), dtype_pickle(),
                                                                          b"\x89", pstr(b"\0" * 8)) + b"b"),
    "BUILD-on-dtype-twice": p2(dtype_pickle() + ptuple(pint(3), pstr(b"<"), b"N", b"N", b"N", pint(-1), pint(-1),
                                                        pint(0)) + b"b"),
    "PERSID": b"(Pstorage\np0\n.",
    "BINPERSID": p2(pstr(b"storage") + b"Q"),
    "reconstructor-on-set": p2(glob("copy_reg", "_reconstructor") + ptuple(glob("__builtin__", "set"),
                                                                           glob("__builtin__", "object"), b"N") + b"R"),
    "codecs-zlib": p2(glob("_codecs", "encode") + ptuple(pstr(b"x" * 100), pstr(b"zlib")) + b"R"),
    "builtins-getattr": p2(glob("builtins", "getattr")),
    "numpy-load": p2(glob("numpy", "load")),
    "torch-load": p2(glob("torch", "load")),
    "chumpy-x-is-global": p2(glob("chumpy.ch", "Ch") + b")\x81}" + pstr(b"x") + glob("numpy", "dtype") + b"sb"),
}
_EXTENSIONS = (("os", "system", 1), ("posix", "system", 300), ("subprocess", "getoutput", 70000))


def _dtype_state(items: bytes) -> bytes:
    return p2(ndarray_pickle((2,), b"\0" * 16, dtype_pickle(b"f8", ptuple(pint(3), pstr(b"<"), items))))


def hostile_cases() -> list[Case]:
    """The hand-made corpus: pickle routes, memory safety, resource exhaustion, file kinds, paths."""
    cases = []
    for route, data in _ROUTES.items():
        expect = (REFUSED + DAMAGED, r"refused|not a readable|unsupported|not a|unexpected|storage")
        ext = _EXTENSIONS if route.startswith("EXT") else ()
        cases.append(Case(f"model/route/{route}", "model", _file("generic_model.pkl", data), expect, ext))
        cases.append(Case(f"frame/route/{route}", "sequence", _frame(data), expect, ext))
        cases.append(Case(f"masks/route/{route}", "masks", _file("FLAME_masks.pkl", data), expect, ext))
        cases.append(Case(f"embedding-npy/route/{route}", "asset-embedding", _file("landmark_embedding.npy", npy_bytes(
            {"descr": "|O", "fortran_order": False, "shape": ()}, data)), expect, ext))
    f4 = np.arange(4, dtype="<f4").tobytes()
    for name, args, expect in (
            ("out-of-bounds-size", (0, (1000,), (1,)), (DAMAGED, "reach element 999, but its storage holds 4")),
            ("one-past-the-end", (0, (5,), (1,)), (DAMAGED, "reach element 4")),
            ("out-of-bounds-offset", (9, (1,), (1,)), (DAMAGED, "reach element 9")),
            ("out-of-bounds-stride", (0, (2, 2), (3, 1)), (DAMAGED, "reach element 4")),
            ("negative-stride", (3, (4,), (-1,)), (DAMAGED, "not a list of non-negative counts")),
            ("negative-offset", (-1, (1,), (1,)), (DAMAGED, "not a list of non-negative counts")),
            ("negative-size", (0, (-3,), (1,)), (DAMAGED, "not a count")),
            ("stride-0-repeats-one-value", (0, (1 << 30, 1 << 30), (0, 0)), (LIMIT, "elements")),
            ("huge-stride", (0, (2,), (1 << 60,)), (DAMAGED, "reach element")),
    ):
        cases.append(Case(f"frame/tensor/{name}", "sequence",
                          _frame(tensor_pickle("FloatStorage", "0", *args), {"0": f4}), expect))
    cases.append(Case("frame/tensor/storage-not-whole-values", "sequence",
                      _frame(tensor_pickle("DoubleStorage", "0", 0, (1,), (1,)), {"0": b"\0" * 7}),
                      (DAMAGED, "not a whole number")))
    cases.append(Case("frame/tensor/storage-missing", "sequence",
                      _frame(tensor_pickle("FloatStorage", "7", 0, (1,), (1,)), {"0": f4}), (DAMAGED, "missing")))
    cases.append(Case("frame/tensor/storage-key-path", "sequence",
                      _frame(tensor_pickle("FloatStorage", "../../x", 0, (1,), (1,)), {"0": f4}),
                      (REFUSED, "persistent")))
    for name, data, expect in (
            ("shape-larger-than-data", ndarray_pickle((10,), b"\0" * 8), (DAMAGED, "8 bytes of data for shape")),
            ("shape-petabytes", ndarray_pickle((1 << 50,), b"\0" * 8), (LIMIT, "elements")),
            ("shape-negative", ndarray_pickle((-1,), b"\0" * 8), (DAMAGED, "not a count")),
            ("dtype-object", ndarray_pickle((1,), b"\0" * 8, dtype_pickle(b"O8")), (DAMAGED, "refused")),
            ("dtype-void", ndarray_pickle((1,), b"\0" * 8, dtype_pickle(b"V8")), (DAMAGED, "refused")),
            ("dtype-record-descr", ndarray_pickle((1,), b"\0" * 8, glob("numpy", "dtype") + ptuple(
                b"](" + ptuple(pstr(b"a"), pstr(b"<f8")) + b"e", pint(0), pint(1)) + b"R"), (DAMAGED, "only plain")),
    ):
        cases.append(Case(f"model/array/{name}", "model", _file("generic_model.pkl",
                                                               model_dict_pickle("v_template", data)), expect))
    for name, items in (("subarray", pstr(b"f8") + ptuple(pint(1 << 30)) + b"NN" + pint(8) + pint(8) + pint(0)),
                        ("fields", b"N" + ptuple(pstr(b"a")) + b"}" + pint(8) + pint(8) + pint(0)),
                        ("itemsize", b"NNN" + pint(1 << 30) + pint(1) + pint(16)),
                        ("byteorder-int", b"NNN" + pint(8) + pint(8) + pint(0))):
        data = _dtype_state(items) if name != "byteorder-int" else p2(ndarray_pickle(
            (2,), b"\0" * 16, dtype_pickle(b"f8", ptuple(pint(3), pint(7), items))))
        expect = (DAMAGED, "dtype") if name in ("subarray", "fields", "byteorder-int") else "clean"
        cases.append(Case(f"model/dtype-state/{name}", "model", _file("generic_model.pkl", data), expect))
    sparse = glob("scipy.sparse.csc", "csc_matrix") + b")\x81}"
    for name, state, expect in (
            ("shape-huge", pstr(b"_shape") + ptuple(pint(1 << 30), pint(1 << 30)) + pstr(b"data") + b"]"
             + pstr(b"indices") + b"]" + pstr(b"indptr") + b"]", (LIMIT, "larger than")),
            ("indices-out-of-range", pstr(b"_shape") + ptuple(pint(2), pint(2)) + pstr(b"data") + b"](" + b"G" +
             struct.pack(">d", 1.0) + b"e" + pstr(b"indices") + b"](" + pint(99) + b"e" + pstr(b"indptr") + b"](" +
             pint(0) + pint(1) + pint(1) + b"e", (DAMAGED, "indices")),
            ("indptr-decreasing", pstr(b"_shape") + ptuple(pint(2), pint(2)) + pstr(b"data") + b"]" + pstr(b"indices")
             + b"]" + pstr(b"indptr") + b"](" + pint(0) + pint(5) + pint(0) + b"e", (DAMAGED, "indptr"))):
        cases.append(Case(f"model/sparse/{name}", "model",
                          _file("generic_model.pkl", model_dict_pickle("J_regressor", sparse + b"(" + state + b"ub")),
                          expect))
    dag = p2(b"}" + pstr(b"v_template") + memo_dag(64) + b"s")
    deep = p2(b"](" * 100_000 + b"e" * 100_000)
    cases += [
        Case("model/memo-dag-64-levels", "model", _file("generic_model.pkl", dag), (LIMIT, "expands|deeper")),
        Case("model/memo-dag-in-chumpy", "model", _file("generic_model.pkl", p2(
            b"}" + pstr(b"v_template") + glob("chumpy.ch", "Ch") + b")\x81}" + pstr(b"x") + memo_dag(40) + b"sbs")),
             (LIMIT, "expands")),
        Case("frame/memo-dag-64-levels", "sequence", _frame(dag), (LIMIT, "expands|deeper")),
        Case("model/deep-nesting", "model", _file("generic_model.pkl", deep), (LIMIT, "deeper")),
        Case("model/self-cycle", "model", _file("generic_model.pkl", p2(b"]q\x00h\x00a")),
             (DAMAGED, "contains itself")),
        Case("model/memo-index-2**31", "model", _file("generic_model.pkl", p2(b"Nr\xff\xff\xff\x7f")), (LIMIT, "memo")),
        Case("model/million-opcodes", "model", _file("generic_model.pkl", p2(b"N0" * 600_000)), (LIMIT, "opcodes")),
        Case("model/bytes8-declares-2**60", "model", _file("generic_model.pkl",
                                                             b"\x80\x04\x8e" + struct.pack("<Q", 1 << 60) + b"ab."),
             (DAMAGED, "truncated")),
        Case("model/bytearray8-declares-2**60", "model", _file("generic_model.pkl",
                                                                 b"\x80\x05\x96" + struct.pack("<Q", 1 << 60) + b"."),
             (DAMAGED, "truncated")),
        Case("model/frame-declares-2**60", "model", _file("generic_model.pkl",
                                                            b"\x80\x04\x95" + struct.pack("<Q", 1 << 60) + b"N."),
             "clean"),
        Case("model/long-text-digits", "model", _file("generic_model.pkl", b"L" + b"9" * 100_000 + b"L\n."), "clean"),
    ]
    cases += _zip_cases() + _file_kind_cases() + _path_cases()
    return cases


BOMB = 256 << 20  # inflated size of the zip bombs: 4x the 64 MiB above which the ratio rule applies


def write_bomb(zf: zipfile.ZipFile, member: str, head: bytes, size: int = BOMB) -> None:
    """A deflated member: ``head`` then zeros up to ``size`` bytes (about 1000-fold compression), streamed."""
    info = zipfile.ZipInfo(member)
    info.compress_type = zipfile.ZIP_DEFLATED
    chunk = b"\0" * (8 << 20)
    with zf.open(info, "w", force_zip64=True) as out:
        out.write(head)
        left = size - len(head)
        while left > 0:
            out.write(chunk[:left])
            left -= len(chunk)


def npy_head(shape: tuple, descr: str = "<f8") -> bytes:
    return npy_bytes({"descr": descr, "fortran_order": False, "shape": shape})


def npz_with(name: str, arrays: Callable[[], dict[str, Any]], members: dict[str, bytes] | None = None,
             bombs: tuple[str, ...] = ()) -> Callable[[Path], Path]:
    """An npz of ``arrays`` where ``members`` replace or add raw members and ``bombs`` are zip bombs."""
    def build(folder: Path) -> Path:
        replaced = {m[:-4] for m in (*(members or {}), *bombs)}
        path = write_npz(folder / name, {k: v for k, v in arrays().items() if k not in replaced})
        with zipfile.ZipFile(path, "a") as zf:
            for member, data in (members or {}).items():
                zf.writestr(member, data)
            for member in bombs:
                write_bomb(zf, member, npy_head((BOMB // 8,)))
        return path
    return build


def _zip_cases() -> list[Case]:
    def small_model() -> dict[str, np.ndarray]:
        return {k: v for k, v in model_arrays().items() if k not in ("bs_style", "bs_type")}

    def frame_bomb(folder: Path) -> Path:
        path = checkpoint(folder)
        with zipfile.ZipFile(path, "w") as zf:
            write_bomb(zf, f"{path.stem}/data.pkl", b"\x80\x02N")
        return folder / "out"

    def eyelid_npy(data: bytes) -> Callable[[Path], Path]:
        return lambda folder: _eyelids(folder, l_eyelid=data)

    cases = [
        Case("model-npz/bomb-in-used-key", "model", npz_with("flame.npz", small_model, bombs=("v_template.npy",)),
             (LIMIT, "zip bomb")),
        Case("model-npz/bomb-in-unrelated-member", "model", npz_with("flame.npz", small_model, bombs=("texture.npy",)),
             "ok"),
        Case("sequence-npz/bomb-in-expr", "sequence",
             npz_with("flame_sequence.npz", own_npz_arrays, bombs=("expr.npy",)), (LIMIT, "zip bomb")),
        Case("landmarks/bomb-in-lmk", "landmarks", npz_with("lmk.npz", landmark_arrays, bombs=("lmk.npy",)),
             (LIMIT, "zip bomb")),
        Case("frame/bomb-data-pkl", "sequence", frame_bomb, (LIMIT, "zip bomb")),
        Case("model-npz/petabyte-shape", "model",
             npz_with("flame.npz", small_model, {"v_template.npy": npy_head((10**15, 3))}), (LIMIT, "elements")),
        Case("sequence-npz/petabyte-shape", "sequence",
             npz_with("flame_sequence.npz", own_npz_arrays, {"expr.npy": npy_head((10**9, 10**9))}),
             (LIMIT, "elements")),
        Case("eyelids/petabyte-shape", "eyelids", eyelid_npy(npy_head((10**15, 3))), (LIMIT, "elements")),
        Case("eyelids/header-unclosed", "eyelids", eyelid_npy(npy_bytes(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (3,", b"\0" * 24)), (DAMAGED, "header")),
        Case("eyelids/header-deep-parens", "eyelids", eyelid_npy(npy_bytes(
            "{'descr': '<f8', 'fortran_order': False, 'shape': " + "(" * 3000 + ")" * 3000 + "}")),
             (DAMAGED, "header")),
        Case("eyelids/header-eval", "eyelids", eyelid_npy(npy_bytes(
            "{'descr': __import__('os').system('touch PWNED'), 'fortran_order': False, 'shape': (1,)}")),
             (DAMAGED, "header")),
        Case("eyelids/header-4GiB", "eyelids", eyelid_npy(b"\x93NUMPY\x02\x00\xff\xff\xff\xff{}"), (DAMAGED, "header")),
        Case("eyelids/header-v9", "eyelids", eyelid_npy(b"\x93NUMPY\x09\x00\x10\x00{}"), (DAMAGED, "version")),
        Case("eyelids/object-array", "eyelids", eyelid_npy(npy_bytes(
            {"descr": "|O", "fortran_order": False, "shape": (1,)}, pickle.dumps(os.system))), (DAMAGED, "refused")),
        Case("eyelids/record-array", "eyelids", eyelid_npy(npy_bytes(
            "{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (1,)}", b"\0" * 8)), (DAMAGED, "header")),
        Case("eyelids/data-shorter-than-header", "eyelids", eyelid_npy(npy_bytes(
            {"descr": "<f8", "fortran_order": False, "shape": (24, 3)}, b"\0" * 100)), (DAMAGED, "declares")),
        Case("eyelids/text-not-unicode", "eyelids", eyelid_npy(npy_bytes(
            {"descr": "<U1", "fortran_order": False, "shape": (24, 3)}, b"\xff" * 288)), (DAMAGED, "unicode")),
        Case("embedding/too-many-members", "embedding", lambda f: write_zip(
            f / "emb.npz", {f"m{i}.npy": b"" for i in range(10_001)}), (LIMIT, "members")),
        Case("embedding/member-larger-than-declared", "embedding", lambda f: _lying_member(
            write_npz(f / "emb.npz", embedding_arrays())), (DAMAGED, "declares|damaged|CRC|longer")),
    ]
    for method, label in ((6, "imploded"), (12, "bzip2"), (14, "lzma"), (99, "aes")):
        cases.append(Case(f"sequence-npz/{label}-members", "sequence",
                          lambda f, m=method: patch_zip_header(write_npz(f / "flame_sequence.npz", own_npz_arrays()),
                                                               method=m), (DAMAGED, "compression method")))
    cases += [
        Case("sequence-npz/encrypted-members", "sequence", lambda f: patch_zip_header(
            write_npz(f / "flame_sequence.npz", own_npz_arrays()), flag_bits=1), (DAMAGED, "encrypted")),
        Case("model-npz/encrypted-members", "model", lambda f: patch_zip_header(
            write_npz(f / "flame.npz", small_model()), flag_bits=1), (DAMAGED, "encrypted")),
        Case("frame/encrypted-members", "sequence", lambda f: patch_zip_header(
            write_torch_zip(checkpoint(f), frame_dict()) or checkpoint(f), flag_bits=1).parent.parent,
             (DAMAGED, "encrypted")),
        Case("frame/imploded-members", "sequence", lambda f: patch_zip_header(
            write_torch_zip(checkpoint(f), frame_dict()) or checkpoint(f), method=6).parent.parent,
             (DAMAGED, "compression method")),
    ]
    return cases


def _lying_member(path: Path) -> Path:
    """Shrink the sizes every header declares for the first member, leaving its data as it is."""
    data = bytearray(path.read_bytes())
    for sig, at_size in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.find(sig)
        data[at + at_size:at + at_size + 4] = struct.pack("<I", 64)
    path.write_bytes(bytes(data))
    return path


def _eyelids(folder: Path, **members: bytes) -> Path:
    for name, array in eyelid_arrays().items():
        data = members.get(name)
        if data is None:
            np.save(folder / f"{name}.npy", array)
        else:
            (folder / f"{name}.npy").write_bytes(data)
    return folder


def _file_kind_cases() -> list[Case]:
    """FIFOs, devices and links where loaders expect files."""

    def fifo(path_of: Callable[[Path], Path], result: Callable[[Path], Path]) -> Callable[[Path], Path]:
        def build(folder: Path) -> Path:
            path = path_of(folder)
            os.mkfifo(path)
            return result(folder)
        return build

    def link(target: Callable[[Path], str], path_of: Callable[[Path], Path],
             result: Callable[[Path], Path]) -> Callable[[Path], Path]:
        def build(folder: Path) -> Path:
            os.symlink(target(folder), path_of(folder))
            return result(folder)
        return build

    def with_good_frame(folder: Path) -> Path:
        write_torch_zip(checkpoint(folder), frame_dict())
        return folder / "out"

    outside = lambda f: str(write_torch_zip(f / "elsewhere.frame", frame_dict()) or f / "elsewhere.frame")  # noqa: E731
    cases = [
        Case("model/fifo", "model", fifo(lambda f: f / "generic_model.pkl", lambda f: f / "generic_model.pkl"),
             (ACCESS, "FIFO")),
        Case("frame/fifo", "sequence", fifo(lambda f: checkpoint(f, "00001.frame"), with_good_frame), (ACCESS, "FIFO")),
        Case("eyelids/fifo", "eyelids", fifo(lambda f: f / "l_eyelid.npy", lambda f: _eyelids_except(f, "l_eyelid")),
             (ACCESS, "FIFO")),
        Case("sequence-npz/fifo", "sequence", fifo(lambda f: f / "flame_sequence.npz",
                                                   lambda f: f / "flame_sequence.npz"), (ACCESS, "FIFO")),
        Case("model/dev-zero", "model", link(lambda f: "/dev/zero", lambda f: f / "generic_model.pkl",
                                             lambda f: f / "generic_model.pkl"), (ACCESS, "device")),
        Case("frame/dev-zero", "sequence", link(lambda f: "/dev/zero", lambda f: checkpoint(f, "00001.frame"),
                                                with_good_frame), (ACCESS, "outside|device")),
        Case("eyelids/dev-zero", "eyelids", link(lambda f: "/dev/zero", lambda f: f / "l_eyelid.npy",
                                                 lambda f: _eyelids_except(f, "l_eyelid")), (ACCESS, "outside|device")),
        Case("frame/dangling-link", "sequence",
             link(lambda f: str(f / "nowhere"), lambda f: checkpoint(f, "00001.frame"), with_good_frame),
             (ACCESS, "leads nowhere")),
        Case("frame/link-loop", "sequence", link(lambda f: str(checkpoint(f, "00001.frame")),
                                                 lambda f: checkpoint(f, "00001.frame"), with_good_frame),
             (ACCESS, "leads nowhere or loops")),
        Case("frame/link-leaving-folder", "sequence", link(outside, lambda f: checkpoint(f, "00001.frame"),
                                                           with_good_frame), (ACCESS, "outside the chosen folder")),
        Case("frame/link-to-etc-passwd", "sequence",
             link(lambda f: "/etc/passwd", lambda f: checkpoint(f, "00001.frame"), with_good_frame),
             (ACCESS, "outside the chosen folder")),
        Case("landmarks/fifo", "landmarks", fifo(lambda f: f / "lmk.npz", lambda f: f / "lmk.npz"), (ACCESS, "FIFO")),
        Case("embedding/dev-zero", "embedding", link(lambda f: "/dev/zero", lambda f: f / "emb.npz",
                                                     lambda f: f / "emb.npz"), (ACCESS, "device")),
        Case("landmarks/dangling-link", "landmarks", link(lambda f: str(f / "nowhere"), lambda f: f / "lmk.npz",
                                                          lambda f: f / "lmk.npz"), (ACCESS, "leads nowhere")),
        Case("model/folder", "model", lambda f: (f / "generic_model.pkl").mkdir() or f / "generic_model.pkl",
             (ACCESS, "folder")),
        Case("model/missing", "model", lambda f: f / "generic_model.pkl", (ACCESS, "file not found")),
    ]
    return cases


def _eyelids_except(folder: Path, name: str) -> Path:
    for key, array in eyelid_arrays().items():
        if key != name:
            np.save(folder / f"{key}.npy", array)
    return folder


_ODD = "ünï cödé 'q\" $(touch PWNED) ;|&`id` * ?[x] -rf ~ %s {}"


def _path_cases() -> list[Case]:
    def odd_folder(folder: Path) -> Path:
        odd = folder / _ODD
        odd.mkdir()
        return odd

    return [
        Case("model/unicode-shell-path", "model", lambda f: legacy_pickle.write_flame_pickle(
            odd_folder(f) / f"{_ODD}.pkl", model_arrays()), "ok"),
        Case("frame/unicode-shell-path", "sequence", lambda f: metrical_output(odd_folder(f), {0: frame_dict()}), "ok"),
        Case("sequence-npz/unicode-shell-path", "sequence", lambda f: write_sequence_npz(
            odd_folder(f) / f"{_ODD}.npz", sequence()), "ok"),
        Case("model/newline-in-name", "model", _file("bad\nname.pkl", b"garbage"), (DAMAGED, r"bad\\nname.pkl")),
    ]


# --------------------------------------------------------------------------------------------------
# key matrix: each used key missing, mistyped, mis-shaped, NaN, infinite


def _variants(value: np.ndarray) -> dict[str, Any]:
    """Broken versions of ``value``; None means the key is removed."""
    out: dict[str, Any] = {"missing": None, "extra-axis": value[..., None]}
    if value.dtype.kind not in "US":
        out["text"] = np.full(value.shape, "x")
    if value.ndim > 1:
        out["flattened"] = value.reshape(-1)
    if value.ndim and value.shape[-1] > 1:
        out["narrower"] = value[..., :-1]
    if value.ndim:
        out["empty"] = value[:0]
    if value.dtype.kind == "f":
        for name, bad in (("nan", np.nan), ("inf", np.inf)):
            broken = value.copy()
            broken.reshape(-1)[-1] = bad
            out[name] = broken
    return out


@dataclasses.dataclass(frozen=True)
class Format:
    name: str
    loader: str
    seed: Callable[[], dict[str, np.ndarray]]
    write: Callable[[Path, dict[str, Any]], Path]
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    valid: tuple[str, ...] = ()  # "key/variant" changes that still make a valid file (success is right)


_FEWER = ("shape/narrower", "shape/empty", "expr/narrower", "static_offset/empty")  # fewer components, no offsets


def _model_pkl(folder: Path, arrays: dict[str, Any]) -> Path:
    """The distributed layout (chumpy, scipy csc); numpy's own pickling where that cannot hold a broken value."""
    try:
        return legacy_pickle.write_flame_pickle(folder / "generic_model.pkl", arrays)
    except (TypeError, ValueError):
        (folder / "generic_model.pkl").write_bytes(pickle.dumps(arrays, protocol=2))
        return folder / "generic_model.pkl"


def _frame_folder(folder: Path, flat: dict[str, Any]) -> Path:
    frames = {}
    for i in range(2):
        nested: dict[str, Any] = {}
        for key, value in flat.items():
            group, _, leaf = key.partition(".")
            if leaf:
                nested.setdefault(group, {})[leaf] = value
            else:
                nested[key] = value
        frames[i] = nested
    return metrical_output(folder, frames)


def _flat_frame() -> dict[str, Any]:
    frame = frame_dict()
    flat = {f"{g}.{k}": v for g, d in frame.items() if isinstance(d, dict) for k, v in d.items()}
    flat.update({k: v for k, v in frame.items() if not isinstance(v, dict)})
    return flat


FORMATS = (
    Format("model-pkl", "model", lambda: dict(model_arrays()), _model_pkl,
           ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table"),
           valid=("shapedirs/narrower",)),  # fewer expression components
    Format("model-npz", "model", lambda: {k: v for k, v in model_arrays().items() if k not in ("bs_style", "bs_type")},
           lambda f, a: write_npz(f / "flame.npz", a),
           ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table"),
           valid=("shapedirs/narrower",)),
    Format("flame_sequence-npz", "sequence", own_npz_arrays,
           lambda f, a: write_npz(f / "flame_sequence.npz", a),
           ("expr",), ("shape", "rotation", "neck_pose", "jaw_pose", "eyes_pose", "translation", "fps", "frame_ids",
                       "eyelids", "K", "cam_R", "cam_t", "image_size", "static_offset"), _FEWER),
    Format("vhap-npz", "sequence", lambda: vhap_arrays(np.random.default_rng(6), 3),
           lambda f, a: write_npz(f / "tracked_flame_params.npz", a),
           ("expr",), ("shape", "rotation", "neck_pose", "jaw_pose", "eyes_pose", "translation", "focal_length",
                       "image_size", "static_offset", "timestep_id"), _FEWER),
    Format("gaussian-avatars-folder", "sequence", lambda: gaussian_avatars_arrays(np.random.default_rng(7), 2),
           lambda f, a: write_flame_param_folder(f / "flame_param", a, [0, 1]),
           ("expr", "jaw_pose"), ("shape", "rotation", "neck_pose", "eyes_pose", "translation", "static_offset"),
           _FEWER),
    Format("metrical-frame", "sequence", _flat_frame, _frame_folder,
           ("flame.exp", "flame.shape", "flame.jaw", "flame.eyes"),
           ("flame.eyelids", "camera.R", "camera.t", "camera.fl", "camera.pp", "opencv.R", "opencv.t", "opencv.K",
            "img_size"), ("flame.exp/narrower", "flame.exp/empty", "flame.shape/narrower", "flame.shape/empty")),
    Format("landmarks-npz", "landmarks", landmark_arrays,
           lambda f, a: write_npz(f / "lmk.npz", a),
           ("lmk", "image_size"), ("conf", "fps"),
           ("lmk/nan", "lmk/inf", "conf/nan", "conf/inf")),  # NaN marks frames without a face
    Format("embedding-npz", "embedding", embedding_arrays,
           lambda f, a: write_npz(f / "emb.npz", a),
           ("lmk_face_idx", "lmk_b_coords"), ("landmark_indices",)),
    Format("mediapipe-embedding-npz", "asset-embedding", embedding_arrays,
           lambda f, a: write_npz(f / "mediapipe_landmark_embedding.npz", a),
           ("lmk_face_idx", "lmk_b_coords"), ("landmark_indices",)),
    Format("eyelid-npy", "eyelids", eyelid_arrays,
           lambda f, a: [np.save(f / f"{k}.npy", v) for k, v in a.items()] and f,
           ("l_eyelid", "r_eyelid")),
)


def key_cases() -> list[Case]:
    """Each used key of each format missing, as text, with an extra axis, flattened, narrower, empty, NaN, inf.

    Expectations: NaN and infinite values always give an error naming the key; a broken required
    key too; a broken optional key gives an error naming it or success with a warning naming it
    (missing optional keys may succeed silently); reshapes that keep every value in order (an
    extra axis, flattened) may also be accepted as they are.
    """
    cases = []
    for fmt in FORMATS:
        for key in fmt.required + fmt.optional:
            for variant, value in _variants(np.asarray(fmt.seed()[key])).items():
                def build(folder: Path, fmt: Format = fmt, key: str = key, value: Any = value) -> Path:
                    arrays = fmt.seed()
                    if value is None:
                        del arrays[key]
                    else:
                        arrays[key] = value
                    return fmt.write(folder, arrays)
                if f"{key}/{variant}" in fmt.valid:
                    expect: Any = ("key-or-ok", key)
                elif variant in ("nan", "inf"):
                    expect = ("key", key)
                elif variant in ("extra-axis", "flattened"):
                    expect = ("key-or-ok", key)
                elif key in fmt.required:
                    expect = ("key", key)
                else:
                    expect = "clean" if variant == "missing" else ("key-or-warning", key)
                cases.append(Case(f"{fmt.name}/{key}/{variant}", fmt.loader, build, expect))
    return cases
