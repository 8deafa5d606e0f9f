"""The procedural multimodal world: random scenes of coloured shapes rendered into every modality.

    from fourm.data.world import render_sample
    sample = render_sample(index=7, seed=0)      # dict: rgb, depth, semseg, normals, edges, caption, ...

Modules: ``palette`` (shapes = semseg classes, colours, sizes), ``config`` (WorldConfig), ``scene``
(sampling scene descriptions), ``render`` (numpy rendering of the image modalities), ``captions``,
``annotations`` (boxes, palette, metadata), ``generate`` (index -> raw sample).
"""

from fourm.data.world.config import WorldConfig
from fourm.data.world.generate import paraphrases, render_sample, sample_index
from fourm.data.world.palette import CLASS_NAMES, COLORS, SHAPES, SIZES

__all__ = ["CLASS_NAMES", "COLORS", "SHAPES", "SIZES", "WorldConfig", "paraphrases", "render_sample", "sample_index"]
