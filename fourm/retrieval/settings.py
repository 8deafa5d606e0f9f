"""How to embed for retrieval (a typed config), and building a model pipeline and an embedder from it.

    settings = RetrievalSettings(method="pooled")                 # defaults: centred, l2-normalised
    pipe = load_pipeline("models/world-default")                  # or model="runs/finetune_ce/model"
    embedder = make_embedder(pipe, settings)
    fit_reference_centers(embedder, pipe, "data/world_model", ["caption", "rgb"], settings)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from fourm.errors import FourmError
from fourm.retrieval.embed import METHODS, PooledEmbedder, PredictedEmbedder, vector_modality
from fourm.utils.config import Config


@dataclass
class RetrievalSettings(Config):
    """Embedding method and its options.

    pooled: ``center`` / ``normalize`` (see :mod:`fourm.retrieval.embed`); centres are the mean
    pooled vector of each modality over ``center_samples`` items of split ``center_split`` (default:
    ``train`` when the dataset has it, else the evaluated split; no pairing is used).
    predicted: ``vector_modality`` (default: the model's only one), ``decoding`` and ``steps``.
    """

    method: Literal["pooled", "predicted"] = "pooled"
    center: bool = True
    normalize: bool = True
    center_split: str | None = None
    center_samples: int = 256
    vector_modality: str | None = None
    decoding: Literal["expected", "greedy", "maskgit"] = "expected"
    steps: int | None = None
    temperature: float = 0.0
    batch_size: int = 64
    autocast: bool = True

    def validate(self) -> None:
        if self.method not in METHODS:
            raise FourmError(f"unknown method '{self.method}' (expected {' or '.join(METHODS)})")
        if self.batch_size < 1:
            raise FourmError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.center_samples < 1:
            raise FourmError(f"center_samples must be >= 1, got {self.center_samples}")


def load_pipeline(bundle: str | Path | None = None, model: str | Path | None = None, device: str | None = "cpu"):
    """The bundle's pipeline; with ``model`` another FourM directory (e.g. a fine-tuned model) using
    the bundle's tokenizers (and the repository's modality configs for modalities the bundle lacks)."""
    from fourm.generation.bundle import load_codecs, load_registry, resolve_bundle
    from fourm.generation.pipeline import FourMPipeline
    from fourm.model.fourm import FourM

    if model is None:
        return FourMPipeline.from_pretrained(bundle, device=device)
    root = resolve_bundle(bundle)
    net = FourM.from_pretrained(model, device=device)
    registry = load_registry(root)
    missing = [m for m in net.config.modalities if m not in registry]
    if missing:
        from fourm.modalities import default_registry

        extra = default_registry()
        for m in missing:
            if m not in extra:
                raise FourmError(f"the model's modality '{m}' has no config (add configs/modalities/{m}.yaml)")
            registry.add(extra[m])
    codecs = load_codecs(registry, net.config, root, device or "cpu")
    return FourMPipeline(net, codecs, registry.subset(net.config.modalities))


def make_embedder(pipeline: Any, settings: RetrievalSettings, eos: int | None = None, pad: int | None = None,
                  centers: dict[str, torch.Tensor] | None = None):
    """A :class:`PooledEmbedder` or :class:`PredictedEmbedder` for ``pipeline``'s model."""
    from fourm.retrieval.data import pipeline_specials

    settings.validate()
    if eos is None and pad is None:
        eos, pad = pipeline_specials(pipeline)
    common = {"batch_size": settings.batch_size, "autocast": settings.autocast, "eos": eos, "pad": pad}
    if settings.method == "pooled":
        return PooledEmbedder(pipeline.model, settings.center, settings.normalize, centers, **common)
    name = vector_modality(pipeline.model, settings.vector_modality)
    return PredictedEmbedder(
        pipeline.model, pipeline.codecs[name].tokenizer, name, settings.decoding, settings.steps,
        settings.temperature, **common,
    )  # fmt: skip


def center_split(data_path: str | Path, split: str, settings: RetrievalSettings) -> str:
    """The split the centres come from: ``settings.center_split``, else train if present, else ``split``."""
    if settings.center_split is not None:
        return settings.center_split
    from fourm.retrieval.data import RetrievalData

    try:
        RetrievalData(data_path, "train", num=1)
    except FourmError:
        return split
    return "train"


def fit_reference_centers(
    embedder: Any,
    pipeline: Any,
    data_path: str | Path,
    modalities: Sequence[str],
    settings: RetrievalSettings,
    split: str = "val",
    progress: bool = False,
) -> dict[str, torch.Tensor]:
    """Fit a pooled embedder's centres of each of ``modalities`` on reference items (single-modality
    items of ``center_samples`` samples of the centre split); no-op for other embedders."""
    from fourm.retrieval.data import RetrievalData

    if not isinstance(embedder, PooledEmbedder) or not embedder.center:
        return {}
    ref = RetrievalData(data_path, center_split(data_path, split, settings), num=settings.center_samples)
    for m in modalities:
        items, _ = ref.items([m], pipeline, batch_size=settings.batch_size, progress=progress)
        if not items:
            raise FourmError(f"no sample of {ref.path} (split '{ref.split}') holds '{m}': cannot fit its centre")
        embedder.fit_centers(items, progress=progress)
    return dict(embedder.centers)
