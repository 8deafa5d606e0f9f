"""Retrieval data: one split of a raw dataset (``fourm-data world``) or of a token dataset
(``fourm-data tokenize``), read as items of chosen modalities.

Raw values are tokenized with a :class:`fourm.generation.pipeline.FourMPipeline`'s codecs (the
bundle's tokenizers); token datasets are read as they are (their ids must come from the same
tokenizers as the model's). Pictures for a result strip come from the raw dataset, or are decoded
from tokens by the pipeline::

    data = RetrievalData("data/world_model", split="val", num=500)
    items = data.items(["caption"], pipe)          # [{"caption": ids (n,)}, ...]
    data.values("rgb", [3, 7], pipe)               # raw rgb arrays of rows 3 and 7
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from fourm.codecs import SequenceCodec
from fourm.core.schema import from_record
from fourm.data.raw_dataset import INFO_FILE as RAW_INFO
from fourm.data.raw_dataset import load_raw_dataset
from fourm.data.token_dataset import INFO_FILE as TOKEN_INFO
from fourm.data.token_dataset import load_token_dataset
from fourm.errors import FourmError
from fourm.retrieval.items import DEFAULT_EOS, DEFAULT_PAD


class RetrievalData:
    """The first ``num`` samples (default all) of ``split`` of a raw or token dataset at ``path``."""

    def __init__(self, path: str | Path, split: str = "val", num: int | None = None) -> None:
        self.path = Path(path)
        if (self.path / TOKEN_INFO).is_file():
            self.kind = "tokens"
            splits, info = load_token_dataset(self.path)
            self.token_info = info
            self.eos = info.specials.eos if info.specials is not None else DEFAULT_EOS
            self.pad = info.specials.pad if info.specials is not None else DEFAULT_PAD
        elif (self.path / RAW_INFO).is_file():
            self.kind = "raw"
            splits = load_raw_dataset(self.path)
            self.token_info = None
            self.eos = self.pad = None  # from the pipeline's text codec
        else:
            raise FourmError(
                f"{self.path} is not a dataset (expected a raw dataset from `fourm-data world` or a token "
                "dataset from `fourm-data tokenize`)"
            )
        if split not in splits:
            raise FourmError(f"{self.path} has no split '{split}' (splits: {', '.join(splits)})")
        ds = splits[split]
        if num is not None:
            if num < 1:
                raise FourmError(f"num must be >= 1, got {num}")
            ds = ds.select(range(min(num, len(ds))))
        self.split, self.dataset = split, ds
        self.ids = [str(i) for i in ds["id"]]

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def modalities(self) -> list[str]:
        return [c for c in self.dataset.column_names if c != "id"]

    def column(self, modality: str, pipeline: Any = None) -> str:
        """The dataset column of ``modality``: its own, or (raw data) its registry ``data_key``
        (``rgb_pixels`` reads ``rgb``)."""
        if modality in self.modalities or self.kind != "raw" or pipeline is None or modality not in pipeline.registry:
            return modality
        return pipeline.registry[modality].data_key or modality

    def _check(self, modalities: Sequence[str], model_modalities: Sequence[str] | None, pipeline: Any = None) -> None:
        for m in modalities:
            if self.column(m, pipeline) not in self.modalities:
                raise FourmError(f"unknown modality '{m}': {self.path} has {', '.join(self.modalities)}")
            if model_modalities is not None and m not in model_modalities:
                raise FourmError(f"unknown modality '{m}': the model has {', '.join(model_modalities)}")

    def specials(self, pipeline: Any = None) -> tuple[int | None, int | None]:
        """(eos, pad) ids of the sequences: the token dataset's, else the pipeline's text codec's."""
        if self.kind == "tokens":
            return self.eos, self.pad
        return pipeline_specials(pipeline) if pipeline is not None else (DEFAULT_EOS, DEFAULT_PAD)

    def values(self, modality: str, rows: Sequence[int] | None = None, pipeline: Any = None) -> list[Any]:
        """Raw values of ``modality`` at ``rows`` (None = missing); token datasets need ``pipeline``
        to decode them."""
        self._check([modality], None, pipeline)
        rows = list(range(len(self))) if rows is None else [int(r) for r in rows]
        if self.kind == "raw":
            key = self.column(modality, pipeline)
            part = self.dataset.select_columns([key]).select(rows)
            part = part.with_format("numpy", columns=[key], output_all_columns=True)
            return [from_record({key: part[i][key]}).get(key) for i in range(len(part))]
        part = self.dataset.select_columns([modality]).select(rows)
        if pipeline is None:
            raise FourmError(f"{self.path} holds tokens: decoding '{modality}' needs the model bundle's tokenizers")
        col = part[modality]
        present = [i for i, v in enumerate(col) if v]
        out: list[Any] = [None] * len(rows)
        if present:
            ids = _pad([torch.tensor(col[i]) for i in present], self.pad or 0)
            for i, value in zip(present, pipeline.detokenize(modality, ids)):
                out[i] = value
        return out

    def items(
        self,
        modalities: Sequence[str],
        pipeline: Any = None,
        rows: Sequence[int] | None = None,
        batch_size: int = 64,
        progress: bool = False,
    ) -> tuple[list[dict[str, torch.Tensor]], list[int]]:
        """Items {modality: ids} of ``rows`` (default all) that hold every one of ``modalities``, and
        those rows. Raw values are tokenized with ``pipeline`` in batches of ``batch_size``."""
        names = pipeline.modalities if pipeline is not None else None
        self._check(modalities, names, pipeline)
        rows = list(range(len(self))) if rows is None else [int(r) for r in rows]
        columns: dict[str, list] = {}
        for m in modalities:
            if self.kind == "tokens":
                col = self.dataset.select_columns([m]).select(rows)[m]
                columns[m] = [torch.tensor(v, dtype=torch.long) if v else None for v in col]
            else:
                if pipeline is None:
                    raise FourmError(f"{self.path} holds raw values: tokenizing them needs a model bundle")
                columns[m] = self._tokenize(m, rows, pipeline, batch_size, progress)
        keep = [i for i in range(len(rows)) if all(columns[m][i] is not None for m in modalities)]
        items = [{m: columns[m][i] for m in modalities} for i in keep]
        return items, [rows[i] for i in keep]

    def _tokenize(self, modality: str, rows: list[int], pipeline: Any, batch_size: int, progress: bool) -> list:
        out: list = [None] * len(rows)
        starts = range(0, len(rows), batch_size)
        for start in tqdm(starts, desc=f"tokenize {modality}", disable=not progress, leave=False):
            values = self.values(modality, rows[start : start + batch_size], pipeline)
            present = [i for i, v in enumerate(values) if v is not None]
            if present:
                ids = pipeline.tokenize(modality, [values[i] for i in present])
                for i, row in zip(present, ids):
                    out[start + i] = row
        return out


def pipeline_specials(pipeline: Any) -> tuple[int | None, int | None]:
    """(eos, pad) of the pipeline's text codec (defaults without sequences)."""
    seq = next((c for c in pipeline.codecs.values() if isinstance(c, SequenceCodec)), None)
    return (seq.eos, seq.pad) if seq is not None else (DEFAULT_EOS, DEFAULT_PAD)


def _pad(rows: list[torch.Tensor], value: int) -> torch.Tensor:
    width = max(r.numel() for r in rows)
    return torch.stack([torch.cat([r, r.new_full((width - r.numel(),), value)]) for r in rows])
