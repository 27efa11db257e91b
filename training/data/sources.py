"""Sharp source images for blur synthesis, with a held-out test split.

Package registries ship only a handful of photos (scikit-image's
``skimage.data``; the ones that would need a network download are not used),
so every source image is a collage: a base layer — a random crop of a photo,
recoloured, or 1/f noise with natural-image spectral statistics — over which
procedural detail is drawn: anti-aliased polygons (hard edges at every
orientation), text (fine high-contrast strokes) and foliage (many small leaves
and stems). A source image is fully described by a :class:`SourceRecipe`
(which photo, which seed), so it can be regenerated at any size.

Held-out split: the photos in :data:`TEST_PHOTOS` and the procedural seeds
below :data:`TEST_SEED_LIMIT` are only ever drawn for ``split="test"``;
``split="train"`` draws from :data:`TRAIN_PHOTOS` and seeds at or above the
limit, so training never sees a test image.
"""
from __future__ import annotations

import functools
import string
from dataclasses import dataclass
from typing import Literal

import numpy as np
import skimage.data
from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "TRAIN_PHOTOS", "TEST_PHOTOS", "TEST_SEED_LIMIT", "Split", "SourceRecipe",
    "draw_recipe", "render_source", "source_images",
]

Split = Literal["train", "test"]

# Only photos that load offline from the scikit-image wheel. ``cat`` is the
# same picture as ``chelsea`` and is left out so it cannot leak across splits;
# the stereo pair contributes its left view only.
TRAIN_PHOTOS: tuple[str, ...] = (
    "astronaut", "chelsea", "immunohistochemistry", "hubble_deep_field", "retina",
    "stereo_motorcycle", "camera", "moon", "coins", "brick", "gravel", "page", "text", "cell",
)
TEST_PHOTOS: tuple[str, ...] = ("coffee", "rocket", "grass", "clock")

# Procedural seeds below this value belong to the test split.
TEST_SEED_LIMIT = 2**20
_SEED_END = 2**62
# Chance that a source image starts from a photo rather than from 1/f noise.
_PHOTO_PROBABILITY = 0.6
# Procedural shapes are drawn this many times larger and box-filtered down,
# which anti-aliases their edges.
_SUPERSAMPLE = 4


@dataclass(frozen=True)
class SourceRecipe:
    """Everything that determines one source image.

    ``photo`` names the ``skimage.data`` photo its base layer is cropped from
    (``None``: a 1/f-noise base); ``seed`` drives every random choice made
    while rendering it (crop, recolouring, overlays).
    """

    photo: str | None
    seed: int

    @property
    def split(self) -> Split:
        """The split this recipe belongs to (both its photo and its seed agree)."""
        return "test" if self.seed < TEST_SEED_LIMIT else "train"


def draw_recipe(rng: np.random.Generator, split: Split) -> SourceRecipe:
    """Draw a random recipe from ``split``'s photos and seed range."""
    if split == "train":
        photos, low, high = TRAIN_PHOTOS, TEST_SEED_LIMIT, _SEED_END
    elif split == "test":
        photos, low, high = TEST_PHOTOS, 0, TEST_SEED_LIMIT
    else:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    photo = str(rng.choice(photos)) if rng.random() < _PHOTO_PROBABILITY else None
    return SourceRecipe(photo=photo, seed=int(rng.integers(low, high)))


def source_images(split: Split, *, count: int, size: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    """``count`` source images of ``split``, each ``size = (height, width)``, as RGB uint8 arrays.

    The same arguments always give the same images.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    rng = np.random.default_rng(seed)
    return [render_source(draw_recipe(rng, split), size) for _ in range(count)]


def render_source(recipe: SourceRecipe, size: tuple[int, int]) -> np.ndarray:
    """Render ``recipe`` as an RGB uint8 array of ``size = (height, width)``."""
    height, width = size
    if height < 8 or width < 8:
        raise ValueError(f"size must be at least 8x8, got {size}")
    rng = np.random.default_rng(recipe.seed)
    if recipe.photo is None:
        base = _pink_noise_image(rng, size)
    else:
        base = _photo_crop(rng, recipe.photo, size)
    canvas = Image.fromarray(base).resize((width * _SUPERSAMPLE, height * _SUPERSAMPLE), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(canvas)
    # At least one overlay, so every image has some hard edges to deblur.
    overlays = [o for o in (_draw_polygons, _draw_text, _draw_foliage) if rng.random() < 0.5]
    if not overlays:
        overlays = [(_draw_polygons, _draw_text, _draw_foliage)[rng.integers(3)]]
    for overlay in overlays:
        overlay(rng, draw, canvas.size)
    # A box filter over whole supersampled cells returns the nearest-upsampled
    # base exactly, so only the drawn shapes change (and get anti-aliased).
    return np.asarray(canvas.resize((width, height), Image.Resampling.BOX))


@functools.cache
def _load_photo(name: str) -> np.ndarray:
    """A ``skimage.data`` photo as RGB uint8 (grey photos repeated over three channels)."""
    image = getattr(skimage.data, name)()
    if isinstance(image, tuple):  # stereo_motorcycle: (left, right, disparity)
        image = image[0]
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3]).astype(np.uint8)


def _photo_crop(rng: np.random.Generator, name: str, size: tuple[int, int]) -> np.ndarray:
    """A random, randomly recoloured crop of a photo, resized to ``size``."""
    height, width = size
    photo = np.rot90(_load_photo(name), k=int(rng.integers(4)))
    if rng.random() < 0.5:
        photo = photo[:, ::-1]
    ph, pw = photo.shape[:2]
    # Crop the output's aspect ratio at a random scale: at most the whole
    # photo, shrunk at most 2x, enlarged at most 1.33x unless the photo is
    # too small (enlarging softens it, and the sharp frames must be sharp).
    fit = min(ph / height, pw / width)
    low = min(0.75, fit)
    scale = rng.uniform(low, max(low, min(fit, 2.0)))
    ch, cw = max(1, round(height * scale)), max(1, round(width * scale))
    y0, x0 = int(rng.integers(ph - ch + 1)), int(rng.integers(pw - cw + 1))
    crop = Image.fromarray(np.ascontiguousarray(photo[y0:y0 + ch, x0:x0 + cw]))
    image = np.asarray(crop.resize((width, height), Image.Resampling.LANCZOS)).astype(np.float64) / 255.0
    if np.ptp(image, axis=2).max() < 1e-6:
        # A grey photo: stretch its contrast (a zoomed-in crop of a grey photo
        # is often nearly flat) and map it through a random dark-to-bright
        # colour gradient, inverted half of the time.
        grey = image[..., :1]
        low_level, high_level = np.percentile(grey, (1, 99))
        grey = np.clip((grey - low_level) / max(high_level - low_level, 1e-3), 0.0, 1.0)
        dark, bright = rng.uniform(0.0, 0.4, 3), rng.uniform(0.6, 1.0, 3)
        if rng.random() < 0.5:
            dark, bright = bright, dark
        image = dark + grey * (bright - dark)
    else:
        image = image[..., rng.permutation(3)] if rng.random() < 0.5 else image
        grey = image.mean(axis=2, keepdims=True)
        image = grey + rng.uniform(0.5, 1.5) * (image - grey)
        image = np.clip(image, 0.0, 1.0) ** rng.uniform(0.8, 1.25, 3)
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _pink_noise(rng: np.random.Generator, size: tuple[int, int], exponent: float) -> np.ndarray:
    """Zero-mean, unit-variance noise whose amplitude spectrum falls as 1/f**exponent."""
    height, width = size
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    radius = np.sqrt(fx * fx + fy * fy)
    radius[0, 0] = 1.0
    spectrum = (rng.normal(size=radius.shape) + 1j * rng.normal(size=radius.shape)) / radius**exponent
    spectrum[0, 0] = 0.0
    field = np.fft.irfft2(spectrum, s=(height, width))
    return field / (field.std() + 1e-12)


def _pink_noise_image(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A colour image with natural-image (1/f amplitude) statistics."""
    exponent = rng.uniform(0.9, 1.3)
    luminance = _pink_noise(rng, size, exponent)
    chroma = np.stack([_pink_noise(rng, size, exponent) for _ in range(3)], axis=2)
    mean = rng.uniform(0.25, 0.75, 3)
    contrast = rng.uniform(0.12, 0.3)
    image = mean + contrast * luminance[..., None] + 0.3 * contrast * chroma
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _colour_tuple(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(0, 256, 3))


def _draw_polygons(rng: np.random.Generator, draw: ImageDraw.ImageDraw, canvas: tuple[int, int]) -> None:
    """Random filled or outlined polygons: straight edges at every orientation."""
    width, height = canvas
    for _ in range(int(rng.integers(3, 26))):
        centre = rng.uniform(0, 1, 2) * (width, height)
        radius = rng.uniform(0.02, 0.3) * min(width, height)
        angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(3, 9))))
        radii = radius * rng.uniform(0.4, 1.0, angles.size)
        points = [tuple(p) for p in centre + np.stack([np.cos(angles), np.sin(angles)], 1) * radii[:, None]]
        if rng.random() < 0.3:
            draw.polygon(points, outline=_colour_tuple(rng), width=int(rng.integers(1, 4)) * _SUPERSAMPLE)
        else:
            draw.polygon(points, fill=_colour_tuple(rng))


_CHARACTERS = string.ascii_letters + string.digits + "     .,:-"


def _draw_text(rng: np.random.Generator, draw: ImageDraw.ImageDraw, canvas: tuple[int, int]) -> None:
    """Lines of random characters in PIL's default font at random sizes and colours."""
    width, height = canvas
    for _ in range(int(rng.integers(1, 7))):
        font = ImageFont.load_default(size=float(rng.uniform(8, 40)) * _SUPERSAMPLE)
        line = "".join(rng.choice(list(_CHARACTERS), int(rng.integers(3, 30))))
        position = (float(rng.uniform(-0.2, 0.9) * width), float(rng.uniform(-0.05, 0.95) * height))
        draw.text(position, line, fill=_colour_tuple(rng), font=font)


def _draw_foliage(rng: np.random.Generator, draw: ImageDraw.ImageDraw, canvas: tuple[int, int]) -> None:
    """Many small pointed leaves and thin stems in a random hue family."""
    width, height = canvas
    hue = rng.uniform(0, 1, 3)
    scale = min(width, height)
    n_stems = int(rng.integers(10, 60))
    starts = rng.uniform(0, 1, (n_stems, 2)) * (width, height)
    ends = starts + rng.normal(0, 0.08, (n_stems, 2)) * scale
    stem_widths = rng.integers(1, 3, n_stems) * _SUPERSAMPLE
    for start, end, stem_width, colour in zip(starts, ends, stem_widths, _foliage_colours(rng, hue, n_stems)):
        draw.line([tuple(start), tuple(end)], fill=colour, width=int(stem_width))
    # Leaves grow in clumps (bushes, branches) rather than evenly spread.
    clumps = rng.uniform(0, 1, (int(rng.integers(1, 5)), 2)) * (width, height)
    spreads = rng.uniform(0.05, 0.3, len(clumps)) * scale
    n_leaves = int(rng.integers(100, 500))
    clump = rng.integers(len(clumps), size=n_leaves)
    centres = clumps[clump] + rng.normal(0, 1, (n_leaves, 2)) * spreads[clump, None]
    lengths = rng.uniform(0.015, 0.06, n_leaves) * scale
    breadths = lengths * rng.uniform(0.2, 0.5, n_leaves)
    angles = rng.uniform(0, 2 * np.pi, n_leaves)
    # Pointed leaf outline: a lens of two arcs between the tip points, then
    # scaled, rotated and moved for every leaf at once.
    t = np.linspace(0, 1, 9)
    outline = np.concatenate([np.stack([t, np.sin(np.pi * t)], 1), np.stack([t[::-1], -np.sin(np.pi * t[::-1])], 1)])
    outline = outline - (0.5, 0.0)
    local = outline[None] * np.stack([lengths, breadths / 2], 1)[:, None, :]
    cos, sin = np.cos(angles)[:, None], np.sin(angles)[:, None]
    leaves = np.stack([cos * local[..., 0] - sin * local[..., 1], sin * local[..., 0] + cos * local[..., 1]], -1) + centres[:, None, :]
    for leaf, colour in zip(leaves.tolist(), _foliage_colours(rng, hue, n_leaves)):
        draw.polygon([tuple(p) for p in leaf], fill=colour)


def _foliage_colours(rng: np.random.Generator, hue: np.ndarray, count: int) -> list[tuple[int, int, int]]:
    """``count`` shades of ``hue``: darker or lighter, with a little colour jitter."""
    colours = np.clip(hue * rng.uniform(0.3, 1.2, (count, 1)) + rng.normal(0, 0.06, (count, 3)), 0, 1)
    return [tuple(c) for c in (colours * 255).astype(int).tolist()]
