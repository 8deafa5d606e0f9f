"""``fourm-data tokenize``: pre-tokenize a raw dataset with each modality's tokenizer."""

from __future__ import annotations

import argparse
from pathlib import Path

from fourm.cli import device_name, parse_assignments
from fourm.errors import FourmError


def _parse_overrides(items: list[str]) -> dict[str, str]:
    """``modality=PATH`` items -> {modality: absolute PATH} (relative to the working directory, not
    to --tokenizer-root, which applies to the registry's paths)."""
    return {name: str(Path(path.strip()).resolve()) for name, path in parse_assignments(items, "--tokenizer").items()}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "tokenize",
        help="raw dataset -> token dataset (resumable)",
        description="Encode every modality of a raw dataset with its tokenizer and write a token dataset. "
        "An interrupted run resumes from <out>.partial/, unless the raw dataset, a tokenizer or the "
        "settings changed since (refused, naming what changed). Under a launcher (accelerate launch "
        "--num_processes N, torchrun) each process encodes every N-th shard and process 0 assembles the "
        "same dataset one process would write.",
    )
    p.add_argument("--data", required=True, help="raw dataset directory (fourm-data world / import)")
    p.add_argument("--out", required=True,
                   help="token dataset directory to write (refused if it is a folder or file this command did not "
                   "write, unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out that this command did not write")
    p.add_argument("--modalities", default=None, help="comma-separated modalities (default: all with a tokenizer, and patch modalities)")
    p.add_argument("--registry", default=None, help="modality YAML directory (default: configs/modalities)")
    p.add_argument(
        "--add-modality",
        action="append",
        default=[],
        metavar="YAML",
        help="one more modality YAML on top of the registry (repeatable), e.g. configs/modalities/extra/caption_embedding.yaml",
    )
    p.add_argument("--tokenizer-root", default=".", help="directory that relative tokenizer paths start from")
    p.add_argument("--tokenizer", action="append", default=[], metavar="MOD=PATH", help="override one tokenizer (PATH relative to the working directory)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--shard-size", type=int, default=1024)
    p.add_argument("--device", type=device_name, default="cpu")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="image tokenizers under bf16 autocast or in fp32; auto (default): bf16 where the device runs it natively")
    p.set_defaults(func=run_tokenize)


def check_raw_input(data: str | Path) -> dict[str, int]:
    """{split: samples} of the raw dataset ``data``; FourmError before any work is done when it is
    not a raw dataset (e.g. a token dataset) or has an empty split (which the writer cannot store)."""
    from fourm.data import token_dataset
    from fourm.data.raw_dataset import load_raw_dataset

    path = Path(data)
    if (path / token_dataset.INFO_FILE).is_file():
        raise FourmError(
            f"--data {path} is a token dataset (it has {token_dataset.INFO_FILE}); tokenize reads a raw dataset "
            "(fourm-data world / import)"
        )
    counts = {split: len(ds) for split, ds in load_raw_dataset(path).items()}
    if not counts:
        raise FourmError(f"raw dataset {path} has no splits")
    empty = [split for split, n in counts.items() if n == 0]
    if empty:
        raise FourmError(
            f"split '{empty[0]}' of {path} is empty (0 samples; splits: "
            f"{', '.join(f'{s} {n}' for s, n in counts.items())}): rebuild it with more samples or another "
            "--val-fraction"
        )
    return counts


def run_tokenize(args: argparse.Namespace) -> int:
    check_raw_input(args.data)  # before any work: every re-run would crash at the end otherwise
    from fourm.data.pretokenize import fit_to_overrides, tokenizer_paths
    from fourm.modalities import ModalityRegistry, default_registry
    from fourm.utils.launcher import process_rank
    from fourm.utils.outputs import claim_output, is_token_dataset

    registry = ModalityRegistry.from_dir(args.registry) if args.registry else default_registry()
    for spec in ModalityRegistry.from_files(args.add_modality).values():
        registry.add(spec)  # FourmError "duplicate modality ..." if the registry has it already
    overrides = _parse_overrides(args.tokenizer)
    if args.modalities:
        names = [m.strip() for m in args.modalities.split(",") if m.strip()]
        for m in names:
            registry[m]  # raises "unknown modality ..." for a bad name
    else:
        names = [m for m in registry.names if registry[m].tokenizer or not registry[m].needs_tokenizer or m in overrides]
    if args.batch_size < 1 or args.shard_size < 1:
        raise FourmError("--batch-size and --shard-size must be >= 1")
    registry, notes = fit_to_overrides(registry, names, overrides)
    for note in notes:
        print(note)
    tokenizers = tokenizer_paths(registry, names, args.tokenizer_root, overrides)
    inputs = [("--data", args.data), ("--registry", args.registry)]
    inputs += [("--add-modality", path) for path in args.add_modality]
    inputs += [(f"tokenizer of '{m}'", path) for m, path in tokenizers.items()]
    rank, world, local = process_rank()
    if rank > 0:  # under a launcher, process 0 claims and assembles --out; the others write shards
        return _tokenize(args, registry, names, overrides, tokenizers, rank, world, local)
    with claim_output(args.out, "fourm-data tokenize", inputs, args.overwrite, is_token_dataset):
        return _tokenize(args, registry, names, overrides, tokenizers, rank, world, local)


def _tokenize(
    args: argparse.Namespace, registry, names: list[str], overrides: dict[str, str], tokenizers: dict,
    rank: int = 0, world: int = 1, local: int = 0,
) -> int:  # fmt: skip
    from fourm.data.pretokenize import PretokenizeReport, build_encoders, pretokenize
    from fourm.utils.precision import resolve_precision

    device = f"cuda:{local}" if args.device == "cuda" and world > 1 else args.device
    precision = resolve_precision(args.precision, device)
    report = PretokenizeReport()
    encoders, info = build_encoders(registry, names, args.tokenizer_root, overrides, device, report, precision)
    settings = {"precision": precision} if precision != "bf16" else None  # bf16: manifests as before
    pretokenize(
        args.data, args.out, encoders, info, registry, args.batch_size, args.shard_size, report=report,
        settings=settings, tokenizers=tokenizers, rank=rank, world=world,
    )  # fmt: skip
    if rank > 0:
        print(f"process {rank}/{world}: shards written ({report.shards_done} encoded, {report.shards_resumed} resumed)")
    else:
        print(f"wrote {args.out}: {report.summary()}")
    return 0


if __name__ == "__main__":  # ``python -m fourm.cli.data_tokenize ...`` = ``fourm-data tokenize ...``
    import sys

    from fourm.cli.data import main

    raise SystemExit(main(["tokenize", *sys.argv[1:]]))
