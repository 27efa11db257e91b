"""What a training segment gets out of its device: the measured bf16 matrix-product rate, the FLOPs of one
training sample, and their ratio at a measured samples/s."""
from __future__ import annotations

import time
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from .losses import restoration_losses

__all__ = ["bf16_matmul_rate", "flops_per_sample", "device_report"]


def bf16_matmul_rate(device: torch.device, *, n: int | None = None, repeats: int = 10) -> float:
    """FLOP/s of an n x n x n bf16 matrix product on ``device`` (n = 8192 on a GPU, 512 on the CPU), on
    random data, the mean of ``repeats`` products after three warm-ups."""
    n = n or (8192 if device.type == "cuda" else 512)
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return 2 * n**3 * repeats / (time.perf_counter() - t0)


def flops_per_sample(model: torch.nn.Module, blur: torch.Tensor, sharp: torch.Tensor, stages: int,
                     pixel_loss: str = "l1") -> float:
    """Matrix and convolution FLOPs of one training sample (forward and backward of the restoration
    loss, counted by torch's FlopCounterMode on this batch, divided by its size). Leaves gradients set."""
    counter = FlopCounterMode(display=False)
    with counter:
        loss, _ = restoration_losses(model, blur, sharp, stages, pixel_loss)
        loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / blur.shape[0]


def device_report(device: torch.device, flops: float, samples_per_s: float, matmul_rate: float) -> dict[str, Any]:
    """The segment record's device fields: the device's name, the rates, and the fraction of the measured
    bf16 matrix rate the training step reached."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    achieved = flops * samples_per_s
    return {"gpu": name, "bf16_matmul_tflops": round(matmul_rate / 1e12, 3),
            "train_tflops_per_sample": flops / 1e12, "train_tflops": round(achieved / 1e12, 4),
            "matmul_fraction": round(achieved / matmul_rate, 5) if matmul_rate > 0 else None}
