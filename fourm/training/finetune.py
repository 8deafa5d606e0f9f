"""Fine-tuning a trained FourM with added modalities.

:func:`expand_model` builds a FourM with the old modalities followed by the new ones and copies
every old weight into it. All per-modality tables are packed in modality order (token table,
modality embeddings, untied output heads, decoder token table), so appending modalities only
appends rows: the old rows keep their places and values, the new rows are drawn from a normal
matched to the old rows (per-dimension mean, overall std) of the same table. A new patch modality's
projection gets the model's own init (:func:`fourm.model.embeddings.patch_init_std`, zero bias).

:class:`OldParamsControl` lets the old weights train slower than the new rows: during the first
``freeze_trunk_steps`` steps they do not move at all (their gradients are dropped or zeroed, and
after the optimizer step the old rows of mixed tables are put back bit-exactly); afterwards their
AdamW update is scaled by ``old_params_lr_scale`` (exact: an AdamW update is linear in the lr).
Everything depends on the step number alone, so a resume across the stage boundary is exact.

    model, new_rows = expand_model(FourM.from_pretrained("models/world-default/model"),
                                   load_added_modalities(["configs/modalities/extra/caption_embedding.yaml"]))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from fourm.data.token_dataset import INFO_FILE, TokenDatasetInfo
from fourm.errors import FourmError
from fourm.modalities import ModalityRegistry
from fourm.model import FourM, FourMConfig, ModalityConfig
from fourm.model.config import modality_from_spec
from fourm.model.embeddings import patch_init_std
from fourm.model.fourm import CONFIG_NAME, WEIGHTS_NAME
from fourm.training.checkpoint import CHECKPOINTS, latest_checkpoint
from fourm.training.config import resolve_path


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
        elif key.startswith(PATCH_PREFIX):  # a new patch projection: the model's own init (see patch_init_std)
            std = patch_init_std(target.shape[-1], model.config.position_scale) if key.endswith(".weight") else 0.0
            fill = torch.randn(target.shape, generator=generator) * std
        else:  # a table the old model did not have (e.g. the first sequence target): default init
            fill = torch.randn(target.shape, generator=generator) * model.config.init_std
        target[n_old:].copy_(fill.to(target.dtype))
        new_rows[key] = n_old
    return model, new_rows


class OldParamsControl:
    """Scales the optimizer updates of the old weights of an expanded model (module docstring).

    ``before_step`` (after backward, before clipping) and ``after_step`` (after ``optimizer.step``)
    wrap every optimizer step; ``step`` is the number of optimizer steps already done.
    """

    def __init__(self, model: nn.Module, new_rows: Mapping[str, int], freeze_steps: int, lr_scale: float) -> None:
        params = dict(model.named_parameters())
        unknown = [k for k in new_rows if k not in params]
        if unknown:
            raise FourmError(f"unknown parameter '{unknown[0]}' in the added rows")
        self.mixed = [(params[k], n) for k, n in new_rows.items() if n > 0]  # (param, old rows)
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
            for p, n in self.mixed:
                if p.grad is not None:
                    p.grad[:n].zero_()
        else:
            self._saved = [p.detach().clone() for p in self.old]
        self._saved += [p.detach()[:n].clone() for p, n in self.mixed]

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
        for p, n in self.mixed:
            before = next(saved)
            if scale == 0.0:
                p[:n].copy_(before)
            else:
                p[:n].copy_(before + scale * (p[:n] - before))
        self._saved = []


def load_finetune_model(
    init_from: str | Path, add_modalities: Sequence[str | Path], seed: int = 0
) -> tuple[FourM, dict[str, int]]:
    """The trained model of ``init_from`` expanded by the modality YAMLs ``add_modalities`` (none:
    the model as saved, no new rows)."""
    base = FourM.from_pretrained(resolve_model_dir(init_from))
    if not add_modalities:
        return base, {}
    return expand_model(base, load_added_modalities(add_modalities), seed=seed)


def finetune_modalities(init_from: str | Path, add_modalities: Sequence[str | Path]) -> dict[str, ModalityConfig]:
    """The modalities of the fine-tuned model (old, then added), without loading any weights."""
    config = FourMConfig.from_file(resolve_model_dir(init_from) / CONFIG_NAME)
    added = load_added_modalities(add_modalities)
    return extended_config(config, added).modalities if added else config.modalities


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
