"""Pre-tokenized datasets on disk: read, write, wrap as token samples, and mix several.

Layout of a token dataset directory::

    <dir>/dataset_dict.json, <dir>/train/..., <dir>/val/...   Hugging Face ``datasets`` DatasetDict
    <dir>/fourm_tokens.json                                   :class:`TokenDatasetInfo`

Each split has a string column ``id`` and one column per modality holding a list of int32 token
ids: fixed length for ``image`` / ``vector`` modalities, variable length (ending with [EOS]) for
``sequence`` modalities; a missing modality is ``None`` (an empty list is read as missing too).
``fourm_tokens.json`` gives each modality's kind, vocabulary size and length (image/vector: the
exact length; sequence: the maximum, optional) and the sequence special ids.

A patch modality (``patch_dim`` set, :mod:`fourm.core.patches`) stores pixel patches instead of
token ids: a list of ``length * patch_dim`` uint8 values, patch k = ``values[k * P:(k + 1) * P]``
(``P = patch_dim``); :class:`TokenSamples` returns it flat like any other modality, (N * P,).

A continuous modality (``value_dim`` set, kind ``vector``, :mod:`fourm.model.continuous`) stores
float values instead of token ids: a list of ``length * value_dim`` float32 values (e.g. the 384
values of a MiniLM caption embedding); :class:`TokenSamples` returns them flat as a float tensor.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from fourm.core.patches import LEVELS
from fourm.data.masking.spans import SequenceSpecialTokens
from fourm.errors import FourmError
from fourm.utils.atomic import atomic_dir
from fourm.utils.config import Config

INFO_FILE = "fourm_tokens.json"


@dataclass
class ModalityTokens(Config):
    """How one modality is tokenized: kind, vocabulary size, token count (max for sequences)."""

    kind: Literal["image", "sequence", "vector"]
    vocab_size: int
    length: int | None = None
    patch_dim: int | None = None  # patch modality: values per pixel patch (rows hold length * patch_dim)
    input_only: bool = False  # a model reads it but never predicts it (patches, box maps)
    value_dim: int | None = None  # continuous modality: float values per token (rows hold length * value_dim)

    def validate(self) -> None:
        if self.vocab_size < 1:
            raise FourmError(f"vocab_size must be >= 1, got {self.vocab_size}")
        if self.kind != "sequence" and (self.length is None or self.length < 1):
            raise FourmError(f"length must be >= 1 for a {self.kind} modality, got {self.length}")
        if self.patch_dim is not None:
            if self.kind != "image":
                raise FourmError(f"patch_dim applies to image modalities only, got kind '{self.kind}'")
            if self.patch_dim < 1:
                raise FourmError(f"patch_dim must be >= 1, got {self.patch_dim}")
        if self.value_dim is not None:
            if self.kind != "vector" or self.patch_dim is not None:
                raise FourmError(f"value_dim applies to vector modalities only (not patches), got kind '{self.kind}'")
            if self.value_dim < 1:
                raise FourmError(f"value_dim must be >= 1, got {self.value_dim}")

    @property
    def num_values(self) -> int:
        """Values in one row: ``length`` token ids, or ``length * patch_dim`` patch values."""
        return self.length * (self.patch_dim or self.value_dim or 1)  # type: ignore[operator]


@dataclass
class TokenDatasetInfo(Config):
    """Contents of ``fourm_tokens.json``."""

    modalities: dict[str, ModalityTokens] = field(default_factory=dict)
    specials: SequenceSpecialTokens | None = None
    version: int = 1

    def validate(self) -> None:
        if not self.modalities:
            raise FourmError("modalities is empty (expected at least one modality)")
        for name, mod in self.modalities.items():
            if name == "id":
                raise FourmError("modalities: 'id' is reserved for the sample id column")
            try:
                mod.validate()
            except FourmError as e:
                raise FourmError(f"modalities.{name}: {e}") from None
        if self.specials is None and any(m.kind == "sequence" for m in self.modalities.values()):
            raise FourmError("specials is missing (required when a modality has kind 'sequence')")

    @property
    def modality_order(self) -> list[str]:
        return list(self.modalities)

    @property
    def kinds(self) -> dict[str, str]:
        return {name: m.kind for name, m in self.modalities.items()}


def _features(info: TokenDatasetInfo):
    import datasets as hfd

    spec = {"id": hfd.Value("string")}
    spec.update(
        {
            name: hfd.List(hfd.Value("uint8" if m.patch_dim else "float32" if m.value_dim else "int32"))
            for name, m in info.modalities.items()
        }
    )
    return hfd.Features(spec)


def load_token_dataset(path: str | Path):
    """Open a token dataset directory -> ``(datasets.DatasetDict, TokenDatasetInfo)``."""
    import datasets as hfd

    path = Path(path)
    if not path.is_dir():
        raise FourmError(f"token dataset not found: {path} (expected a directory)")
    if not (path / INFO_FILE).is_file():
        raise FourmError(f"{path} is not a token dataset: {INFO_FILE} is missing")
    info = TokenDatasetInfo.from_file(path / INFO_FILE)
    try:
        dsd = hfd.load_from_disk(str(path))
    except Exception as e:  # datasets raises many types for broken directories
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise FourmError(f"corrupt token dataset {path}: {first}") from None
    if not isinstance(dsd, hfd.DatasetDict):
        raise FourmError(f"token dataset {path} holds a single split (expected a DatasetDict with train/val)")
    for split, ds in dsd.items():
        missing = [m for m in ["id", *info.modalities] if m not in ds.column_names]
        if missing:
            raise FourmError(f"token dataset {path}, split '{split}': column '{missing[0]}' is missing")
    return dsd, info


def _check_row(sample: Mapping[str, Any], info: TokenDatasetInfo, position: int) -> dict:
    """One sample dict -> a row of :func:`_features`, validating lengths and id ranges."""
    unknown = [k for k in sample if k != "id" and k not in info.modalities]
    if unknown:
        raise FourmError(
            f"sample {position}: unknown modality '{unknown[0]}' (known: {', '.join(info.modalities)})"
        )
    row: dict[str, Any] = {"id": str(sample.get("id", position))}
    for name, mod in info.modalities.items():
        value = sample.get(name)
        if value is None or len(value) == 0:
            row[name] = None
            continue
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        arr = np.asarray(value).reshape(-1)
        if mod.value_dim:
            if len(arr) != mod.num_values or not np.isfinite(arr.astype(np.float64)).all():
                raise FourmError(f"sample {row['id']}: {name} must be {mod.num_values} finite values, got {len(arr)}")
            row[name] = arr.astype(np.float32).tolist()
            continue
        if arr.dtype.kind not in "iu":
            raise FourmError(f"sample {row['id']}: {name} tokens must be integers, got dtype {arr.dtype}")
        if mod.patch_dim:
            row[name] = _check_patches(arr, mod, f"sample {row['id']}: {name}")
            continue
        if mod.kind != "sequence" and len(arr) != mod.length:
            raise FourmError(f"sample {row['id']}: {name} has {len(arr)} tokens (expected {mod.length})")
        if mod.kind == "sequence" and mod.length is not None and len(arr) > mod.length:
            raise FourmError(f"sample {row['id']}: {name} has {len(arr)} tokens (max {mod.length})")
        if arr.min() < 0 or arr.max() >= mod.vocab_size:
            raise FourmError(
                f"sample {row['id']}: {name} token ids must be in [0, {mod.vocab_size}), got {arr.min()}..{arr.max()}"
            )
        row[name] = arr.astype(np.int32).tolist()
    return row


def _check_patches(arr: np.ndarray, mod: ModalityTokens, where: str) -> list[int]:
    """Flat patch values (length * patch_dim,) -> a uint8 row, validating size and range."""
    if len(arr) != mod.num_values:
        raise FourmError(
            f"{where} has {len(arr)} patch values (expected {mod.length} patches x {mod.patch_dim} = {mod.num_values})"
        )
    if arr.min() < 0 or arr.max() >= LEVELS:
        raise FourmError(f"{where} patch values must be in [0, {LEVELS}), got {arr.min()}..{arr.max()}")
    return arr.astype(np.uint8).tolist()


def write_token_dataset(
    out: str | Path, splits: Mapping[str, Iterable[Mapping[str, Any]]], info: TokenDatasetInfo
) -> Path:
    """Write ``splits`` (split name -> token samples) and ``info`` to ``out`` atomically.

    Samples are dicts of modality -> token ids (list, array or tensor; missing/None allowed) plus
    an optional ``id`` (default: position in the split). Rows stream through the generator, so a
    split never needs to fit in memory.
    """
    import datasets as hfd

    info.validate()
    if not splits:
        raise FourmError("no splits to write (expected e.g. {'train': ..., 'val': ...})")
    features = _features(info)
    out = Path(out)
    with atomic_dir(out) as tmp:
        cache = tmp / ".cache"
        built = {}
        for split, samples in splits.items():
            total = len(samples) if hasattr(samples, "__len__") else None

            def rows(samples=samples, split=split, total=total):
                for i, s in enumerate(tqdm(samples, total=total, desc=f"write {split}", unit="sample")):
                    yield _check_row(s, info, i)

            try:
                built[split] = hfd.Dataset.from_generator(
                    rows,
                    features=features,
                    cache_dir=str(cache),
                    fingerprint=uuid.uuid4().hex,
                    split=hfd.NamedSplit(split),
                )
            except Exception as e:  # datasets wraps errors raised inside the generator
                cause = e
                while cause is not None and not isinstance(cause, FourmError):
                    cause = cause.__cause__ or cause.__context__
                if cause is not None:
                    raise FourmError(f"split '{split}': {cause}") from None
                raise
        _save_splits(tmp, built, info)
        del built
        shutil.rmtree(cache, ignore_errors=True)
    return out


def _save_splits(directory: Path, splits: Mapping[str, Any], info: TokenDatasetInfo) -> None:
    import datasets as hfd

    hfd.DatasetDict(dict(splits)).save_to_disk(str(directory))
    (directory / INFO_FILE).write_text(json.dumps(info.to_dict(), indent=2) + "\n")


def save_token_splits(out: str | Path, splits: Mapping[str, Any], info: TokenDatasetInfo) -> Path:
    """Write already built ``datasets.Dataset`` splits (e.g. a token dataset's splits after
    ``.map``) with ``info`` to ``out`` atomically, as :func:`write_token_dataset` does for samples."""
    info.validate()
    if not splits:
        raise FourmError("no splits to write (expected e.g. {'train': ..., 'val': ...})")
    out = Path(out)
    with atomic_dir(out) as tmp:
        _save_splits(tmp, splits, info)
    return out


class TokenSamples(Dataset):
    """A torch Dataset over one split: item ``i`` is ``{modality: LongTensor}`` (missing modalities
    left out; with ``include_id`` also ``"id": str``)."""

    def __init__(self, ds, modalities: Sequence[str] | None = None, include_id: bool = False):
        columns = [c for c in ds.column_names if c != "id"]
        self.modalities = list(columns if modalities is None else modalities)
        for m in self.modalities:
            if m not in columns:
                raise FourmError(f"unknown modality '{m}' (dataset columns: {', '.join(columns)})")
        self.include_id = include_id
        self.ds = ds.select_columns(self.modalities + (["id"] if include_id else []))

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, index: int) -> dict:
        row = self.ds[int(index)]
        out: dict[str, Any] = {
            m: torch.tensor(row[m], dtype=torch.float32 if isinstance(row[m][0], float) else torch.long)
            for m in self.modalities
            if row[m] is not None and len(row[m])
        }
        if self.include_id:
            out["id"] = row["id"]
        return out


class MixedDataset(Dataset):
    """Samples from several datasets with probabilities ~ ``weights``, deterministic given ``seed``.

    Item ``i`` comes from source ``sources[i]``; each source is walked in a seeded random order,
    reshuffled every time it is exhausted. ``length`` defaults to the sum of the source lengths.
    """

    def __init__(
        self, datasets: Sequence[Dataset], weights: Sequence[float], length: int | None = None, seed: int = 0
    ):
        if not datasets:
            raise FourmError("MixedDataset needs at least one dataset")
        if len(weights) != len(datasets):
            raise FourmError(f"got {len(weights)} weights for {len(datasets)} datasets")
        w = np.asarray(weights, dtype=np.float64)
        if not (w > 0).all() or not np.isfinite(w).all():
            raise FourmError(f"weights must be positive, got {list(weights)}")
        sizes = [len(d) for d in datasets]
        if min(sizes) == 0:
            raise FourmError(f"dataset {sizes.index(0)} of the mixture is empty")
        self.datasets = list(datasets)
        self.weights = w / w.sum()
        length = sum(sizes) if length is None else int(length)
        if length < 1:
            raise FourmError(f"length must be >= 1, got {length}")
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0]))
        self.sources = rng.choice(len(datasets), size=length, p=self.weights)
        self.items = np.zeros(length, dtype=np.int64)
        for k, n in enumerate(sizes):
            where = np.flatnonzero(self.sources == k)
            cycles = -(-len(where) // n)
            order = [
                np.random.default_rng(np.random.SeedSequence([int(seed), 1, k, c])).permutation(n)
                for c in range(cycles)
            ]
            self.items[where] = np.concatenate(order)[: len(where)] if order else []

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int):
        return self.datasets[int(self.sources[index])][int(self.items[index])]
