"""Fine-tuning a trained FourM with added modalities.

:func:`expand_model` builds a FourM with the old modalities followed by the new ones and copies
every old weight into it. All per-modality tables are packed in modality order (token table,
modality embeddings, untied output heads, decoder token table), so appending modalities only
appends rows: the old rows keep their places and values, the new rows are drawn from a normal
matched to the old rows (per-dimension mean, overall std) of the same table. A new patch modality's
projection gets the model's own init (:func:`fourm.model.patch_stem.patch_init_std`, zero bias).

:class:`OldParamsControl` lets the old weights train slower than the new rows: during the first
``freeze_trunk_steps`` steps they do not move at all (their gradients are dropped or zeroed, and
after the optimizer step the old rows of mixed tables are put back bit-exactly); afterwards their
AdamW update is scaled by ``old_params_lr_scale`` (exact: an AdamW update is linear in the lr).
Everything depends on the step number alone, so a resume across the stage boundary is exact.

:func:`reinit_modalities` gives modalities the model already has new vocabulary rows, for a new
tokenizer of that modality (e.g. an rgb tokenizer trained on your own images, of the same or another
vocabulary size): the modality's rows of the token table, of the untied output heads and of the
decoder token table are drawn afresh (matched normal of the table's other rows), everything else
(the trunk, every other modality's rows, this modality's modality embedding and positions) is copied
bit-exactly. An entry is a modality name (same vocabulary size) or a registry YAML of a modality the
model has (its ``vocab_size`` / length). Re-initialised rows count as new rows for
:class:`OldParamsControl`. With a row map (``model.row_maps``: a code map of the old and the new
tokenizer, ``fourm-tokenizer code-map``) each new code's rows start as a copy of the rows of the old
code that most often covers the same patch, so the model starts from what it knew.

    model, new_rows = expand_model(FourM.from_pretrained("models/world-default/model"),
                                   load_added_modalities(["configs/modalities/extra/caption_embedding.yaml"]))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from fourm.data.token_dataset import INFO_FILE, TokenDatasetInfo
from fourm.errors import FourmError
from fourm.modalities import ModalityRegistry
from fourm.model import FourM, FourMConfig, ModalityConfig
from fourm.model.config import modality_from_spec
from fourm.model.fourm import CONFIG_NAME, WEIGHTS_NAME
from fourm.model.patch_stem import patch_init_std
from fourm.training.checkpoint import CHECKPOINTS, latest_checkpoint
from fourm.training.config import resolve_path
from fourm.training.grow import grow_decoder


def resolve_model_dir(path: str | Path) -> Path:
    """The ``FourM.save_pretrained`` directory of ``path``: that directory itself, a training
    checkpoint (``step_*/model``), or a run directory (its final ``model/``, else its latest checkpoint)."""
    given = Path(path)
    path = resolve_path(path)

    def is_model(p: Path) -> bool:
        return (p / CONFIG_NAME).is_file() and (p / WEIGHTS_NAME).is_file()

    if is_model(path):
        return path
    if is_model(path / "model"):
        return path / "model"
    latest = latest_checkpoint(path / CHECKPOINTS)
    if latest is not None and is_model(latest / "model"):
        return latest / "model"
    if not path.exists():
        raise FourmError(f"init_from not found: {given} (expected a saved model, checkpoint or run directory)")
    raise FourmError(f"{given} holds no saved FourM (no {CONFIG_NAME} + {WEIGHTS_NAME}, model/ or checkpoints/)")


def load_added_modalities(paths: Sequence[str | Path]) -> dict[str, ModalityConfig]:
    """Model modality configs of the registry YAMLs ``paths`` (one modality each, in order)."""
    out: dict[str, ModalityConfig] = {}
    for path in paths:
        resolved = resolve_path(path)
        if not resolved.is_file():
            raise FourmError(f"modality file not found: {path} (expected a YAML like configs/modalities/extra/*.yaml)")
        for spec in ModalityRegistry.from_files([resolved]).values():
            if spec.name in out:
                raise FourmError(f"modality '{spec.name}' is added twice ({path})")
            out[spec.name] = modality_from_spec(spec)
    return out


def extended_config(config: FourMConfig, added: Mapping[str, ModalityConfig]) -> FourMConfig:
    """``config`` with the ``added`` modalities appended; FourmError if one is already there."""
    for name, mod in added.items():
        have = config.modalities.get(name)
        if have is not None:
            conflict = ""
            if (have.kind, have.vocab_size, have.length) != (mod.kind, mod.vocab_size, mod.length):
                conflict = f", the added one is {mod.kind} with vocab_size {mod.vocab_size}, length {mod.length}"
            raise FourmError(
                f"cannot add modality '{name}': the model already has it ({have.kind} with vocab_size "
                f"{have.vocab_size}, length {have.length}{conflict}); only new modalities can be added"
            )
    return config.replace(modalities={**config.modalities, **added})


PATCH_PREFIX = "embeddings.patch_embed."


def _matched_normal(old: Tensor, rows: int, generator: torch.Generator) -> Tensor:
    """(rows, D) draws with the per-dimension mean and the overall std of ``old`` (n, D)."""
    old = old.detach().float()
    mean = old.mean(0) if old.shape[0] else torch.zeros(old.shape[1:])
    std = float((old - mean).std()) if old.shape[0] > 1 else 0.0
    if not std > 0:
        std = 0.02
    noise = torch.randn((rows, *old.shape[1:]), generator=generator)
    return mean + std * noise


@torch.no_grad()
def expand_model(old: FourM, added: Mapping[str, ModalityConfig], seed: int = 0) -> tuple[FourM, dict[str, int]]:
    """A FourM with ``old``'s modalities + ``added``, holding every weight of ``old`` unchanged.

    Returns the model and ``{parameter name: number of old leading rows}`` for each parameter
    that got new rows (a parameter that did not exist in ``old`` has 0 old rows).
    """
    if not added:
        raise FourmError("no modality to add")
    model = FourM(extended_config(old.config, added))
    generator = torch.Generator().manual_seed(seed)
    old_state = old.state_dict()
    new_rows: dict[str, int] = {}
    params = dict(model.named_parameters())
    for key, target in model.state_dict().items():
        source = old_state.get(key)
        if source is not None and source.shape == target.shape:
            target.copy_(source)
            continue
        if key not in params:
            raise FourmError(f"cannot expand buffer '{key}' of shape {tuple(target.shape)}")
        n_old = 0 if source is None else source.shape[0]
        if source is not None and (source.shape[1:] != target.shape[1:] or n_old > target.shape[0]):
            raise FourmError(f"cannot expand '{key}' from {tuple(source.shape)} to {tuple(target.shape)}")
        if source is not None:
            target[:n_old].copy_(source)
            fill = _matched_normal(source, target.shape[0] - n_old, generator)
        elif key.startswith(PATCH_PREFIX) and model.config.patch_stem != "linear":  # a new conv stem: its own init
            fill = target.clone()
        elif key.startswith(PATCH_PREFIX):  # a new patch projection: the model's own init (see patch_init_std)
            std = patch_init_std(target.shape[-1], model.config.position_scale) if key.endswith(".weight") else 0.0
            fill = torch.randn(target.shape, generator=generator) * std
        else:  # a table the old model did not have (e.g. the first sequence target): default init
            cfg = model.config
            token_table = key in ("embeddings.enc_tokens", "embeddings.dec_tokens") and cfg.token_init_std is not None
            fill = torch.randn(target.shape, generator=generator) * (cfg.token_init_std if token_table else cfg.init_std)
        target[n_old:].copy_(fill.to(target.dtype))
        new_rows[key] = n_old
    return model, new_rows


@torch.no_grad()
def replace_patch_stem(old: FourM, kind: str, seed: int = 0) -> tuple[FourM, dict[str, Tensor]]:
    """A FourM like ``old`` whose pixel-patch modalities enter through a fresh patch stem of ``kind``
    (:mod:`fourm.model.patch_stem`, its own init at the position scale); every other weight is
    ``old``'s, bit-exactly. From ``linear`` to ``conv_image``, the old projection becomes the new
    stem's linear path and the CNN path's output projection starts at zero, so the new model computes
    what the old one did. Returns the model and ``{new stem parameter: all-True mask}`` (wholly new
    weights for :class:`OldParamsControl`; a carried linear path is old)."""
    if not any(m.is_patches for m in old.config.modalities.values()):
        raise FourmError(f"model.patch_stem '{kind}': the model has no pixel-patch modality to give a stem")
    if kind == old.config.patch_stem:
        raise FourmError(f"model.patch_stem: the model already has a '{kind}' patch stem (nothing to replace)")
    try:
        config = old.config.replace(patch_stem=kind)  # validates the kind and the patch sides
    except FourmError as e:
        raise FourmError(f"model.patch_stem: {e}") from None
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = FourM(config)
    old_state = old.state_dict()
    params = dict(model.named_parameters())
    masks: dict[str, Tensor] = {}
    for key, target in model.state_dict().items():
        if key.startswith(PATCH_PREFIX):  # the new stem keeps its own init (buffers included)
            if key in params:
                masks[key] = torch.ones(target.shape[0], dtype=torch.bool)
            continue
        source = old_state.get(key)
        if source is None or source.shape != target.shape:
            raise FourmError(f"cannot carry '{key}' over to the model with a new patch stem")
        target.copy_(source)
    if old.config.patch_stem == "linear" and kind == "conv_image":  # start where the old model was
        state = model.state_dict()
        for name, m in old.config.modalities.items():
            if m.is_patches:
                prefix = f"{PATCH_PREFIX}{name}."
                for part in ("weight", "bias"):
                    state[f"{prefix}linear.{part}"].copy_(old_state[f"{prefix}{part}"])
                    state[f"{prefix}proj.{part}"].zero_()
                    del masks[f"{prefix}linear.{part}"]
    return model, masks


def _old_rows(rows: int | Tensor, device: torch.device) -> slice | Tensor | None:
    """The old rows of a parameter as ``new_rows`` gives them (an int: that many leading rows; a
    bool mask: the False rows), as an index; None when no row is old."""
    if isinstance(rows, Tensor):
        old = (~rows.bool()).nonzero().flatten().to(device)
        return old if old.numel() else None
    return slice(0, rows) if rows > 0 else None


class OldParamsControl:
    """Scales the optimizer updates of the old weights of an expanded model (module docstring).

    ``before_step`` (after backward, before clipping) and ``after_step`` (after ``optimizer.step``)
    wrap every optimizer step; ``step`` is the number of optimizer steps already done.
    ``new_rows``: {parameter: number of old leading rows, or a bool mask over its rows, True = new}.
    """

    def __init__(
        self, model: nn.Module, new_rows: Mapping[str, int | Tensor], freeze_steps: int, lr_scale: float
    ) -> None:
        params = dict(model.named_parameters())
        unknown = [k for k in new_rows if k not in params]
        if unknown:
            raise FourmError(f"unknown parameter '{unknown[0]}' in the added rows")
        self.mixed = []  # (param, its old rows: a leading slice or an index tensor)
        for k, n in new_rows.items():
            rows = _old_rows(n, params[k].device)
            if rows is not None:
                self.mixed.append((params[k], rows))
        self.old = [p for k, p in params.items() if k not in new_rows]  # entirely old parameters
        self.freeze_steps, self.lr_scale = freeze_steps, lr_scale
        self._saved: list[Tensor] = []

    def scale(self, step: int) -> float:
        """Factor on the old weights' update at optimizer step ``step`` (0-based)."""
        return 0.0 if step < self.freeze_steps else self.lr_scale

    def frozen(self, step: int) -> bool:
        return self.scale(step) == 0.0

    @torch.no_grad()
    def before_step(self, step: int) -> None:
        """Drop old gradients when frozen (so clipping and AdamW see only the new rows); remember
        the old weights whose update is to be scaled."""
        scale = self.scale(step)
        self._saved = []
        if scale == 1.0:
            return
        if scale == 0.0:
            for p in self.old:
                p.grad = None  # AdamW skips them: no update, no weight decay, no state
            for p, rows in self.mixed:
                if p.grad is not None:
                    p.grad[rows] = 0
        else:
            self._saved = [p.detach().clone() for p in self.old]
        self._saved += [p.detach()[rows].clone() for p, rows in self.mixed]

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        """Old weights := saved + scale * (updated - saved); exactly the saved values when frozen."""
        scale = self.scale(step)
        if scale == 1.0:
            return
        saved = iter(self._saved)
        if scale != 0.0:
            for p in self.old:
                before = next(saved)
                p.copy_(before + scale * (p - before))
        for p, rows in self.mixed:
            before = next(saved)
            if scale == 0.0:
                p[rows] = before
            else:
                p[rows] = before + scale * (p[rows] - before)
        self._saved = []


# ------------------------------------------------------------------------------ re-initialised rows
def _table_rows(config: FourMConfig) -> dict[str, list[int]]:
    """{packed per-modality parameter: rows of each modality, in modality order}."""
    mods = list(config.modalities.values())
    tables = {
        "embeddings.enc_tokens": [m.table_rows for m in mods],
        "output_weight": [m.vocab_size if m.target else 0 for m in mods],
    }
    if not config.share_encoder_decoder_embeddings:
        tables["embeddings.dec_tokens"] = [m.vocab_size if m.causal and m.target else 0 for m in mods]
    return tables


def _fit_to_data(have: ModalityConfig, tokens: Any | None) -> ModalityConfig:
    """``have`` with the vocabulary and length of the data's ``tokens`` (a ModalityTokens) when it is
    an image modality whose data holds other tokens; else ``have``."""
    if tokens is None or have.kind != "image" or have.is_patches or tokens.kind != "image" or tokens.length is None:
        return have
    return replace(have, vocab_size=tokens.vocab_size, length=tokens.length)


def load_reinit_modalities(
    entries: Sequence[str | Path], config: FourMConfig, data: Mapping[str, Any] | None = None
) -> dict[str, ModalityConfig]:
    """{name: new model modality config} of ``entries``: a modality name of ``config`` or a registry
    YAML of one (its vocab_size / length). A name keeps the model's vocabulary and length, except for an
    image modality whose training data (``data``: {name: ModalityTokens}) holds other tokens, e.g. from
    a tokenizer retrained on another grid (``fourm-data tokenize --tokenizer``): it takes the data's."""
    out: dict[str, ModalityConfig] = {}
    for entry in entries:
        text = str(entry)
        if text.endswith((".yaml", ".yml")) or "/" in text:
            found = load_added_modalities([entry])
        else:
            if text not in config.modalities:
                raise FourmError(
                    f"cannot re-initialise modality '{text}': the model has no such modality "
                    f"(model modalities: {', '.join(config.modalities)})"
                )
            found = {text: _fit_to_data(config.modalities[text], (data or {}).get(text))}
        for name, mod in found.items():
            have = config.modalities.get(name)
            if have is None:
                raise FourmError(
                    f"cannot re-initialise modality '{name}' ({text}): the model has no such modality "
                    f"(model modalities: {', '.join(config.modalities)}); use add_modalities for a new one"
                )
            if have.is_patches or mod.is_patches:
                raise FourmError(f"cannot re-initialise modality '{name}': it reads pixel patches and has no token rows")
            if mod.kind != have.kind:
                raise FourmError(f"cannot re-initialise modality '{name}' as {mod.kind}: the model's is {have.kind}")
            if name in out:
                raise FourmError(f"modality '{name}' is re-initialised twice ({text})")
            # the model's roles and positions stay: only the vocabulary (and length) may change
            out[name] = replace(have, vocab_size=mod.vocab_size, length=mod.length)
    return out


def load_row_maps(paths: Mapping[str, str | Path], config: FourMConfig) -> dict[str, list[int]]:
    """{modality: code map JSON} -> {modality: the old code of each new code}; FourmError when a map
    was made from another old tokenizer than the model's (its old vocabulary differs)."""
    from tokenizers_zoo.image.code_map import CodeMap

    out = {}
    for name, path in paths.items():
        code_map = CodeMap.load(resolve_path(path))
        have = config.modalities.get(name)
        if have is not None and code_map.old_vocab != have.vocab_size:
            raise FourmError(f"code map {path} maps from {code_map.old_vocab} codes, the model's '{name}' has "
                             f"{have.vocab_size}: it was made from another tokenizer")  # fmt: skip
        out[name] = code_map.mapping
    return out


def _check_row_maps(
    row_maps: Mapping[str, Sequence[int]], old: FourMConfig, new: Mapping[str, ModalityConfig]
) -> dict[str, Tensor]:
    """``row_maps`` as long tensors, checked against the old and the re-initialised vocabularies."""
    out = {}
    for name, mapping in row_maps.items():
        if name not in new:
            raise FourmError(f"model.row_maps names '{name}', which is not re-initialised (add it to model.reinit_modalities)")
        mapping = torch.as_tensor(list(mapping), dtype=torch.long)
        if len(mapping) != new[name].vocab_size:
            raise FourmError(f"the code map for '{name}' has {len(mapping)} codes, its new vocabulary {new[name].vocab_size}")
        if len(mapping) and (int(mapping.max()) >= old.modalities[name].vocab_size or int(mapping.min()) < -1):
            raise FourmError(f"the code map for '{name}' names codes outside the model's vocabulary of "
                             f"{old.modalities[name].vocab_size}")  # fmt: skip
        out[name] = mapping
    return out


def _image_frame(config: FourMConfig, reinit: Mapping[str, ModalityConfig]) -> int | None:
    """The model's image frame after ``reinit``: an image modality moved onto another grid (e.g. rgb
    tokens on 16 x 16 instead of 8 x 8) keeps the grid it replaces as the frame of every image's
    positions, so its tokens sit where the model has seen that image's parts (FourMConfig.image_frame)."""
    if config.image_frame is not None:
        return config.image_frame
    moved = sorted(
        {config.modalities[n].grid_size for n, m in reinit.items() if m.kind == "image" and m.length != config.modalities[n].length}
    )
    if len(moved) > 1:
        raise FourmError(
            f"re-initialised image modalities come from grids of {moved} cells a side, so no one image frame "
            "keeps them all: re-initialise them one run at a time (the first sets the model's image_frame)"
        )
    return moved[0] if moved else None


@torch.no_grad()
def reinit_modalities(
    old: FourM,
    reinit: Mapping[str, ModalityConfig] | Sequence[str],
    seed: int = 0,
    row_maps: Mapping[str, Sequence[int]] | None = None,
) -> tuple[FourM, dict[str, Tensor]]:
    """A FourM like ``old`` whose ``reinit`` modalities get fresh vocabulary rows (module docstring).

    ``reinit``: modality names (same vocabulary) or {name: ModalityConfig with the new vocab_size /
    length}. ``row_maps``: {name: the old code each new code starts from (-1: a fresh row)}, e.g. a
    :class:`tokenizers_zoo.image.code_map.CodeMap`'s ``mapping``: those rows are copies of the old
    ones. Returns the model and ``{parameter: bool mask of its re-initialised rows}``; every other
    weight is ``old``'s, bit-exactly.
    """
    if not isinstance(reinit, Mapping):
        reinit = load_reinit_modalities(list(reinit), old.config)
    if not reinit:
        raise FourmError("no modality to re-initialise")
    for name in reinit:
        if name not in old.config.modalities:
            raise FourmError(
                f"cannot re-initialise modality '{name}': the model has no such modality "
                f"(model modalities: {', '.join(old.config.modalities)})"
            )
    maps = _check_row_maps(row_maps or {}, old.config, reinit)
    config = old.config.replace(modalities={**old.config.modalities, **reinit}, image_frame=_image_frame(old.config, reinit))
    model = FourM(config)
    generator = torch.Generator().manual_seed(seed)
    old_state, state = old.state_dict(), model.state_dict()
    old_tables, new_tables = _table_rows(old.config), _table_rows(config)
    names = list(config.modalities)
    masks: dict[str, Tensor] = {}
    for key, target in state.items():
        source = old_state.get(key)
        if key not in new_tables or source is None:
            if source is None or source.shape != target.shape:
                raise FourmError(f"cannot carry '{key}' over to the re-initialised model")
            target.copy_(source)
            continue
        old_chunks = source.split(old_tables[key])
        kept = [c for name, c in zip(names, old_chunks) if name not in reinit and c.shape[0]]
        reference = torch.cat(kept) if kept else source
        mask = torch.zeros(target.shape[0], dtype=torch.bool)
        start = 0
        for name, chunk, rows in zip(names, old_chunks, new_tables[key]):
            if name in reinit:
                fill = _matched_normal(reference, rows, generator) if rows else None
                if fill is not None and name in maps:
                    mapped = maps[name] >= 0
                    fill[mapped] = chunk[maps[name][mapped]].to(fill.dtype)
                if fill is not None:
                    target[start : start + rows].copy_(fill.to(target.dtype))
                mask[start : start + rows] = True
            else:
                target[start : start + rows].copy_(chunk)
            start += rows
        if mask.any():
            masks[key] = mask
    return model, masks


def load_finetune_model(
    init_from: str | Path,
    add_modalities: Sequence[str | Path],
    seed: int = 0,
    reinit: Sequence[str | Path] = (),
    patch_stem: str | None = None,
    grow: Sequence[int] = (),
    row_maps: Mapping[str, str | Path] | None = None,
    data: Mapping[str, Any] | None = None,
) -> tuple[FourM, dict[str, int | Tensor]]:
    """The trained model of ``init_from``, its decoder deepened after the blocks ``grow``
    (:func:`fourm.training.grow.grow_decoder`), with a new ``patch_stem`` (:func:`replace_patch_stem`),
    its ``reinit`` modalities given fresh vocabulary rows (:func:`reinit_modalities`; ``row_maps``:
    {modality: code map JSON}, rows copied from the old codes, :func:`load_row_maps`), expanded by
    the modality YAMLs ``add_modalities`` (none of these: the model as saved, no new rows). The
    second value is ``{parameter: old leading rows}`` of an expansion alone, else ``{parameter: bool
    mask of its new rows}``. ``data``: the training data's tokens, as in :func:`load_reinit_modalities`."""
    base = FourM.from_pretrained(resolve_model_dir(init_from))
    if row_maps and not reinit:
        raise FourmError("row maps need modalities to re-initialise (model.reinit_modalities)")
    masks: dict[str, Tensor] = {}
    if grow:
        base, masks = grow_decoder(base, grow)
    if patch_stem is not None:
        base, stem_masks = replace_patch_stem(base, patch_stem, seed=seed)
        masks.update(stem_masks)
    if reinit:
        maps = load_row_maps(row_maps or {}, base.config)
        reinit_configs = load_reinit_modalities(list(reinit), base.config, data)
        base, reinit_masks = reinit_modalities(base, reinit_configs, seed=seed, row_maps=maps)
        masks.update(reinit_masks)
    if not add_modalities:
        return base, dict(masks)
    model, new_rows = expand_model(base, load_added_modalities(add_modalities), seed=seed)
    if not masks:
        return model, dict(new_rows)
    merged: dict[str, int | Tensor] = dict(masks)
    params = dict(model.named_parameters())
    for key, n_old in new_rows.items():
        total = params[key].shape[0]
        old_mask = masks.get(key, torch.zeros(n_old, dtype=torch.bool))
        merged[key] = torch.cat([old_mask, torch.ones(total - n_old, dtype=torch.bool)])
    return model, merged


def finetune_modalities(
    init_from: str | Path, add_modalities: Sequence[str | Path], reinit: Sequence[str | Path] = (),
    data: Mapping[str, Any] | None = None,
) -> dict[str, ModalityConfig]:  # fmt: skip
    """The modalities of the fine-tuned model (old, re-initialised ones with their new vocabulary,
    then added), without loading any weights; ``data``: as in :func:`load_reinit_modalities`."""
    config = FourMConfig.from_file(resolve_model_dir(init_from) / CONFIG_NAME)
    if reinit:
        config = config.replace(modalities={**config.modalities, **load_reinit_modalities(list(reinit), config, data)})
    added = load_added_modalities(add_modalities)
    return extended_config(config, added).modalities if added else config.modalities


@torch.no_grad()
def save_reinit_model(init_from: str | Path, reinit: Sequence[str | Path], out: str | Path, seed: int = 0) -> Path:
    """Write the model of ``init_from`` with fresh ``reinit`` rows to ``out`` (a save_pretrained
    directory, usable as ``train.py --init-from``); returns ``out``."""
    model, _ = load_finetune_model(init_from, [], seed=seed, reinit=reinit)
    out = Path(out)
    model.save_pretrained(out)
    return out


def check_added_in_data(data_cfg, added: Sequence[str]) -> None:
    """FourmError unless every added modality is trained on: in some token dataset of ``data_cfg``
    (and in ``data.modalities`` when that is set)."""
    available: set[str] = set()
    for source in data_cfg.datasets:
        info_file = resolve_path(source.path) / INFO_FILE
        if info_file.is_file():
            available |= set(TokenDatasetInfo.from_file(info_file).modalities)
    chosen = set(data_cfg.modalities) if data_cfg.modalities is not None else available
    for name in added:
        if name not in available or name not in chosen:
            where = "data.modalities" if name in available else "the token datasets"
            raise FourmError(
                f"added modality '{name}' is not in {where} (pre-tokenize it with "
                f"`fourm-data tokenize --add-modality ...`), so it would never be trained"
            )
