"""FLAME model files: the released Python-2 pickles (``generic_model.pkl``, ``flame2023*.pkl``, chumpy and
scipy objects inside, read without either) and converted ``.npz`` archives of the same keys.

:func:`read_model_file` only decodes; :func:`..model.model_from_arrays` validates the arrays.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from .. import safe_files, safe_pickle
from ..errors import FileFormatError, FlameError, ModelLoadError
from ..limits import LARGE, Budget


def read_model_file(name: str, data: bytes, budget: Budget | None = None) -> Mapping[str, Any]:
    """A model file's bytes -> its key -> value mapping, decoded within ``budget`` (default :data:`LARGE`).

    A pickle goes through the restricted unpickler; an ``.npz`` becomes a lazy mapping whose members
    are decoded only when their key is used. ``name`` (the file name) prefixes error messages;
    raises only FlameError.
    """
    budget = budget or Budget(LARGE)
    if data[:2] == b"PK":
        return safe_files.NpzArchive(io.BytesIO(data), name, LARGE, budget)
    try:
        raw = safe_pickle.loads(data, budget)
    except FileFormatError as err:
        raise FileFormatError(f"{name}: {str(err).replace('a readable pickle', 'a readable FLAME pickle')}") from None
    except FlameError as err:
        raise type(err)(f"{name}: {err}") from None
    if not isinstance(raw, dict):
        raise ModelLoadError(f"{name}: expected a dict of FLAME arrays, found {type(raw).__name__}")
    return raw
