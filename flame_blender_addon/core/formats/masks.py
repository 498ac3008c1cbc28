"""``FLAME_masks.pkl``: named vertex regions of the FLAME mesh (format notes §3).

A protocol-0 text pickle of a dict region name -> int64 vertex indices (0-based), e.g. ``face``
(1787), ``left_eyeball`` (546), ``scalp``; 14 regions in the MICA / SMIRK copy. Text pickles are
often damaged by LF->CRLF conversion; :func:`..safe_pickle.load_file` repairs that and says so. An
``.npz`` of the same region arrays (a converted copy) is read too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import safe_files, safe_pickle
from ..errors import AssetError, guarded
from ..limits import SMALL, Budget
from ..model import N_VERTS

MASKS_FILE = "FLAME_masks.pkl"


@guarded
def read_masks(path: str | Path, n_verts: int = N_VERTS) -> tuple[dict[str, np.ndarray], list[str]]:
    """Every region of a masks pickle as sorted unique vertex indices (n,) int64, checked against a
    mesh of ``n_verts`` vertices, and warnings (a repaired text pickle). Errors name the file and region."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        with safe_files.NpzArchive.open(path, SMALL, Budget(SMALL)) as npz:
            raw, warnings = {key: npz[key] for key in npz}, []
    else:
        raw, warnings = safe_pickle.load_file(path, SMALL)
    if not isinstance(raw, dict) or not raw:
        raise AssetError(f"{path.name}: holds a {type(raw).__name__}, expected a dict of region name -> "
                         "vertex indices")
    regions = {}
    for name, value in raw.items():
        indices = np.asarray(value)
        if not isinstance(name, str) or not name.isprintable() or not 0 < len(name) <= 56:
            raise AssetError(f"{path.name}: a region named {name!r:.60}, expected a short name")
        if indices.dtype.kind not in "iu" or indices.ndim != 1:
            raise AssetError(f"{path.name}: region '{name}' is {indices.dtype} {indices.shape}, expected (n,) "
                             "vertex indices")
        if indices.size and (indices.min() < 0 or indices.max() >= n_verts):
            raise AssetError(f"{path.name}: region '{name}' uses vertex {indices.max()}, but the head has "
                             f"{n_verts} vertices (masks for another topology?)")
        regions[name] = np.unique(indices).astype(np.int64)
    return regions, warnings
