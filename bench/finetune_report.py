"""Report of a fine-tuning run (``model.init_from``): did the old modalities keep their quality,
and did the added ones (if any) learn?

Val split, fixed deterministic eval masks (``masking.eval`` of the run), bf16 autocast:

* each old modality's val loss for the original model vs the fine-tuned one, both scored on the
  same batches masked over the old modalities only; the ratio must be <= 1 + ``--tolerance``;
* each added modality's val loss at the start (the expanded model before any step, rebuilt from
  the run's config: same seed, same initialisation) vs the end, as a pure target predicted from
  the old modalities (fixed masks with only the old modalities as inputs);
* each added input-only modality that reads an old modality's raw data (``rgb_pixels`` reads the
  ``rgb`` image): the old modalities' val losses with it as the only input, against the same old
  modality's tokens as the only input (original and fine-tuned model), so what the new input adds
  is measured on the targets both can predict.

    python bench/finetune_report.py --run runs/finetune_ce [--val-samples 1200] [--json out.json]

Exit code 1 if an old modality got worse by more than the tolerance.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from fourm.cli import friendly_errors
from fourm.data.masking import MaskingConfig, collate
from fourm.errors import FourmError
from fourm.model import FourM
from fourm.training.config import TrainConfig, resolve_path
from fourm.training.data import ShardSampler, build_training_data
from fourm.training.finetune import load_added_modalities, load_finetune_model, resolve_model_dir
from fourm.training.loop import evaluate
from fourm.utils.atomic import atomic_write_text


def _val_loader(
    cfg: TrainConfig,
    modalities: dict,
    names: list[str] | None,
    val_samples: int | None,
    batch: int,
    inputs: list[str] | None = None,
):
    """Val batches of ``names`` (None: all the model's) masked as ``cfg.masking.eval`` says
    (with only ``inputs`` allowed as encoder inputs, when given)."""
    data_cfg = cfg.data.replace(modalities=names, val_samples=val_samples)
    # only the val split is read: its masking stands in for the training one too, which may name
    # modalities (the added ones) that ``names`` leaves out
    masking = {"train": cfg.masking.eval, "eval": cfg.masking.eval}
    with tempfile.TemporaryDirectory() as tmp:
        if inputs is not None:
            restricted = MaskingConfig.from_file(resolve_path(cfg.masking.eval)).replace(input_modalities=inputs)
            restricted.save_json(Path(tmp) / "eval.json")
            masking = {"train": str(Path(tmp) / "eval.json"), "eval": str(Path(tmp) / "eval.json")}
        run_cfg = cfg.replace(data=data_cfg.to_dict(), masking={**cfg.masking.to_dict(), **masking})
        data = build_training_data(run_cfg, modalities)
    if data.val is None:
        raise FourmError(f"the run's data has no '{cfg.data.val_split}' split to report on")
    return DataLoader(data.val, batch_sampler=ShardSampler(len(data.val), batch), collate_fn=collate)


def _losses(model: FourM, loader: DataLoader, what: str) -> dict[str, float]:
    out = evaluate(model, tqdm(loader, desc=what, unit="batch"), torch.device("cpu"), "auto", None, lambda t: t)
    return {k.removeprefix("val_loss_"): v for k, v in out.items() if k != "val_loss"}


def report(run: Path, original: Path | None, val_samples: int | None, batch: int, tolerance: float) -> dict:
    cfg = TrainConfig.from_file(run / "config.json")
    if cfg.model.init_from is None:
        raise FourmError(f"{run} is not a fine-tuning run (model.init_from is empty)")
    original_dir = resolve_model_dir(original or cfg.model.init_from)
    final_dir = run / "model"
    if not (final_dir / "model.safetensors").is_file():
        raise FourmError(f"{run} has no final model yet ({final_dir}); let the run finish first")
    before = FourM.from_pretrained(original_dir).eval()
    after = FourM.from_pretrained(final_dir).eval()
    added = list(load_added_modalities(cfg.model.add_modalities))
    old = before.modality_names

    old_loader = _val_loader(cfg, before.config.modalities, old, val_samples, batch)
    orig_loss = _losses(before, old_loader, "original, old modalities")
    tuned_loss = _losses(after, old_loader, "fine-tuned, old modalities")
    # a small new modality (e.g. 4 vector tokens) would be used up as encoder input by the even
    # split; it is scored as a pure target, predicted from the old modalities' visible tokens
    start_loss = end_loss = {}
    if added:
        start, _ = load_finetune_model(cfg.model.init_from, cfg.model.add_modalities, seed=cfg.seed)
        all_loader = _val_loader(cfg, after.config.modalities, None, val_samples, batch, inputs=old)
        start_loss = _losses(start.eval(), all_loader, "start, new modalities")
        end_loss = _losses(after, all_loader, "end, new modalities")

    rows = {m: {"original": orig_loss[m], "finetuned": tuned_loss[m], "ratio": tuned_loss[m] / orig_loss[m]} for m in old if m in orig_loss}
    new = {m: {"start": start_loss[m], "end": end_loss[m]} for m in added if m in start_loss}
    ok = all(r["ratio"] <= 1 + tolerance for r in rows.values())
    inputs = _new_inputs(cfg, before, after, val_samples, batch)
    return {"run": str(run), "original": str(original_dir), "val_samples": len(old_loader.dataset),
            "tolerance": tolerance, "old_modalities": rows, "new_modalities": new, "new_inputs": inputs, "ok": ok}


def _new_inputs(cfg: TrainConfig, before: FourM, after: FourM, val_samples: int | None, batch: int) -> dict:
    """{new input-only modality: {"source": old modality, "targets": {target: {original_tokens,
    finetuned_tokens, finetuned_new}}}}: old targets predicted from one input alone (module docstring)."""
    from fourm.modalities import ModalityRegistry

    specs = ModalityRegistry.from_files([resolve_path(p) for p in cfg.model.add_modalities])
    old = before.modality_names
    out = {}
    for name, spec in specs.items():
        source = spec.data_key
        if after.config.modalities[name].target or source not in old or source == name:
            continue
        from_tokens = _val_loader(cfg, before.config.modalities, old, val_samples, batch, inputs=[source])
        from_new = _val_loader(cfg, after.config.modalities, [*old, name], val_samples, batch, inputs=[name])
        original = _losses(before, from_tokens, f"original, {source} only")
        tuned = _losses(after, from_tokens, f"fine-tuned, {source} only")
        new = _losses(after, from_new, f"fine-tuned, {name} only")
        targets = {
            t: {"original_tokens": original[t], "finetuned_tokens": tuned[t], "finetuned_new": new[t]}
            for t in old if t in original and t in new
        }
        out[name] = {"source": source, "targets": targets}
    return out


def _print(result: dict) -> None:
    print(f"fine-tuning report: {result['run']} vs {result['original']} ({result['val_samples']} val samples, fixed masks)")
    print(f"{'old modality':<16}{'original':>10}{'fine-tuned':>12}{'ratio':>8}")
    for name, r in result["old_modalities"].items():
        flag = "" if r["ratio"] <= 1 + result["tolerance"] else "  <-- worse than tolerance"
        print(f"{name:<16}{r['original']:>10.4f}{r['finetuned']:>12.4f}{r['ratio']:>8.3f}{flag}")
    if result["new_modalities"]:
        print(f"{'new modality':<16}{'start':>10}{'end':>12}")
    for name, r in result["new_modalities"].items():
        print(f"{name:<16}{r['start']:>10.4f}{r['end']:>12.4f}")
    for name, r in result.get("new_inputs", {}).items():
        src = r["source"]
        print(f"old targets from one input: {src} tokens (original, fine-tuned) vs {name} (fine-tuned)")
        print(f"{'target':<16}{'orig ' + src:>14}{'tuned ' + src:>14}{'tuned ' + name:>18}")
        for t, v in r["targets"].items():
            print(f"{t:<16}{v['original_tokens']:>14.4f}{v['finetuned_tokens']:>14.4f}{v['finetuned_new']:>18.4f}")
    verdict = "ok" if result["ok"] else "FAILED"
    print(f"{verdict}: every old modality within {result['tolerance']:.0%} of the original" if result["ok"]
          else f"{verdict}: an old modality is more than {result['tolerance']:.0%} worse than the original")


@friendly_errors
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, help="fine-tuning run directory (config.json + model/)")
    parser.add_argument("--original", default=None, help="original model (default: the run's model.init_from)")
    parser.add_argument("--val-samples", type=int, default=None, help="first N val samples (default: all)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--tolerance", type=float, default=0.05, help="allowed relative loss increase")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    result = report(Path(args.run), args.original and Path(args.original), args.val_samples, args.batch_size, args.tolerance)
    _print(result)
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
