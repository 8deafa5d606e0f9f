"""Scene descriptions: what is in a picture (objects, their looks and places) before any pixel exists.

Coordinates are fractions of the image side: x to the right, y down, both in [0, 1]. Depth is the
normalised distance from the camera used by the ``depth`` modality (larger = farther): objects have
base depths in ``OBJECT_DEPTH_RANGE``, the ground plane spans ``GROUND_DEPTH_RANGE`` (near at the
bottom of the image, far at the top), so every object is in front of the ground. As on a ground
plane, an object's depth follows from where it sits: the higher in the image, the farther
(:func:`row_depths`), so the picture shows it. ``OBJECT_DEPTH_RANGE`` and :func:`depth_gap` live in
:mod:`fourm.data.world.palette` (the config check uses them too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fourm.data.world.config import WorldConfig
from fourm.data.world.palette import (
    COLORS,
    GROUND_WAVES,
    GROUNDS,
    OBJECT_DEPTH_RANGE,
    SHAPE_GEOMETRY,
    SIZES,
    depth_gap,
)

GROUND_DEPTH_RANGE = (0.65, 1.0)  # ground depth at the bottom row .. at the top row
BEVEL_FRACTION = 0.4  # width of the bevelled rim as a fraction of the shape's inradius


@dataclass(frozen=True)
class SceneObject:
    """One object: a shape with a colour, a size, a place, a base depth and a relief (bevel) height."""

    shape: str  # palette.SHAPES
    color: str  # palette.COLORS name
    albedo: tuple[int, int, int]  # jittered named colour, 0-255
    size: str  # palette.SIZES name
    radius: float  # outer radius, fraction of the image side
    center: tuple[float, float]  # (x, y), fraction of the image side
    rotation: float  # radians
    depth: float  # depth of the outline; the surface rises towards the camera by up to ``relief``
    relief: float  # height of the bevelled top above the outline, in depth units

    @property
    def inradius(self) -> float:
        """Distance from the centre to the nearest point of the outline."""
        if self.shape == "circle":
            return self.radius
        points, inner, _ = SHAPE_GEOMETRY[self.shape]
        ax, bx, by = (
            self.radius,
            self.radius * inner * math.cos(math.pi / points),
            self.radius * inner * math.sin(math.pi / points),
        )
        return ax * by / math.hypot(bx - ax, by)

    @property
    def bevel_width(self) -> float:
        return BEVEL_FRACTION * self.inradius


@dataclass(frozen=True)
class Background:
    """A tilted ground plane: vertical colour gradient times a low-frequency brightness texture."""

    top_rgb: tuple[float, float, float]  # colour at the top row, 0-1
    bottom_rgb: tuple[float, float, float]  # colour at the bottom row, 0-1
    waves: tuple[tuple[float, float, float, float], ...]  # (freq_x, freq_y, phase, amplitude) each


@dataclass(frozen=True)
class Scene:
    """Objects in painter's order (farthest first) over a background."""

    objects: tuple[SceneObject, ...]
    background: Background


def ground_background(name: str, texture_amplitude: float) -> Background:
    """The named ground (``palette.GROUNDS``): a fixed vertical gradient with a fixed low-frequency
    texture, so its pixels depend on its name alone."""
    top, bottom = GROUNDS[name]
    waves = tuple((fx, fy, phase, texture_amplitude * amp) for fx, fy, phase, amp in GROUND_WAVES)
    return Background(top, bottom, waves)


def row_depths(rows: np.ndarray, gap: float) -> np.ndarray:
    """Base depths of objects whose centres sit at image rows ``rows`` (N,) in [0, 1] -> (N,).

    The object lowest in the image is the nearest; each one higher is ``gap`` farther than the one
    below it, plus a share of the slack the range leaves, in proportion to its height:
    ``lo + gap * rank + slack * (1 - row)`` with rank 0 for the lowest object (ties: the earlier
    index is lower). So depth order is row order, neighbours in depth are at least ``gap`` apart,
    every depth lies in OBJECT_DEPTH_RANGE, and a lone object's depth is a line in its row."""
    lo, hi = OBJECT_DEPTH_RANGE
    count = len(rows)
    slack = hi - lo - gap * (count - 1)
    assert slack >= 0, "config validation keeps the depth gaps feasible"
    rank = np.empty(count, dtype=np.int64)
    rank[np.lexsort((np.arange(count), -np.asarray(rows)))] = np.arange(count)
    return lo + gap * rank + slack * (1.0 - np.asarray(rows, dtype=np.float64))


def sample_scene(rng: np.random.Generator, config: WorldConfig, count: int | None = None) -> Scene:
    """A random scene of ``count`` objects (default: uniform in min..max_objects), unique (colour, shape)."""
    if count is None:
        count = int(rng.integers(config.min_objects, config.max_objects + 1))
    pairs = [(s, c) for s in config.shapes for c in config.colors]
    chosen = rng.permutation(len(pairs))[:count]
    size_names = list(SIZES)
    size_choice = rng.integers(len(size_names), size=count)
    u = rng.random((count, 4))  # radius within its size range, centre x, centre y, rotation
    jitter = rng.integers(-config.color_jitter, config.color_jitter + 1, size=(count, 3))
    radii = np.empty(count)
    for k in range(count):
        shape, size = pairs[chosen[k]][0], size_names[size_choice[k]]
        lo, hi = SIZES[size]
        radii[k] = (lo + (hi - lo) * u[k, 0]) * (SHAPE_GEOMETRY[shape][2] if shape in SHAPE_GEOMETRY else 1.0)
    centers = radii[:, None] + (1 - 2 * radii[:, None]) * u[:, 1:3]  # (count, 2) x, y
    depths = row_depths(centers[:, 1], depth_gap(config.relief))
    objects = []
    for k in np.argsort(-depths, kind="stable"):  # painter's order: farthest first
        shape, color = pairs[chosen[k]]
        albedo = tuple(min(max(c + int(j), 0), 255) for c, j in zip(COLORS[color], jitter[k]))
        objects.append(
            SceneObject(
                shape=shape,
                color=color,
                albedo=albedo,
                size=size_names[size_choice[k]],
                radius=float(radii[k]),
                center=(float(centers[k, 0]), float(centers[k, 1])),
                rotation=float(2 * math.pi * u[k, 3]) if shape != "circle" else 0.0,
                depth=float(depths[k]),
                relief=float(config.relief * radii[k]),
            )
        )
    ground = config.grounds[int(rng.integers(len(config.grounds)))] if len(config.grounds) > 1 else config.grounds[0]
    return Scene(tuple(objects), ground_background(ground, config.texture_amplitude))
