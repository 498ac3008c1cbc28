"""FLAME model files: the released Python-2 pickles (``generic_model.pkl``, ``flame2023*.pkl``, chumpy and
scipy objects inside, read without either) and converted ``.npz`` archives of the same keys.

:func:`read_model_file` only decodes; :func:`..model.model_from_arrays` validates the arrays.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from typing import Any

import numpy as np

from .. import safe_pickle
from ..errors import FlameError, ModelLoadError


def read_model_file(name: str, data: bytes) -> dict[str, Any]:
    """A model file's bytes -> its key -> value mapping (pickles through the restricted unpickler).

    ``name`` (the file name) prefixes error messages; raises ModelLoadError.
    """
    if data[:2] == b"PK":  # .npz (zip); object arrays are refused by allow_pickle=False
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                return {k: npz[k] for k in npz.files}
        except (ValueError, OSError, zipfile.BadZipFile) as err:
            raise ModelLoadError(f"{name}: not a readable .npz model ({err})") from None
    try:
        raw = safe_pickle.loads(data)
    except FlameError as err:
        raise ModelLoadError(f"{name}: {err}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, UnicodeDecodeError, MemoryError) as err:
        raise ModelLoadError(f"{name}: not a readable FLAME pickle (truncated or damaged: "
                             f"{type(err).__name__}: {err})") from None
    if not isinstance(raw, dict):
        raise ModelLoadError(f"{name}: expected a dict of FLAME arrays, found {type(raw).__name__}")
    return raw
