"""The recipe's settings (a typed config, saved as ``<out>/recipe.json``) and its time plan."""

from __future__ import annotations

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


@dataclass
class RecipeConfig(Config):
    """Everything one ``fourm-recipe folder`` run needs (see :mod:`fourm.recipe`)."""

    root: str = ""  # imagefolder: images + metadata.jsonl with a text (or caption) column
    out: str = ""  # the recipe's output folder
    minutes: float = 60.0  # total time budget, split over the stages by STAGE_SHARES
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

    def validate(self) -> None:
        if not self.root:
            raise FourmError("--root is empty (expected an imagefolder)")
        if not self.out:
            raise FourmError("--out is empty (expected an output folder)")
        if not self.minutes > 0 or self.minutes == float("inf"):
            raise FourmError(f"--minutes must be a finite number > 0, got {self.minutes:g}")
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
    def derived(self) -> list[str]:
        return [m for m in OPTIONAL_MODALITIES if m in self.modalities]

    @property
    def image_modalities(self) -> list[str]:
        """The modalities that get an image tokenizer trained on the user's data."""
        return ["rgb"] + [m for m in self.derived if m == "edges"]


def plan_minutes(minutes: float) -> list[tuple[str, float, float]]:
    """[(stage, share, minutes)] of a budget of ``minutes``."""
    return [(stage, share, share * minutes) for stage, share in STAGE_SHARES.items()]
