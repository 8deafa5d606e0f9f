"""The recipe's settings (a typed config, saved as ``<out>/recipe.json``) and its time plan."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from fourm.errors import FourmError
from fourm.utils.config import Config

# stage -> share of --minutes. Only the tokenizers and the FourM run are capped by wall time; the other
# shares are what they take on a few thousand images (and time that the capped stages must leave).
STAGE_SHARES: dict[str, float] = {
    "import": 0.05,
    "tokenizers": 0.30,
    "text": 0.03,
    "tokenize": 0.05,
    "train": 0.45,
    "bundle": 0.02,
    "report": 0.10,
}
BASE_MODALITIES = ("rgb", "caption")
OPTIONAL_MODALITIES = ("edges", "color_palette", "metadata")  # derived from rgb at import
MIN_IMAGES = 16  # fewer cannot give a train split for the tokenizer and a val split for the report
MIN_VAL = 4  # held-out images for the report (PSNR, retrieval, generation grid)


@dataclass(frozen=True)
class SizePlan:
    """What one ``--size`` means for every stage: the image side the import writes, the conv VQ
    tokenizer's downsampling (a power of two; one ``channel_mult`` entry per resolution level), the
    rgb_pixels patch side (the encoder reads the image as patches on the same grid as the rgb tokens),
    and the batch sizes and masking budgets, scaled for the larger images and token grids."""

    size: int
    downsample: int  # tokenizer: image side / token grid side
    channel_mult: tuple[int, ...]  # tokenizer conv levels: log2(downsample) + 1 entries
    patch: int  # rgb_pixels patch side: image side / pixel grid side
    tokenizer_batch: int  # image tokenizer batch (32 at 64 px: about the same pixels per batch)
    train_batch: int  # FourM batch (at most the train config's)
    budget: int | None  # masking input/target token budgets (None: the masking configs' own, 128)

    @property
    def grid(self) -> int:
        """Side of the token grid of rgb (and of the derived image modalities)."""
        return self.size // self.downsample

    @property
    def num_tokens(self) -> int:
        return self.grid**2

    @property
    def levels(self) -> int:
        """Resolution levels of the conv tokenizer (its channel_mult entries)."""
        return int(math.log2(self.downsample)) + 1


# --size -> the plan; the one place the recipe's image size is decided (sizes outside it are refused)
SIZES: dict[int, SizePlan] = {
    64: SizePlan(64, downsample=8, channel_mult=(1, 2, 4, 4), patch=8, tokenizer_batch=32, train_batch=32,
                 budget=None),  # 8x8 tokens, 8x8 patches of 8 px: the shipped configs as they are
    128: SizePlan(128, downsample=8, channel_mult=(1, 2, 4, 4), patch=8, tokenizer_batch=16, train_batch=16,
                  budget=256),  # 16x16 tokens, 16x16 patches of 8 px
    224: SizePlan(224, downsample=16, channel_mult=(1, 1, 2, 4, 4), patch=16, tokenizer_batch=8, train_batch=16,
                  budget=256),  # 14x14 tokens, 14x14 patches of 16 px (4M's grid)
}  # fmt: skip
DEFAULT_SIZE = 64


def size_plan(size: int) -> SizePlan:
    """The plan of ``--size``; FourmError naming the supported sizes for any other."""
    try:
        return SIZES[size]
    except (KeyError, TypeError):
        supported = ", ".join(str(s) for s in SIZES)
        raise FourmError(f"--size {size} is not supported (supported sizes: {supported})") from None


@dataclass
class RecipeConfig(Config):
    """Everything one ``fourm-recipe folder`` run needs (see :mod:`fourm.recipe`)."""

    root: str = ""  # imagefolder: images + metadata.jsonl with a text (or caption) column
    out: str = ""  # the recipe's output folder
    minutes: float = 60.0  # total time budget, split over the stages by STAGE_SHARES
    size: int = DEFAULT_SIZE  # image side: one of SIZES (token grid, patch, batches follow from it)
    modalities: list[str] = field(default_factory=lambda: list(BASE_MODALITIES))  # rgb, caption (+ derived)
    split_column: str | None = None
    val_fraction: float = 0.1
    seed: int = 0
    text_threshold: float = 1.5  # train a vocabulary when the shipped one needs > this x the tokens
    tokenizer_epochs: float = 50.0  # image tokenizer steps = epochs x train images / batch (capped by the recipe)
    tokenizer_steps: int | None = None  # exact tokenizer steps instead
    epochs: float = 100.0  # FourM steps = epochs x train images / batch (capped by the train config's steps)
    train_steps: int | None = None  # exact FourM steps instead
    device: str = "cpu"
    tiny: bool = False  # test shapes: a few-channel tokenizer, a 1+1-block width-32 model, small budgets
    overwrite: bool = False  # redo an --out made at another --size (every stage runs again)

    def validate(self) -> None:
        if not self.root:
            raise FourmError("--root is empty (expected an imagefolder)")
        if not self.out:
            raise FourmError("--out is empty (expected an output folder)")
        if not self.minutes > 0 or self.minutes == float("inf"):
            raise FourmError(f"--minutes must be a finite number > 0, got {self.minutes:g}")
        size_plan(self.size)
        for m in self.modalities:
            if m not in BASE_MODALITIES + OPTIONAL_MODALITIES:
                raise FourmError(
                    f"unknown modality '{m}' in --modalities (expected rgb, caption and any of "
                    f"{', '.join(OPTIONAL_MODALITIES)})"
                )
        missing = [m for m in BASE_MODALITIES if m not in self.modalities]
        if missing:
            raise FourmError(f"--modalities must include {' and '.join(missing)} (the recipe trains caption <-> rgb)")
        if not 0 < self.val_fraction < 1:
            raise FourmError(f"--val-fraction must be in (0, 1), got {self.val_fraction:g}")
        if not self.text_threshold > 0:
            raise FourmError(f"--text-threshold must be > 0, got {self.text_threshold:g}")
        for name in ("tokenizer_epochs", "epochs"):
            if not getattr(self, name) > 0:
                raise FourmError(f"--{name.replace('_', '-')} must be > 0, got {getattr(self, name):g}")
        for name in ("tokenizer_steps", "train_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise FourmError(f"--{name.replace('_', '-')} must be >= 1, got {value}")

    @property
    def plan(self) -> SizePlan:
        """The :data:`SIZES` entry of ``size``."""
        return size_plan(self.size)

    @property
    def derived(self) -> list[str]:
        return [m for m in OPTIONAL_MODALITIES if m in self.modalities]

    @property
    def image_modalities(self) -> list[str]:
        """The modalities that get an image tokenizer trained on the user's data."""
        return ["rgb"] + [m for m in self.derived if m == "edges"]


def plan_minutes(minutes: float) -> list[tuple[str, float, float]]:
    """[(stage, share, minutes)] of a budget of ``minutes``."""
    return [(stage, share, share * minutes) for stage, share in STAGE_SHARES.items()]
