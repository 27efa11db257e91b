"""The training curves of a run (loss, validation PSNR, flow pretraining error) as one PNG."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from vsarvo.atomic import atomic_path

__all__ = ["plot_curves"]


def plot_curves(history: dict[str, list[list[float]]], path: Path) -> None:
    """Writes ``history``'s curves to ``path``; the training loss is smoothed over ~1/200 of the run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for key in ("loss", "pixel"):
        if history.get(key):
            xs, ys = zip(*history[key])
            k = max(1, len(ys) // 200)
            smooth = np.convolve(ys, np.ones(k) / k, mode="valid")
            axes[0].plot(xs[k - 1:], smooth, label=key)
    axes[0].set(title="training loss", xlabel="step", yscale="log")
    axes[0].legend()
    if history.get("val_psnr"):
        xs, ys = zip(*history["val_psnr"])
        axes[1].plot(xs, ys, marker="o")
    axes[1].set(title="validation PSNR (dB)", xlabel="step")
    if history.get("flow_epe"):
        xs, ys = zip(*history["flow_epe"])
        axes[2].plot(xs, ys)
    axes[2].set(title="flow pretraining EPE (px)", xlabel="step")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)
