"""Lambertian shading under spherical-harmonic lighting, in torch (conventions and numpy helpers
in :mod:`..core.sh_lighting`)."""

from __future__ import annotations

import torch

from ..core.sh_lighting import BAND_GAIN, basis_terms


def basis(n: torch.Tensor) -> torch.Tensor:
    """The 9 SH basis functions at unit vectors n (..., 3) -> (..., 9)."""
    return torch.stack(basis_terms(n), -1)


def shading(n: torch.Tensor, sh: torch.Tensor) -> torch.Tensor:
    """Reflected radiance of a white Lambertian surface. n: (..., 3) unit; sh: (9, C) or (..., 9, C)
    -> (..., C)."""
    gain = n.new_tensor(BAND_GAIN)
    return torch.einsum("...k,...kc->...c", basis(n) * gain, sh.expand(n.shape[:-1] + sh.shape[-2:]))
