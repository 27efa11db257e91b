"""Unit-length feature vectors that stay finite in every dtype the model runs in."""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["unit_vectors"]

# F.normalize's default floor on the norm; fp32 and bf16 represent it.
NORM_FLOOR = 1e-12


def unit_vectors(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """``x`` divided by its L2 norm over ``dim``, a zero vector staying zero.

    ``F.normalize`` floors the norm at 1e-12, which rounds to 0 in fp16, so a zero vector becomes 0/0 =
    NaN there; the floor is raised to the dtype's smallest normal number where 1e-12 is below it (fp16
    only: fp32 and bf16 keep 1e-12 and ``F.normalize``'s results).
    """
    floor = max(NORM_FLOOR, torch.finfo(x.dtype).tiny) if x.is_floating_point() else NORM_FLOOR
    return F.normalize(x, dim=dim, eps=floor)
