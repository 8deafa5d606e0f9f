"""The one home of image kinds (rgb, normals, depth, semseg, edges): one table, :data:`IMAGE_KINDS`,
says for each kind its layout, value range, how it is resized, how a raw array becomes its canonical
value, and how it is shown. Every reader, resizer, codec and picture writer looks the kind up here
instead of testing its name::

    spec = IMAGE_KINDS["depth"]              # unknown kind -> FourmError naming the known ones
    spec.channels, spec.dtype, spec.value_range
    value = spec.from_array(user_array)      # canonical dtype / range, any size
    value = spec.fit(value, 64)              # centre-crop + resize, as import and generation both do
    png = spec.picture(value)                # uint8 picture (colour-mapped depth / semseg)

Resizing (:meth:`ImageKind.fit`): the centred square of side min(W, H) is resized to size x size in
one step (PIL ``box``), so modalities stored at different resolutions but the same aspect ratio stay
pixel-aligned. Filters: bicubic rgb, bilinear depth / normals (depth then clipped to [0, 1]), nearest
semseg (class ids are never interpolated: only ids of the input come out), and edges by coverage:
area-average (BOX) of the {0, 1} map, then an output pixel is an edge when at least
:data:`EDGE_COVERAGE` of its area was (thin lines survive downscaling, the map stays binary).

Colour maps (:func:`depth_colormap`, :func:`semseg_palette`) live here too, so a picture written for
a kind reads back through the same table (:meth:`ImageKind.from_picture`).

Imports nothing of fourm but :mod:`fourm.core.schema` and its errors.
"""

from __future__ import annotations

import colorsys
import functools
from dataclasses import dataclass

import numpy as np
from PIL import Image

from fourm.core.schema import IMAGE_LAYOUT
from fourm.errors import FourmError

EDGE_COVERAGE = 0.25  # an output edge pixel: at least this share of its area was an edge

# -- colour maps ---------------------------------------------------------------------------------

# A dark-to-bright perceptual colour map (black, purple, red, orange, pale yellow): monotone lightness.
_CMAP_POINTS = np.array(
    [
        (0.00, 0, 0, 4),
        (0.14, 40, 11, 84),
        (0.29, 101, 21, 110),
        (0.43, 159, 42, 99),
        (0.57, 212, 72, 66),
        (0.71, 245, 125, 21),
        (0.86, 250, 193, 39),
        (1.00, 252, 255, 164),
    ],
    dtype=np.float64,
)

# Hand-picked distinct colours for semseg classes 1..N (0 = background = black).
CLASS_COLORS = [
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
    (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180),
    (0, 0, 128), (128, 128, 128),
]  # fmt: skip


@functools.lru_cache(maxsize=1)
def depth_colormap() -> np.ndarray:
    """The depth colour map as a (256, 3) uint8 lookup table (index 0 = dark, 255 = bright)."""
    x = np.linspace(0.0, 1.0, 256)
    lut = np.stack([np.interp(x, _CMAP_POINTS[:, 0], _CMAP_POINTS[:, c]) for c in (1, 2, 3)], axis=1)
    return np.rint(lut).astype(np.uint8)


@functools.lru_cache(maxsize=1)
def semseg_palette() -> np.ndarray:
    """A (256, 3) uint8 palette with a distinct colour per class id (0 = black background)."""
    colors = [(0, 0, 0), *CLASS_COLORS]
    seen = set(colors)
    i = 0
    while len(colors) < 256:
        i += 1
        hue = (i * 0.618033988749895) % 1.0
        sat = (0.55, 0.8, 1.0)[i % 3]
        val = (0.95, 0.7, 0.5, 0.85)[i % 4]
        rgb = tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(hue, sat, val))
        if rgb not in seen:
            seen.add(rgb)
            colors.append(rgb)
    return np.array(colors, dtype=np.uint8)


def colorize_depth(depth: np.ndarray, near_bright: bool = True) -> np.ndarray:
    """float (H, W) depth in [0, 1] (larger = farther) -> uint8 (H, W, 3); near is bright by default."""
    d = np.nan_to_num(np.asarray(depth, dtype=np.float32), nan=1.0, posinf=1.0, neginf=0.0)
    if d.ndim != 2:
        raise FourmError(f"colorize_depth expects an (H, W) array, got shape {d.shape}")
    d = np.clip(d, 0.0, 1.0)
    idx = np.rint((1.0 - d if near_bright else d) * 255.0).astype(np.uint8)
    return depth_colormap()[idx]


def colorize_semseg(semseg: np.ndarray) -> np.ndarray:
    """uint8 (H, W) class ids -> uint8 (H, W, 3) with a fixed distinct colour per class (0 = black)."""
    s = np.asarray(semseg)
    if s.ndim != 2:
        raise FourmError(f"colorize_semseg expects an (H, W) array, got shape {s.shape}")
    return semseg_palette()[s.astype(np.int64) % 256]


def nearest_colour(rgb: np.ndarray, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index (H, W) of the closest colour of ``table`` (K, 3), squared distance to it) per pixel of
    ``rgb`` (H, W, 3)."""
    pixels = rgb.reshape(-1, 3).astype(np.int32)
    colors, inverse = np.unique(pixels, axis=0, return_inverse=True)
    dist = ((colors[:, None, :] - table[None, :, :].astype(np.int32)) ** 2).sum(-1)  # (U, K)
    inverse = inverse.reshape(-1)
    return dist.argmin(1)[inverse].reshape(rgb.shape[:2]), dist.min(1)[inverse].reshape(rgb.shape[:2])


# -- geometry ------------------------------------------------------------------------------------


def center_square(width: int, height: int) -> tuple[float, float, float, float]:
    """The centred square crop (left, top, right, bottom) of a width x height image, in pixels."""
    side = min(width, height)
    left, top = (width - side) / 2.0, (height - side) / 2.0
    return left, top, left + side, top + side


def resize_crop(array: np.ndarray, size: int, resample: Image.Resampling) -> np.ndarray:
    """Centre-crop to a square and resize to (size, size); keeps dtype (uint8 (H,W[,3]) or float32 (H,W))."""
    h, w = array.shape[:2]
    if (h, w) == (size, size):
        return array.copy()
    float_ok = array.dtype == np.float32 and array.ndim == 2
    if float_ok or (array.dtype == np.uint8 and array.ndim in (2, 3)):
        img = Image.fromarray(np.ascontiguousarray(array))  # mode F, L or RGB
    else:
        raise TypeError(f"resize_crop: unsupported array {array.dtype} {array.shape}")
    out = img.resize((size, size), resample, box=center_square(w, h))
    return np.asarray(out, dtype=array.dtype).copy()


# -- the table -----------------------------------------------------------------------------------

_COLORMAPS = ("none", "depth", "palette", "binary")


@dataclass(frozen=True)
class ImageKind:
    """One image kind. ``channels`` 3: (H, W, 3), 1: (H, W); ``dtype`` the canonical (schema) dtype;
    ``value_range`` its values; ``resample`` the PIL filter of :meth:`fit`; ``threshold``: a binary map
    is area-averaged then ``>= threshold``; ``labels``: class ids (never interpolated nor rescaled);
    ``colormap``: how :meth:`picture` shows it (none: as is, depth: :func:`colorize_depth`, palette:
    :func:`colorize_semseg`, binary: white on black)."""

    name: str
    channels: int
    dtype: str
    value_range: tuple[float, float]
    resample: Image.Resampling
    threshold: float | None = None
    labels: bool = False
    colormap: str = "none"

    @property
    def ndim(self) -> int:
        return 3 if self.channels > 1 else 2

    @property
    def shape_text(self) -> str:
        return f"(H, W, {self.channels})" if self.channels > 1 else "(H, W)"

    @property
    def binary(self) -> bool:
        return self.threshold is not None

    @property
    def continuous(self) -> bool:
        """Float values in [0, 1] (depth): 8-/16-bit integers are scaled, not kept."""
        return np.dtype(self.dtype).kind == "f"

    # ---- raw -> canonical

    def from_array(self, value: object) -> np.ndarray:
        """A numpy / torch / list value -> the kind's canonical array (any size).

        colour (3 channels): uint8, floats in [0, 1] scaled by 255; continuous: float32 in [0, 1]
        (uint8 / 255, other integers / 65535, NaN -> 1 = farthest); binary: uint8 {0, 1}, nonzero =
        1; labels: integer class ids >= 0 as int64 (the caller narrows after checking the range).
        FourmError for NaN or infinite values anywhere but a continuous kind.
        """
        arr = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise FourmError(f"{self.name}: expected a numeric image array, got dtype {arr.dtype}")
        if arr.ndim != self.ndim or (self.ndim == 3 and arr.shape[-1] != self.channels):
            raise FourmError(
                f"{self.name}: expected an array of shape {self.shape_text}, got {tuple(arr.shape)}"
            )
        if not self.continuous and np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
            raise FourmError(f"{self.name}: the image holds NaN or infinite values")  # only depth reads NaN (far)
        if self.labels:
            if np.issubdtype(arr.dtype, np.floating) and not np.equal(np.round(arr), arr).all():
                raise FourmError(f"{self.name}: expected integer class ids, got fractional values")
            if arr.size and int(arr.min()) < 0:
                raise FourmError(f"{self.name}: class ids must be >= 0, got {int(arr.min())}")
            return arr.astype(np.int64)
        if self.binary:
            return (arr > 0).astype(np.uint8)
        if self.continuous:
            if np.issubdtype(arr.dtype, np.integer):
                arr = arr / (255.0 if arr.dtype == np.uint8 else 65535.0)
            lo, hi = self.value_range
            return np.clip(np.nan_to_num(arr.astype(np.float32), nan=hi), lo, hi)
        if np.issubdtype(arr.dtype, np.floating) and arr.size and float(np.nanmax(arr)) <= 1.0:
            arr = arr * 255.0  # float images in [0, 1]
        return np.clip(np.nan_to_num(arr.astype(np.float64)), 0, 255).round().astype(np.uint8)

    def from_grey(self, arr: np.ndarray, mode: str) -> np.ndarray:
        """A single-channel image's pixels (PIL ``mode`` 1, L, P, I or F) -> the canonical value of a
        single-channel kind: continuous / 255 (L, P), / 65535 (I), as is (F, and 1: black 0, white 1);
        binary: nonzero = edge (as import reads edge files); labels: the values are the class ids (int64)."""
        if self.continuous:
            scale = 255.0 if mode in ("L", "P") else (1.0 if mode in ("F", "1") else 65535.0)
            return (arr.astype(np.float64) / scale).astype(np.float32)
        if self.binary:
            return (arr != 0).astype(np.uint8)
        return arr.astype(np.int64)

    def from_picture(self, rgb: np.ndarray, num_classes: int | None = None) -> np.ndarray:
        """A colour-mapped picture (as :meth:`picture` writes it) -> the value: depth through the
        inverse depth colour map, class ids through the palette (every colour must be a class colour)."""
        if self.colormap == "depth":  # near = bright
            index, _ = nearest_colour(rgb, depth_colormap())
            lo, hi = self.value_range
            return (hi - index / 255.0 * (hi - lo)).astype(np.float32)
        if self.colormap == "palette":
            index, dist = nearest_colour(rgb, semseg_palette()[: num_classes or 256])
            if (dist > 0).any():
                y, x = map(int, np.argwhere(dist > 0)[0])
                raise FourmError(
                    f"{self.name} image: pixel ({x}, {y}) has colour {tuple(int(c) for c in rgb[y, x])}, which is "
                    "not a class colour (give class ids as a greyscale PNG or a colour-mapped picture from fourm-generate)"
                )
            return index.astype(np.int64)
        raise FourmError(f"{self.name}: a colour picture cannot be read as a single-channel {self.name} map")

    # ---- geometry

    def fit(self, array: np.ndarray, size: int) -> np.ndarray:
        """Centre-crop + resize a canonical array to (size, size) with the kind's filter (module doc);
        the one resize of import (training data) and generation (conditions)."""
        if self.binary:
            if array.shape[:2] == (size, size):
                return (np.asarray(array) > 0).astype(np.uint8)
            coverage = resize_crop((np.asarray(array) > 0).astype(np.float32), size, self.resample)
            return (coverage >= self.threshold).astype(np.uint8)
        if self.labels:
            if array.size and int(array.max()) > 255:
                raise FourmError(f"{self.name}: class id {int(array.max())} out of range (expected < 256)")
            return resize_crop(np.asarray(array).astype(np.uint8), size, self.resample)
        out = resize_crop(np.asarray(array).astype(self.dtype), size, self.resample)
        return np.clip(out, *self.value_range).astype(self.dtype) if self.continuous else out

    # ---- visualisation

    def picture(self, value: np.ndarray) -> np.ndarray:
        """A value -> a PNG-ready uint8 picture: (H, W, 3), or (H, W) white on black for a binary map
        (an edge where the value > the middle of the range, 0.5)."""
        if self.colormap == "depth":
            return colorize_depth(value)
        if self.colormap == "palette":
            return colorize_semseg(value)
        if self.colormap == "binary":
            lo, hi = self.value_range
            return (np.asarray(value) > (lo + hi) / 2).astype(np.uint8) * 255
        return np.clip(value, 0, 255).astype(np.uint8)


class _Table(dict):
    """A dict of :class:`ImageKind` whose missing key raises one FourmError naming the known kinds."""

    def __missing__(self, key: object) -> ImageKind:
        raise FourmError(f"'{key}' is not an image kind (known: {', '.join(self)})")


def _kind(name: str, value_range: tuple[float, float], resample: Image.Resampling, **kw: object) -> ImageKind:
    channels, dtype, _ = IMAGE_LAYOUT[name]  # layout and dtype have one home: the raw-sample schema
    return ImageKind(name, channels or 1, dtype, value_range, resample, **kw)  # type: ignore[arg-type]


IMAGE_KINDS: dict[str, ImageKind] = _Table(
    (k.name, k)
    for k in (
        _kind("rgb", (0, 255), Image.Resampling.BICUBIC),
        _kind("depth", (0.0, 1.0), Image.Resampling.BILINEAR, colormap="depth"),
        _kind("semseg", (0, 255), Image.Resampling.NEAREST, labels=True, colormap="palette"),
        _kind("normals", (0, 255), Image.Resampling.BILINEAR),
        _kind("edges", (0, 1), Image.Resampling.BOX, threshold=EDGE_COVERAGE, colormap="binary"),
    )
)
assert set(IMAGE_KINDS) == set(IMAGE_LAYOUT) and all(k.colormap in _COLORMAPS for k in IMAGE_KINDS.values())


def image_kind(kind: str) -> ImageKind:
    """``IMAGE_KINDS[kind]``: FourmError (one line, naming the known kinds) for an unknown kind."""
    return IMAGE_KINDS[kind]
