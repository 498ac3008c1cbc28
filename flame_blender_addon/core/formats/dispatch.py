"""Which sequence reader a path needs: metrical-tracker output, else one of the npz formats.

Inputs recognised: a metrical-tracker output folder (the one holding ``checkpoint/``), the
``checkpoint/`` folder itself or any ``.frame`` in it; a VHAP ``tracked_flame_params*.npz``; a
GaussianAvatars ``flame_param.npz`` or folder of ``flame_param/<n>.npz``; a ``flame_sequence.npz``;
or a folder holding one of these files; a folder of DECA, EMOCA or SMIRK per-image outputs (or one of them).
"""

from __future__ import annotations

from pathlib import Path

from .. import safe_files
from ..errors import SequenceError, guarded
from ..sequence import FlameSequence
from .metrical import attach_eyelid_dirs, checkpoint_folder, read_metrical
from .npz import read_npz_input
from .regressors import read_outputs, regressor_outputs


@guarded
def read_sequence(path: str | Path, fps: float | None = None,
                  eyelid_blendshapes: str | Path | None = None) -> FlameSequence:
    """Read any supported tracker output into a validated sequence (see :func:`..sequence.read_sequence`)."""
    path = Path(path)
    if not path.exists():
        raise SequenceError(f"{path}: no such file or folder")
    safe_files.require_file_or_folder(path)
    if path.suffix == ".frame" or checkpoint_folder(path) is not None:
        return read_metrical(path, fps=fps, eyelid_blendshapes=eyelid_blendshapes)
    folder = path.parent if path.is_file() else path
    regressor = regressor_outputs(path)
    if regressor is not None:  # SMIRK's eyelids use metrical-tracker's blendshapes
        return attach_eyelid_dirs(read_outputs(regressor, fps), eyelid_blendshapes, (regressor.folder,))
    return attach_eyelid_dirs(read_npz_input(path, fps), eyelid_blendshapes, (folder,))
