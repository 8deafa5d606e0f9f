"""Sample ``index`` of the world -> one raw sample with every modality (``fourm.core.schema`` format).

Deterministic in (seed, index): all randomness comes from ``np.random.default_rng([seed, index])``.
Scenes are resampled until every object keeps ``min_visible_fraction`` of its area visible and
the centre pixel of its visible box shows it (after ``max_tries`` failures one object is dropped).
"""

from __future__ import annotations

import functools

import numpy as np

from fourm.data.world.annotations import (
    bboxes,
    box_center_pixel,
    color_palette,
    left_to_right,
    scene_metadata,
    visible_boxes,
)
from fourm.data.world.captions import compose_caption, make_caption
from fourm.data.world.config import WorldConfig
from fourm.data.world.render import ObjectLayer, object_id_map, rasterize, render_scene
from fourm.data.world.scene import Scene, sample_scene
from fourm.errors import FourmError

MIN_OBJECT_PIXELS = 6  # an object smaller than this (at the configured size) is not recognisable


def scene_is_valid(layers: list[ObjectLayer], object_ids: np.ndarray, config: WorldConfig) -> bool:
    """The invariants: each object visible at its box centre, with enough of its area visible."""
    visible = np.bincount(object_ids.ravel(), minlength=len(layers) + 1)[1:]
    for k, (layer, box) in enumerate(zip(layers, visible_boxes(layers, object_ids))):
        area = layer.area
        if box is None or area < MIN_OBJECT_PIXELS or visible[k] < config.min_visible_fraction * area:
            return False
        if object_ids[box_center_pixel(box)] != k + 1:
            return False
    return True


def sample_valid_scene(
    rng: np.random.Generator, config: WorldConfig
) -> tuple[Scene, list[ObjectLayer], np.ndarray]:
    """Resample until the invariants hold: (scene, object layers, object-id map)."""
    count = int(rng.integers(config.min_objects, config.max_objects + 1))
    while True:
        for _ in range(config.max_tries):
            scene = sample_scene(rng, config, count)
            layers = rasterize(scene, config.size)
            object_ids = object_id_map(layers, config.size)
            if scene_is_valid(layers, object_ids, config):
                return scene, layers, object_ids
        if count == 1:  # cannot happen for validated configs: a lone object is fully visible
            raise RuntimeError(f"could not sample a valid scene with config {config}")
        count -= 1


def overlapping_pairs(layers: list[ObjectLayer], size: int) -> frozenset[tuple[int, int]]:
    """Index pairs (i, j), i < j, of objects whose footprints share at least one pixel."""
    footprints = np.zeros((len(layers), size, size), dtype=bool)
    for k, layer in enumerate(layers):
        footprints[k, layer.rows, layer.cols] = layer.inside
    n = len(layers)
    return frozenset(
        (i, j) for i in range(n) for j in range(i + 1, n) if (footprints[i] & footprints[j]).any()
    )


ORDER_STREAM = 1 << 29  # last rng key of a "mixed" caption order's draw (paraphrase k uses small keys)


def caption_order(config: WorldConfig, key: list[int]) -> str:
    """The object order of the caption whose draws are keyed by ``key`` ([seed, index] or [seed,
    index, k]): the config's, a "mixed" one decided by a separate stream (half left to right)."""
    if config.caption_order != "mixed":
        return config.caption_order
    return "left_to_right" if np.random.default_rng([*key, ORDER_STREAM]).random() < 0.5 else "random"


@functools.cache
def _default_config() -> WorldConfig:
    return WorldConfig()


def render_sample(index: int, seed: int = 0, config: WorldConfig | None = None) -> dict:
    """Raw sample ``index`` of the world of ``seed``: id, rgb, depth, semseg, normals, edges, caption,
    bboxes, metadata and color_palette, all aligned."""
    from fourm.data.derive import image_metadata

    config = config or _default_config()
    if not (
        isinstance(index, (int, np.integer))
        and index >= 0
        and isinstance(seed, (int, np.integer))
        and seed >= 0
    ):
        raise FourmError(f"invalid sample index {index!r} / seed {seed!r} (expected integers >= 0)")
    rng = np.random.default_rng([seed, index])
    scene, layers, object_ids = sample_valid_scene(rng, config)
    rendering = render_scene(scene, config.size, layers)
    boxes = visible_boxes(layers, object_ids)
    metadata = scene_metadata(scene, rendering, [layer.area for layer in layers])
    metadata.update(image_metadata(rendering.rgb))
    caption, order = compose_caption(
        scene, rng, overlapping_pairs(layers, config.size), caption_order(config, [seed, index])
    )
    boxes_value = bboxes(scene, boxes, config.size, order)  # labels and order as the caption names them
    if config.box_order == "left_to_right":
        boxes_value = left_to_right(boxes_value)
    return {
        "id": f"world-{seed}-{index:08d}",
        "rgb": rendering.rgb,
        "depth": rendering.depth,
        "semseg": rendering.semseg,
        "normals": rendering.normals,
        "edges": rendering.edges,
        "caption": caption,
        "bboxes": boxes_value,
        "metadata": metadata,
        "color_palette": color_palette(rendering, len(scene.objects)),
    }


def sample_index(sample_id: str) -> tuple[int, int]:
    """``'world-<seed>-<index>'`` -> (seed, index); FourmError for other ids."""
    parts = str(sample_id).split("-")
    if len(parts) != 3 or parts[0] != "world" or not parts[1].isdigit() or not parts[2].isdigit():
        raise FourmError(f"'{sample_id}' is not a world sample id (expected world-<seed>-<index>)")
    return int(parts[1]), int(parts[2])


def paraphrases(index: int, seed: int = 0, num: int = 1, config: WorldConfig | None = None) -> list[str]:
    """``num`` more captions of sample ``index``'s scene: the same objects, described with other
    random templates, object orders and (true) relations; phrasing ``k`` (1..num) is deterministic
    in (seed, index, k). ``config`` must be the one the sample was rendered with."""
    config = config or _default_config()
    if num < 1:
        raise FourmError(f"paraphrases needs num >= 1, got {num}")
    rng = np.random.default_rng([seed, index])
    scene, layers, _ = sample_valid_scene(rng, config)  # the same draws as render_sample
    overlapping = overlapping_pairs(layers, config.size)
    return [
        make_caption(scene, np.random.default_rng([seed, index, k]), overlapping, caption_order(config, [seed, index, k]))
        for k in range(1, num + 1)
    ]
