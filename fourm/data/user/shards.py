"""Sharded image + caption sources users already have: webdataset-style tar shards and parquet files.

Both read shard by shard, one sample (tar) or one record batch (parquet) in memory at a time, and
offer the interface of :class:`fourm.data.user.ImageFolderSource` (``ids``, ``keys``, ``splits``,
``iter(ids)``), so ``fourm-data import`` writes the same raw dataset from them.

**webdataset** (``.tar``, ``.tar.gz``, ``.tgz``): the files of one sample are consecutive members
sharing a key, the member name up to its first dot (``000123.jpg`` + ``000123.txt``); the image is
the member with an image extension (jpg, jpeg, png, webp, bmp, tif, tiff), the caption a ``.txt``
member or the ``text`` (or ``caption``) field of a ``.json`` member; other members are ignored.

**parquet**: one row per sample; ``image_column`` holds the encoded image file (binary, or a
``{"bytes", "path"}`` struct as ``datasets`` writes an ``Image`` feature), ``text_column`` the caption
(default ``text``, else ``caption`` when the shards have no ``text`` column), ``id_column`` the id
(default: ``<shard>/<row>``), ``split_column`` the split (train or val).

``root`` is a folder (every shard under it, recursively, sorted) or a glob pattern (``shards/*.tar``).
Sample ids are ``<shard path relative to the shards' common folder, without extension>/<key or row>``.
Splits: ``split_column`` (parquet), else by shard name when there is a train and a val shard (a
``train/`` or ``val/`` / ``validation/`` folder, or a name starting with ``train`` / ``val`` /
``validation`` / ``valid`` then ``-``, ``_`` or ``.``, as ``train-00000-of-00004.parquet``; shards named
``test...`` are left out, other shards are train), else None (``--val-fraction`` decides).

A shard that cannot be read (not a tar / parquet file, truncated, missing a column) is a one-line
FourmError naming it, raised while the shards are listed, before anything is written; an image that
cannot be decoded or a missing caption only skips its sample (counted in the :class:`LoadReport`).
"""

from __future__ import annotations

import glob
import io
import json
import os
import posixpath
import re
import tarfile
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from fourm.core.schema import ALL_KEYS
from fourm.data.user.geometry import fit_images
from fourm.data.user.imagefolder import CAPTION_COLUMNS, SPLIT_VALUES
from fourm.data.user.readers import IMAGE_EXTENSIONS
from fourm.data.user.report import (
    BAD_ANNOTATION,
    CORRUPT_FILE,
    DUPLICATE,
    MISSING_FILE,
    LoadReport,
    SkipSample,
)
from fourm.errors import FourmError

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
PARQUET_SUFFIXES = (".parquet",)
IMAGE_EXTS = tuple(e.lstrip(".") for e in IMAGE_EXTENSIONS)
TEXT_EXTS = ("txt", "text", "caption")
JSON_EXTS = ("json",)
SHARD_SPLITS = {"train": "train", "val": "val", "validation": "val", "valid": "val", "test": "test"}
_SPLIT_NAME = re.compile(r"^(train|validation|valid|val|test)(?:[-_.]|$)", re.IGNORECASE)
PARQUET_BATCH = 64  # rows decoded at a time


def _first_line(error: BaseException) -> str:
    return ((str(error).splitlines() or [""])[0] or type(error).__name__)[:160]


def bad_shard(path: Path, error: BaseException | str) -> FourmError:
    detail = error if isinstance(error, str) else _first_line(error)
    return FourmError(f"bad shard {path}: {detail}")


def _suffix(path: Path, suffixes: tuple[str, ...]) -> str | None:
    name = path.name.lower()
    return next((s for s in sorted(suffixes, key=len, reverse=True) if name.endswith(s)), None)


def find_shards(root: str | Path, suffixes: tuple[str, ...], kind: str) -> list[Path]:
    """The shard files of ``root`` (a folder, searched recursively, or a glob pattern), sorted."""
    text = str(root)
    path = Path(text)
    if path.is_dir():
        found = [p for p in path.rglob("*") if p.is_file() and _suffix(p, suffixes)
                 and not any(part.startswith(".") for part in p.relative_to(path).parts)]  # fmt: skip
    elif path.is_file():
        found = [path] if _suffix(path, suffixes) else []
        if not found:
            raise FourmError(f"{path} is not a {kind} shard (expected {', '.join(suffixes)})")
    elif glob.has_magic(text):
        found = [Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file() and _suffix(Path(p), suffixes)]
    else:
        raise FourmError(f"--root {text} not found (expected a folder of {kind} shards or a glob pattern)")
    if not found:
        raise FourmError(f"no {kind} shards ({', '.join(suffixes)}) under {text}")
    return sorted(found)


def shard_names(shards: list[Path], suffixes: tuple[str, ...]) -> dict[Path, str]:
    """{shard: its id prefix}: the path relative to the shards' common folder, without its suffix."""
    base = Path(os.path.commonpath([str(p.parent.resolve()) for p in shards]))
    out = {}
    for p in shards:
        rel = p.resolve().relative_to(base).as_posix()
        out[p] = rel[: len(rel) - len(_suffix(p, suffixes) or "")]
    return out


def shard_split(path: Path) -> str | None:
    """The split a shard's folder or file name gives (train / val / test), else None."""
    folder = SHARD_SPLITS.get(path.parent.name.lower())
    if folder is not None:
        return folder
    match = _SPLIT_NAME.match(path.name)
    return SHARD_SPLITS[match.group(1).lower()] if match else None


def decode_image(data: bytes, where: str, draft_side: int | None = None) -> np.ndarray:
    """Encoded image bytes -> uint8 (H, W, 3) (SkipSample if they do not decode)."""
    from PIL import Image, ImageOps

    from fourm.utils.images import check_image_size, to_8bit

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data))
            check_image_size(img, where)
            if draft_side and img.format == "JPEG" and min(img.size) > 2 * draft_side:
                scale = min(img.size) / (2 * draft_side)
                img.draft("RGB", (int(np.ceil(img.size[0] / scale)), int(np.ceil(img.size[1] / scale))))
            img = ImageOps.exif_transpose(img)
            img.load()
    except Exception as e:  # decoders raise many types; FourmError: oversized / empty
        raise SkipSample(CORRUPT_FILE, where, _first_line(e)) from None
    return np.asarray(to_8bit(img).convert("RGB"), dtype=np.uint8)


class _ShardSource:
    """What the two formats share: shard listing, ids, splits by shard, the lazy ``iter``."""

    kind = ""
    suffixes: tuple[str, ...] = ()

    def __init__(self, root: str | Path, size: int, report: LoadReport | None = None) -> None:
        self.root = str(root)
        self.size = int(size)
        if self.size <= 0:
            raise FourmError(f"image size must be > 0, got {size}")
        self.report = report if report is not None else LoadReport()
        self.report.source = self.report.source or f"{self.kind} {self.root}"
        self.shards = find_shards(root, self.suffixes, self.kind)
        self.names = shard_names(self.shards, self.suffixes)
        self.ids: list[str] = []
        self.splits: dict[str, str] | None = None
        self._shard_of: dict[str, Path] = {}

    def _split_by_shard(self) -> None:
        """Splits from shard names when there is a train and a val shard; test shards left out."""
        named = {p: shard_split(p) for p in self.shards}
        if not ({"train", "val"} <= set(named.values())):
            return
        tests = [p for p, s in named.items() if s == "test"]
        if tests:
            dropped = {p for p in tests}
            kept = [i for i in self.ids if self._shard_of[i] not in dropped]
            self.report.note(f"sample of a test shard left out ({len(tests)} shards)", len(self.ids) - len(kept))
            self.ids = kept
        self.splits = {i: named[self._shard_of[i]] or "train" for i in self.ids}

    def _register(self, sample_id: str, shard: Path, where: str) -> bool:
        if sample_id in self._shard_of:
            self.report.skip(DUPLICATE, where, f"id '{sample_id}' already used in {self._shard_of[sample_id].name}")
            return False
        self._shard_of[sample_id] = shard
        self.ids.append(sample_id)
        return True

    def __len__(self) -> int:
        return len(self.ids)

    def _load_shard(self, shard: Path, wanted: set[str]) -> Iterator[dict]:
        raise NotImplementedError

    def iter(self, ids: Iterable[str] | None = None) -> Iterator[dict]:
        """Yield loaded samples (all, or those of ``ids``) in shard order, one shard open at a time,
        only the shards holding a wanted id; skipped samples are counted in ``report``."""
        wanted = set(self.ids if ids is None else ids)
        needed = {self._shard_of[i] for i in wanted if i in self._shard_of}
        for shard in self.shards:
            if shard in needed:
                yield from self._load_shard(shard, wanted)

    def __iter__(self) -> Iterator[dict]:
        return self.iter()

    def _finish(self, rgb: np.ndarray, sample_id: str) -> dict:
        return {"id": sample_id, **fit_images({"rgb": rgb}, self.size)}


# ------------------------------------------------------------------------------------ webdataset
def _member_key(name: str) -> tuple[str, str] | None:
    """A tar member name -> (sample key, lower-case extension), None for hidden or extension-less files."""
    folder, base = posixpath.split(name)
    if not base or base.startswith(".") or "." not in base:
        return None
    stem, ext = base.split(".", 1)
    return posixpath.join(folder, stem), ext.lower()


def _members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """The members of ``tar`` in order, without keeping their headers (a TarFile lists every member
    it has read: a shard of millions of files would fill memory with them)."""
    while (member := tar.next()) is not None:
        tar.members.clear()
        yield member


def _image_ext(exts: Iterable[str]) -> str | None:
    return next((e for e in exts if e.rsplit(".", 1)[-1] in IMAGE_EXTS), None)


def _check_tar_end(shard: Path, end: int) -> None:
    """ReadError unless an uncompressed tar holds its end-of-archive marker (two zero blocks) where
    its last member ends: without it the file was cut (tarfile reads a cut archive as a shorter one)."""
    with open(shard, "rb") as f:
        f.seek(end)
        tail = f.read(2 * tarfile.BLOCKSIZE)
    if len(tail) < 2 * tarfile.BLOCKSIZE or tail.strip(b"\0"):
        raise tarfile.ReadError(f"truncated: no end-of-archive marker after byte {end} (a cut or partial download?)")


class WebDatasetSource(_ShardSource):
    """webdataset-style tar shards of images and captions (see the module docstring)."""

    kind = "webdataset"
    suffixes = TAR_SUFFIXES

    def __init__(self, root: str | Path, size: int, report: LoadReport | None = None) -> None:
        super().__init__(root, size, report)
        has_caption = False
        for shard in self.shards:
            keys, caption = self._scan(shard)
            has_caption |= caption
            for key in keys:
                self._register(f"{self.names[shard]}/{key}", shard, f"{shard}:{key}")
        self.keys = tuple(k for k in ALL_KEYS if k in ({"id", "rgb"} | ({"caption"} if has_caption else set())))
        self._split_by_shard()

    def _scan(self, shard: Path) -> tuple[list[str], bool]:
        """(keys of the samples with an image, in order; whether some sample has a caption file).
        Reads the member headers only (an uncompressed shard is not read past them)."""
        exts: dict[str, list[str]] = {}
        plain = _suffix(shard, (".tar",)) is not None
        end = 0  # where the last member's data (padded to 512-byte blocks) ends
        try:
            with tarfile.open(shard, mode="r:*") as tar:
                for member in _members(tar):
                    end = member.offset_data + -(-member.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
                    parts = _member_key(member.name) if member.isfile() else None
                    if parts is not None:
                        exts.setdefault(parts[0], []).append(parts[1])
            if plain and end:
                _check_tar_end(shard, end)
        except (tarfile.TarError, OSError, EOFError, ValueError) as e:
            raise bad_shard(shard, e) from None
        if not exts:
            raise bad_shard(shard, "no files in the archive")
        keys, caption = [], False
        for key, found in exts.items():
            if _image_ext(found) is None:
                self.report.skip(MISSING_FILE, f"{shard}:{key}", f"no image file (has {', '.join(sorted(found))})")
                continue
            keys.append(key)
            caption |= any(e in TEXT_EXTS + JSON_EXTS for e in found)
        return keys, caption

    def _groups(self, shard: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
        """(key, {extension: bytes}) of each run of consecutive members sharing a key, streamed."""
        key, files = None, {}
        try:
            with tarfile.open(shard, mode="r|*") as tar:
                for member in _members(tar):
                    parts = _member_key(member.name) if member.isfile() else None
                    if parts is None:
                        continue
                    if parts[0] != key:
                        if key is not None:
                            yield key, files
                        key, files = parts[0], {}
                    ext = parts[1]
                    if ext.rsplit(".", 1)[-1] in IMAGE_EXTS or ext in TEXT_EXTS + JSON_EXTS:
                        handle = tar.extractfile(member)
                        files[ext] = handle.read() if handle is not None else b""
        except (tarfile.TarError, OSError, EOFError, ValueError) as e:
            raise bad_shard(shard, e) from None
        if key is not None:
            yield key, files

    def _load_shard(self, shard: Path, wanted: set[str]) -> Iterator[dict]:
        done: set[str] = set()
        for key, files in self._groups(shard):
            sample_id = f"{self.names[shard]}/{key}"
            if sample_id not in wanted or sample_id in done or self._shard_of.get(sample_id) != shard:
                continue
            done.add(sample_id)
            try:
                sample = self._sample(shard, key, sample_id, files)
            except SkipSample as e:
                self.report.skip_error(e)
                continue
            self.report.loaded += 1
            yield sample

    def _sample(self, shard: Path, key: str, sample_id: str, files: dict[str, bytes]) -> dict:
        where = f"{shard}:{key}"
        ext = _image_ext(files)
        if ext is None:
            raise SkipSample(MISSING_FILE, where, "no image file")
        sample = self._finish(decode_image(files[ext], f"{where}.{ext}", self.size), sample_id)
        if "caption" in self.keys:
            sample["caption"] = self._caption(files, where)
        return sample

    @staticmethod
    def _caption(files: dict[str, bytes], where: str) -> str:
        text: Any = None
        for ext in TEXT_EXTS:
            if ext in files:
                text = files[ext].decode("utf-8", errors="replace")
                break
        else:
            for ext in JSON_EXTS:
                if ext in files:
                    try:
                        row = json.loads(files[ext].decode("utf-8", errors="replace"))
                    except json.JSONDecodeError as e:
                        raise SkipSample(BAD_ANNOTATION, f"{where}.{ext}", f"invalid JSON: {e.msg}") from None
                    if isinstance(row, dict):
                        text = next((row[c] for c in CAPTION_COLUMNS if c in row), None)
                    break
        if not isinstance(text, str) or not text.strip():
            raise SkipSample(BAD_ANNOTATION, where, "no caption (.txt, or a .json with a 'text' field; others have one)")
        return text.strip()


# ------------------------------------------------------------------------------------ parquet
class ParquetSource(_ShardSource):
    """Parquet shards with an encoded-image column and a caption column (see the module docstring)."""

    kind = "parquet"
    suffixes = PARQUET_SUFFIXES

    def __init__(
        self,
        root: str | Path,
        size: int,
        report: LoadReport | None = None,
        image_column: str | None = None,
        text_column: str | None = None,
        id_column: str | None = None,
        split_column: str | None = None,
    ) -> None:
        super().__init__(root, size, report)
        self.image_column = image_column or "image"
        self.id_column, self.split_column = id_column, split_column
        self.text_column = text_column
        self._rows: dict[Path, list[str]] = {}  # shard -> the id of each row ("" for a skipped row)
        column_splits: dict[str, str] = {}
        for shard in self.shards:
            names = self._columns(shard)
            if text_column is None and self.text_column is None:
                self.text_column = next((c for c in CAPTION_COLUMNS if c in names), None)
            needed = [self.image_column] + [c for c in (text_column, id_column, split_column) if c]
            missing = [c for c in needed if c not in names]
            if missing:
                raise bad_shard(shard, f"no column '{missing[0]}' (columns: {', '.join(names)})")
            self._scan(shard, column_splits)
        if self.text_column is not None:
            for shard in self.shards:
                if self.text_column not in self._columns(shard):
                    raise bad_shard(shard, f"no column '{self.text_column}' (the other shards' caption column)")
        self.keys = ("id", "rgb", "caption") if self.text_column else ("id", "rgb")
        if split_column is not None:
            self.splits = {i: column_splits[i] for i in self.ids}
        else:
            self._split_by_shard()

    def _file(self, shard: Path):
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(shard)
        except Exception as e:  # ArrowInvalid, OSError, ...
            raise bad_shard(shard, e) from None

    def _columns(self, shard: Path) -> list[str]:
        return list(self._file(shard).schema_arrow.names)

    def _batches(self, shard: Path, columns: list[str]) -> Iterator[dict[str, list]]:
        pf = self._file(shard)
        try:
            for batch in pf.iter_batches(batch_size=PARQUET_BATCH, columns=columns):
                yield batch.to_pydict()
        except Exception as e:  # a corrupt page surfaces only when it is read
            raise bad_shard(shard, e) from None

    def _scan(self, shard: Path, column_splits: dict[str, str]) -> None:
        columns = [c for c in (self.id_column, self.split_column) if c]
        rows: list[str] = []
        if columns:  # read only these columns
            batches: Iterable[tuple[int, dict[str, list]]] = (
                (len(b[columns[0]]), b) for b in self._batches(shard, columns))
        else:  # ids from the row count in the footer: nothing else is read
            batches = [(self._file(shard).metadata.num_rows, {})]
        for count, batch in batches:
            for j in range(count):
                row = len(rows)
                where = f"{shard}:{row}"
                raw_id = batch[self.id_column][j] if self.id_column else row
                if raw_id is None or str(raw_id) == "":
                    self.report.skip(BAD_ANNOTATION, where, f"empty '{self.id_column}'")
                    rows.append("")
                    continue
                sample_id = f"{self.names[shard]}/{raw_id}"
                if self.split_column:
                    value = batch[self.split_column][j]
                    split = SPLIT_VALUES.get(value.strip().lower()) if isinstance(value, str) else None
                    if split is None:
                        self.report.skip(BAD_ANNOTATION, where, f"'{self.split_column}' must be train or val, got {value!r}")
                        rows.append("")
                        continue
                if not self._register(sample_id, shard, where):
                    rows.append("")
                    continue
                if self.split_column:
                    column_splits[sample_id] = split
                rows.append(sample_id)
        self._rows[shard] = rows

    def _load_shard(self, shard: Path, wanted: set[str]) -> Iterator[dict]:
        columns = [self.image_column] + ([self.text_column] if self.text_column else [])
        ids = self._rows[shard]
        row = 0
        for batch in self._batches(shard, columns):
            for j in range(len(batch[self.image_column])):
                sample_id = ids[row] if row < len(ids) else ""
                row += 1
                if not sample_id or sample_id not in wanted:
                    continue
                try:
                    sample = self._sample(shard, row - 1, sample_id, batch, j)
                except SkipSample as e:
                    self.report.skip_error(e)
                    continue
                self.report.loaded += 1
                yield sample

    def _sample(self, shard: Path, row: int, sample_id: str, batch: dict[str, list], j: int) -> dict:
        where = f"{shard}:{row}"
        value = batch[self.image_column][j]
        data = value.get("bytes") if isinstance(value, dict) else value
        if data is None and isinstance(value, dict) and value.get("path"):
            path = Path(value["path"])
            path = path if path.is_absolute() else shard.parent / path
            try:
                data = path.read_bytes()
            except OSError:
                raise SkipSample(MISSING_FILE, where, f"image path {value['path']} not found") from None
        if not isinstance(data, (bytes, bytearray)) or not data:
            raise SkipSample(MISSING_FILE, where, f"no image bytes in '{self.image_column}'")
        sample = self._finish(decode_image(bytes(data), where, self.size), sample_id)
        if self.text_column:
            text = batch[self.text_column][j]
            if not isinstance(text, str) or not text.strip():
                raise SkipSample(BAD_ANNOTATION, where, f"no '{self.text_column}' caption (other rows have one)")
            sample["caption"] = text.strip()
        return sample
