"""``fourm-tokenizer``: train and evaluate tokenizers on a raw dataset.

    fourm-tokenizer train --config configs/tokenizers/rgb.yaml --data data/world --out outputs/tok_rgb \\
        [--max-minutes 30] [--steps 5000] [train.lr=0.001 width=64 ...]
    fourm-tokenizer eval --tokenizer outputs/tok_rgb/tokenizer --data data/world [--split val] [--num 512]
    fourm-tokenizer prune --tokenizer outputs/tok_rgb/tokenizer --data data/world --out outputs/tok_rgb_pruned \
        [--distance 1.0] [--num 2048]
    fourm-tokenizer code-map --old outputs/tok_rgb/tokenizer --new outputs/tok_rgb_v2/tokenizer --data data/world \
        --out outputs/tok_rgb_v2/code_map.json [--num 2048]
    fourm-tokenizer train-perceptual --data data/world --out outputs/shape_perceptual.safetensors [--minutes 7]
    fourm-tokenizer train-text --data data/world --out outputs/tokenizers/text [--vocab-size 1024]
    fourm-tokenizer train-vector --data data/world --key caption_embedding --out outputs/tokenizers/ce \\
        [--tokens 4 --codebook-size 256 --steps 2000]
    fourm-tokenizer finetune-decoder --tokenizer outputs/tok_rgb/tokenizer --data data/world --out outputs/tok_rgb_dec \
        [decoder_width=64 ...]
    fourm-tokenizer train-video --config configs/tokenizers/video.yaml --data data/world_video --out outputs/tok_video

``train`` writes ``tokenizer/`` (best checkpoint), ``last/``, ``metrics.json`` and
``reconstructions.png`` into the output directory; ``eval`` prints the same metrics as JSON.
``prune`` disables near-duplicate VQ codes (``tokenizers_zoo.quantizers.pruning``) and writes the
pruned tokenizer, printing val metrics before and after. ``code-map`` writes which old code each code
of a new tokenizer stands for (``tokenizers_zoo.image.code_map``; a training config's ``model.row_maps``
starts a trained model's new rows from them).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fourm.cli import (
    ArgumentParser,
    bounded_int,
    finite_float,
    positive_float,
    seed_int,
    subcommand_main,
    tokenizer_decoder,
    tokenizer_video,
)
from fourm.data.raw_dataset import load_split, modality_split
from fourm.errors import FourmError
from fourm.utils.config import apply_overrides, read_mapping
from fourm.utils.outputs import claim_output, is_saved_model, is_trained_tokenizer, partial_run


def _claim(args: argparse.Namespace, out, command: str, recognize, inputs: list | None = None):
    inputs = [("--data", args.data), *(inputs or [])]
    return claim_output(out, f"fourm-tokenizer {command}", inputs, args.overwrite, recognize)


def _check_new_file(path, flag: str, inputs: list, overwrite: bool, suffix: str | None = None) -> Path:
    """``path`` as the new file a command writes: FourmError when it has the wrong ``suffix``, is or lies
    in one of ``inputs`` ((option, path) pairs), is a folder, or exists without ``overwrite``."""
    from fourm.utils.outputs import check_inputs

    path = Path(path)
    if suffix is not None and path.suffix != suffix:
        raise FourmError(f"{flag} {path} must be a {suffix} file")
    check_inputs(path, inputs, flag=flag)
    if path.is_dir() or (path.exists() and not overwrite):
        raise FourmError(f"{flag} {path} already exists; choose another {flag} or pass --overwrite to replace the file")
    return path


def _train(args: argparse.Namespace) -> int:
    out = Path(args.out or Path("outputs") / "tokenizers" / Path(args.config).stem)
    with _claim(args, out, "train", is_trained_tokenizer, [("--config", args.config), ("--init", args.init)]):
        return _train_image(args, out)


def _train_image(args: argparse.Namespace, out: Path) -> int:
    from tokenizers_zoo.image import ImageTokenizerConfig
    from tokenizers_zoo.image.trainer import train_image_tokenizer

    data = read_mapping(args.config)
    if not data:  # all defaults would train some other tokenizer than the user meant
        raise FourmError(f"--config {args.config} is empty (give a tokenizer YAML, e.g. configs/tokenizers/rgb.yaml)")
    data = apply_overrides(data, args.overrides)
    try:
        cfg = ImageTokenizerConfig.from_dict(data)
    except FourmError as e:
        raise FourmError(f"{args.config}: {e}") from None
    init = None
    if args.init:
        from tokenizers_zoo.image import ImageTokenizer

        init = ImageTokenizer.from_pretrained(args.init)
    train = modality_split(args.data, "train", cfg.modality)
    val = modality_split(args.data, "val", cfg.modality)
    result = train_image_tokenizer(cfg, train, val, out, steps=args.steps, max_minutes=args.max_minutes, init=init,
                                   start_over=args.overwrite)  # fmt: skip
    summary = {k: round(v, 4) if isinstance(v, float) else v for k, v in result["final"].items()}
    print(json.dumps(summary))
    print(f"tokenizer saved to {out / 'tokenizer'} (best), metrics in {out / 'metrics.json'}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    if args.num is not None and args.num < 1:
        raise FourmError(f"--num must be >= 1, got {args.num}")
    if args.batch_size < 1:
        raise FourmError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.png:
        _check_new_file(args.png, "--png", [("--tokenizer", args.tokenizer), ("--data", args.data)], args.overwrite)
    import torch

    from tokenizers_zoo.image import ImageTokenizer
    from tokenizers_zoo.image.trainer import evaluate, stack_modality
    from tokenizers_zoo.image.visualize import reconstruction_grid

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = ImageTokenizer.from_pretrained(args.tokenizer, device=device)
    samples = modality_split(args.data, args.split, tokenizer.modality)
    arrays = stack_modality(samples, tokenizer.modality, limit=args.num)
    from fourm.utils.precision import resolve_precision

    precision = resolve_precision("fp32" if args.fp32 else args.precision, device)
    dtype = torch.bfloat16 if precision == "bf16" else None
    metrics, recons = evaluate(tokenizer, arrays, args.batch_size, dtype, progress=True)
    if args.png:
        reconstruction_grid(tokenizer.modality, arrays[:8], recons[:8], args.png)
    print(json.dumps({k: round(v, 4) for k, v in metrics.items()}))
    return 0


def _prune(args: argparse.Namespace) -> int:
    if not args.distance > 0:
        raise FourmError(f"--distance must be > 0, got {args.distance}")
    if args.num < 2:
        raise FourmError(f"--num must be >= 2, got {args.num}")
    with _claim(args, args.out, "prune", is_saved_model, [("--tokenizer", args.tokenizer)]):
        return _prune_tokenizer(args)


def _prune_tokenizer(args: argparse.Namespace) -> int:
    import torch

    from tokenizers_zoo.image import ImageTokenizer
    from tokenizers_zoo.image.trainer import evaluate, stack_modality
    from tokenizers_zoo.quantizers.pruning import prune_near_duplicate_codes

    tokenizer = ImageTokenizer.from_pretrained(args.tokenizer)
    fit = stack_modality(modality_split(args.data, "train", tokenizer.modality), tokenizer.modality, limit=args.num)
    val = stack_modality(modality_split(args.data, args.split, tokenizer.modality), tokenizer.modality, limit=args.num)
    before, _ = evaluate(tokenizer, val, 64, torch.bfloat16, progress=True)
    report = prune_near_duplicate_codes(tokenizer, tokenizer.preprocess(fit), args.distance)
    after, _ = evaluate(tokenizer, val, 64, torch.bfloat16, progress=True)
    tokenizer.save_pretrained(args.out)
    print(f"disabled {report.removed} codes ({report.kept} of {tokenizer.vocab_size} left; radius "
          f"{args.distance} x {report.scale:.4f})")
    print(json.dumps({"before": {k: round(v, 4) for k, v in before.items()},
                      "after": {k: round(v, 4) for k, v in after.items()}}))
    print(f"pruned tokenizer saved to {args.out}")
    return 0


def _code_map(args: argparse.Namespace) -> int:
    if args.num < 1:
        raise FourmError(f"--num must be >= 1, got {args.num}")
    inputs = [("--old", args.old), ("--new", args.new), ("--data", args.data)]
    out = _check_new_file(args.out, "--out", inputs, args.overwrite, ".json")
    from tokenizers_zoo.image import ImageTokenizer
    from tokenizers_zoo.image.code_map import build_code_map
    from tokenizers_zoo.image.trainer import stack_modality

    old, new = ImageTokenizer.from_pretrained(args.old), ImageTokenizer.from_pretrained(args.new)
    arrays = stack_modality(modality_split(args.data, "train", old.modality), old.modality, limit=args.num)
    code_map = build_code_map(old, new, arrays)
    code_map.save(out)
    unused = sum(c < 0 for c in code_map.mapping)
    print(f"{len(code_map.mapping) - unused} of {len(code_map.mapping)} new codes mapped ({code_map.patches} "
          f"patches; the mapped old code is the old token on {code_map.agreement:.1%} of them); written to {out}")
    return 0


def _train_perceptual(args: argparse.Namespace) -> int:
    out = _check_new_file(args.out, "--out", [("--data", args.data)], args.overwrite, ".safetensors")
    if not args.minutes > 0:
        raise FourmError(f"--minutes must be > 0, got {args.minutes}")
    import numpy as np

    from fourm.data.pretokenize import dataset_fingerprint
    from tokenizers_zoo.image.perceptual import save_perceptual_net, train_perceptual_net
    from tokenizers_zoo.image.trainer import stack_modality

    def split(name: str, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
        return tuple(stack_modality(modality_split(args.data, name, key), key, limit=limit) for key in ("rgb", args.key))

    (rgb, labels), (val_rgb, val_labels) = split("train", None), split("val", 512)
    num_classes = args.num_classes or int(max(labels.max(), val_labels.max())) + 1
    manifest = {"inputs": {"data": dataset_fingerprint(args.data)}, "key": args.key, "num_classes": num_classes,
                "minutes": args.minutes, "steps": args.steps}  # fmt: skip
    with partial_run(out, manifest, start_over=args.overwrite) as partial:  # what an interrupted run resumes from
        net, report = train_perceptual_net(rgb, labels, val_rgb, val_labels, num_classes, args.minutes, args.steps,
                                           state_path=partial / "state.pt")  # fmt: skip
        save_perceptual_net(net, out)
    print(f"{report.steps} steps; held-out pixel accuracy {report.pixel_acc:.3f}, on object pixels "
          f"{report.object_acc:.3f}; written to {out} (use as loss.perceptual_weights)")
    return 0


def _train_text(args: argparse.Namespace) -> int:
    with _claim(args, args.out, "train-text", is_saved_model):
        return _train_text_tokenizer(args)


def _train_text_tokenizer(args: argparse.Namespace) -> int:
    from tokenizers_zoo.text import TextTokenizer, corpus_from_samples

    samples = modality_split(args.data, "train", key="")  # "" is never a column: RawSamples view
    if args.vocab_size < 1:
        raise FourmError(f"--vocab-size must be >= 1, got {args.vocab_size}")
    texts = corpus_from_samples(samples[i] for i in range(len(samples)))
    tokenizer = TextTokenizer.train(texts, vocab_size=args.vocab_size, show_progress=True)
    tokenizer.save_pretrained(args.out)
    print(f"text tokenizer with {tokenizer.vocab_size} tokens saved to {args.out}")
    return 0


def _vector_split(data: str, split: str, key: str):
    """(N, D) float32 array of the present vectors of column ``key`` in ``split``."""
    import numpy as np
    import pyarrow as pa

    dataset = load_split(data, split)
    if key not in dataset.column_names:
        raise FourmError(f"{data}, split '{split}': no column '{key}' (add one with `fourm-data embed`)")
    column = dataset.data.column(key).combine_chunks().drop_null()
    if not pa.types.is_fixed_size_list(column.type):
        raise FourmError(f"{data}: column '{key}' is not a vector column (expected fixed-length float lists)")
    return np.array(column.flatten(), dtype=np.float32).reshape(len(column), column.type.list_size)  # writable copy


def _vector_metrics(tokenizer, vectors) -> dict[str, float]:
    """Mean cosine(x, decode(encode(x))), code usage and perplexity (mean over codebooks) on ``vectors``."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    tokenizer.eval()
    for q in tokenizer.quantizers:
        q.usage.reset()
    cosines = []
    with torch.no_grad():
        for chunk in torch.from_numpy(vectors).split(1024):
            recon = tokenizer(chunk).reconstruction.float()
            cosines.append(F.cosine_similarity(recon, chunk, dim=-1))
    return {
        "cosine": float(torch.cat(cosines).mean()),
        "usage": float(np.mean([q.usage.usage() for q in tokenizer.quantizers])),
        "perplexity": float(np.mean([q.usage.perplexity() for q in tokenizer.quantizers])),
    }


def _train_vector(args: argparse.Namespace) -> int:
    with _claim(args, args.out, "train-vector", is_saved_model):
        return _train_vector_tokenizer(args)


def _train_vector_tokenizer(args: argparse.Namespace) -> int:
    import torch

    from tokenizers_zoo.vector import VectorTokenizer, VectorTokenizerConfig

    train = _vector_split(args.data, "train", args.key)
    val = _vector_split(args.data, args.val_split, args.key)
    if len(train) == 0 or len(val) == 0:
        raise FourmError(f"{args.data}: column '{args.key}' has no vectors in train or {args.val_split}")
    cfg = VectorTokenizerConfig(
        input_dim=train.shape[1],
        hidden_dim=args.hidden_dim,
        num_tokens=args.tokens,
        codebook_size=args.codebook_size,
        code_dim=args.code_dim,
    )
    torch.manual_seed(args.seed)
    tokenizer = VectorTokenizer(cfg)
    fit = tokenizer.fit(train, steps=args.steps, lr=args.lr, batch_size=args.batch_size, seed=args.seed)
    metrics = {"train_loss": round(fit["loss"], 4)}
    metrics.update({f"val_{k}": round(v, 4) for k, v in _vector_metrics(tokenizer, val).items()})
    tokenizer.save_pretrained(args.out)
    print(json.dumps(metrics))
    print(
        f"vector tokenizer ({cfg.num_tokens} tokens, vocabulary {tokenizer.vocab_size}) saved to {args.out}; "
        f"{args.val_split}: cosine {metrics['val_cosine']:.3f}, code usage {metrics['val_usage']:.1%}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="fourm-tokenizer", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="train an image tokenizer from a config")
    tr.add_argument("--config", required=True, help="tokenizer YAML, e.g. configs/tokenizers/rgb.yaml")
    tr.add_argument("--data", required=True, help="raw dataset directory (fourm-data world / import)")
    tr.add_argument("--out", default=None, help="output directory (default outputs/tokenizers/<config name>; refused "
                    "if it is a folder or file this command did not write, unless --overwrite)")
    tr.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out that this command did not write")
    tr.add_argument("--max-minutes", type=positive_float, default=None, help="stop after this many minutes (> 0)")
    tr.add_argument("--steps", type=int, default=None, help="training steps (overrides train.steps)")
    tr.add_argument("--init", default=None, help="start from this trained tokenizer's weights (its encoder and "
                    "quantiser must match the config; e.g. to train on with another loss: its codebook is kept)")
    tr.add_argument("overrides", nargs="*", help="config overrides key=value, e.g. train.lr=0.001")
    tr.set_defaults(func=_train)
    ev = sub.add_parser("eval", help="reconstruction metrics of a trained tokenizer")
    ev.add_argument("--tokenizer", required=True, help="directory written by save_pretrained")
    ev.add_argument("--data", required=True, help="raw dataset directory")
    ev.add_argument("--split", default="val")
    ev.add_argument("--num", type=int, default=None, help="evaluate at most this many images")
    ev.add_argument("--batch-size", type=int, default=64)
    ev.add_argument("--png", default=None, help="also save an inputs-vs-reconstructions PNG here (a new file)")
    ev.add_argument("--overwrite", action="store_true", help="replace an existing --png file")
    ev.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                    help="auto (default): bf16 autocast where the device runs bf16 natively, else fp32")
    ev.add_argument("--fp32", action="store_true", help="deprecated: same as --precision fp32")
    ev.set_defaults(func=_eval)
    pr = sub.add_parser("prune", help="disable near-duplicate VQ codes of a trained image tokenizer")
    pr.add_argument("--tokenizer", required=True, help="directory written by save_pretrained")
    pr.add_argument("--data", required=True, help="raw dataset directory (train split: code usage; --split: metrics)")
    pr.add_argument("--out", required=True, help="output directory for the pruned tokenizer (refused if it is a "
                    "folder this command did not write, unless --overwrite, or the --tokenizer itself)")
    pr.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out that this command did not write")
    pr.add_argument("--distance", type=finite_float, default=1.0,
                    help="disable a code closer than this x the median nearest-neighbour distance of the used codes "
                    "to a more used one (default: 1.0)")
    pr.add_argument("--num", type=int, default=2048, help="train images for code usage and val images for metrics")
    pr.add_argument("--split", default="val", help="split for the before/after metrics (default: val)")
    pr.set_defaults(func=_prune)

    cm = sub.add_parser("code-map", help="which old code each code of a new image tokenizer stands for (a JSON file)")
    cm.add_argument("--old", required=True, help="the tokenizer a model was trained with (save_pretrained directory)")
    cm.add_argument("--new", required=True, help="the tokenizer replacing it (same modality and token grid)")
    cm.add_argument("--data", required=True, help="raw dataset directory; its train split's images are encoded by both")
    cm.add_argument("--out", required=True, help="output .json file (refused if it exists, unless --overwrite)")
    cm.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    cm.add_argument("--num", type=int, default=2048, help="images to encode (default: 2048)")
    cm.set_defaults(func=_code_map)

    tp = sub.add_parser("train-perceptual", help="train the perceptual loss's network to segment your images (a safetensors file)")
    tp.add_argument("--data", required=True, help="raw dataset directory with rgb and a class map (train: fit, val: report)")
    tp.add_argument("--out", required=True, help="output .safetensors file (refused if it exists, unless --overwrite)")
    tp.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    tp.add_argument("--key", default="semseg", help="the class-map column to segment into (default: semseg)")
    tp.add_argument("--num-classes", type=int, default=None, help="classes of the map (default: the largest id seen + 1)")
    tp.add_argument("--minutes", type=finite_float, default=7.0, help="training time (default: 7)")
    tp.add_argument("--steps", type=bounded_int(1, 10_000_000), default=None, help="stop after this many steps")
    tp.set_defaults(func=_train_perceptual)

    tt = sub.add_parser("train-text", help="train the WordPiece text vocabulary (captions, boxes, metadata, ...)")
    tt.add_argument("--data", required=True, help="raw dataset directory; its train split is the corpus")
    tt.add_argument("--out", required=True, help="output directory (tokenizer.json + config.json; refused if it is a "
                    "folder or file this command did not write, unless --overwrite)")
    tt.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out that this command did not write")
    tt.add_argument("--vocab-size", type=bounded_int(1, 1_000_000), default=1024, help="maximum vocabulary size, structured tokens included")
    tt.set_defaults(func=_train_text)
    tv = sub.add_parser("train-vector", help="train a vector tokenizer on a vector column (e.g. caption_embedding)")
    tv.add_argument("--data", required=True, help="raw dataset directory with the vector column")
    tv.add_argument("--key", required=True, help="vector column, e.g. caption_embedding")
    tv.add_argument("--out", required=True, help="output directory (save_pretrained; refused if it is a folder or "
                    "file this command did not write, unless --overwrite)")
    tv.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out that this command did not write")
    tv.add_argument("--tokens", type=int, default=4, help="tokens per vector (= codebooks)")
    tv.add_argument("--codebook-size", type=int, default=256, help="codes per codebook")
    tv.add_argument("--code-dim", type=int, default=32)
    tv.add_argument("--hidden-dim", type=int, default=512)
    tv.add_argument("--steps", type=int, default=2000)
    tv.add_argument("--lr", type=finite_float, default=1e-3)
    tv.add_argument("--batch-size", type=int, default=256)
    tv.add_argument("--val-split", default="val")
    tv.add_argument("--seed", type=seed_int, default=0)
    tv.set_defaults(func=_train_vector)
    tokenizer_decoder.register(sub)
    tokenizer_video.register(sub)
    return parser


main = subcommand_main(build_parser)


if __name__ == "__main__":
    raise SystemExit(main())
