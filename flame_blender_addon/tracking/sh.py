"""Lambertian shading under spherical-harmonic lighting, in torch (conventions and numpy helpers
in :mod:`..core.sh_lighting`)."""

from __future__ import annotations

import torch

from ..core.sh_lighting import BAND_GAIN, basis_terms


def basis(n: torch.Tensor) -> torch.Tensor:
    """The 9 SH basis functions at unit vectors n (..., 3) -> (..., 9)."""
    return torch.stack(basis_terms(n), -1)


def shading_basis(n: torch.Tensor) -> torch.Tensor:
    """The basis functions times their band gains at unit vectors n (..., 3) -> (..., 9): the
    shading is linear in the lighting with these coefficients."""
    return basis(n) * n.new_tensor(BAND_GAIN)


def shading(n: torch.Tensor, sh: torch.Tensor) -> torch.Tensor:
    """Reflected radiance of a white Lambertian surface. n: (..., 3) unit; sh: (9, C) or (..., 9, C)
    -> (..., C)."""
    return torch.einsum("...k,...kc->...c", shading_basis(n), sh.expand(n.shape[:-1] + sh.shape[-2:]))
