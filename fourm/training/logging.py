"""Run logging: a CSV per phase, TensorBoard scalars and the tqdm progress bar.

``<run>/metrics.csv``: step, epoch, loss, loss_<modality>..., lr, grad_norm, tokens_per_s,
samples_seen. ``<run>/val.csv``: step, val_loss, val_loss_<modality>..., then per validation task
val/<task>/loss, val/<task>/loss_<modality>.... TensorBoard event files go to
``<run>/tensorboard`` (tags ``train/...`` and ``val/...``). On resume both CSVs drop rows
after the resumed step and TensorBoard purges them, so a resumed run's logs read as one run. Only
the main process logs; on the others every method is a no-op.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from tqdm.auto import tqdm

from fourm.utils.atomic import atomic_write_text


def train_columns(modalities: Sequence[str]) -> list[str]:
    return ["step", "epoch", "loss", *(f"loss_{m}" for m in modalities), "lr", "grad_norm", "tokens_per_s", "samples_seen"]


def val_columns(modalities: Sequence[str], tasks: Sequence[str] = ()) -> list[str]:
    """val.csv columns: the ``masking.eval`` losses, then ``val/<task>/loss[_<modality>]`` per task."""
    columns = ["step", "val_loss", *(f"val_loss_{m}" for m in modalities)]
    for task in tasks:
        columns += [f"val/{task}/loss", *(f"val/{task}/loss_{m}" for m in modalities)]
    return columns


def _format(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


class CsvLog:
    """Append-only CSV with a fixed header; reopening keeps the rows with ``step <= keep_until``."""

    def __init__(self, path: str | Path, columns: list[str], keep_until: int = 0) -> None:
        self.path, self.columns = Path(path), columns
        kept: list[dict] = []
        if keep_until > 0 and self.path.is_file():
            with open(self.path, newline="") as f:
                kept = [r for r in csv.DictReader(f) if r.get("step", "").isdigit() and int(r["step"]) <= keep_until]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, columns, extrasaction="ignore", restval="")
        writer.writeheader()
        writer.writerows(kept)
        atomic_write_text(self.path, buffer.getvalue())
        self._file = open(self.path, "a", newline="")
        self._writer = csv.DictWriter(self._file, columns, extrasaction="ignore", restval="")

    def write(self, row: Mapping[str, object]) -> None:
        self._writer.writerow({k: _format(v) for k, v in row.items()})
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class RunLogger:
    """Logs of one run (see the module docstring)."""

    def __init__(
        self,
        run_dir: str | Path,
        modalities: Sequence[str],
        total_steps: int,
        start_step: int = 0,
        enabled: bool = True,
        tensorboard: bool = True,
        val_tasks: Sequence[str] = (),
    ) -> None:
        self.enabled = enabled
        self.bar = tqdm(total=total_steps, initial=start_step, desc="train", unit="step", disable=not enabled, dynamic_ncols=True)
        if not enabled:
            return
        run_dir = Path(run_dir)
        self.train_csv = CsvLog(run_dir / "metrics.csv", train_columns(modalities), keep_until=start_step)
        self.val_csv = CsvLog(run_dir / "val.csv", val_columns(modalities, val_tasks), keep_until=start_step)
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=start_step + 1 if start_step else None)

    def _scalars(self, prefix: str, step: int, values: Mapping[str, object]) -> None:
        if self.writer is None:
            return
        for key, value in values.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                tag = key if key.startswith(f"{prefix}/") else f"{prefix}/{key}"  # val/<task>/... as is
                self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def log_train(self, step: int, values: Mapping[str, object]) -> None:
        """One row of training metrics (keys as in :func:`train_columns`); also the bar's postfix."""
        if not self.enabled:
            return
        self.train_csv.write({"step": step, **values})
        self._scalars("train", step, values)
        postfix = {"loss": f"{values.get('loss', float('nan')):.4f}", "tok/s": f"{values.get('tokens_per_s', 0):.0f}"}
        postfix["lr"] = f"{values.get('lr', 0):.2e}"
        self.bar.set_postfix(postfix, refresh=False)

    def log_val(self, step: int, values: Mapping[str, object]) -> None:
        """One row of validation metrics (keys as in :func:`val_columns`)."""
        if not self.enabled:
            return
        self.val_csv.write({"step": step, **values})
        self._scalars("val", step, values)
        self.bar.write(f"step {step}: val_loss {values.get('val_loss', float('nan')):.4f}")

    def advance(self, steps: int = 1) -> None:
        self.bar.update(steps)

    def message(self, text: str) -> None:
        """A line above the progress bar (main process only)."""
        if self.enabled:
            self.bar.write(text)

    def close(self) -> None:
        self.bar.close()
        if not self.enabled:
            return
        self.train_csv.close()
        self.val_csv.close()
        if self.writer is not None:
            self.writer.close()
