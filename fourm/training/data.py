"""Training data: token datasets mixed by weight, masked per sample, split into per-rank batches.

``build_training_data`` opens every source of ``TrainConfig.data``, checks that shared modalities
agree, derives the model's modalities (kind, vocabulary, length) and wraps the splits in
:class:`~fourm.data.masking.MaskedDataset` (training masks from ``(seed, epoch, index)``,
validation masks deterministic). :class:`EpochBatchSampler` shuffles each epoch from
``(seed, epoch)`` and hands each process its slice of every global batch, starting at any batch
index, so a resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch.utils.data import ConcatDataset, Dataset, Sampler, Subset

from fourm.data.masking import MaskedDataset, Masker, MaskingConfig, SequenceSpecialTokens
from fourm.data.masking.config import AlphaConfig
from fourm.data.token_dataset import MixedDataset, ModalityTokens, TokenSamples, load_token_dataset
from fourm.errors import FourmError
from fourm.modalities import default_registry, shipped_modality_names
from fourm.model.config import ModalityConfig
from fourm.training.config import DataConfig, MaskingSection, TrainConfig, resolve_path


@dataclass
class TrainingData:
    """What the loop needs from the data side."""

    train: MaskedDataset
    val: MaskedDataset | None
    modalities: dict[str, ModalityConfig]  # the model's modalities, in model order
    specials: SequenceSpecialTokens | None
    val_tasks: dict[str, MaskedDataset] = field(default_factory=dict)  # masking.eval_tasks on the val split
    notes: list[str] = field(default_factory=list)  # e.g. validation tasks skipped for missing modalities


# ------------------------------------------------------------------------------------------ sources
def open_sources(cfg: DataConfig) -> list[tuple[object, object]]:
    """``[(DatasetDict, TokenDatasetInfo)]`` of every source (FourmError for missing/corrupt ones)."""
    return [load_token_dataset(resolve_path(source.path)) for source in cfg.datasets]


def merge_modalities(infos: list, names: list[str] | None) -> tuple[dict[str, ModalityTokens], SequenceSpecialTokens | None]:
    """Union of the sources' modalities (first-seen order, or ``names``), checked for agreement."""
    merged: dict[str, ModalityTokens] = {}
    specials = None
    for i, info in enumerate(infos):
        for name, mod in info.modalities.items():
            seen = merged.setdefault(name, mod)
            if (seen.kind, seen.vocab_size) != (mod.kind, mod.vocab_size):
                raise FourmError(
                    f"data.datasets[{i}]: modality '{name}' is {mod.kind} with vocab_size {mod.vocab_size}, "
                    f"but an earlier dataset has {seen.kind} with vocab_size {seen.vocab_size}"
                )
            for key in ("patch_dim", "value_dim"):
                if getattr(seen, key) != getattr(mod, key):
                    raise FourmError(
                        f"data.datasets[{i}]: modality '{name}' has {key} {getattr(mod, key) or 0}, "
                        f"but an earlier dataset has {key} {getattr(seen, key) or 0}"
                    )
        if info.specials is not None:
            if specials is not None and info.specials != specials:
                raise FourmError(f"data.datasets[{i}]: sequence special tokens differ from an earlier dataset's")
            specials = info.specials
    if names is not None:
        unknown = [n for n in names if n not in merged]
        if unknown:
            raise FourmError(f"data.modalities: unknown modality '{unknown[0]}' (datasets have: {', '.join(merged)})")
        merged = {n: merged[n] for n in names}
    return merged, specials


def _sequence_length(name: str, sources: list, split: str) -> int:
    """Longest ``name`` sequence over the sources' ``split`` (when the dataset info gives none), read
    from the Arrow list offsets of the memory-mapped column (no rows are loaded into Python)."""
    import pyarrow.compute as pc

    longest = 0
    for dsd, _ in sources:
        if split in dsd and name in dsd[split].column_names:
            column = dsd[split].with_format("arrow")[name]  # an Arrow column (a view's rows only)
            lengths = pc.max(pc.list_value_length(column)).as_py()
            longest = max(longest, int(lengths or 0))
    if longest == 0:
        raise FourmError(f"modality '{name}': no length in the dataset info and no samples to measure it from")
    return longest


def model_modalities(merged: dict[str, ModalityTokens], sources: list, split: str) -> dict[str, ModalityConfig]:
    """ModalityConfigs for a new model: kind/vocab/length/patch_dim from the data, input/target roles
    from the modality registry (for modalities it does not know: both true, patch modalities input only)."""
    registry = default_registry()
    out = {}
    for name, mod in merged.items():
        spec = registry.get(name)
        length = mod.length
        if length is None:
            length = spec.max_length if spec is not None and spec.max_length else _sequence_length(name, sources, split)
        out[name] = ModalityConfig(
            kind=mod.kind,
            vocab_size=mod.vocab_size,
            length=length,
            input=spec.input if spec is not None else True,
            target=spec.target if spec is not None else not (mod.patch_dim or mod.input_only),
            patch_dim=mod.patch_dim or 0,
            value_dim=mod.value_dim or 0,
        )
    return out


def apply_value_heads(modalities: dict[str, ModalityConfig], heads: dict[str, dict]) -> dict[str, ModalityConfig]:
    """``model.value_heads`` ({name: {value_head, value_loss, value_scale, value_prediction,
    value_schedule}}) applied to the continuous modalities of a new model; FourmError for a name that
    is not one. Fields left out keep ModalityConfig's defaults, which the saved config then records."""
    allowed = ("value_head", "value_loss", "value_scale", "value_prediction", "value_schedule")
    out = dict(modalities)
    for name, fields in heads.items():
        mod = out.get(name)
        if mod is None or not mod.is_continuous:
            known = [n for n, m in out.items() if m.is_continuous]
            raise FourmError(
                f"model.value_heads: '{name}' is not a continuous modality of the data (continuous: {', '.join(known) or 'none'})"
            )
        unknown = set(fields) - set(allowed)
        if unknown:
            raise FourmError(f"model.value_heads.{name}: unknown field '{sorted(unknown)[0]}' (expected {', '.join(allowed)})")
        try:
            out[name] = mod.replace(**fields)
        except FourmError as e:
            raise FourmError(f"model.value_heads.{name}: {e}") from None
        out[name].check(name)
    return out


def apply_position_grids(modalities: dict[str, ModalityConfig], grids: dict[str, list[int]]) -> dict[str, ModalityConfig]:
    """``model.position_grids`` ({name: [rows, cols] or [T, rows, cols]}): N-D sin-cos positions for
    vector modalities of a new model (``ModalityConfig.position_grid``); FourmError for a name the data
    does not have or a grid that does not fit it."""
    out = dict(modalities)
    for name, grid in grids.items():
        if name not in out:
            raise FourmError(f"model.position_grids: '{name}' is not a modality of the data (modalities: {', '.join(out)})")
        try:
            out[name] = out[name].replace(position_grid=tuple(grid))
            out[name].check(name)
        except (FourmError, TypeError) as e:
            raise FourmError(f"model.position_grids.{name}: {e}") from None
    return out


def check_fits_model(merged: dict[str, ModalityTokens], modalities: dict[str, ModalityConfig], where: str) -> None:
    """Raise FourmError if a data modality is missing from, or larger than, an existing model's."""
    for name, mod in merged.items():
        if name not in modalities:
            raise FourmError(
                f"data modality '{name}' is not in the model {where} (model modalities: {', '.join(modalities)}); "
                "choose data.modalities"
            )
        have = modalities[name]
        if mod.kind != have.kind or mod.vocab_size > have.vocab_size:
            raise FourmError(
                f"data modality '{name}' ({mod.kind}, vocab_size {mod.vocab_size}) does not fit the model {where} "
                f"({have.kind}, vocab_size {have.vocab_size})"
            )
        if mod.length is not None and mod.length > have.length:
            raise FourmError(f"data modality '{name}' has length {mod.length} > the model's {have.length} ({where})")
        for key in ("patch_dim", "value_dim"):
            if (getattr(mod, key) or 0) != getattr(have, key):
                raise FourmError(
                    f"data modality '{name}' has {key} {getattr(mod, key) or 0} but the model {where} has {getattr(have, key)}"
                )


# ------------------------------------------------------------------------------------------ masking
def load_masking(path: str, section: MaskingSection, modalities: dict[str, ModalityConfig]) -> MaskingConfig:
    """A masking config fitted to the run: budget overrides applied, per-modality entries of
    shipped modalities the run does not use dropped (and mixture entries left with nothing to
    choose on a side, e.g. "rgb_pixels -> all" in a run without rgb_pixels), inputs/targets limited
    to the model's roles."""
    cfg = MaskingConfig.from_file(resolve_path(path))
    data = cfg.to_dict()
    for key in ("input_budget", "target_budget"):
        if getattr(section, key) is not None:
            data[key] = getattr(section, key)
    unused = set(shipped_modality_names()) - set(modalities)  # shipped configs may name any shipped modality

    def keep(d: dict) -> dict:
        return {k: v for k, v in d.items() if k not in unused}

    for key in ("min_input_tokens", "max_input_tokens", "min_target_tokens", "max_target_tokens"):
        data[key] = keep(data[key])
    mixture = []
    for entry in data["mixture"]:
        entry["input_alphas"], entry["target_alphas"] = keep(entry["input_alphas"]), keep(entry["target_alphas"])
        entry["reveal_objects"] = {m: b for m, b in entry.get("reveal_objects", {}).items() if m not in unused and b not in unused}
        if all(AlphaConfig.chooses(entry[f"{side}_alpha"], entry[f"{side}_alphas"]) for side in ("input", "target")):
            mixture.append(entry)
    if not mixture:
        raise FourmError(f"{path}: no mixture entry applies to this run's modalities ({', '.join(modalities)})")
    data["mixture"] = mixture
    for side in ("input", "target"):
        allowed = [m for m, c in modalities.items() if getattr(c, side)]
        chosen = data[f"{side}_modalities"]
        if chosen is not None:
            chosen = [m for m in chosen if m not in unused]
        if len(allowed) < len(modalities):
            chosen = [m for m in (chosen if chosen is not None else modalities) if m in allowed]
        if chosen is not None and not chosen:
            raise FourmError(f"{path}: no {side} modality left for this run's modalities ({', '.join(modalities)})")
        data[f"{side}_modalities"] = chosen
    try:
        return MaskingConfig.from_dict(data)
    except FourmError as e:
        raise FourmError(f"{path}: {e}") from None


def build_masker(cfg: MaskingConfig, modalities: dict[str, ModalityConfig], specials) -> Masker:
    patch_dims = {n: m.patch_dim for n, m in modalities.items() if m.patch_dim}
    input_only = [n for n, m in modalities.items() if not m.target]
    value_dims = {n: m.value_dim for n, m in modalities.items() if m.value_dim}
    return Masker(
        cfg, list(modalities), {n: m.kind for n, m in modalities.items()}, specials, patch_dims,
        input_only=input_only, value_dims=value_dims,
    )


# ------------------------------------------------------------------------------------------ datasets
def _split_samples(sources: list, cfg: DataConfig, split: str, names: list[str], required: bool) -> list[Dataset]:
    out = []
    for i, (dsd, _) in enumerate(sources):
        if split not in dsd:
            if required:
                raise FourmError(
                    f"dataset {cfg.datasets[i].path} has no split '{split}' (splits: {', '.join(dsd)})"
                )
            continue
        out.append(TokenSamples(dsd[split], [n for n in names if n in dsd[split].column_names]))
    return out


def build_training_data(cfg: TrainConfig, model_modalities_override: dict[str, ModalityConfig] | None = None) -> TrainingData:
    """Open the sources and build the masked train/val datasets (see the module docstring).

    ``model_modalities_override``: the modalities of an existing model (``model.init_from``); the
    data must fit them.
    """
    sources = open_sources(cfg.data)
    names = cfg.data.modalities
    if names is None and model_modalities_override is not None:
        available = {n for _, info in sources for n in info.modalities}
        names = [n for n in model_modalities_override if n in available]
    merged, specials = merge_modalities([info for _, info in sources], names)
    if model_modalities_override is not None:
        check_fits_model(merged, model_modalities_override, f"'{cfg.model.init_from}'")
        modalities = dict(model_modalities_override)
    else:
        modalities = apply_value_heads(model_modalities(merged, sources, cfg.data.train_split), cfg.model.value_heads)
        modalities = apply_position_grids(modalities, cfg.model.position_grids)
    if specials is None and any(m.kind == "sequence" for m in modalities.values()):
        raise FourmError("the model has sequence modalities but no dataset gives sequence special tokens")

    train_parts = _split_samples(sources, cfg.data, cfg.data.train_split, list(merged), required=True)
    for part, source in zip(train_parts, cfg.data.datasets):
        if len(part) == 0:
            raise FourmError(f"dataset {source.path}: split '{cfg.data.train_split}' is empty")
    if len(train_parts) == 1 and cfg.data.epoch_length is None:
        train_samples: Dataset = train_parts[0]
    else:
        weights = [s.weight for s in cfg.data.datasets]
        train_samples = MixedDataset(train_parts, weights, length=cfg.data.epoch_length, seed=cfg.seed)
    train_masking = load_masking(cfg.masking.train, cfg.masking, modalities)
    train = MaskedDataset(train_samples, build_masker(train_masking, modalities, specials), seed=cfg.seed)

    val = None
    val_parts = [p for p in _split_samples(sources, cfg.data, cfg.data.val_split, list(merged), False) if len(p)]
    if val_parts:
        val_samples: Dataset = val_parts[0] if len(val_parts) == 1 else ConcatDataset(val_parts)
        if cfg.data.val_samples is not None and cfg.data.val_samples < len(val_samples):
            val_samples = Subset(val_samples, range(cfg.data.val_samples))
        eval_masking = load_masking(cfg.masking.eval, cfg.masking, modalities)
        val = MaskedDataset(val_samples, build_masker(eval_masking, modalities, specials))
        tasks, notes = build_val_tasks(cfg.masking, val_samples, modalities, specials)
    else:
        tasks, notes = {}, [f"validation task {name} skipped: no val split" for name in cfg.masking.eval_tasks]
    return TrainingData(train=train, val=val, modalities=modalities, specials=specials, val_tasks=tasks, notes=notes)


def build_val_tasks(
    section: MaskingSection, samples: Dataset, modalities: dict[str, ModalityConfig], specials
) -> tuple[dict[str, MaskedDataset], list[str]]:
    """``section.eval_tasks`` as deterministic masked datasets over the val ``samples``, and a note per
    task skipped because no entry of its config applies to the run's modalities."""
    tasks, notes = {}, []
    for name, path in section.eval_tasks.items():
        try:
            masking = load_masking(path, section, modalities)
        except FourmError as e:
            if "no mixture entry applies" not in str(e) and "modality left" not in str(e):
                raise FourmError(f"masking.eval_tasks.{name}: {e}") from None
            notes.append(f"validation task {name} skipped: {path} needs modalities this run lacks")
            continue
        if not masking.deterministic:
            raise FourmError(f"masking.eval_tasks.{name}: {path} is not deterministic (expected deterministic: true)")
        tasks[name] = MaskedDataset(samples, build_masker(masking, modalities, specials))
    return tasks, notes


# ------------------------------------------------------------------------------------------ sampling
class EpochBatchSampler(Sampler[list[int]]):
    """Batches of one epoch for one process.

    The epoch's order is a permutation seeded by ``(seed, epoch)``, cut into global batches of
    ``batch_size * num_replicas`` samples (the incomplete tail is dropped); process ``rank`` takes
    slice ``rank`` of each. :meth:`set_position` picks the epoch and the first batch to yield.
    """

    def __init__(
        self, num_samples: int, batch_size: int, seed: int = 0, rank: int = 0, num_replicas: int = 1, shuffle: bool = True
    ) -> None:
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, seed
        self.rank, self.num_replicas, self.shuffle = rank, num_replicas, shuffle
        self.global_batch = batch_size * num_replicas
        self.batches_per_epoch = num_samples // self.global_batch
        if self.batches_per_epoch == 0:
            raise FourmError(
                f"the training split has {num_samples} samples, fewer than one global batch "
                f"(batch_size {batch_size} x {num_replicas} processes); lower batch_size or add data"
            )
        self.epoch, self.start_batch = 0, 0

    def set_position(self, epoch: int, start_batch: int = 0) -> None:
        """Yield the batches of ``epoch`` from index ``start_batch`` on."""
        if not 0 <= start_batch <= self.batches_per_epoch:
            raise FourmError(f"start_batch must be in [0, {self.batches_per_epoch}], got {start_batch}")
        self.epoch, self.start_batch = epoch, start_batch

    def order(self, epoch: int) -> np.ndarray:
        """Sample order of ``epoch`` (before sharding)."""
        if not self.shuffle:
            return np.arange(self.num_samples)
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, epoch, 0x5EED])))
        return rng.permutation(self.num_samples)

    def __len__(self) -> int:
        return self.batches_per_epoch - self.start_batch

    def __iter__(self) -> Iterator[list[int]]:
        order = self.order(self.epoch)
        lo = self.rank * self.batch_size
        for k in range(self.start_batch, self.batches_per_epoch):
            chunk = order[k * self.global_batch : (k + 1) * self.global_batch]
            yield chunk[lo : lo + self.batch_size].tolist()


class ShardSampler(Sampler[list[int]]):
    """Validation batches of one process: samples ``rank, rank + R, ...`` in order, the last batch
    possibly smaller (no sample is repeated or dropped across processes)."""

    def __init__(self, num_samples: int, batch_size: int, rank: int = 0, num_replicas: int = 1) -> None:
        self.indices = list(range(rank, num_samples, num_replicas))
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        for i in range(0, len(self.indices), self.batch_size):
            yield self.indices[i : i + self.batch_size]


def prepare_synthetic_sources(cfg: DataConfig, seed: int) -> None:
    """Write the synthetic datasets the config asks for (once; an existing directory is reused)."""
    from fourm.training.synthetic import write_synthetic_tokens

    for source in cfg.datasets:
        if source.synthetic and not Path(source.path).exists():
            write_synthetic_tokens(source.path, seed=seed)
