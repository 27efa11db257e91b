"""Procedural blurry/sharp video clips with ground-truth optical flow.

A :class:`Scene` is a background and 1-3 foreground layers (each an RGBA
texture cut out by a soft-edged alpha mask), every one of them moving along
its own random smooth path of translation, rotation and zoom. Because each
motion is known exactly, so is the flow between any two instants.

Rendering follows how a camera integrates light: an output frame ``t`` is
the average of ``sub_frames`` renders spread evenly over the exposure
``[t - e/2, t + e/2]`` (``e`` = the fraction of the frame interval the
shutter is open), averaged in *linear* light — sRGB textures are decoded,
rendered, averaged, and encoded again — plus a little Gaussian sensor noise.
The sharp ground truth is the noiseless render at mid-exposure, ``t``
itself. Frames are quantised to 8-bit levels, so clips made in memory equal
clips written to PNG and read back.

Blur strength is set by :class:`ClipSettings`: the blur a point gets is
its screen speed (pixels per frame) times the exposure. With the defaults the
blurry frames score a mean PSNR against the sharp ones of 28.1 dB at 256x256
(10th-90th percentile 23.7-33.2 dB) and 26.4 dB at 128x128, over 200 frames
each — near the blurry inputs of DVD and GoPro; ``tests/test_synthesis.py``
keeps the mean within 24-30 dB.

Flow convention (the same as ``vsarvo.model.warp``): ``flow[t]`` [2, H, W]
holds, for each pixel ``p`` of frame ``t``, the displacement ``(dx, dy)`` in
pixels to where the same scene point is in frame ``t + 1``. Backward-warping
frame ``t + 1`` by it — sampling frame ``t + 1`` at ``p + flow[t](p)`` with
``grid_sample`` — reproduces frame ``t`` wherever the point is visible in
both frames (:func:`scene_flow` also returns that validity mask).

Everything runs on the CPU with ``torch.nn.functional.grid_sample``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from .sources import Split, draw_recipe, render_source

__all__ = [
    "ClipSettings", "FLOW_PAIR_SETTINGS", "Scene", "make_scene", "render_sharp", "render_blurry",
    "scene_flow", "make_clip", "make_flow_pair", "srgb_to_linear", "linear_to_srgb",
]

# Two sinusoids per motion parameter on top of a constant velocity: enough for
# pans that speed up, slow down and swerve, and smooth at every instant.
_WOBBLES = 2
# A background texture is at most this many times the frame size per side;
# longer camera journeys see the texture mirrored (reflection padding).
_MAX_TEXTURE_FACTOR = 3
_MASK_SUPERSAMPLE = 4
# Alpha below/above these counts as fully transparent/opaque when deciding
# where the flow is exact.
_ALPHA_CLEAR = 0.01
_ALPHA_SOLID = 0.99


@dataclass(frozen=True)
class ClipSettings:
    """Distributions the random scene of one clip is drawn from.

    Ranges are ``(low, high)`` and drawn uniformly once per clip (per layer
    for the layer ranges).

    * ``speed`` — camera pan speed in pixels per frame. Together with
      ``exposure`` it sets the blur strength.
    * ``rotation`` — largest camera rotation rate, degrees per frame.
    * ``zoom`` — largest camera zoom rate, fraction of scale per frame.
    * ``layers`` — number of independently moving foreground layers.
    * ``layer_speed`` — speed of each layer on screen, pixels per frame.
    * ``layer_rotation`` — largest layer rotation rate, degrees per frame.
    * ``exposure`` — fraction of the frame interval the shutter is open
      (0: no blur at all).
    * ``sub_frames`` — renders averaged per blurry frame.
    * ``noise`` — standard deviation of the Gaussian sensor noise added to
      the blurry frames, on the [0, 1] sRGB scale.
    """

    speed: tuple[float, float] = (2.0, 8.5)
    rotation: float = 0.5
    zoom: float = 0.01
    layers: tuple[int, int] = (1, 3)
    layer_speed: tuple[float, float] = (0.0, 10.0)
    layer_rotation: float = 2.0
    exposure: tuple[float, float] = (0.5, 1.0)
    sub_frames: int = 16
    noise: tuple[float, float] = (0.0, 0.01)

    def __post_init__(self) -> None:
        for name in ("speed", "layer_speed", "exposure", "noise"):
            low, high = getattr(self, name)
            if not 0.0 <= low <= high:
                raise ValueError(f"{name} must be a range 0 <= low <= high, got {(low, high)}")
        if self.exposure[1] > 1.0:
            raise ValueError(f"exposure is a fraction of the frame interval, at most 1, got {self.exposure}")
        if not 0 <= self.layers[0] <= self.layers[1]:
            raise ValueError(f"layers must be a range 0 <= low <= high, got {self.layers}")
        if self.sub_frames < 1:
            raise ValueError(f"sub_frames must be >= 1, got {self.sub_frames}")
        for name in ("rotation", "zoom", "layer_rotation"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


#: Settings for flow pairs: sharp, noiseless frames.
FLOW_PAIR_SETTINGS = ClipSettings(exposure=(0.0, 0.0), noise=(0.0, 0.0))


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    """Decode sRGB values in [0, 1] to linear light (IEC 61966-2-1)."""
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    """Encode linear light in [0, 1] as sRGB values (IEC 61966-2-1)."""
    x = x.clamp(0.0, 1.0)
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055)


def _to_8bit_levels(x: torch.Tensor) -> torch.Tensor:
    return torch.round(x.clamp(0.0, 1.0) * 255.0) / 255.0


@dataclass(frozen=True)
class _Path:
    """A smooth similarity motion: origin ``(x, y)``, angle (radians) and log-scale over time.

    Each of the four parameters is
    ``base + velocity * s + sum_k amplitude_k * (sin(frequency_k * s + phase_k) - sin(phase_k))``
    with ``s = time - mid``, so ``base`` is its value at the clip's middle.
    """

    base: np.ndarray  # [4]
    velocity: np.ndarray  # [4]
    amplitude: np.ndarray  # [4, _WOBBLES]
    frequency: np.ndarray  # [4, _WOBBLES]
    phase: np.ndarray  # [4, _WOBBLES]
    mid: float

    def at(self, times: np.ndarray) -> np.ndarray:
        """The parameters at ``times`` [N] as [N, 4]."""
        s = np.asarray(times, dtype=np.float64)[:, None, None] - self.mid
        wobble = self.amplitude * (np.sin(self.frequency * s + self.phase) - np.sin(self.phase))
        return self.base + self.velocity * s[:, :, 0] + wobble.sum(axis=2)


def _random_path(
    rng: np.random.Generator, *, mid: float, origin: np.ndarray, speed: float, angle: float,
    angle_rate: float, log_scale: float, zoom_rate: float,
) -> _Path:
    """A path through ``origin``/``angle``/``log_scale`` at ``mid`` with the given typical rates."""
    heading = rng.uniform(0, 2 * math.pi)
    velocity = np.array([
        speed * math.cos(heading), speed * math.sin(heading),
        rng.uniform(-1, 1) * angle_rate, rng.uniform(-1, 1) * zoom_rate,
    ])
    frequency = rng.uniform(0.3, 1.2, (4, _WOBBLES))
    rates = np.array([speed, speed, angle_rate, zoom_rate])[:, None]
    # Each wobble adds at most half the typical rate: the motion swerves and
    # changes pace without reversing too often.
    amplitude = rng.uniform(0, 0.5, (4, _WOBBLES)) * rates / frequency
    return _Path(
        base=np.array([origin[0], origin[1], angle, log_scale]), velocity=velocity, amplitude=amplitude,
        frequency=frequency, phase=rng.uniform(0, 2 * math.pi, (4, _WOBBLES)), mid=mid,
    )


@dataclass(frozen=True)
class _Sprite:
    """A texture placed on screen by a moving similarity transform.

    Screen pixel ``p`` (pixel centres at integers, x then y) shows texture
    position ``X = anchor + scale * R(angle) @ (p - origin)``, where origin,
    angle and log(scale) follow ``path``. ``texture`` is [3, h, w] linear RGB,
    or [4, h, w] alpha-premultiplied linear RGB + alpha for a layer;
    ``padding`` is grid_sample's rule for points off the texture.
    """

    texture: torch.Tensor
    path: _Path
    anchor: np.ndarray  # [2], texture pixel coordinates
    padding: str

    def transform(self, times: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Screen-to-texture affine maps at ``times``: ``X = A @ p + b``, A [N, 2, 2], b [N, 2]."""
        params = self.path.at(times)
        scale = np.exp(params[:, 3])
        cos, sin = np.cos(params[:, 2]) * scale, np.sin(params[:, 2]) * scale
        a = np.stack([np.stack([cos, -sin], 1), np.stack([sin, cos], 1)], 1)
        b = self.anchor - np.einsum("nij,nj->ni", a, params[:, :2])
        return torch.from_numpy(a).float(), torch.from_numpy(b).float()


@dataclass(frozen=True)
class Scene:
    """A background and foreground layers in motion, plus the camera settings of one clip.

    Frame ``t`` (0 <= t < ``n_frames``) is exposed around time ``t``, in frame
    intervals. Build one with :func:`make_scene`.
    """

    size: tuple[int, int]
    n_frames: int
    background: _Sprite
    layers: tuple[_Sprite, ...]
    exposure: float
    noise: float
    sub_frames: int


def _pixel_grid(size: tuple[int, int]) -> torch.Tensor:
    """Pixel-centre coordinates [H, W, 2] (x, y) of a frame."""
    height, width = size
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing="ij")
    return torch.stack([xs, ys], dim=-1)


def _sample(image: torch.Tensor, points: torch.Tensor, padding: str) -> torch.Tensor:
    """Bilinearly sample ``image`` [N or 1, C, h, w] at pixel coordinates ``points`` [N, H, W, 2]."""
    height, width = image.shape[-2:]
    # align_corners=False puts pixel i's centre at (2i + 1) / size - 1.
    scale = torch.tensor([2.0 / width, 2.0 / height])
    grid = (points + 0.5) * scale - 1.0
    image = image.expand(points.shape[0], -1, -1, -1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode=padding, align_corners=False)


def _render_linear(scene: Scene, times: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Composite the scene at ``times`` [N]: linear RGB [N, 3, H, W] and layer alphas [N, L, H, W]."""
    height, width = scene.size
    # grid_sample's normalised coordinates (align_corners=False) of pixel
    # centres: screen u = (2p + 1) / size - 1, texture g = (2X + 1) / size - 1.
    # Folding both conversions into the affine map lets affine_grid build the
    # sampling grid in one batched product.
    from_screen = torch.tensor([[width / 2, 0, (width - 1) / 2], [0, height / 2, (height - 1) / 2], [0, 0, 1]])

    def sample(sprite: _Sprite) -> torch.Tensor:
        a, b = sprite.transform(times)
        affine = torch.zeros(len(times), 3, 3)
        affine[:, :2, :2], affine[:, :2, 2], affine[:, 2, 2] = a, b, 1.0
        texture_height, texture_width = sprite.texture.shape[1:]
        to_texture = torch.tensor([[2 / texture_width, 0, 1 / texture_width - 1], [0, 2 / texture_height, 1 / texture_height - 1]])
        theta = to_texture @ affine @ from_screen
        grid = F.affine_grid(theta, [len(times), 1, height, width], align_corners=False)
        texture = sprite.texture[None].expand(len(times), -1, -1, -1)
        return F.grid_sample(texture, grid, mode="bilinear", padding_mode=sprite.padding, align_corners=False)

    rgb = sample(scene.background)
    alphas = []
    for layer in scene.layers:
        rgba = sample(layer)
        # Premultiplied "over": the layer's colour plus what its alpha lets through.
        rgb = rgba[:, :3] + (1.0 - rgba[:, 3:]) * rgb
        alphas.append(rgba[:, 3])
    alpha = torch.stack(alphas, 1) if alphas else torch.zeros(len(times), 0, height, width)
    return rgb, alpha


def render_sharp(scene: Scene, t: int) -> torch.Tensor:
    """The sharp frame ``t``: the noiseless render at mid-exposure, sRGB [3, H, W] in [0, 1]."""
    rgb, _ = _render_linear(scene, np.array([float(t)]))
    return _to_8bit_levels(linear_to_srgb(rgb[0]))


def render_blurry(scene: Scene, t: int, rng: np.random.Generator) -> torch.Tensor:
    """The blurry frame ``t``, sRGB [3, H, W] in [0, 1]; ``rng`` draws the sensor noise.

    The mean, in linear light, of ``scene.sub_frames`` renders at evenly
    spaced instants of the exposure window, plus Gaussian noise.
    """
    if scene.exposure == 0.0:
        times = np.array([float(t)])
    else:
        k = np.arange(scene.sub_frames)
        times = t + scene.exposure * ((k + 0.5) / scene.sub_frames - 0.5)
    rgb, _ = _render_linear(scene, times)
    blurry = linear_to_srgb(rgb.mean(dim=0))
    if scene.noise > 0.0:
        blurry = blurry + scene.noise * torch.from_numpy(rng.standard_normal(blurry.shape, dtype=np.float32))
    return _to_8bit_levels(blurry)


def _front_layer(alpha: torch.Tensor) -> torch.Tensor:
    """Index [H, W] of what is seen at each pixel: 0 = background, l + 1 = layer l."""
    label = torch.zeros(alpha.shape[1:], dtype=torch.long)
    for index in range(alpha.shape[0]):
        label[alpha[index] > 0.5] = index + 1
    return label


def _purity(alpha: torch.Tensor) -> torch.Tensor:
    """[L + 1, H, W] float: 1 where only that sprite is seen (no blending with another)."""
    clear = alpha < _ALPHA_CLEAR
    pure = []
    for index in range(alpha.shape[0] + 1):
        above_clear = clear[index:].all(dim=0) if index < alpha.shape[0] else torch.ones(alpha.shape[1:], dtype=torch.bool)
        own_solid = alpha[index - 1] > _ALPHA_SOLID if index > 0 else torch.ones_like(above_clear)
        pure.append(own_solid & above_clear)
    return torch.stack(pure).float()


def scene_flow(scene: Scene, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ground-truth flow from sharp frame ``t`` to ``t + 1`` and where it is exact.

    Returns ``flow`` [2, H, W] (dx, dy in pixels; see the module docstring
    for the convention) and ``valid`` [H, W] bool: pixels of frame ``t``
    that show a single sprite (no blended layer edge) whose point is visible
    and unblended in frame ``t + 1`` too — not occluded, not out of frame.
    Elsewhere the flow still follows the front sprite at the pixel.
    """
    if not 0 <= t < scene.n_frames - 1:
        raise ValueError(f"t must be in [0, {scene.n_frames - 2}] for a {scene.n_frames}-frame scene, got {t}")
    times = np.array([float(t), float(t + 1)])
    pixels = _pixel_grid(scene.size)
    sprites = (scene.background, *scene.layers)
    targets = []
    for sprite in sprites:
        a, b = sprite.transform(times)
        # The point shown at p at time t sits at X = A0 p + b0 on the texture;
        # at time t + 1 the screen shows X at A1^-1 (X - b1).
        texture_points = pixels @ a[0].T + b[0]
        targets.append((texture_points - b[1]) @ torch.linalg.inv(a[1]).T)
    _, alpha = _render_linear(scene, times)
    label = _front_layer(alpha[0])
    target = torch.stack(targets)[label, torch.arange(label.shape[0])[:, None], torch.arange(label.shape[1])]
    flow = (target - pixels).permute(2, 0, 1).contiguous()
    purity_now, purity_next = _purity(alpha[0]), _purity(alpha[1])
    # Bilinear sampling of the next frame at the target reads four pixels;
    # all four must show the same sprite, unblended, for the warp to be exact.
    purity_there = _sample(purity_next[None], target[None], "zeros")[0]
    valid = (purity_now.gather(0, label[None])[0] > 0.5) & (purity_there.gather(0, label[None])[0] > 0.999)
    return flow, valid


def _blob_mask(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """An anti-aliased irregular blob filling most of ``size``, float [h, w] in [0, 1]."""
    height, width = size
    angles = np.linspace(0, 2 * math.pi, 128, endpoint=False)
    radius = np.ones_like(angles)
    for harmonic in range(2, 6):
        radius += rng.uniform(0, 0.3 / harmonic) * np.cos(harmonic * angles + rng.uniform(0, 2 * math.pi))
    radius /= radius.max()
    s = _MASK_SUPERSAMPLE
    centre = np.array([width * s / 2, height * s / 2])
    half = 0.48 * np.array([width * s, height * s])
    points = centre + np.stack([np.cos(angles), np.sin(angles)], 1) * radius[:, None] * half
    mask = Image.new("L", (width * s, height * s), 0)
    ImageDraw.Draw(mask).polygon([tuple(p) for p in points], fill=255)
    return np.asarray(mask.resize((width, height), Image.Resampling.BOX)).astype(np.float32) / 255.0


def _linear_texture(image: np.ndarray) -> torch.Tensor:
    """RGB uint8 [h, w, 3] → linear RGB float [3, h, w]."""
    return srgb_to_linear(torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255.0)


def _background_texture_size(path: _Path, size: tuple[int, int], n_frames: int) -> tuple[int, int, np.ndarray]:
    """Texture (height, width) covering what the frame sweeps over the clip, and the sweep's centre.

    The centre is relative to the texture point anchored at the path's origin.
    """
    height, width = size
    times = np.linspace(-0.5, n_frames - 0.5, 4 * n_frames + 1)
    params = path.at(times)
    corners = np.array([[0, 0], [width - 1, 0], [0, height - 1], [width - 1, height - 1]], dtype=np.float64)
    scale = np.exp(params[:, 3])[:, None, None]
    cos, sin = np.cos(params[:, 2])[:, None], np.sin(params[:, 2])[:, None]
    offset = corners[None] - params[:, None, :2]
    points = scale * np.stack([cos * offset[..., 0] - sin * offset[..., 1], sin * offset[..., 0] + cos * offset[..., 1]], -1)
    low, high = points.reshape(-1, 2).min(0), points.reshape(-1, 2).max(0)
    extent = np.minimum(np.ceil(high - low) + 4, _MAX_TEXTURE_FACTOR * np.array([width, height]))
    return int(extent[1]), int(extent[0]), (low + high) / 2


def make_scene(
    rng: np.random.Generator, n_frames: int, size: tuple[int, int],
    settings: ClipSettings | None = None, *, split: Split = "train",
) -> Scene:
    """Draw a random scene for a clip of ``n_frames`` frames of ``size = (height, width)``.

    Source images come from ``split`` (see :mod:`vsarvo.training.data.sources`).
    """
    settings = settings or ClipSettings()
    height, width = size
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    if height < 16 or width < 16:
        raise ValueError(f"size must be at least 16x16, got {size}")
    mid = (n_frames - 1) / 2
    screen_centre = np.array([(width - 1) / 2, (height - 1) / 2])
    camera = _random_path(
        rng, mid=mid, origin=screen_centre, speed=rng.uniform(*settings.speed), angle=0.0,
        angle_rate=math.radians(settings.rotation), log_scale=0.0, zoom_rate=settings.zoom,
    )
    texture_height, texture_width, footprint_centre = _background_texture_size(camera, size, n_frames)
    # Anchor the path's origin so the area the frame sweeps is centred on the texture.
    anchor = np.array([(texture_width - 1) / 2, (texture_height - 1) / 2]) - footprint_centre
    background = _Sprite(
        texture=_linear_texture(render_source(draw_recipe(rng, split), (texture_height, texture_width))),
        path=camera, anchor=anchor, padding="reflection",
    )
    layers = []
    for _ in range(int(rng.integers(settings.layers[0], settings.layers[1] + 1))):
        side = rng.uniform(0.25, 0.6) * min(height, width)
        aspect = rng.uniform(0.7, 1.4)
        layer_size = (max(8, round(side * aspect)), max(8, round(side / aspect)))
        colour = _linear_texture(render_source(draw_recipe(rng, split), layer_size))
        alpha = torch.from_numpy(_blob_mask(rng, layer_size))[None]
        path = _random_path(
            rng, mid=mid, origin=rng.uniform(0, 1, 2) * (width, height), speed=rng.uniform(*settings.layer_speed),
            angle=rng.uniform(0, 2 * math.pi), angle_rate=math.radians(settings.layer_rotation),
            log_scale=rng.uniform(-0.3, 0.3), zoom_rate=settings.zoom,
        )
        anchor = np.array([(layer_size[1] - 1) / 2, (layer_size[0] - 1) / 2])
        layers.append(_Sprite(texture=torch.cat([colour * alpha, alpha]), path=path, anchor=anchor, padding="zeros"))
    return Scene(
        size=(height, width), n_frames=n_frames, background=background, layers=tuple(layers),
        exposure=float(rng.uniform(*settings.exposure)), noise=float(rng.uniform(*settings.noise)),
        sub_frames=settings.sub_frames,
    )


def make_clip(
    rng: np.random.Generator, n_frames: int, size: tuple[int, int],
    settings: ClipSettings | None = None, *, split: Split = "train",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A random clip: ``(blur [T, 3, H, W], sharp [T, 3, H, W], flow [T - 1, 2, H, W])``.

    float32; frames in [0, 1] on 8-bit levels; ``flow[t]`` goes from sharp
    frame ``t`` to ``t + 1`` (module docstring). The same ``rng`` state gives
    the same clip.
    """
    scene = make_scene(rng, n_frames, size, settings, split=split)
    blur = torch.stack([render_blurry(scene, t, rng) for t in range(n_frames)])
    sharp = torch.stack([render_sharp(scene, t) for t in range(n_frames)])
    height, width = size
    flows = [scene_flow(scene, t)[0] for t in range(n_frames - 1)]
    flow = torch.stack(flows) if flows else torch.zeros(0, 2, height, width)
    return blur, sharp, flow


def make_flow_pair(
    rng: np.random.Generator, size: tuple[int, int],
    settings: ClipSettings = FLOW_PAIR_SETTINGS, *, split: Split = "train",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two consecutive frames with known flow, for pretraining the flow network.

    Returns ``(frame0 [3, H, W], frame1 [3, H, W], flow [2, H, W], valid [H, W] bool)``,
    flow from frame 0 to frame 1 (warping frame 1 by it gives frame 0 where
    ``valid``). With the default settings the frames are sharp and
    noiseless; pass blurrier settings to train flow on blurry input (the flow
    is always that of the mid-exposure instants).
    """
    scene = make_scene(rng, 2, size, settings, split=split)
    frame0, frame1 = render_blurry(scene, 0, rng), render_blurry(scene, 1, rng)
    flow, valid = scene_flow(scene, 0)
    return frame0, frame1, flow, valid
