"""``fourm-data tokenize``: pre-tokenize a raw dataset with each modality's tokenizer."""

from __future__ import annotations

import argparse
from pathlib import Path

from fourm.cli import parse_assignments
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
        "An interrupted run resumes from <out>.partial/.",
    )
    p.add_argument("--data", required=True, help="raw dataset directory (fourm-data world / import)")
    p.add_argument("--out", required=True, help="token dataset directory to write")
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
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="image tokenizers under bf16 autocast or in fp32; auto (default): bf16 where the device runs it natively")
    p.set_defaults(func=run_tokenize)


def run_tokenize(args: argparse.Namespace) -> int:
    from fourm.data.pretokenize import PretokenizeReport, build_encoders, pretokenize
    from fourm.modalities import ModalityRegistry, default_registry

    registry = ModalityRegistry.from_dir(args.registry) if args.registry else default_registry()
    for spec in ModalityRegistry.from_files(args.add_modality).values():
        registry.add(spec)  # FourmError "duplicate modality ..." if the registry has it already
    overrides = _parse_overrides(args.tokenizer)
    if args.modalities:
        names = [m.strip() for m in args.modalities.split(",") if m.strip()]
        for m in names:
            registry[m]  # raises "unknown modality ..." for a bad name
    else:
        names = [m for m in registry.names if registry[m].tokenizer or registry[m].patch_size or m in overrides]
    if args.batch_size < 1 or args.shard_size < 1:
        raise FourmError("--batch-size and --shard-size must be >= 1")
    from fourm.utils.precision import resolve_precision

    precision = resolve_precision(args.precision, args.device)
    report = PretokenizeReport()
    encoders, info = build_encoders(registry, names, args.tokenizer_root, overrides, args.device, report, precision)
    settings = {"precision": precision} if precision != "bf16" else None  # bf16: manifests as before
    pretokenize(
        args.data, args.out, encoders, info, registry, args.batch_size, args.shard_size, report=report, settings=settings
    )
    print(f"wrote {args.out}: {report.summary()}")
    return 0
