"""PWC-Net optical flow (Sun et al., CVPR 2018) and bilinear backward warping."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layout import memory_format_of
from .normalize import unit_vectors

__all__ = ["warp", "local_correlation", "PWCNet"]


def warp(image: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Backward-warp ``image`` [B, C, H, W] by ``flow`` [B, 2, H, W] (pixels, x then y).

    Output pixel (x, y) samples ``image`` at (x + u, y + v) bilinearly with border padding.
    Returns ``(warped, valid)`` where ``valid`` [B, 1, H, W] is 1 where the sample point lies inside
    the frame and 0 where border padding had to invent it.
    """
    b, _, h, w = image.shape
    # Coordinates and sampling stay in fp32 whatever the input dtype: a half-precision grid cannot address
    # a frame's pixels exactly (fp16 steps are ~1 px across a 4K row of [-1, 1]), so even a zero flow
    # would resample the image; ONNX's Range has no half-precision form either. grid_sample takes image
    # and grid in one dtype, so the image is sampled in fp32 too (3 channels, or the flow net's narrow
    # pyramid features): the warp's only fp32 tensors.
    flow = flow.float()
    ys = torch.arange(h, device=image.device, dtype=torch.float32).view(1, h, 1)
    xs = torch.arange(w, device=image.device, dtype=torch.float32).view(1, 1, w)
    px = xs + flow[:, 0]
    py = ys + flow[:, 1]
    # align_corners=True maps -1/+1 to the centres of the edge pixels, so pixel units convert exactly.
    gx = 2.0 * px / max(w - 1, 1) - 1.0
    gy = 2.0 * py / max(h - 1, 1) - 1.0
    grid = torch.stack((gx, gy), dim=-1)
    warped = F.grid_sample(image.float(), grid, mode="bilinear", padding_mode="border", align_corners=True)
    inside = (px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1)
    layout = memory_format_of(image)
    return warped.to(dtype=image.dtype, memory_format=layout), inside.unsqueeze(1).to(image.dtype)


def local_correlation(f1: torch.Tensor, f2: torch.Tensor, max_displacement: int = 4) -> torch.Tensor:
    """PWC-Net's local cost volume on unit-length features: the cosine similarity of f1(x) and
    f2(x + d) for |d|_inf <= max_displacement.

    The published layer averages raw products over channels. Trained from scratch (no FlyingChairs
    weights exist here), a narrow PWC-Net's raw costs are too faint at initialisation to steer its
    decoders; cosine costs lie in [-1, 1] from the first step.

    Returns [B, (2 * max_displacement + 1) ** 2, H, W] in ``f1``'s memory layout; f2 is zero outside
    the frame.
    """
    f1 = unit_vectors(f1, dim=1)
    f2 = unit_vectors(f2, dim=1)
    d = max_displacement
    h, w = f1.shape[-2:]
    f2p = F.pad(f2, (d, d, d, d))
    costs = [
        (f1 * f2p[:, :, dy:dy + h, dx:dx + w]).sum(dim=1)
        for dy in range(2 * d + 1)
        for dx in range(2 * d + 1)
    ]
    if memory_format_of(f1) == torch.channels_last:
        return torch.stack(costs, dim=-1).permute(0, 3, 1, 2)  # NHWC storage, NCHW shape
    return torch.stack(costs, dim=1)


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation),
        nn.LeakyReLU(0.1, inplace=True),
    )


class _FlowDecoder(nn.Module):
    """One pyramid level's flow estimator: five densely connected convs, then a flow head.

    Input: cost volume, first-image features and (above the top level) the upsampled flow and features.
    Returns the refined flow and the last hidden features (fed upward and to the context network).
    """

    def __init__(self, *, in_channels: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.layers = nn.ModuleList()
        channels = in_channels
        for width in widths:
            self.layers.append(_conv(channels, width))
            channels += width  # dense connections: each layer's output is concatenated to its input
        self.out_channels = channels
        self.predict = nn.Conv2d(channels, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for layer in self.layers:
            x = torch.cat((layer(x), x), dim=1)
        return self.predict(x), x


class PWCNet(nn.Module):
    """PWC-Net: feature pyramid, warping, local cost volume, dense flow decoders and context network.

    ``forward(im1, im2)`` takes two RGB images [B, 3, H, W] in [0, 1] of any size and returns the flow
    [B, 2, H, W] in pixels that backward-warps ``im2`` onto ``im1`` (``warp(im2, flow) ~ im1``).
    Inputs are padded to a multiple of 64 (six stride-2 levels) and the flow cropped back. As in the
    published model, flow is estimated at 1/4 resolution down to level 2 and upsampled bilinearly.
    ``width`` scales PWC-Net's channel widths (1.0 = the published network).
    """

    # Published widths: pyramid 16-32-64-96-128-196, decoder 128-128-96-64-32, context 128-128-128-96-64-32.
    PYRAMID = (16, 32, 64, 96, 128, 196)
    DECODER = (128, 128, 96, 64, 32)
    CONTEXT = (128, 128, 128, 96, 64, 32)
    MAX_DISPLACEMENT = 4
    # The published model predicts full-resolution flow / 20 at every level; we keep that scaling so the
    # heads start in a sane range.
    FLOW_SCALE = 20.0

    def __init__(self, *, width: float = 1.0) -> None:
        super().__init__()
        if not width > 0:
            raise ValueError(f"PWCNet width must be > 0, got {width!r}")

        def scaled(widths: tuple[int, ...]) -> tuple[int, ...]:
            return tuple(max(4, int(round(c * width))) for c in widths)

        pyramid = scaled(self.PYRAMID)
        decoder = scaled(self.DECODER)
        context = scaled(self.CONTEXT)
        self.pyramid = nn.ModuleList()
        cin = 3
        for cout in pyramid:
            self.pyramid.append(nn.Sequential(_conv(cin, cout, stride=2), _conv(cout, cout), _conv(cout, cout)))
            cin = cout
        cost = (2 * self.MAX_DISPLACEMENT + 1) ** 2
        # Decoders for pyramid levels 6 (coarsest, index 5) down to 2 (index 1).
        self.decoders = nn.ModuleDict()
        self.upsample_flow = nn.ModuleDict()
        self.upsample_feat = nn.ModuleDict()
        previous_out = 0
        for level in range(5, 0, -1):
            extra = 0 if level == 5 else pyramid[level] + 2 + 2
            dec = _FlowDecoder(in_channels=cost + extra, widths=decoder)
            self.decoders[str(level)] = dec
            if level < 5:
                self.upsample_flow[str(level)] = nn.ConvTranspose2d(2, 2, 4, stride=2, padding=1)
                self.upsample_feat[str(level)] = nn.ConvTranspose2d(previous_out, 2, 4, stride=2, padding=1)
            previous_out = dec.out_channels
        layers: list[nn.Module] = []
        cin = previous_out
        for cout, dilation in zip(context, (1, 2, 4, 8, 16, 1)):
            layers.append(_conv(cin, cout, dilation=dilation))
            cin = cout
        layers.append(nn.Conv2d(cin, 2, 3, padding=1))
        self.context = nn.Sequential(*layers)

    def forward(self, im1: torch.Tensor, im2: torch.Tensor) -> torch.Tensor:
        h, w = im1.shape[-2:]
        ph, pw = (-h) % 64, (-w) % 64
        if ph or pw:
            im1 = F.pad(im1, (0, pw, 0, ph), mode="replicate")
            im2 = F.pad(im2, (0, pw, 0, ph), mode="replicate")
        # One pass over both images as a batch: shared pyramid weights, half the kernel launches.
        feats1, feats2 = [], []
        x = torch.cat((im1, im2), dim=0)
        for block in self.pyramid:
            x = block(x)
            a, b = x.chunk(2, dim=0)
            feats1.append(a)
            feats2.append(b)

        flow = None
        up_flow = up_feat = None
        hidden = None
        for level in range(5, 0, -1):
            f1, f2 = feats1[level], feats2[level]
            if flow is None:
                cost = local_correlation(f1, f2, self.MAX_DISPLACEMENT)
                x = F.leaky_relu(cost, 0.1)
            else:
                # Flow in the network's /20 units -> pixels at this level (2 ** (level + 1) px per cell).
                pixel_scale = self.FLOW_SCALE / 2 ** (level + 1)
                warped, _ = warp(f2, up_flow * pixel_scale)
                cost = F.leaky_relu(local_correlation(f1, warped, self.MAX_DISPLACEMENT), 0.1)
                x = torch.cat((cost, f1, up_flow, up_feat), dim=1)
            flow, hidden = self.decoders[str(level)](x)
            if level > 1:
                up_flow = self.upsample_flow[str(level - 1)](flow)
                up_feat = self.upsample_feat[str(level - 1)](hidden)
        flow = flow + self.context(hidden)
        # Level 2 is 1/4 resolution: upsample x4. Every level predicts full-resolution pixels / 20 (the
        # warps above divide by the level's stride), so x20 gives pixels.
        flow = F.interpolate(flow, scale_factor=4.0, mode="bilinear", align_corners=False)
        flow = flow * self.FLOW_SCALE
        return flow[:, :, :h, :w]
