"""World consistency evaluation of a FourM bundle on world val scenes, with tokenizer ceilings and
chance baselines, all scored without any network (``fourm.eval``).

    python bench/eval_world.py [--model models/world-default] [--data DATASET] [--num 64] [--seed 0]
                               [--out runs/eval_world] [--batch 64] [--steps 8]

Tasks (each one batched generation with the pipeline's default targets; a given rgb image also
feeds the model's patch modalities that read it, e.g. rgb_pixels, as ``generate.py`` does):

- rgb -> semseg: mIoU, pixel accuracy vs ground truth;  rgb -> depth: MAE, RMSE, abs-rel, delta1;
- rgb -> caption: attribute accuracy vs the true caption, and its relations checked on the true image;
- rgb -> bboxes (detection): count, label F1, matched box IoU and F1 at IoU 0.5 vs the true boxes;
- caption -> rgb: the rgb checker (presence, shape, size, relations) against the caption;
- caption -> bboxes -> rgb (chained): the same, plus IoU of the generated boxes with the rgb's blobs.

References: the tokenizer ceilings (ground truth -> tokens -> decoded, scored the same way), the
checker on the ground-truth images, and baselines (another scene's image / caption / maps; constant
predictions). Without ``--data`` the scenes are world val scenes (seed 1, index 1e9 + j, as in
``fourm-data world --seed 1``) rendered at the model's image size. Writes ``eval_world.json`` (NaN
-> null: undefined, e.g. no box generated) and ``examples.png`` to ``--out``. The default 64 scenes
take about 15 s on 2 CPU cores with the shipped 9M-parameter bundle. Each task's generated values
are kept in ``<out>.partial/`` as it finishes: an interrupted run resumes from the tasks done when the
same command is run again (other settings, bundle or data are refused; delete the folder to start
over). The logic is library code, :mod:`fourm.eval.world`; this script is its command line.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fourm.cli import friendly_errors
from fourm.data.world import WorldConfig
from fourm.eval.world import (
    DEFAULT_TASKS,
    TASKS,
    check_options,
    parse_generation_settings,
    parse_tasks,
    run_world_eval,
)
from fourm.eval.world_report import table


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="model bundle (default: models/world-default)")
    p.add_argument(
        "--data", default=None, help="raw dataset (default: world val scenes of seed 1, in-process)"
    )
    p.add_argument("--world-config", default=None, metavar="PATH",
                   help="WorldConfig YAML/JSON for the world val scenes, e.g. their captions' object order "
                   "(default: the default world; not with --data)")
    p.add_argument("--split", default="val", help="split of --data (default: val)")
    p.add_argument("--num", type=int, default=64, help="number of scenes (default: 64)")
    p.add_argument("--seed", type=int, default=0, help="generation seed (default: 0)")
    p.add_argument("--batch", type=int, default=64, help="samples per generation batch (default: 64)")
    p.add_argument("--start", type=int, default=0, help="index of the first scene (default: 0)")
    p.add_argument("--steps", type=int, default=None,
                   help="MaskGIT steps for image targets (default: the bundle's generation defaults)")
    p.add_argument("--tasks", default=",".join(DEFAULT_TASKS),
                   help=f"comma-separated subset of {', '.join(TASKS)} (default: all but the semseg chains)")
    p.add_argument("--set", action="append", default=[], metavar="MODALITY.FIELD=VALUE",
                   help="a generation default for this run, e.g. rgb.guidance_scale=3 (repeatable)")
    p.add_argument("--image-inputs", choices=("patches", "both"), default="patches",
                   help="a given image read as pixel patches alone (default, as trained) or with its tokens too")
    p.add_argument("--out", default="runs/eval_world", help="output directory (default: runs/eval_world)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


@friendly_errors
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_options(args.num, args.batch, args.steps, args.start)
    tasks = parse_tasks(args.tasks)
    results = run_world_eval(
        args.model, args.out, data=args.data, split=args.split, num=args.num, start=args.start, seed=args.seed,
        batch=args.batch, steps=args.steps, tasks=tasks, settings=parse_generation_settings(args.set),
        device=args.device, progress=not args.no_progress,
        world=None if args.world_config is None else WorldConfig.from_file(args.world_config),
        image_inputs=args.image_inputs,
    )
    print(table(results))
    out = Path(args.out)
    print(f"wrote {out / 'eval_world.json'} and {out / 'examples.png'} ({results['config']['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
