"""Evaluating a :class:`~.sequence.FlameSequence` on a model: per-frame joints and vertices (the reference
that Blender's evaluated mesh and the exports are tested against)."""

from __future__ import annotations

import dataclasses

import numpy as np

from .errors import SequenceError
from .lbs import forward
from .model import FlameModel
from .sequence import FlameSequence


def _coefficients(model: FlameModel, seq: FlameSequence, frames: slice | np.ndarray
                  ) -> tuple[FlameModel, np.ndarray, np.ndarray]:
    """The model (template shifted by static offsets) and the shape (S,) / expr (n, E) to evaluate."""
    if seq.n_shape > model.n_shape or seq.n_expr > model.n_expr:
        raise SequenceError(f"the sequence has {seq.n_shape} identity / {seq.n_expr} expression components, "
                            f"the model only {model.n_shape} / {model.n_expr}; use fit_components first")
    if seq.static_offset is not None:
        if seq.static_offset.shape != model.v_template.shape:
            raise SequenceError(f"static_offset has {len(seq.static_offset)} vertices, the model "
                                f"{model.n_verts}")
        model = dataclasses.replace(model, v_template=model.v_template + seq.static_offset)
    return model, seq.shape, seq.expr[frames]


def rest_joints(model: FlameModel, seq: FlameSequence, frames: slice | np.ndarray = slice(None)) -> np.ndarray:
    """Joints regressed from each frame's shaped and expressed (unposed) mesh: (n, 5, 3) float64.

    FLAME's joints move with expression, so these differ per frame; the kinematic chain of frame i
    pivots on them.
    """
    model, shape, expr = _coefficients(model, seq, frames)
    basis = model.joint_basis()  # (1 + S_model + E_model, J, 3)
    S = model.n_shape
    return (basis[0] + np.einsum("s,sjc->jc", shape, basis[1:1 + len(shape)])
            + np.einsum("te,ejc->tjc", expr, basis[1 + S:1 + S + expr.shape[1]]))


def sequence_vertices(model: FlameModel, seq: FlameSequence, frames: slice | np.ndarray = slice(None),
                      eyelid_dirs: np.ndarray | None = None) -> np.ndarray:
    """Reference vertices of the selected frames in FLAME space: (n, V, 3) float64.

    LBS with the sequence's rotations, then eyelid offsets (``eyelid_dirs`` (2, V, 3), default
    ``seq.eyelid_dirs``), then translation: metrical-tracker's semantics. VHAP static offsets are
    added to the template before joint regression, as VHAP does.
    """
    model, shape, expr = _coefficients(model, seq, frames)
    dirs = seq.eyelid_dirs if eyelid_dirs is None else np.asarray(eyelid_dirs, dtype=np.float64)
    if dirs is not None and dirs.shape != (2, model.n_verts, 3):
        raise SequenceError(f"eyelid blendshapes have shape {dirs.shape}, expected (2, {model.n_verts}, 3)")
    eyelids = None if seq.eyelids is None or dirs is None else seq.eyelids[frames]
    return forward(model, shape, expr, seq.rotations[frames], seq.translation[frames],
                   eyelids, dirs).vertices

