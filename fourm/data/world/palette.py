"""The world's vocabulary: shape types (= semseg classes), named colours and named sizes, and the depth
range objects are placed in (shared by the config check and the scene sampler)."""

from __future__ import annotations

import math

# Semantic classes: index = semseg id, 0 = background, 1..S = shape type.
CLASS_NAMES: tuple[str, ...] = ("background", "circle", "square", "triangle", "star", "hexagon")
SHAPES: tuple[str, ...] = CLASS_NAMES[1:]
SHAPE_CLASS: dict[str, int] = {name: i for i, name in enumerate(CLASS_NAMES)}

# Star-polygon description of each shape: (points n, inner radius / outer radius, outer-radius scale).
# A regular n-gon is a "star" whose inner radius is its apothem; the circle is handled analytically.
# The scale evens out the areas of shapes that share one nominal radius.
SHAPE_GEOMETRY: dict[str, tuple[int, float, float]] = {
    "square": (4, math.cos(math.pi / 4), 0.95),
    "triangle": (3, math.cos(math.pi / 3), 1.2),
    "star": (5, 0.5, 1.15),
    "hexagon": (6, math.cos(math.pi / 6), 0.95),
}

# Named, saturated object colours (the per-object jitter keeps the name obvious).
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (215, 38, 38),
    "green": (40, 165, 60),
    "blue": (40, 80, 215),
    "yellow": (235, 205, 35),
    "purple": (135, 55, 185),
    "orange": (240, 135, 25),
    "cyan": (35, 195, 205),
    "pink": (240, 120, 180),
}

# Named sizes -> range of the nominal (outer) radius, as a fraction of the image side.
SIZES: dict[str, tuple[float, float]] = {
    "small": (0.08, 0.1),
    "large": (0.14, 0.175),
}

# Named grounds: (colour at the top row, colour at the bottom row, 0-1 rgb). A ground is a function of
# its name only (fixed gradient and texture), so whatever shows the ground is predictable.
GROUNDS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "stone": ((0.72, 0.71, 0.68), (0.45, 0.44, 0.42)),
    "sand": ((0.80, 0.74, 0.60), (0.55, 0.48, 0.36)),
    "moss": ((0.60, 0.68, 0.58), (0.36, 0.44, 0.35)),
    "slate": ((0.62, 0.67, 0.74), (0.38, 0.42, 0.50)),
}
# The ground's texture: (cycles along x, cycles along y, phase, relative amplitude); low frequency.
GROUND_WAVES: tuple[tuple[float, float, float, float], ...] = ((1.3, 0.7, 0.4, 1.0), (-0.6, 1.9, 2.1, 0.6))

# Depth: objects have base (outline) depths in OBJECT_DEPTH_RANGE, at least depth_gap(relief) apart.
OBJECT_DEPTH_RANGE = (0.1, 0.6)  # base (outline) depth of objects
DEPTH_GAP_MARGIN = 0.05  # extra base-depth gap between objects beyond the largest relief


def depth_gap(relief: float) -> float:
    """Minimum base-depth gap between objects: the largest possible relief plus a margin, so the
    nearer object's surface is nearer everywhere (painter's order == z-order)."""
    largest_radius = max(hi for _, hi in SIZES.values()) * max(g[2] for g in SHAPE_GEOMETRY.values())
    return relief * largest_radius + DEPTH_GAP_MARGIN
