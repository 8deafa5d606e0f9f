"""World video: short clips of a world scene whose objects move at constant velocities.

    from fourm.data.world.video import render_clip
    clip = render_clip(index=7, seed=0, frames=8)   # video (T, H, W, 3) uint8, depth, semseg, caption, ...

Frame 0 is the scene of ``render_sample(index, seed)`` (same draws, same picture, same scene caption).
Each object is static or moves by a whole number of pixels per frame in one of eight compass
directions (so frame t is frame 0 with the object shifted by exactly t * velocity pixels) and stays
inside the image for the whole clip. Every frame goes through the image renderer, so per-frame depth
and semseg are aligned with rgb, and every frame keeps the image world's visibility invariants
(motions are redrawn until they hold; after ``MAX_MOTION_TRIES`` draws the clip is static).
Objects keep frame 0's depth and painter's order as they move (a clip is a rigid shift per object),
so in later frames depth follows the starting row, not the current one.
The caption is the first frame's caption followed by one sentence on how each object moves.
Deterministic in (seed, index): the scene uses ``default_rng([seed, index])``, the motion
``default_rng([seed, index, MOTION_STREAM])``.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from fourm.data.world.captions import _join, _sentence, compose_caption, reference
from fourm.data.world.config import WorldConfig
from fourm.data.world.generate import caption_order, overlapping_pairs, sample_valid_scene, scene_is_valid
from fourm.data.world.render import object_id_map, rasterize, render_scene
from fourm.data.world.scene import Scene
from fourm.errors import FourmError

MOTION_STREAM = 1 << 30  # third rng key of the motion draws (paraphrase k uses small keys 1..num)
MAX_FRAMES = 64
STATIC_PROBABILITY = 0.3  # chance that an object stays still
SPEEDS = {1: "slowly", 2: "quickly"}  # pixels per frame along each moving axis -> adverb
DIRECTIONS = ((1, 0), (-1, 0), (0, -1), (0, 1), (1, -1), (-1, -1), (1, 1), (-1, 1))  # (dx, dy), y down
MAX_MOTION_TRIES = 20  # motion draws per clip before falling back to a static clip
MAX_OBJECT_TRIES = 10  # (direction, speed) draws per object before it stays still


def direction_phrase(dx: int, dy: int) -> str:
    """Image-plane direction of a velocity (y down): 'to the right', 'up and to the left', ..."""
    vertical = "up" if dy < 0 else "down" if dy > 0 else ""
    horizontal = "to the right" if dx > 0 else "to the left" if dx < 0 else ""
    return " and ".join(p for p in (vertical, horizontal) if p)


def motion_phrase(velocity: tuple[int, int]) -> str:
    """'moves quickly to the right' / 'stays still' for a velocity in pixels per frame."""
    dx, dy = velocity
    if dx == 0 and dy == 0:
        return "stays still"
    return f"moves {SPEEDS[max(abs(dx), abs(dy))]} {direction_phrase(dx, dy)}"


def motion_caption(scene: Scene, velocities: np.ndarray, order: list[int]) -> str:
    """One sentence naming every object's motion, in ``order``: 'The red circle moves slowly up and
    the blue square stays still.'"""
    parts = [f"{reference(scene.objects[i])} {motion_phrase(tuple(velocities[i]))}" for i in order]
    return _sentence(_join(parts))


def shifted(scene: Scene, velocities: np.ndarray, t: int, size: int) -> Scene:
    """The scene at frame ``t``: every object moved by ``t * velocity`` pixels."""
    objects = tuple(
        dataclasses.replace(
            obj, center=(obj.center[0] + t * int(v[0]) / size, obj.center[1] + t * int(v[1]) / size)
        )
        for obj, v in zip(scene.objects, velocities)
    )
    return Scene(objects, scene.background)


def _object_velocity(
    rng: np.random.Generator, center: tuple[float, float], radius: float, frames: int, size: int
):
    """A (dx, dy) pixels/frame velocity keeping the whole object inside the image for ``frames`` frames."""
    if frames == 1 or rng.random() < STATIC_PROBABILITY:
        return (0, 0)
    for _ in range(MAX_OBJECT_TRIES):
        direction = DIRECTIONS[int(rng.integers(len(DIRECTIONS)))]
        speed = int(rng.choice(list(SPEEDS)))
        v = (direction[0] * speed, direction[1] * speed)
        ends = [c + (frames - 1) * vi / size for c, vi in zip(center, v)]
        if all(radius <= e <= 1 - radius for e in ends):
            return v
    return (0, 0)


def sample_velocities(rng: np.random.Generator, scene: Scene, frames: int, size: int) -> np.ndarray:
    """Velocities (n_objects, 2) int, pixels per frame, one per object (scene order)."""
    return np.array(
        [_object_velocity(rng, obj.center, obj.radius, frames, size) for obj in scene.objects], dtype=np.int64
    ).reshape(len(scene.objects), 2)


def frame_layers(scene: Scene, velocities: np.ndarray, frames: int, config: WorldConfig):
    """Object layers of frames 1..frames-1, or None as soon as one frame breaks the image world's
    visibility invariants."""
    out = []
    for t in range(1, frames):
        layers = rasterize(shifted(scene, velocities, t, config.size), config.size)
        if not scene_is_valid(layers, object_id_map(layers, config.size), config):
            return None
        out.append(layers)
    return out


@functools.cache
def _default_config() -> WorldConfig:
    return WorldConfig()


def check_clip_args(index: int, seed: int, frames: int) -> None:
    """FourmError (one line) unless index, seed >= 0 and 1 <= frames <= MAX_FRAMES are integers."""

    def is_int(v) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    if not (is_int(index) and index >= 0 and is_int(seed) and seed >= 0):
        raise FourmError(f"invalid clip index {index!r} / seed {seed!r} (expected integers >= 0)")
    if not (is_int(frames) and 1 <= frames <= MAX_FRAMES):
        raise FourmError(f"invalid number of frames {frames!r} (expected an integer in 1..{MAX_FRAMES})")


def render_clip(index: int, seed: int = 0, frames: int = 8, config: WorldConfig | None = None) -> dict:
    """Clip ``index`` of the world of ``seed``: id, video (T, H, W, 3) uint8, depth (T, H, W) float32,
    semseg (T, H, W) uint8, object_ids (T, H, W) uint8, caption, velocities (n, 2) int pixels/frame
    (scene order, x right / y down) and the first frame's scene."""
    check_clip_args(index, seed, frames)
    config = config or _default_config()
    size = config.size
    rng = np.random.default_rng([seed, index])
    scene, layers, _ = sample_valid_scene(rng, config)  # the draws of render_sample: frame 0 = image sample
    caption, order = compose_caption(scene, rng, overlapping_pairs(layers, size), caption_order(config, [seed, index]))
    motion_rng = np.random.default_rng([seed, index, MOTION_STREAM])
    velocities = np.zeros((len(scene.objects), 2), dtype=np.int64)
    later = None
    for _ in range(MAX_MOTION_TRIES):
        candidate = sample_velocities(motion_rng, scene, frames, size)
        later = frame_layers(scene, candidate, frames, config)
        if later is not None:
            velocities = candidate
            break
    if later is None:  # static fallback: every frame is frame 0
        later = [layers] * (frames - 1)
    renders = [
        render_scene(shifted(scene, velocities, t, size), size, frame)
        for t, frame in enumerate([layers, *later])
    ]
    return {
        "id": f"world-video-{seed}-{index:08d}",
        "video": np.stack([r.rgb for r in renders]),
        "depth": np.stack([r.depth for r in renders]),
        "semseg": np.stack([r.semseg for r in renders]),
        "object_ids": np.stack([r.object_ids for r in renders]),
        "caption": f"{caption} {motion_caption(scene, velocities, order)}",
        "velocities": velocities,
        "scene": scene,
    }
