"""Exact overlapping-tile execution of purely local (convolutional) parts of the network.

A convolutional function's output at a pixel depends only on inputs within its receptive radius. Run it
on a tile extended by a halo at least that radius wide, keep the tile's interior, and the result equals
the whole-frame result bit for bit up to floating-point summation order (zero padding at the frame edge
is reproduced because the halo is clamped to the frame there). Tile origins are multiples of ``ALIGN``
so stride-2 layers see the same sampling phase as on the whole frame.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

__all__ = ["ALIGN", "run_tiled"]

ALIGN = 4  # the coarsest stride inside a tiled function (encoder: two stride-2 convs)


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


def run_tiled(
    fn: Callable[..., torch.Tensor],
    inputs: Sequence[tuple[torch.Tensor, int]],
    *,
    height: int,
    width: int,
    out_divisor: int,
    tile: int | None,
    overlap: int,
) -> torch.Tensor:
    """Evaluate ``fn(*inputs)`` tile by tile; ``tile=None`` evaluates it once on the whole frame.

    ``inputs`` are (tensor, divisor) pairs: a tensor at 1/divisor of the full ``height`` x ``width``
    (divisor 1, 2 or 4, dividing ``ALIGN``). ``fn`` returns a tensor at 1/``out_divisor`` resolution.
    ``tile`` is the tile edge and ``overlap`` the halo, both in full-resolution pixels; the halo must
    cover ``fn``'s receptive radius (callers pass the radius the modules declare).
    """
    if tile is None:
        return fn(*(tensor for tensor, _ in inputs))
    if tile < ALIGN:
        raise ValueError(f"tile must be >= {ALIGN} pixels, got {tile}")
    if overlap < 0:
        raise ValueError(f"overlap must be >= 0, got {overlap}")
    tile = _round_up(tile, ALIGN)
    halo = _round_up(overlap, ALIGN)
    out = None
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            y1, x1 = min(y0 + tile, height), min(x0 + tile, width)
            ya, xa = max(y0 - halo, 0), max(x0 - halo, 0)
            yb, xb = min(y1 + halo, height), min(x1 + halo, width)
            crops = [t[..., ya // d: -(-yb // d), xa // d: -(-xb // d)] for t, d in inputs]
            result = fn(*crops)
            if out is None:
                out = result.new_empty(
                    (*result.shape[:-2], -(-height // out_divisor), -(-width // out_divisor))
                )
            d = out_divisor
            oy, ox = (y0 - ya) // d, (x0 - xa) // d
            ty, tx = -(-(y1 - y0) // d), -(-(x1 - x0) // d)
            out[..., y0 // d: y0 // d + ty, x0 // d: x0 // d + tx] = result[..., oy: oy + ty, ox: ox + tx]
    assert out is not None
    return out
