"""Where rgb -> caption counts go wrong: the (true count, stated count) table of a bundle's greedy
captions on world val scenes, and the miscounted captions beside the truth. Round 9 of issue 16
(docs/experiments/default_model.md).

    python experiments/count_errors.py [--model models/world-default] [--num 128] [--show 25]
"""

from __future__ import annotations

import argparse
from collections import Counter

from tqdm import tqdm

from fourm.eval.captions import parse_caption
from fourm.eval.world import Generator, load_eval_pipeline, load_samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="bundle (default: models/world-default)")
    parser.add_argument("--num", type=int, default=128, help="val scenes (default: 128)")
    parser.add_argument("--show", type=int, default=25, help="miscounted captions to print (default: 25)")
    args = parser.parse_args()
    pipe = load_eval_pipeline(args.model)
    samples = load_samples(None, args.num, "val", pipe)
    with tqdm(total=-(-args.num // 64), desc="captions") as bar:
        captions = Generator(pipe, samples, 64, 0, None, bar)(("rgb",), ("caption",))["caption"]
    table: Counter = Counter()
    wrong = []
    for sample, caption in zip(samples, captions):
        true, stated = len(parse_caption(sample["caption"]).objects), parse_caption(caption).count
        table[(true, stated)] += 1
        if stated != true:
            wrong.append(f"{true} -> {stated} | truth: {sample['caption']} | generated: {caption}")
    for true in sorted({t for t, _ in table}):
        row = {s: n for (t, s), n in sorted(table.items()) if t == true}
        print(f"{true} objects: right {row.get(true, 0)} of {sum(row.values())}; stated counts {row}")
    print("\n".join(wrong[: args.show]))


if __name__ == "__main__":
    main()
