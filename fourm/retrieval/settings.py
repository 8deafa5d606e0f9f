"""How to embed for retrieval (a typed config), and building a model pipeline and an embedder from it.

    settings = RetrievalSettings(method="pooled")                 # default: CCA-aligned (align=False: centred)
    pipe = load_pipeline("models/world-default")                  # model=: other FourM weights, same tokenizers
    embedder = make_embedder(pipe, settings)
    fit_reference(embedder, pipe, "data/world_model", ["caption", "rgb"], settings)   # centres / alignment
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from fourm.errors import FourmError
from fourm.generation.autoregressive import AutoregressiveSampler
from fourm.generation.bundle import load_codecs
from fourm.generation.bundle_layout import MODEL_DIR, load_registry, resolve_bundle
from fourm.generation.pipeline import FourMPipeline
from fourm.modalities import default_registry
from fourm.model.fourm import CONFIG_NAME, FourM
from fourm.retrieval.align import LinearAlignment
from fourm.retrieval.data import RetrievalData, pipeline_specials
from fourm.retrieval.embed import METHODS, PooledEmbedder, PredictedEmbedder, vector_modality
from fourm.utils.config import Config


@dataclass
class RetrievalSettings(Config):
    """Embedding method and its options.

    pooled: ``align`` (the default) maps each modality's pooled vector into a space shared by the
    modalities with a generalized CCA (:mod:`fourm.retrieval.align`) fitted on ``align_samples``
    paired samples of the reference split, keeping ``align_dim`` dimensions weighted by canonical
    correlation ** ``align_power``; without it, ``center`` / ``normalize`` (see
    :mod:`fourm.retrieval.embed`), the centres being each modality's mean pooled vector over
    ``center_samples`` items (no pairing used). The reference split is ``center_split`` (default:
    ``train`` when the dataset has it, else the evaluated split).
    predicted: ``vector_modality`` (default: the model's only one), ``decoding`` and ``steps``; with
    ``center_predictions`` each prediction is centred by the mean prediction from ``center_samples``
    reference items of the same modality set, then l2-normalised (off by default: on the world data
    it did not change recall, see docs/experiments/retrieval.md); ``via``: modalities the model generates first where an
    item lacks them (greedy; images by ``via_steps`` MaskGIT steps), the vector being predicted from
    the completed item (:mod:`fourm.retrieval.chain`).
    """

    method: Literal["pooled", "predicted"] = "pooled"
    center: bool = True
    normalize: bool = True
    center_split: str | None = None
    center_samples: int = 256
    center_predictions: bool = False
    align: bool = True
    align_samples: int = 4000
    align_dim: int = 32
    align_ridge: float = 1e-3
    align_power: float = 1.0
    vector_modality: str | None = None
    decoding: Literal["expected", "greedy", "maskgit"] = "expected"
    steps: int | None = None
    temperature: float = 0.0
    via: list[str] = field(default_factory=list)
    via_steps: int = 8
    batch_size: int = 64
    autocast: bool = True

    def validate(self) -> None:
        if self.method not in METHODS:
            raise FourmError(f"unknown method '{self.method}' (expected {' or '.join(METHODS)})")
        if self.batch_size < 1:
            raise FourmError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.center_samples < 1:
            raise FourmError(f"center_samples must be >= 1, got {self.center_samples}")
        if self.align_dim < 1:
            raise FourmError(f"align_dim must be >= 1, got {self.align_dim}")
        if self.align_samples < 2 * self.align_dim:
            raise FourmError(f"align_samples must be >= 2 * align_dim = {2 * self.align_dim}, got {self.align_samples}")
        if not self.align_ridge >= 0:
            raise FourmError(f"align_ridge must be >= 0, got {self.align_ridge}")
        if not self.align_power >= 0:
            raise FourmError(f"align_power must be >= 0, got {self.align_power}")
        if self.via and self.method != "predicted":
            raise FourmError(f"via (generate modalities first) is for the predicted method, not '{self.method}'")
        if self.via_steps < 1:
            raise FourmError(f"via_steps must be >= 1, got {self.via_steps}")


def load_pipeline(bundle: str | Path | None = None, model: str | Path | None = None, device: str | None = "cpu"):
    """The bundle's pipeline; with ``model`` another FourM directory (e.g. a fine-tuned model) using
    the bundle's tokenizers (and the repository's modality configs for modalities the bundle lacks)."""
    if model is None:
        return FourMPipeline.from_pretrained(bundle, device=device)
    root = resolve_bundle(bundle)
    net = FourM.from_pretrained(model, device=device)
    registry = load_registry(root)
    missing = [m for m in net.config.modalities if m not in registry]
    if missing:
        extra = default_registry()
        for m in missing:
            if m not in extra:
                raise FourmError(f"the model's modality '{m}' has no config (add configs/modalities/{m}.yaml)")
            registry.add(extra[m])
    codecs = load_codecs(registry, net.config, root, device or "cpu")
    return FourMPipeline(net, codecs, registry.subset(net.config.modalities))


def is_model_dir(path: str | Path) -> bool:
    """A directory of one FourM (``FourM.save_pretrained``, or a released ml-4m model): its
    ``config.json`` at the top, not a bundle's ``model/`` folder."""
    path = Path(path)
    return (path / CONFIG_NAME).is_file() and not (path / MODEL_DIR).is_dir()


@dataclass(frozen=True)
class ModelChoice:
    """The bundle and the optional other FourM weights a command runs, from its ``--model`` (a bundle,
    as everywhere), ``--bundle`` (its older spelling) and ``--weights`` options."""

    bundle: str | None  # None: the shipped default bundle
    weights: str | None  # another FourM directory used with the bundle's tokenizers
    bundle_flag: str = "--model"  # the options the user gave them with (for messages)
    weights_flag: str = "--weights"
    warning: str | None = None  # one line, for the deprecated spelling


def choose_model(model: str | None = None, bundle: str | None = None, weights: str | None = None) -> ModelChoice:
    """Read ``--model`` / ``--bundle`` / ``--weights``: ``--model`` names a bundle. The old meaning of
    ``--model`` (another FourM directory, used with ``--bundle``'s tokenizers) still works when the
    directory is a FourM model directory, with a one-line deprecation warning; FourmError when the
    options name two bundles or two models."""
    if model is not None and is_model_dir(model):
        if weights is not None:
            raise FourmError(f"--model {model} is a FourM model directory and --weights {weights} is another: give one")
        warning = (
            f"warning: --model {model} is a FourM model directory, not a bundle: using it with the bundle's tokenizers "
            f"(deprecated; pass --weights {model}, and the bundle as --model)"
        )
        return ModelChoice(bundle, model, "--bundle", "--model", warning)
    if model is not None and bundle is not None and Path(model) != Path(bundle):
        raise FourmError(f"--model {model} and --bundle {bundle} name two bundles (--bundle is the older spelling of --model)")
    flag = "--bundle" if model is None and bundle is not None else "--model"
    return ModelChoice(model if model is not None else bundle, weights, flag, "--weights")


def make_embedder(pipeline: Any, settings: RetrievalSettings, eos: int | None = None, pad: int | None = None,
                  centers: dict[str, torch.Tensor] | None = None, alignment: LinearAlignment | None = None):
    """A :class:`PooledEmbedder` (with stored ``centers`` / ``alignment``, if any) or a
    :class:`PredictedEmbedder` for ``pipeline``'s model."""
    settings.validate()
    if eos is None and pad is None:
        eos, pad = pipeline_specials(pipeline)
    common = {"batch_size": settings.batch_size, "autocast": settings.autocast, "eos": eos, "pad": pad}
    if settings.method == "pooled":
        return PooledEmbedder(pipeline.model, settings.center, settings.normalize, centers, alignment, **common)
    name = vector_modality(pipeline.model, settings.vector_modality)
    sequence_sampler = None
    if settings.via:
        plan = pipeline.plan(list(dict.fromkeys(settings.via)))  # checks the names; the text tokenizer's ids
        sequence_sampler = AutoregressiveSampler(0.0, 0, 1.0, plan.sos, plan.eos, plan.pad, plan.banned, plan.min_length)
    return PredictedEmbedder(
        pipeline.model, pipeline.codecs[name].tokenizer, name, settings.decoding, settings.steps,
        settings.temperature, center=settings.center_predictions, centers=centers, via=settings.via,
        sequence_sampler=sequence_sampler, via_steps=settings.via_steps, **common,
    )  # fmt: skip


def center_split(data_path: str | Path, split: str, settings: RetrievalSettings) -> str:
    """The split the centres come from: ``settings.center_split``, else train if present, else ``split``."""
    if settings.center_split is not None:
        return settings.center_split
    try:
        RetrievalData(data_path, "train", num=1)
    except FourmError:
        return split
    return "train"


def fit_reference(
    embedder: Any,
    pipeline: Any,
    data_path: str | Path,
    modalities: Sequence[str],
    settings: RetrievalSettings,
    split: str = "val",
    progress: bool = False,
    item_sets: Sequence[Sequence[str]] | None = None,
) -> dict[str, Any] | None:
    """Fit an embedder's reference statistics for ``modalities`` on the reference split. Pooled: the
    alignment (``settings.align``: paired samples holding all of them), else the centres
    (``settings.center``: single-modality items). Predicted (``settings.center_predictions``): the centre of each
    modality set in ``item_sets`` (default: each of ``modalities`` alone).

    -> what was fitted on (None: nothing): ``{"fitted": "alignment" | "centres", "data": path,
    "split": reference split, "rows": the rows used, "pairs": paired samples (alignment), "requested":
    align_samples}``."""
    names = list(dict.fromkeys(modalities))
    ref_split = center_split(data_path, split, settings)
    used: set[int] = set()

    def centres_info() -> dict[str, Any]:
        return {"fitted": "centres", "data": str(data_path), "split": ref_split, "rows": sorted(used)}

    if isinstance(embedder, PredictedEmbedder):
        if embedder.center:
            ref = RetrievalData(data_path, ref_split, num=settings.center_samples)
            for subset in item_sets if item_sets is not None else [[m] for m in names]:
                items, rows = ref.items(list(subset), pipeline, batch_size=settings.batch_size, progress=progress)
                used.update(rows)
                if not items:
                    raise FourmError(
                        f"no sample of {ref.path} (split '{ref.split}') holds {' and '.join(subset)}: cannot fit its centre"
                    )
                embedder.fit_centers(items, progress=progress)
            return centres_info()
        return None
    if not isinstance(embedder, PooledEmbedder):
        return None
    if settings.align:
        if len(names) < 2:
            raise FourmError(
                f"an aligned pooled embedding needs at least two modalities to align, got {', '.join(names)} "
                "(name the query modalities too, or turn the alignment off: --no-align)"
            )
        ref = RetrievalData(data_path, ref_split, num=settings.align_samples)
        items, rows = ref.items(names, pipeline, batch_size=settings.batch_size, progress=progress)
        if len(items) < 2 * settings.align_dim:
            raise FourmError(
                f"{ref.path} (split '{ref.split}') has {len(items)} samples holding {', '.join(names)}: an "
                f"alignment of dim {settings.align_dim} needs at least {2 * settings.align_dim}"
            )
        embedder.fit_alignment(items, names, settings.align_dim, settings.align_ridge, settings.align_power, progress)
        return {
            "fitted": "alignment", "data": str(data_path), "split": ref_split, "rows": list(rows),
            "pairs": len(items), "requested": settings.align_samples,
        }  # fmt: skip
    if not embedder.center:
        return None
    ref = RetrievalData(data_path, ref_split, num=settings.center_samples)
    for m in names:
        items, rows = ref.items([m], pipeline, batch_size=settings.batch_size, progress=progress)
        used.update(rows)
        if not items:
            raise FourmError(f"no sample of {ref.path} (split '{ref.split}') holds '{m}': cannot fit its centre")
        embedder.fit_centers(items, progress=progress)
    return centres_info()
