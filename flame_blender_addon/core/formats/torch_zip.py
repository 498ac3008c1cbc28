"""``torch.save``'s zip layout, read and written without torch (metrical-tracker's ``.frame`` files).

A zip holds ``<stem>/data.pkl`` (the pickled object), ``<stem>/data/<key>`` (raw tensor storages),
``<stem>/byteorder`` and ``<stem>/version``. Reading goes through :mod:`..safe_pickle`'s allowlist,
which rebuilds tensors as numpy arrays; writing stores numpy arrays inside the pickle itself.
"""

from __future__ import annotations

import pickle
import pickletools
import zipfile
from pathlib import Path
from typing import IO, Any

from .. import safe_files, safe_pickle
from ..errors import FileFormatError, FlameError
from ..limits import Budget


def load_torch_zip(path: str | Path, budget: Budget, inside: str | Path | None = None) -> Any:
    """Read a ``torch.save`` zip (``<stem>/data.pkl`` + ``<stem>/data/<key>``) without torch, within ``budget``.

    inside: the folder the user chose (links may not leave it). Raises only FlameError, naming the file.
    """
    with safe_files.open_regular(path, budget.limits, inside) as f:
        return read_torch_zip(f, Path(path).name, budget)


def read_torch_zip(f: IO[bytes], name: str, budget: Budget) -> Any:
    """:func:`load_torch_zip` of a file :func:`..safe_files.open_regular` opened (``name``: the file's)."""
    archive = safe_files.SafeZip(f, name, budget.limits)
    pickles = [n for n in archive.names() if n.endswith("/data.pkl") and n.count("/") == 1]
    if not pickles:
        raise FileFormatError(f"{name}: no '<name>/data.pkl' member: not a torch.save zip")
    prefix = pickles[0][: -len("data.pkl")]

    def storage(key: str, max_bytes: int) -> bytes:
        return bytes(archive.read(f"{prefix}data/{key}", max_bytes))

    try:
        return safe_pickle.loads(bytes(archive.read(pickles[0], budget.left)), budget, storage)
    except FlameError as err:
        if str(err).startswith(f"{name}: "):  # a storage member's error names the file already
            raise
        raise type(err)(f"{name}: {err}") from None


def _portable_pickle(obj: Any) -> bytes:
    """Protocol-2 pickle whose numpy globals use the ``numpy.core`` names every numpy version reads.

    numpy 2 writes ``numpy._core.multiarray``, which numpy < 1.26 (trackers' environments) lacks.
    Protocol 2 has no frame lengths, so renaming GLOBAL opcodes in place keeps the stream valid.
    """
    data = pickle.dumps(obj, protocol=2)
    parts, last = [], 0
    for op, arg, pos in pickletools.genops(data):
        if op.name == "GLOBAL" and arg.startswith("numpy._core."):
            module, name = arg.split(" ", 1)
            parts += [data[last:pos], f"c{module.replace('numpy._core.', 'numpy.core.', 1)}\n{name}\n".encode()]
            last = pos + len(arg) + 2  # opcode byte + "module\nname\n"
    return b"".join(parts) + data[last:]


def write_torch_zip(path: str | Path, obj: Any) -> None:
    """Write ``obj`` (dicts of numpy arrays, str, int) in ``torch.save``'s zip layout without torch.

    Members ``<stem>/data.pkl`` (pickle protocol 2), ``<stem>/byteorder``, ``<stem>/version`` and an
    empty ``<stem>/data/``; readable by ``torch.load(weights_only=False)`` and
    :func:`load_torch_zip`.
    """
    path = Path(path)
    stem = path.stem
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(f"{stem}/data.pkl", _portable_pickle(obj))
        zf.writestr(f"{stem}/byteorder", b"little")
        zf.writestr(f"{stem}/data/", b"")
        zf.writestr(f"{stem}/version", b"3\n")
