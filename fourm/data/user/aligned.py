"""Aligned per-modality folders: ``root/<modality>/<id>.<ext>``, one file per modality and sample.

    root/rgb/0001.jpg   root/depth/0001.png   root/semseg/0001.png   root/caption/0001.txt ...

Sample ids come from the first requested image modality (schema order: rgb, depth, semseg, normals,
edges); a sample whose file is missing or corrupt for any requested modality is skipped.
Accepted extensions per modality: see ``fourm.data.user.readers.EXTENSIONS``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from fourm.core.schema import ALL_KEYS, IMAGE_KEYS
from fourm.data.user.geometry import check_aligned, fit_images, transform_boxes
from fourm.data.user.readers import (
    EXTENSIONS,
    check_bboxes,
    check_metadata,
    check_palette,
    read_depth,
    read_edges,
    read_json,
    read_normals,
    read_rgb,
    read_semseg,
    read_text,
)
from fourm.data.user.report import MISSING_FILE, LoadReport, SkipSample
from fourm.errors import FourmError

IMAGE_READERS = {
    "rgb": read_rgb,
    "depth": read_depth,
    "semseg": read_semseg,
    "normals": read_normals,
    "edges": read_edges,
}
MODALITIES = tuple(EXTENSIONS)  # every modality a folder may hold


def _index_folder(folder: Path, extensions: tuple[str, ...]) -> dict[str, Path]:
    """id -> file for the files of ``folder`` with an accepted extension (earlier extensions win)."""
    rank = {ext: i for i, ext in enumerate(extensions)}
    best: dict[str, Path] = {}
    for path in folder.iterdir():
        ext = path.suffix.lower()
        if ext not in rank or path.name.startswith(".") or not path.is_file():
            continue
        old = best.get(path.stem)
        if old is None or rank[ext] < rank[old.suffix.lower()]:
            best[path.stem] = path
    return best


class AlignedFolderSource:
    """The samples of aligned per-modality folders: ``ids``/``keys`` up front, ``iter(ids)`` loads lazily."""

    def __init__(
        self,
        root: str | Path,
        size: int,
        modalities: Iterable[str] | None = None,
        report: LoadReport | None = None,
    ) -> None:
        self.root = Path(root)
        self.size = int(size)
        if self.size <= 0:
            raise FourmError(f"image size must be > 0, got {size}")
        if not self.root.is_dir():
            raise FourmError(f"data folder not found: {self.root} (expected root/<modality>/<id>.<ext>)")
        present = [m for m in MODALITIES if (self.root / m).is_dir()]
        if modalities is None:
            if not present:
                raise FourmError(
                    f"no modality folders under {self.root} (expected sub-folders named {', '.join(MODALITIES)})"
                )
            self.modalities = tuple(present)
        else:
            requested = list(dict.fromkeys(modalities))
            for m in requested:
                if m not in MODALITIES:
                    raise FourmError(f"unknown modality '{m}' (folders can hold: {', '.join(MODALITIES)})")
                if m not in present:
                    raise FourmError(f"modality folder '{m}' not found under {self.root}")
            self.modalities = tuple(m for m in MODALITIES if m in requested)
        images = [m for m in self.modalities if m in IMAGE_KEYS]
        if not images:
            raise FourmError(f"aligned folders need at least one image modality ({', '.join(IMAGE_KEYS)})")
        self.primary = images[0]
        self.report = report if report is not None else LoadReport()
        self.report.source = self.report.source or f"folders {self.root} ({', '.join(self.modalities)})"
        self._files = {m: _index_folder(self.root / m, EXTENSIONS[m]) for m in self.modalities}
        self.ids = sorted(self._files[self.primary])
        self.keys = tuple(k for k in ALL_KEYS if k == "id" or k in self.modalities)

    def __len__(self) -> int:
        return len(self.ids)

    def _path(self, modality: str, sample_id: str) -> Path:
        path = self._files[modality].get(sample_id)
        if path is None:
            exts = "|".join(e.lstrip(".") for e in EXTENSIONS[modality])
            raise SkipSample(MISSING_FILE, self.root / modality / f"{sample_id}.{{{exts}}}")
        return path

    def load(self, sample_id: str) -> dict:
        """Load one sample (raises SkipSample; :meth:`iter` catches and counts it)."""
        paths = {m: self._path(m, sample_id) for m in self.modalities}  # missing files first: cheap
        images = {}
        for m in self.modalities:
            if m == "rgb":
                images[m] = read_rgb(paths[m], draft_side=self.size)
            elif m in IMAGE_READERS:
                images[m] = IMAGE_READERS[m](paths[m])
        check_aligned(images, self.root / self.primary / sample_id)
        h, w = images[self.primary].shape[:2]
        sample: dict = {"id": sample_id, **fit_images(images, self.size)}
        for m in self.modalities:
            path = paths[m]
            if m == "caption":
                sample[m] = read_text(path)
            elif m == "bboxes":
                boxes, dropped = transform_boxes(check_bboxes(read_json(path), path), w, h)
                if dropped:
                    self.report.note("box outside the centre crop dropped", dropped)
                sample[m] = boxes
            elif m == "color_palette":
                sample[m] = check_palette(read_json(path), path)
            elif m == "metadata":
                sample[m] = check_metadata(read_json(path), path)
        return {k: sample[k] for k in self.keys}

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


def iter_aligned_folders(
    root: str | Path, size: int, modalities: Iterable[str] | None = None, report: LoadReport | None = None
) -> Iterator[dict]:
    """Yield raw samples (with ``id``) from ``root/<modality>/<id>.<ext>``, resized + centre-cropped.

    ``modalities`` defaults to every modality folder present. Pass a :class:`LoadReport` to learn
    what was loaded and skipped (it is filled as you iterate).
    """
    yield from AlignedFolderSource(root, size, modalities, report).iter()
