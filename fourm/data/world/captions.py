"""Captions: every object's size, colour and shape, chained by spatial relations, in several phrasings.

Objects are unique by (colour, shape) within a scene, so "the red circle" is unambiguous. Relations
between consecutive objects of a random order: left of / right of / above / below (centre offsets
larger than RELATION_MIN_OFFSET) and in front of / behind (base depths; preferred when the two
overlap in the image).
"""

from __future__ import annotations

import numpy as np

from fourm.data.world.scene import Scene, SceneObject

RELATION_MIN_OFFSET = 0.1  # fraction of the image side
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six")


def describe(obj: SceneObject) -> str:
    """'small red circle'."""
    return f"{obj.size} {obj.color} {obj.shape}"


def reference(obj: SceneObject) -> str:
    """'the red circle' (unique within a scene)."""
    return f"the {obj.color} {obj.shape}"


def relation(a: SceneObject, b: SceneObject, overlapping: bool, rng: np.random.Generator) -> str:
    """A true spatial relation of ``a`` relative to ``b``, e.g. 'to the left of'."""
    behind = "behind" if a.depth > b.depth else "in front of"
    if overlapping and rng.random() < 0.7:
        return behind
    dx, dy = a.center[0] - b.center[0], a.center[1] - b.center[1]
    options = [behind]
    if abs(dx) > RELATION_MIN_OFFSET:
        options.append("to the left of" if dx < 0 else "to the right of")
    if abs(dy) > RELATION_MIN_OFFSET:
        options.append("above" if dy < 0 else "below")
    return options[int(rng.integers(len(options)))]


def position_phrase(obj: SceneObject) -> str:
    """Where a lone object sits: 'in the top left corner of the image', 'in the middle of the image'."""
    x, y = obj.center
    v = "top" if y < 0.4 else "bottom" if y > 0.6 else ""
    h = "left" if x < 0.4 else "right" if x > 0.6 else ""
    if v and h:
        where = f"in the {v} {h} corner"
    elif v:
        where = f"at the {v}"
    elif h:
        where = f"on the {h}"
    else:
        where = "in the middle"
    return f"{where} of the image"


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:] + "."


def make_caption(
    scene: Scene,
    rng: np.random.Generator,
    overlapping: frozenset[tuple[int, int]] = frozenset(),
    object_order: str = "random",
) -> str:
    """A caption naming every object (size, colour, shape) and relations; one of several templates.

    ``overlapping`` holds index pairs (i, j), i < j, of objects whose footprints overlap;
    ``object_order`` is "random" or "left_to_right" (WorldConfig.caption_order)."""
    return compose_caption(scene, rng, overlapping, object_order)[0]


def left_to_right_order(scene: Scene) -> list[int]:
    """Object indices sorted by centre x, then centre y (top first), then index."""
    return sorted(range(len(scene.objects)), key=lambda i: (*scene.objects[i].center, i))


def compose_caption(
    scene: Scene,
    rng: np.random.Generator,
    overlapping: frozenset[tuple[int, int]] = frozenset(),
    object_order: str = "random",
) -> tuple[str, list[int]]:
    """(caption, the order in which it first names the objects: indices into ``scene.objects``).

    Both orders draw the same random numbers, so a scene's templates and relations do not change
    with ``object_order``; only the order in which objects are named does."""
    objects = scene.objects
    order = [int(i) for i in rng.permutation(len(objects))]
    if object_order == "left_to_right":
        order = left_to_right_order(scene)
    elif object_order != "random":
        raise ValueError(f"object_order must be 'random' or 'left_to_right', got {object_order!r}")
    listed = [f"a {describe(objects[i])}" for i in order]
    n = len(objects)
    if n == 1:
        desc, where = listed[0], position_phrase(objects[0])
        templates = (
            f"{desc} {where}",
            f"there is a single {desc[2:]} {where}",
            f"one {desc[2:]}, {where}",
            f"a picture of {desc} {where}",
        )
        return _sentence(templates[int(rng.integers(len(templates)))]), order
    pairs = list(zip(order[:-1], order[1:]))
    rels = [relation(objects[i], objects[j], (min(i, j), max(i, j)) in overlapping, rng) for i, j in pairs]
    clauses = [f"{reference(objects[i])} is {r} {reference(objects[j])}" for (i, j), r in zip(pairs, rels)]
    chain = listed[0] + "".join(
        f"{',' if k else ''} {'which is ' if k else 'is '}{r} {listed[k + 1]}" for k, r in enumerate(rels)
    )
    templates = (
        f"{_sentence(_join(listed))} {_sentence(_join(clauses))}",
        f"There are {NUMBER_WORDS[n]} shapes: {_join(listed)}. {_sentence(_join(clauses))}",
        _sentence(f"a picture of {_join(listed)}, where {_join(clauses)}"),
        _sentence(chain),
        f"{_sentence(_join(clauses))} In total {NUMBER_WORDS[n]} objects: {_join(listed)}.",
    )
    # every template but "In total ..." names the objects in ``order`` first; that one names them
    # first in its relation clauses, which follow ``order`` as well
    return templates[int(rng.integers(len(templates)))], order
