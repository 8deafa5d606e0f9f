"""User data in the raw-sample format: Hugging Face imagefolders and aligned per-modality folders.

    report = LoadReport()
    for sample in iter_imagefolder("my_images", size=64, report=report):
        ...
    print(report.summary())
"""

from fourm.data.user.aligned import AlignedFolderSource, iter_aligned_folders
from fourm.data.user.geometry import center_square, resize_crop, transform_boxes
from fourm.data.user.imagefolder import ImageFolderSource, iter_imagefolder
from fourm.data.user.report import LoadReport, SkipSample

__all__ = [
    "AlignedFolderSource",
    "ImageFolderSource",
    "LoadReport",
    "SkipSample",
    "center_square",
    "iter_aligned_folders",
    "iter_imagefolder",
    "resize_crop",
    "transform_boxes",
]
