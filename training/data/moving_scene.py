"""A layered scene that can be rendered at any time: a photo seen by a moving camera, plus objects.

The background is a photo in linear light, seen through a hand-held camera path; each foreground
object is a cut-out (premultiplied RGBA, linear light) moving on its own path over it. Paths are
in output pixels (:mod:`.camera_path`); rendering happens at ``supersample`` times the output size
with bilinear sampling, so that pooling back to the output size (:func:`pool_to_output`) gives
anti-aliased frames whose sharpness does not depend on the sub-pixel position of the camera.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .camera_path import MotionPath

__all__ = ["Layer", "MovingScene", "pool_to_output"]

_CHUNK = 8  # sub-frames rendered per grid_sample call: bounds memory at large sizes


@dataclass(frozen=True)
class Layer:
    """A texture ``[C, H, W]`` (3 channels for the background, premultiplied RGBA for an object) and its path."""

    texture: torch.Tensor
    path: MotionPath


@dataclass
class MovingScene:
    """The background layer, the foreground layers drawn over it in order, and the output size."""

    background: Layer
    objects: list[Layer] = field(default_factory=list)
    size: tuple[int, int] = (256, 256)
    supersample: int = 2

    def _grid(self, layer: Layer, times: np.ndarray) -> torch.Tensor:
        """Sampling grid [N, H, W, 2] into ``layer``'s texture at ``times`` (align_corners=False).

        With centred pixel coordinates, align_corners=False normalises a coordinate ``c`` of an image
        ``n`` pixels wide to ``2 c / n``; the path's ``content = A screen + b`` becomes an affine map
        between normalised coordinates.
        """
        matrix, shift = layer.path.pose(times)
        height, width = (s * self.supersample for s in self.size)
        tex_h, tex_w = layer.texture.shape[-2:]
        theta = np.empty((len(times), 2, 3))
        theta[:, :, 0] = matrix[:, :, 0] * width
        theta[:, :, 1] = matrix[:, :, 1] * height
        theta[:, :, 2] = 2 * shift * self.supersample  # the path is in output pixels
        theta[:, 0] /= tex_w
        theta[:, 1] /= tex_h
        theta = torch.from_numpy(theta).float()[:, None, None]  # [N, 1, 1, 2, 3]
        xs = (torch.arange(width, dtype=torch.float32) * 2 + 1) / width - 1
        ys = (torch.arange(height, dtype=torch.float32) * 2 + 1) / height - 1
        # Separable form of F.affine_grid: same grid, a fraction of its cost on a CPU.
        return (xs[:, None] * theta[..., 0] + theta[..., 2]) + ys[:, None, None] * theta[..., 1]

    def _sample(self, layer: Layer, times: np.ndarray, padding: str) -> torch.Tensor:
        texture = layer.texture[None].expand(len(times), -1, -1, -1)
        return F.grid_sample(texture, self._grid(layer, times), mode="bilinear", padding_mode=padding,
                             align_corners=False)

    def render(self, times: np.ndarray) -> torch.Tensor:
        """Linear-light frames [N, 3, H*s, W*s] at working resolution, at ``times`` (frame periods)."""
        times = np.asarray(times, dtype=np.float64)
        chunks = []
        for start in range(0, len(times), _CHUNK):
            part = times[start:start + _CHUNK]
            # Reflection keeps the rare path that leaves the photo free of black borders.
            image = self._sample(self.background, part, "reflection")
            for layer in self.objects:
                rgba = self._sample(layer, part, "zeros")
                image = image * (1 - rgba[:, 3:]) + rgba[:, :3]
            chunks.append(image)
        return torch.cat(chunks)

    def at_output_scale(self) -> MovingScene:
        """The same scene with textures pooled to output scale, rendered without supersampling.

        Four times cheaper; its bilinear sampling softens by a fraction of a pixel more than the
        supersampled render, which is negligible under a streak of several pixels. Texture sides must
        be multiples of ``supersample``, so pooling keeps every texture's centre in place.
        """
        if self.supersample == 1:
            return self
        textures = [self.background.texture, *(o.texture for o in self.objects)]
        if any(side % self.supersample for t in textures for side in t.shape[-2:]):
            raise ValueError(f"texture sides must be multiples of supersample={self.supersample}")
        background = Layer(F.avg_pool2d(self.background.texture[None], self.supersample)[0], self.background.path)
        objects = [Layer(F.avg_pool2d(o.texture[None], self.supersample)[0], o.path) for o in self.objects]
        return MovingScene(background, objects, self.size, 1)


def pool_to_output(frames: torch.Tensor, supersample: int) -> torch.Tensor:
    """Working-resolution frames [N, 3, H*s, W*s] averaged down to the output size."""
    return frames if supersample == 1 else F.avg_pool2d(frames, supersample)
