"""Benchmark: issue 18's must-show figures of a model trained on your own captioned images.

    python bench/own_data.py --run runs/icons                          # a fourm-recipe folder output
    python bench/own_data.py --bundle runs/icons/bundle --data data/icons [--val-fraction 0.1]

Figures, all on the held-out (val) split:

* the rgb tokenizer's reconstruction PSNR (target: >= 24 dB at 64x64);
* caption -> image retrieval recall@1/5/10 against chance (k / N) and their ratio (target: R@10 >= 3x
  chance): the pooled encoder output, aligned across the two modalities by a CCA fitted on the train
  split (as the recipe's report);
* whether generated images differ with the caption: ``--samples`` images generated for each of the
  first ``--captions`` val captions, mean pixel distance (mean |a - b| in [0, 1]) between images of
  different captions vs between samples of one caption, and their ratio (~1: the caption is ignored),
  with the distance between the real images of those captions for scale (:mod:`fourm.eval.diversity`).

``--run DIR`` reads ``DIR/bundle``, the raw dataset ``DIR/data`` (its val split is the recipe's held-out
split) and ``DIR/tokens`` when present. ``--bundle B --data D``: ``D`` is a raw dataset (``fourm-data
import``) or an imagefolder, imported first (into ``--work``, default a temporary folder) with
``--val-fraction`` / ``--split-column`` / ``--seed`` exactly as ``fourm-data import`` and the recipe
split it; retrieval then tokenizes with the bundle's own tokenizers. ``--json PATH`` also writes the figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from fourm.cli import friendly_errors  # noqa: E402
from fourm.errors import FourmError  # noqa: E402

PSNR_TARGET = 24.0
RECALL_TARGET = 3.0  # R@10 / chance


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def bundle_tokenizer(bundle: Path, modality: str = "rgb") -> Path:
    """The bundle's tokenizer folder of ``modality`` (modalities.json's ``tokenizer``, relative to it)."""
    try:
        specs = json.loads((bundle / "modalities.json").read_text())
    except (OSError, ValueError) as e:
        raise FourmError(f"{bundle} is not a bundle: cannot read modalities.json ({e})") from None
    spec = specs.get(modality)
    if not isinstance(spec, dict) or not spec.get("tokenizer"):
        raise FourmError(f"bundle {bundle} has no {modality} tokenizer (modalities: {', '.join(specs)})")
    return bundle / spec["tokenizer"]


def import_folder(args: argparse.Namespace, out: Path, size: int) -> Path:
    """Import the user's folder (``--source``) into the raw dataset ``out``, split as the recipe does."""
    from fourm.cli.data import build_parser

    argv = ["import", "--source", args.source, "--root", str(args.data), "--out", str(out), "--size", str(size),
            "--val-fraction", str(args.val_fraction), "--seed", str(args.seed)]  # fmt: skip
    if args.split_column:
        argv += ["--split-column", args.split_column]
    parsed = build_parser().parse_args(argv)
    parsed.func(parsed)
    return out


def resolve_inputs(args: argparse.Namespace, work: Path) -> tuple[Path, Path, Path]:
    """-> (bundle, raw dataset with a val split, dataset for retrieval: tokens if the run has them, else raw)."""
    from fourm.data.raw_dataset import INFO_FILE as RAW_INFO

    if args.run is not None:
        if args.bundle is not None or args.data is not None:
            raise FourmError("give --run, or --bundle and --data, not both")
        run = Path(args.run)
        bundle, raw, tokens = run / "bundle", run / "data", run / "tokens"
        for path, what in ((bundle, "bundle"), (raw, "raw dataset")):
            if not path.is_dir():
                raise FourmError(f"{run} is not a fourm-recipe output: its {what} {path} is missing")
        return bundle, raw, tokens if (tokens / "fourm_tokens.json").is_file() else raw
    if args.bundle is None or args.data is None:
        raise FourmError("give --run DIR (a fourm-recipe output), or --bundle and --data")
    bundle, data = Path(args.bundle), Path(args.data)
    if (data / RAW_INFO).is_file():
        return bundle, data, data
    size = json.loads((bundle / "modalities.json").read_text()).get("rgb", {}).get("image_size") or 64
    raw = import_folder(args, work / "data", int(size))
    return bundle, raw, raw


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from fourm.data.raw_dataset import RawSamples, load_raw_dataset
    from fourm.eval.diversity import format_diversity
    from fourm.generation.pipeline import FourMPipeline
    from fourm.recipe.report import diversity, retrieval, tokenizer_psnr

    bundle, raw, ret_data = resolve_inputs(args, work)
    seconds: dict[str, float] = {}

    t0 = time.monotonic()
    tok, images, _ = tokenizer_psnr(bundle_tokenizer(bundle), raw, args.device)
    seconds["psnr"] = round(time.monotonic() - t0, 1)
    meets = tok["psnr"] >= PSNR_TARGET
    print(f"held-out tokenizer PSNR: {tok['psnr']:.2f} dB on {tok['num']} val images "
          f"(target >= {PSNR_TARGET:g} dB: {'met' if meets else 'missed'})", flush=True)  # fmt: skip

    t0 = time.monotonic()
    pipe = FourMPipeline.from_pretrained(bundle, device=args.device)
    key = "rgb_pixels" if "rgb_pixels" in pipe.model.config.modalities else "rgb"
    ret = retrieval(pipe, ret_data, key)
    seconds["retrieval"] = round(time.monotonic() - t0, 1)
    ret["x_chance"] = {k: ret["recall"][k] / ret["chance"][k] for k in ret["recall"]}
    figures = "  ".join(f"R{k} {v:.3f} (chance {ret['chance'][k]:.3f}, {ret['x_chance'][k]:.1f}x)"
                        for k, v in ret["recall"].items())  # fmt: skip
    meets = ret["x_chance"]["@10"] >= RECALL_TARGET
    print(f"held-out caption -> {key} retrieval on {ret['num']} val pairs ({ret['align_pairs']} train pairs "
          f"aligned): {figures}; R@10 target >= {RECALL_TARGET:g}x chance: {'met' if meets else 'missed'}",
          flush=True)  # fmt: skip

    t0 = time.monotonic()
    val = RawSamples(load_raw_dataset(raw)["val"])
    rows = [i for i in range(len(val)) if val[i].get("caption")][: args.captions]
    captions = [val[i]["caption"] for i in rows]
    spread, _ = diversity(pipe, captions, images[rows], args.samples, args.seed)
    seconds["diversity"] = round(time.monotonic() - t0, 1)
    print(format_diversity(spread), flush=True)
    return {
        "bundle": str(bundle),
        "data": str(raw),
        "retrieval_data": str(ret_data),
        "tokenizer": {**tok, "target_db": PSNR_TARGET},
        "retrieval": {**ret, "target_x_chance": RECALL_TARGET},
        "diversity": spread,
        "seconds": seconds,
        "cpu": cpu_name(),
        "device": args.device,
    }


@friendly_errors
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", default=None, help="fourm-recipe folder output (bundle/, data/, tokens/)")
    parser.add_argument("--bundle", default=None, help="a bundle (with --data)")
    parser.add_argument("--data", default=None, help="raw dataset or a folder to import (with --bundle)")
    parser.add_argument("--source", default="imagefolder", choices=["imagefolder", "webdataset", "parquet"],
                        help="kind of --data folder to import (default imagefolder)")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="import: held-out fraction (default 0.1)")
    parser.add_argument("--split-column", default=None, help="import: metadata column holding train / val")
    parser.add_argument("--seed", type=int, default=0, help="import split and generation seed (default 0)")
    parser.add_argument("--work", default=None, help="folder for the imported data (default: a temporary one)")
    parser.add_argument("--captions", type=int, default=32, help="val captions of the diversity measure (default 32)")
    parser.add_argument("--samples", type=int, default=4, help="images generated per caption (default 4, >= 2)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.captions < 2 or args.samples < 2:
        raise FourmError("--captions and --samples must be >= 2 (different vs same caption)")
    if args.work is not None:
        result = measure(args, Path(args.work))
    else:
        with tempfile.TemporaryDirectory(prefix="own_data_") as tmp:
            result = measure(args, Path(tmp))
    print(f"seconds: {json.dumps(result['seconds'])} on {result['cpu']} ({args.device})")
    if args.json:
        from fourm.utils.atomic import atomic_write_text

        atomic_write_text(Path(args.json), json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
