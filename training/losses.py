"""The training objective (paper Sec. 3.4): a pixel loss on every stage output plus the adversarial
loss of the temporal discriminator, which judges three consecutive restored frames against sharp ones."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PIXEL_LOSSES", "restoration_losses", "restored_sequence", "sharp_sequence",
           "generator_adversarial_loss", "discriminator_loss"]

# Per-pixel restoration losses ``--pixel-loss`` chooses from.
PIXEL_LOSSES = {"l1": F.l1_loss, "mse": F.mse_loss}


def restoration_losses(model: nn.Module, blur: torch.Tensor, sharp: torch.Tensor, stages: int,
                       pixel_loss: str = "l1") -> tuple[torch.Tensor, list[torch.Tensor]]:
    """L1 (the paper; ``pixel_loss="mse"``: squared error) on the final output and on every
    intermediate stage output, each against its sharp frame.

    ``stages`` may be below the model's (the single-stage curriculum): the window is then cut to the
    middle 2*stages+1 frames. ``model`` is the ARVo (or its DDP wrapper). Returns (loss, stage outputs).
    """
    t = blur.shape[1]
    lo = (t - (2 * stages + 1)) // 2
    blur = blur[:, lo:lo + 2 * stages + 1]
    sharp = sharp[:, lo:lo + 2 * stages + 1]
    outputs = model(blur, all_stages=True, stages=stages)
    distance = PIXEL_LOSSES[pixel_loss]
    loss = distance(outputs[-1], sharp[:, stages:stages + 1])
    for s, out in enumerate(outputs[:-1], start=1):
        loss = loss + distance(out, sharp[:, s:s + out.shape[1]]) / (stages - 1)
    return loss, outputs


def restored_sequence(outputs: list[torch.Tensor]) -> torch.Tensor:
    """{R^{S-1}_{i-1}, R^S_i, R^{S-1}_{i+1}}: what the temporal discriminator judges (needs >= 2 stages)."""
    prev_stage, last = outputs[-2], outputs[-1]
    mid = prev_stage.shape[1] // 2
    return torch.stack((prev_stage[:, mid - 1], last[:, 0], prev_stage[:, mid + 1]), dim=1)


def sharp_sequence(sharp: torch.Tensor) -> torch.Tensor:
    """{S_{i-1}, S_i, S_{i+1}}: the sharp frames the discriminator compares the restored ones with."""
    mid = sharp.shape[1] // 2
    return sharp[:, mid - 1:mid + 2]


def generator_adversarial_loss(disc: nn.Module, outputs: list[torch.Tensor]) -> torch.Tensor:
    """The restorer's adversarial term: the discriminator should call its frames sharp."""
    logits = disc(restored_sequence(outputs))
    return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))


def discriminator_loss(disc: nn.Module, sharp: torch.Tensor, outputs: list[torch.Tensor], window: int) -> torch.Tensor:
    """The discriminator's loss: sharp frames (of the model's ``window``) real, restored ones fake."""
    real = disc(sharp_sequence(sharp[:, (sharp.shape[1] - window) // 2:]))
    fake = disc(restored_sequence([o.detach() for o in outputs]))
    return F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) + \
        F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
