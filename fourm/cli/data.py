"""``fourm-data``: build, import and look at raw multimodal datasets.

    fourm-data world  --out data/world --num 2000            # procedural world, train/val splits
    fourm-data world-video --out data/world_video --num 1500 --frames 8   # clips of moving objects
    fourm-data import --source imagefolder --root DIR --out data/mine
    fourm-data show   --data data/world --out grid.png       # picture of samples, every modality
    fourm-data tokenize --data data/world --out data/world_tokens   # pre-tokenize (resumable)
    fourm-data embed --data data/world --source caption --name caption_embedding  # sentence vectors
"""

from __future__ import annotations

import argparse

from fourm.cli import (
    ArgumentParser,
    data_embed,
    data_tokenize,
    data_user,
    data_world,
    data_world_video,
    subcommand_main,
)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="fourm-data", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    data_world.register(sub)
    data_world_video.register(sub)
    data_user.register(sub)
    data_tokenize.register(sub)
    data_embed.register(sub)
    return parser


main = subcommand_main(build_parser)


if __name__ == "__main__":
    raise SystemExit(main())
