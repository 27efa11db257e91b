"""The limits the model puts on tiled execution: the smallest tile edge, and the smallest halo that keeps
tiles exact (the receptive radius of the tiled parts), checked when a runner is created."""
from __future__ import annotations

from torch import nn

from vsarvo.model.tiling import ALIGN

__all__ = ["MIN_TILE", "receptive_radius", "check_tiling"]

# Tile origins must be multiples of the coarsest stride inside a tiled part (run_tiled refuses less).
MIN_TILE = ALIGN


def receptive_radius(stage: nn.Module) -> int:
    """The halo, in full-resolution pixels, that makes every tiled part of ``stage`` (an ARVoStage) exact:
    the largest receptive radius among the encoder and the reconstruction's skip and tail."""
    recon = stage.reconstruction
    return max(int(stage.encoder.receptive_radius), int(recon.skip_radius), int(recon.tail_radius))


def check_tiling(stage: nn.Module, tile: int | None, tile_overlap: int | None) -> None:
    """Refuse a tile edge below ``MIN_TILE`` and a halo below ``stage``'s receptive radius (tiles would
    then differ from the whole frame: visible seams), with the value, the limit and the fix."""
    if tile is not None and tile < MIN_TILE:
        raise ValueError(
            f"tile must be at least {MIN_TILE} pixels (the model's coarsest stride), got {tile}; "
            "use a larger tile (e.g. tile=512) or leave tile unset"
        )
    radius = receptive_radius(stage)
    if tile_overlap is not None and tile_overlap < radius:
        raise ValueError(
            f"tile_overlap must be at least {radius} pixels (this model's receptive radius), got "
            f"{tile_overlap}: a smaller halo leaves seams between the tiles; use tile_overlap>={radius} "
            "or leave it unset (exact)"
        )
