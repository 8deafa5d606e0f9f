"""``fourm-generate`` / ``python generate.py``: chained any-to-any generation from the command line.

    python generate.py --cond caption="a red circle in front of a blue square" \\
        --target bboxes rgb depth semseg --num-samples 4 --seed 0 --out outputs/demo
    python generate.py --cond rgb=photo.png --target caption depth --steps depth=12
    python generate.py --cond bboxes="circle 0.1 0.1 0.4 0.4; square 0.5 0.5 0.9 0.9" --target rgb \\
        --temperature rgb=1.5 --guidance rgb=2.0 --scheme rgb=roar
    python generate.py --target caption --prefix caption="the red circle"
    python generate.py --model BUNDLE --cond caption="a red circle" --target caption_vector rgb   # a continuous target
    python generate.py --cond caption="a red circle" --target bboxes rgb --grammar bboxes=off
    python generate.py --prompts captions.txt --target bboxes rgb --num-samples 2   # one caption a line
    python generate.py --prompts prompts.jsonl --target rgb   # {"caption": "...", "bboxes": "..."} a line

Per-target defaults: the built-in ones (:mod:`fourm.generation.pipeline`), then the bundle's
``generation.json`` if it has one, then these options. Writes per sample a PNG per image modality,
``sequences.json`` (with the groups of boxes / palettes / metadata that did not parse, also printed),
``rgb_with_boxes.png`` and an ``overview.png`` grid into ``--out`` (default ``outputs/<timestamp>``);
see :mod:`fourm.generation.export`. With ``--prompts FILE`` every prompt is generated (in batches of
``--batch-size`` rows), into one ``overview.png`` (a row per prompt x sample, labelled with the prompt),
one ``sequences.json`` and the images under ``samples/`` (see :func:`fourm.generation.export.save_prompt_results`).

Many samples (``--num-samples`` above ``--chunk-size``, default 64; any number, e.g. 1000000000) are
generated and written in chunks of ``--chunk-size`` samples, streamed as they finish, with a progress
bar over the chunks::

    out/progress.json          num_samples, chunk_size, num_chunks, seed, chunks_done, samples_done, complete
    out/chunk_00000/           the layout above (sample_000/..., sequences.json, overview.png) of
    out/chunk_00001/           samples 0..63, 64..127, ... (chunk k holds samples k*chunk_size + i)

The first chunk creates ``--out`` (atomically, replacing an old one only with ``--overwrite``); every
later chunk folder appears atomically when it is complete and ``progress.json`` is rewritten after it,
so a killed run leaves only complete chunks. Seeds: chunk 0 uses ``--seed`` itself (a run of at most
``--chunk-size`` samples is that one chunk, in the single-folder layout), chunk k > 0 the 63-bit
:func:`chunk_seed` (``--seed``, k) (first 8 bytes of the SHA-256 of ``fourm-generate-chunk:<seed>:<k>``,
halved), recorded as ``seed`` in its ``sequences.json``. The same ``--seed``, ``--num-samples`` and
``--chunk-size`` give the same files; a different ``--num-samples`` keeps every full chunk, but the
last, smaller chunk differs (a chunk's samples depend on its size).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fourm.cli import ArgumentParser, bounded_int, friendly_errors, parse_assignments, seed_int
from fourm.errors import FourmError


def on_off(text: str) -> bool:
    """``on`` / ``off`` (also true/false, yes/no, 1/0) -> bool; ValueError otherwise."""
    value = {"on": True, "true": True, "yes": True, "1": True, "off": False, "false": False, "no": False, "0": False}
    if text.lower() not in value:
        raise ValueError(text)
    return value[text.lower()]


def finite(text: str) -> float:
    """A finite number (``nan`` / ``inf`` give ValueError: they would sample all-zero token ids)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


# At most this many samples go through the model at once (one chunk, one overview grid; --batch-size
# of --prompts); more samples are generated in chunks of --chunk-size.
MAX_NUM_SAMPLES = 256
DEFAULT_CHUNK_SIZE = 64
# At most this many rows (prompts x samples) per --prompts run: one overview picture holds them all.
MAX_PROMPT_ROWS = 1024
# --threads above this is a typo (torch fails to start 100000 threads with a SystemError traceback).
MAX_THREADS = 1024
DEFAULT_BATCH_SIZE = 16

# option -> (GenerationTarget field, value type)
TARGET_OPTIONS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "steps": ("steps", int),
    "temperature": ("temperature", finite),
    "temperature_end": ("temperature_end", finite),
    "guidance": ("guidance_scale", finite),
    "scheme": ("scheme", str),
    "schedule": ("schedule", str),
    "top_p": ("top_p", finite),
    "top_k": ("top_k", int),
    "max_length": ("max_length", int),
    "grammar": ("grammar", on_off),
    "candidates": ("candidates", int),
    "rerank_by": ("rerank_by", lambda v: [m for m in v.split("+") if m]),
    "no_repeat_ngram": ("no_repeat_ngram", int),
    "repetition_penalty": ("repetition_penalty", finite),
}
TARGET_HELP = {
    "steps": "MaskGIT / ROAR steps of an image target (default 8); DDIM steps of a diffusion-head continuous target (default 20)",
    "temperature": "sampling temperature (default 1; images anneal it to --temperature-end)",
    "temperature_end": "final temperature of an image target (default 0)",
    "guidance": "classifier-free guidance scale (default 1 = off, unless the bundle's generation.json sets one)",
    "scheme": "maskgit or roar (images), ar (sequences), value (continuous targets)",
    "schedule": "MaskGIT token schedule (default cosine)",
    "top_p": "nucleus sampling (default 1 for images, 0.9 for sequences)",
    "top_k": "top-k sampling (default 0 = off)",
    "max_length": "maximum length of a sequence target",
    "grammar": "on/off: decode boxes / palettes under their grammar, always well-formed (default on)",
    "candidates": "sample K candidates, keep the one under which the model finds the conditions most likely (default 1)",
    "rerank_by": "modalities that score the candidates, joined by + (default: every given condition the model predicts)",
    "no_repeat_ngram": "N > 0: a sequence target never repeats N tokens in a row (default 0 = off)",
    "repetition_penalty": "P > 1: a sequence target's tokens already generated become less likely (default 1 = off)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="generate.py",
        description="Generate modalities one after another with a FourM model bundle, from raw conditions.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "condition values: rgb/depth/semseg/edges=IMAGE.png, caption=TEXT, "
            "bboxes='circle 0.1 0.1 0.4 0.4; square 0.5 0.5 0.9 0.9' (label x0 y0 x1 y1), "
            "color_palette='255 0 0; 0 0 255', metadata='object_count=3, dominant_color=red' (or JSON)\n\n"
            "per-target defaults: built in (images MaskGIT 8 steps, sequences AR top-p 0.9, no guidance, "
            "grammar on), overridden by the bundle's generation.json ({\"targets\": {\"rgb\": "
            "{\"guidance_scale\": 3.0}}}), overridden by the NAME=VALUE options.\n"
            "Box / palette / metadata groups that do not parse are printed, listed in sequences.json "
            "(parse_failures) and left out of the condition of the later targets."
        ),
    )
    parser.add_argument("--model", default=None, metavar="DIR", help="model bundle (default: models/world-default)")
    parser.add_argument(
        "--cond", action="append", default=[], metavar="NAME=VALUE", help="a condition (repeat for several)"
    )
    parser.add_argument(
        "--negative", action="append", default=[], metavar="NAME=VALUE",
        help="a negative condition (repeatable), e.g. caption='a blue square': guided targets are pushed away "
        "from it (it joins the unconditional guidance pass); needs a guided target",
    )
    parser.add_argument(
        "--prompts", default=None, metavar="FILE",
        help="generate for every prompt of FILE: JSON lines of conditions ({\"caption\": \"...\"}; file names "
        "relative to FILE's folder) or plain text, one caption a line (exclusive with --cond)",
    )  # fmt: skip
    parser.add_argument(
        "--batch-size", type=int, default=DEFAULT_BATCH_SIZE, metavar="N",
        help=f"--prompts: rows (prompt x sample) generated at once (default {DEFAULT_BATCH_SIZE})",
    )  # fmt: skip
    parser.add_argument("--target", nargs="+", required=True, metavar="NAME", help="modalities to generate, in order")
    parser.add_argument(
        "--prefix", action="append", default=[], metavar="NAME=VALUE",
        help="partial value of a sequence target that generation continues, e.g. caption='the red' "
        "(default: the bundle's generation.json prefix, if any; NAME= for none)",
    )  # fmt: skip
    parser.add_argument("--caption-prefix", default=None, metavar="TEXT", help="same as --prefix caption=TEXT ('' for none)")
    for option in TARGET_OPTIONS:
        parser.add_argument(
            f"--{option.replace('_', '-')}", action="append", default=[], metavar="NAME=VALUE",
            help=f"per target: {TARGET_HELP[option]}",
        )  # fmt: skip
    parser.add_argument(
        "--num-samples", type=int, default=1, metavar="N",
        help=f"samples to generate (default 1); more than --chunk-size are generated and written chunk by chunk "
        f"(out/chunk_NNNNN/, out/progress.json); with --prompts at most {MAX_NUM_SAMPLES}",
    )  # fmt: skip
    parser.add_argument(
        "--chunk-size", type=bounded_int(1, MAX_NUM_SAMPLES), default=DEFAULT_CHUNK_SIZE, metavar="N",
        help=f"samples generated and written at once (default {DEFAULT_CHUNK_SIZE}, at most {MAX_NUM_SAMPLES}); "
        "chunk k > 0 is seeded from (--seed, k)",
    )  # fmt: skip
    parser.add_argument("--seed", type=seed_int, default=0, help="random seed: same seed, same output (default 0)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda if available)")
    parser.add_argument(
        "--threads", type=bounded_int(1, MAX_THREADS), default=1, metavar="N",
        help="CPU threads (default 1: at this model size more threads rarely help and a busy CPU makes them much slower)",
    )  # fmt: skip
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                        help="the model's precision; auto (default): bf16 autocast where the device runs bf16 natively, else fp32")
    parser.add_argument("--fp32", action="store_true", help="deprecated: same as --precision fp32")
    parser.add_argument("--image-inputs", choices=("patches", "both"), default="patches",
                        help="a given image that the model also reads as pixel patches (rgb -> rgb_pixels): "
                        "patches (default) feeds the patches alone, as the model was trained; both feeds its tokens too")
    parser.add_argument("--generated-image-inputs", choices=("tokens", "patches", "both"), default="tokens",
                        help="how an image generated earlier in the chain conditions the later targets: its tokens "
                        "(default), its pixel patches decoded by its tokenizer (the later maps follow what was drawn), or both")
    parser.add_argument("--out", default=None, metavar="DIR", help="output folder (default: outputs/<timestamp>)")
    parser.add_argument(
        "--overwrite", action="store_true",
        help="replace a non-empty --out folder (never one holding the model or a --cond file); two runs into one "
        "--out at a time are refused",
    )  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser


def target_overrides(args: argparse.Namespace, targets: list[str]) -> dict[str, dict[str, Any]]:
    """Per-target GenerationTarget fields from ``--steps rgb=12`` style options."""
    overrides: dict[str, dict[str, Any]] = {t: {} for t in targets}
    for option, (field, cast) in TARGET_OPTIONS.items():
        flag = f"--{option.replace('_', '-')}"
        for name, text in parse_assignments(getattr(args, option), flag).items():
            if name not in overrides:
                raise FourmError(f"{flag} {name}=...: '{name}' is not a target (targets: {', '.join(targets)})")
            try:
                overrides[name][field] = cast(text.strip())
            except ValueError:
                kind = {int: "an integer", finite: "a finite number", on_off: "on or off"}.get(cast, "a valid value")
                raise FourmError(f"{flag} {name}={text}: expected {kind}") from None
    return overrides


def default_out_dir() -> Path:
    """``outputs/<YYYYmmdd-HHMMSS>`` (with a suffix if that already exists)."""
    base = Path("outputs") / time.strftime("%Y%m%d-%H%M%S")
    path, k = base, 1
    while path.exists():
        path, k = base.with_name(f"{base.name}-{k}"), k + 1
    return path


def _is_path(value: str) -> bool:
    """Whether a --cond value names an existing file (a caption is text; too long a name is no path)."""
    try:
        return bool(value) and Path(value).exists()
    except (OSError, ValueError):
        return False


def _summary(value: Any) -> str:
    if isinstance(value, str):
        return repr(value if len(value) <= 100 else value[:97] + "...")
    if isinstance(value, list):
        return f"{len(value)} item(s)"
    if isinstance(value, dict):
        return f"{len(value)} field(s)"
    return type(value).__name__


def failure_lines(result: Any, limit: int = 3) -> list[str]:
    """One line per sample whose structured targets had groups that did not parse."""
    lines = []
    for i in range(result.num_samples):
        parts = []
        for name, per_sample in result.parse_failures.items():
            failed = per_sample[i]
            if failed:
                shown = "; ".join(f"{f['text']!r} ({f['error']})" for f in failed[:limit])
                more = f"; and {len(failed) - limit} more" if len(failed) > limit else ""
                parts.append(f"{name}: {len(failed)} malformed group(s) left out: {shown}{more}")
        if parts:
            lines.append(f"warning: sample {i}: " + " | ".join(parts))
    return lines


@friendly_errors
def main(argv: list[str] | None = None) -> int:
    """Parse arguments, load the bundle, generate, write the output folder."""
    args = build_parser().parse_args(argv)
    if args.num_samples < 1:
        raise FourmError(f"--num-samples must be >= 1, got {args.num_samples}")
    import torch

    torch.set_num_threads(args.threads)
    conditions = parse_assignments(args.cond, "--cond")
    args.negative = parse_assignments(args.negative, "--negative")
    prompts = None
    if args.prompts is not None:
        if args.cond:
            raise FourmError("give the conditions once: --prompts FILE or --cond NAME=VALUE, not both")
        if args.num_samples > MAX_NUM_SAMPLES:
            raise FourmError(
                f"--num-samples with --prompts must be at most {MAX_NUM_SAMPLES}, got {args.num_samples} "
                "(repeat the prompt lines, or run again with another --seed)"
            )
        if not 1 <= args.batch_size <= MAX_NUM_SAMPLES:
            raise FourmError(f"--batch-size must be >= 1 and at most {MAX_NUM_SAMPLES}, got {args.batch_size}")
        prompts = read_prompts(args.prompts)
        if len(prompts) * args.num_samples > MAX_PROMPT_ROWS:
            raise FourmError(
                f"--prompts {args.prompts}: {len(prompts)} prompts x {args.num_samples} samples is more than "
                f"{MAX_PROMPT_ROWS} rows per run (split the file)"
            )
    prefixes = parse_assignments(args.prefix, "--prefix")
    if args.caption_prefix is not None:
        if "caption" in prefixes:
            raise FourmError("give the caption prefix once (--caption-prefix or --prefix caption=...)")
        prefixes["caption"] = args.caption_prefix
    targets = list(args.target)
    overrides = target_overrides(args, targets)
    out_dir = Path(args.out) if args.out else default_out_dir()
    from fourm.generation.bundle import DEFAULT_BUNDLE
    from fourm.utils.outputs import claim_output

    inputs = [("--model", args.model or DEFAULT_BUNDLE)]
    inputs += [(f"--cond {name}=", value) for name, value in conditions.items() if _is_path(value)]
    inputs += [(f"--negative {name}=", value) for name, value in args.negative.items() if _is_path(value)]
    if prompts is not None:
        inputs.append(("--prompts", args.prompts))
        inputs += [(f"--prompts line {p.line}: {name}=", v) for p in prompts for name, v in p.conditions.items()
                   if isinstance(v, str) and _is_path(v)]  # fmt: skip
    with claim_output(out_dir, "generate.py", inputs, args.overwrite, rerun=False):
        if prompts is not None:
            return _generate_prompts(args, prompts, prefixes, targets, overrides, out_dir)
        return _generate(args, conditions, prefixes, targets, overrides, out_dir)


@dataclass
class Prompt:
    """One prompt of a --prompts file: its conditions, line number and label (the row's title)."""

    conditions: dict[str, Any]
    line: int
    label: str


def read_prompts(path: str | Path) -> list[Prompt]:
    """The prompts of ``path``: JSON lines of {modality: value} (``.jsonl``, or a first line that is a
    JSON object) or plain text, one caption a line; blank lines (and ``#`` lines of a text file) are
    skipped. FourmError naming the line for a malformed one. Relative file names of a JSON prompt
    resolve against the file's folder when they exist there."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FourmError(f"--prompts {path}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise FourmError(f"--prompts {path}: cannot read it as UTF-8 text ({e})") from None
    lines = [(i, line.strip()) for i, line in enumerate(text.splitlines(), 1) if line.strip()]
    is_json = path.suffix.lower() in (".jsonl", ".ndjson")
    if not is_json and lines and lines[0][1].startswith("{"):
        try:
            is_json = isinstance(json.loads(lines[0][1]), dict)
        except ValueError:
            pass
    prompts = []
    for lineno, line in lines:
        where = f"--prompts {path}:{lineno}"
        if not is_json:
            if not line.startswith("#"):
                prompts.append(Prompt({"caption": line}, lineno, line))
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            raise FourmError(f"{where}: invalid JSON ({e}); expected one object of conditions a line") from None
        if not isinstance(row, dict) or not row:
            raise FourmError(f"{where}: expected a non-empty JSON object of conditions, e.g. {{\"caption\": \"...\"}}")
        conditions = {}
        for name, value in row.items():
            local = path.parent / value if isinstance(value, str) else None  # a long text is no file name
            if local is not None and not _is_path(value) and _is_path(str(local)) and local.is_file():
                value = str(local)
            conditions[str(name)] = value
        label = "; ".join(f"{k}: {v}" if isinstance(v, str) else f"{k}: {json.dumps(v)}" for k, v in row.items())
        prompts.append(Prompt(conditions, lineno, label))
    if not prompts:
        raise FourmError(f"--prompts {path} holds no prompt")
    return prompts


def _generate_prompts(args, prompts: list[Prompt], prefixes, targets, overrides, out_dir: Path) -> int:
    """Every prompt (batched by condition set, ``--batch-size`` rows at a time) -> one output folder."""
    from tqdm.auto import tqdm

    from fourm.generation.export import save_prompt_results
    from fourm.generation.pipeline import FourMPipeline

    for name, text in prefixes.items():  # one prefix for every prompt: the target's own
        if name not in overrides:
            raise FourmError(f"--prefix {name}=...: '{name}' is not a target (targets: {', '.join(targets)})")
        overrides[name]["prefix"] = text
    start = time.perf_counter()
    pipe = FourMPipeline.from_pretrained(args.model, device=args.device)
    pipe.precision = "fp32" if args.fp32 else args.precision
    pipe.image_inputs = args.image_inputs
    pipe.generated_image_inputs = args.generated_image_inputs
    plan_targets = [pipe.default_target(t, **overrides[t]) for t in targets]
    check_steps(pipe, plan_targets, overrides)
    pipe.plan(plan_targets)  # checks the targets before any prompt
    check_values(pipe, {}, {}, args.negative)
    for p in prompts:  # every prompt checked up front: an error names its line
        for name, value in p.conditions.items():
            where = f"--prompts {args.prompts}:{p.line}"
            try:
                pipe.check_condition(name, value, warn=False)
            except FourmError as e:
                raise FourmError(f"{where}: {name}: {e}") from None
            except (OSError, ValueError, TypeError) as e:
                raise FourmError(f"{where}: {name}: cannot read {value!r} ({e})") from None
            if name in targets:
                raise FourmError(f"{where}: '{name}' is both a condition and a target")
    per_batch = max(1, args.batch_size // args.num_samples)  # prompts per batch (at least one)
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, p in enumerate(prompts):
        groups.setdefault(tuple(sorted(p.conditions)), []).append(i)
    batches = [idx[k : k + per_batch] for idx in groups.values() for k in range(0, len(idx), per_batch)]
    rows: list[tuple[int, int, Any, int]] = []  # (prompt, sample, result, row in result)
    bar = tqdm(total=len(prompts), desc="prompts", unit="prompt", disable=args.no_progress)
    for b, indices in enumerate(batches):
        result = pipe.generate_batch(
            [prompts[i].conditions for i in indices], plan_targets, num_samples=args.num_samples,
            seed=args.seed + b, progress=False, negative=args.negative,
        )  # fmt: skip
        rows += [(i, s, result, k * args.num_samples + s) for k, i in enumerate(indices) for s in range(args.num_samples)]
        bar.update(len(indices))
    bar.close()
    rows.sort(key=lambda r: (r[0], r[1]))
    save_prompt_results(rows, prompts, targets, out_dir, seed=args.seed, overwrite=args.overwrite)
    failures = sum(1 for _, _, r, k in rows for per in r.parse_failures.values() if per[k])
    if failures:
        print(f"warning: {failures} generated sequence(s) had groups that did not parse (see parse_failures in sequences.json)")
    elapsed = time.perf_counter() - start
    print(
        f"wrote {len(rows)} sample(s) ({len(prompts)} prompt(s) x {args.num_samples}) of {', '.join(targets)} "
        f"to {out_dir} ({elapsed:.1f} s)"
    )
    return 0


def chunk_seed(seed: int, chunk: int) -> int:
    """The seed of chunk ``chunk`` of a run seeded with ``seed``: ``seed`` itself for chunk 0, else the
    first 8 bytes of SHA-256(``fourm-generate-chunk:<seed>:<chunk>``) as an integer, halved (63 bits),
    so the chunks of one run, and the runs of neighbouring seeds, do not share a seed."""
    if chunk == 0:
        return seed
    digest = hashlib.sha256(f"fourm-generate-chunk:{seed}:{chunk}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def _load_pipeline(args, conditions, prefixes, targets, overrides):
    from fourm.generation.pipeline import FourMPipeline

    pipe = FourMPipeline.from_pretrained(args.model, device=args.device)
    pipe.precision = "fp32" if args.fp32 else args.precision
    pipe.image_inputs = args.image_inputs
    pipe.generated_image_inputs = args.generated_image_inputs
    for name in list(conditions) + list(prefixes):
        pipe.codec(name)  # unknown modality -> error listing the known ones
    check_values(pipe, conditions, prefixes, args.negative)
    plan_targets = [pipe.default_target(t, **overrides[t]) for t in targets]
    check_steps(pipe, plan_targets, overrides)
    return pipe, plan_targets


def check_steps(pipe, plan_targets, overrides: dict[str, dict[str, Any]]) -> None:
    """A ``--steps NAME=N`` of a MaskGIT / ROAR target is at most its number of tokens (each step
    fixes at least one token; more steps would only run the model in vain, e.g. 10^8 times). A continuous
    target's steps are its diffusion head's DDIM steps, checked by the head."""
    modalities = pipe.model.config.modalities
    for t in plan_targets:
        mod = modalities.get(t.modality) if hasattr(modalities, "get") else None
        tokens = getattr(mod, "length", None)
        parallel = t.scheme in ("maskgit", "roar")
        if "steps" in overrides.get(t.modality, {}) and parallel and isinstance(tokens, int) and t.steps > tokens:
            raise FourmError(
                f"--steps {t.modality}={t.steps}: '{t.modality}' has {tokens} tokens, so at most {tokens} steps"
            )


def check_values(pipe, conditions: dict[str, Any], prefixes: dict[str, Any], negative: dict[str, Any] | None = None) -> None:
    """Read and check every ``--cond`` / ``--prefix`` / ``--negative`` value before generating, so that a
    malformed one (a box out of range, a missing image) is refused in one line naming its option and modality."""
    for flag, values in (("--cond", conditions), ("--prefix", prefixes), ("--negative", negative or {})):
        for name, value in values.items():
            try:
                pipe.check_condition(name, value, prefix=flag == "--prefix", warn=False)
            except FourmError as e:
                raise FourmError(f"{flag} {name}=...: {e}") from None
            except (OSError, ValueError, TypeError) as e:
                raise FourmError(f"{flag} {name}=...: cannot read {_summary(value)} ({e})") from None


def _generate(args, conditions, prefixes, targets, overrides, out_dir: Path) -> int:
    if args.num_samples > args.chunk_size:
        return _generate_chunks(args, conditions, prefixes, targets, overrides, out_dir)
    from fourm.generation.export import save_result

    start = time.perf_counter()
    pipe, plan_targets = _load_pipeline(args, conditions, prefixes, targets, overrides)
    result = pipe.generate(
        conditions, plan_targets, num_samples=args.num_samples, seed=args.seed,
        progress=not args.no_progress, partial=prefixes, negative=args.negative,
    )  # fmt: skip
    save_result(result, out_dir, overwrite=args.overwrite)
    for i in range(result.num_samples):
        texts = [f"{m}: {_summary(v)}" for m, v in result.sample(i).items() if m in result.targets and not hasattr(v, "shape")]
        if texts:
            print(f"sample {i}: " + "; ".join(texts))
    for line in failure_lines(result):
        print(line)
    elapsed = time.perf_counter() - start
    print(f"wrote {result.num_samples} sample(s) of {', '.join(targets)} to {out_dir} ({elapsed:.1f} s)")
    return 0


PROGRESS_FILE = "progress.json"


def chunk_name(chunk: int, num_chunks: int) -> str:
    """``chunk_00000``: zero-padded to at least 5 digits, more when the run has more chunks."""
    return f"chunk_{chunk:0{max(5, len(str(num_chunks - 1)))}d}"


def _generate_chunks(args, conditions, prefixes, targets, overrides, out_dir: Path) -> int:
    """``--num-samples`` above ``--chunk-size``: generate and write chunk after chunk (see the module
    docstring), a progress bar over the chunks on stderr, a line per finished chunk on stdout."""
    from tqdm.auto import tqdm

    from fourm.generation.export import save_result
    from fourm.utils.atomic import atomic_dir, atomic_write_text
    from fourm.utils.outputs import MARKER

    start = time.perf_counter()
    pipe, plan_targets = _load_pipeline(args, conditions, prefixes, targets, overrides)
    total, size = args.num_samples, args.chunk_size
    num_chunks = -(-total // size)
    progress = {
        "num_samples": total, "chunk_size": size, "num_chunks": num_chunks, "seed": args.seed,
        "chunk_seeds": "chunk 0: seed; chunk k > 0: sha256('fourm-generate-chunk:<seed>:<k>')[:8] >> 1",
        "targets": targets, "chunks_done": 0, "samples_done": 0, "complete": False,
    }  # fmt: skip
    done = failures = 0
    bar = tqdm(total=num_chunks, desc="chunks", unit="chunk", disable=args.no_progress, file=sys.stderr)
    for k in range(num_chunks):
        n = min(size, total - k * size)
        result = pipe.generate(
            conditions, plan_targets, num_samples=n, seed=chunk_seed(args.seed, k), progress=False, partial=prefixes,
            negative=args.negative,
        )  # fmt: skip
        name = chunk_name(k, num_chunks)
        done += n
        progress.update(chunks_done=k + 1, samples_done=done, complete=done == total)
        text = json.dumps(progress, indent=2) + "\n"
        if k == 0:  # the first chunk creates --out, replacing an old one (claimed with --overwrite) only now
            with atomic_dir(out_dir) as tmp:
                save_result(result, tmp / name)
                (tmp / PROGRESS_FILE).write_text(text)
                (tmp / MARKER).write_text(json.dumps({"command": "generate.py"}) + "\n")
        else:
            save_result(result, out_dir / name)
            atomic_write_text(out_dir / PROGRESS_FILE, text)
        bad = sum(1 for per in result.parse_failures.values() for groups in per if groups)
        failures += bad
        note = f" ({bad} sequence(s) with groups that did not parse)" if bad else ""
        bar.write(f"chunk {k + 1}/{num_chunks}: samples {k * size}..{k * size + n - 1} -> {out_dir / name}{note}",
                  file=sys.stdout)  # fmt: skip
        sys.stdout.flush()
        bar.update(1)
    bar.close()
    if failures:
        print(f"warning: {failures} generated sequence(s) had groups that did not parse (see parse_failures in "
              "each chunk's sequences.json)")  # fmt: skip
    elapsed = time.perf_counter() - start
    print(f"wrote {total} sample(s) of {', '.join(targets)} in {num_chunks} chunk(s) of {size} to {out_dir} ({elapsed:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
