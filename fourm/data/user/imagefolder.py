"""A Hugging Face style ``imagefolder``: images plus ``metadata.jsonl``, read without ``datasets``.

Each ``metadata.jsonl`` line is ``{"file_name": "img/0001.jpg", "text": "a caption", ...}``:
``text`` (or ``caption``) -> caption, ``bboxes`` -> bboxes ([{"label", "box"}] normalised),
``color_palette`` -> color_palette, every other column -> metadata (a ``metadata`` object column is
merged into it). Without ``metadata.jsonl``
every image under the root is an rgb-only sample. The sample id is ``file_name`` without extension.

Splits: with ``split_column`` each row's value of that column (``train`` or ``val``; also
``validation`` / ``valid``) names its split; otherwise a root holding ``train/`` and ``val/`` (or
``validation/``) folders is split by folder (each may hold its own ``metadata.jsonl``, whose file
names are relative to it). ``splits`` is then {id: "train" | "val"}; None: no split in the data.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath

from fourm.core.schema import ALL_KEYS
from fourm.data.user.geometry import fit_images, transform_boxes
from fourm.data.user.readers import IMAGE_EXTENSIONS, check_bboxes, check_metadata, check_palette, read_rgb
from fourm.data.user.report import (
    BAD_ANNOTATION,
    BAD_METADATA_LINE,
    DUPLICATE,
    LoadReport,
    SkipSample,
)
from fourm.errors import FourmError

METADATA_FILE = "metadata.jsonl"
CAPTION_COLUMNS = ("text", "caption")
FILE_COLUMN = "file_name"
SPLIT_FOLDERS = {"train": "train", "val": "val", "validation": "val"}  # folder name -> split
SPLIT_VALUES = {"train": "train", "val": "val", "validation": "val", "valid": "val"}  # column value -> split


def split_folders(root: Path) -> dict[str, str]:
    """{folder name: split} of the split folders of ``root`` (``train`` and ``val`` / ``validation``);
    empty unless there is a ``train`` folder and a val one."""
    found = {name: split for name, split in SPLIT_FOLDERS.items() if (root / name).is_dir()}
    return found if "train" in found.values() and "val" in found.values() else {}


class ImageFolderSource:
    """The samples of an imagefolder: ``ids``/``keys`` known up front, ``iter(ids)`` loads lazily.

    Bad ``metadata.jsonl`` lines are counted in ``report`` when the folder is opened; missing or
    corrupt images and malformed annotations when the sample is loaded.
    """

    def __init__(
        self, root: str | Path, size: int, report: LoadReport | None = None, split_column: str | None = None
    ) -> None:
        self.root = Path(root)
        self.split_column = split_column
        self.size = int(size)
        if self.size <= 0:
            raise FourmError(f"image size must be > 0, got {size}")
        if not self.root.is_dir():
            raise FourmError(f"imagefolder not found: {self.root} (expected a directory of images)")
        self.report = report if report is not None else LoadReport()
        self.report.source = self.report.source or f"imagefolder {self.root}"
        self._entries: dict[str, tuple[Path, dict]] = {}  # id -> (image path, other columns)
        self.splits: dict[str, str] | None = None  # id -> train / val, when the data says
        self._column_splits: dict[str, str] = {}
        self._column_seen = False  # whether some metadata row has the split column
        meta = self.root / METADATA_FILE
        folders = split_folders(self.root)
        if meta.is_file():
            self._read_metadata(meta, self.root)
        elif folders and any((self.root / f / METADATA_FILE).is_file() for f in folders):
            for folder in folders:
                if (self.root / folder / METADATA_FILE).is_file():
                    self._read_metadata(self.root / folder / METADATA_FILE, self.root / folder)
        else:
            if split_column is not None:
                raise FourmError(f"--split-column {split_column}: {self.root} has no {METADATA_FILE} to read it from")
            for path in _image_files(self.root):
                self._add(path, {}, path)
        self.ids = list(self._entries)
        if split_column is not None:
            if not self._column_seen:
                raise FourmError(f"--split-column {split_column}: no row of {METADATA_FILE} has that column")
            self.splits = {i: self._column_splits[i] for i in self.ids}
        elif folders:
            parts = {i: PurePosixPath(i).parts[0] for i in self.ids}
            self.splits = {i: SPLIT_FOLDERS.get(first, "train") for i, first in parts.items()}
        self.keys = self._find_keys()

    def _id(self, path: Path) -> str:
        return path.relative_to(self.root).with_suffix("").as_posix()

    def _add(self, path: Path, columns: dict, where: object) -> bool:
        sample_id = self._id(path)
        if sample_id in self._entries:
            self.report.skip(DUPLICATE, where, f"id '{sample_id}' already used by {self._entries[sample_id][0].name}")
            return False
        self._entries[sample_id] = (path, columns)
        return True

    def _read_metadata(self, meta: Path, base: Path) -> None:
        try:
            lines = meta.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise FourmError(f"cannot read {meta}: {e}") from None
        listed = set()
        for lineno, line in enumerate(lines, 1):
            where = f"{meta}:{lineno}"
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                self.report.skip(BAD_METADATA_LINE, where, f"invalid JSON: {e.msg}")
                continue
            name = row.get(FILE_COLUMN) if isinstance(row, dict) else None
            if not isinstance(name, str) or not name:
                self.report.skip(BAD_METADATA_LINE, where, f"no '{FILE_COLUMN}' string")
                continue
            rel = PurePosixPath(name)
            if rel.is_absolute() or ".." in rel.parts:
                self.report.skip(BAD_METADATA_LINE, where, f"'{FILE_COLUMN}' must be relative to the folder: {name}")
                continue
            split = None
            if self.split_column is not None:
                value = row.get(self.split_column)
                self._column_seen |= self.split_column in row
                split = SPLIT_VALUES.get(value.strip().lower()) if isinstance(value, str) else None
                if split is None:
                    self.report.skip(
                        BAD_METADATA_LINE, where, f"'{self.split_column}' must be train or val, got {value!r}"
                    )
                    continue
            path = base / rel
            listed.add(path)
            columns = {k: v for k, v in row.items() if k not in (FILE_COLUMN, self.split_column)}
            if self._add(path, columns, where) and split is not None:
                self._column_splits[self._id(path)] = split
        unlisted = sum(1 for p in _image_files(base) if p not in listed)
        if unlisted:
            self.report.note(f"image not listed in {METADATA_FILE} (ignored)", unlisted)

    def _find_keys(self) -> tuple[str, ...]:
        """The raw-sample keys every loaded sample will have."""
        keys = {"id", "rgb"}
        for _, columns in self._entries.values():
            for col in columns:
                if col in CAPTION_COLUMNS:
                    keys.add("caption")
                elif col in ("bboxes", "color_palette"):
                    keys.add(col)
                else:
                    keys.add("metadata")
        return tuple(k for k in ALL_KEYS if k in keys)

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, sample_id: str) -> dict:
        """Load one sample (raises SkipSample; :meth:`iter` catches and counts it)."""
        path, columns = self._entries[sample_id]
        where = path
        rgb = read_rgb(path, draft_side=self.size)
        h, w = rgb.shape[:2]
        sample: dict = {"id": sample_id, **fit_images({"rgb": rgb}, self.size)}
        if "caption" in self.keys:
            text = next((columns[c] for c in CAPTION_COLUMNS if c in columns), None)
            if not isinstance(text, str) or not text.strip():
                raise SkipSample(BAD_ANNOTATION, where, f"no '{CAPTION_COLUMNS[0]}' caption (other entries have one)")
            sample["caption"] = text.strip()
        if "bboxes" in self.keys:
            boxes, dropped = transform_boxes(check_bboxes(columns.get("bboxes", []), where), w, h)
            if dropped:
                self.report.note("box outside the centre crop dropped", dropped)
            sample["bboxes"] = boxes
        if "color_palette" in self.keys:
            if "color_palette" in columns:
                sample["color_palette"] = check_palette(columns["color_palette"], where)
            else:
                from fourm.data.derive import color_palette

                sample["color_palette"] = color_palette(sample["rgb"])
        if "metadata" in self.keys:
            other = {k: v for k, v in columns.items() if k not in (*CAPTION_COLUMNS, "bboxes", "color_palette")}
            nested = other.pop("metadata", None)  # a "metadata" object column is merged, not nested
            if isinstance(nested, dict):
                other = {**nested, **other}
            elif nested is not None:
                other["metadata"] = nested
            sample["metadata"] = check_metadata(other, where)
        return sample

    def iter(self, ids: Iterable[str] | None = None) -> Iterator[dict]:
        """Yield loaded samples (all, or ``ids`` in the given order), counting skips in ``report``."""
        for sample_id in self.ids if ids is None else ids:
            try:
                sample = self.load(sample_id)
            except SkipSample as e:
                self.report.skip_error(e)
                continue
            self.report.loaded += 1
            yield sample

    def __iter__(self) -> Iterator[dict]:
        return self.iter()


def _image_files(root: Path) -> list[Path]:
    return sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
        and p.is_file()
    )


def iter_imagefolder(root: str | Path, size: int, report: LoadReport | None = None) -> Iterator[dict]:
    """Yield raw samples (with ``id``) of an imagefolder, resized + centre-cropped to ``size``.

    Pass a :class:`LoadReport` to learn what was loaded and skipped (it is filled as you iterate).
    """
    yield from ImageFolderSource(root, size, report).iter()
