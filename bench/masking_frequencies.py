"""How often a masking config gives the generation tasks, on token samples shaped like the world's.

Samples: 64 tokens per image (rgb, depth, semseg, edges), a caption of 12-45 tokens, bboxes of 7
tokens per object (1-4 objects) and metadata of 41 tokens, a palette of 8-17 (each ending in
[EOS]); with ``--chain`` also rgb_pixels (64 patches, input only) and caption_embedding (4 tokens),
the modalities of configs/masking/mixture_chain.yaml's model. Masks go through the training path
(:func:`fourm.training.data.load_masking`), so entries naming absent modalities are dropped as in a run.

    python bench/masking_frequencies.py [--config configs/masking/mixture.yaml] [--num 4000] [--chain]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from fourm.data.masking import Masker, SequenceSpecialTokens, make_rng
from fourm.model.config import ModalityConfig
from fourm.training.config import MaskingSection
from fourm.training.data import build_masker, load_masking

SPECIALS = SequenceSpecialTokens(pad=0, sos=1, eos=2, sentinels=list(range(3, 35)))
IMAGES = ("rgb", "depth", "semseg", "edges")
IMAGE_POSITIONS = 64  # tokens (or pixel patches) per image
SEQUENCES = {"caption": 64, "bboxes": 64, "metadata": 48, "color_palette": 24}


def world_modalities(chain: bool = False) -> dict[str, ModalityConfig]:
    """The default model's modalities (and, with ``chain``, rgb_pixels and caption_embedding)."""
    mods = {m: ModalityConfig(kind="image", vocab_size=1024, length=IMAGE_POSITIONS) for m in IMAGES}
    mods.update({m: ModalityConfig(kind="sequence", vocab_size=4096, length=n) for m, n in SEQUENCES.items()})
    if chain:
        mods["rgb_pixels"] = ModalityConfig(kind="image", vocab_size=256, length=IMAGE_POSITIONS, target=False, patch_dim=192)
        mods["caption_embedding"] = ModalityConfig(kind="vector", vocab_size=1024, length=4)
    return mods


def _sequence(rng: np.random.Generator, n: int) -> torch.Tensor:
    return torch.from_numpy(np.append(rng.integers(40, 4000, n), SPECIALS.eos))


def world_sample(rng: np.random.Generator, modalities: dict[str, ModalityConfig]) -> dict[str, torch.Tensor]:
    """One token sample with every modality of ``modalities`` (lengths as in the module docstring)."""
    lengths = {
        "caption": int(rng.integers(12, 46)),
        "bboxes": 7 * int(rng.integers(1, 5)),
        "metadata": 41,
        "color_palette": int(rng.integers(8, 18)),
    }
    out = {}
    for name, mod in modalities.items():
        if mod.patch_dim:
            out[name] = torch.from_numpy(rng.integers(0, 256, mod.length * mod.patch_dim))
        elif mod.kind == "sequence":
            out[name] = _sequence(rng, lengths[name])
        else:
            out[name] = torch.from_numpy(rng.integers(0, mod.vocab_size, mod.length))
    return out


def world_masker(config: str, chain: bool = False, **changes) -> Masker:
    """The masker a run with ``config`` builds for the world's modalities (``changes``: config fields)."""
    mods = world_modalities(chain)
    cfg = load_masking(config, MaskingSection(), mods)
    if changes:
        cfg = cfg.replace(**changes)
    return build_masker(cfg, mods, SPECIALS)


def roles(batch, modality_order: list[str]) -> tuple[dict, dict]:
    """({modality: encoder tokens}, {modality: decoder target tokens}) of a batch of size 1."""
    enc, dec = {}, {}
    for i, m in enumerate(modality_order):
        keep = batch.enc_valid[0] & (batch.enc_modality[0] == i)
        if keep.any():
            enc[m] = batch.enc_tokens[0, keep]
        keep = batch.dec_valid[0] & (batch.dec_modality[0] == i)
        if keep.any():
            dec[m] = batch.dec_target[0, keep]
    return enc, dec


def _whole(tokens: torch.Tensor | None, original: torch.Tensor) -> bool:
    return tokens is not None and torch.equal(tokens, original)


def frequencies(masker: Masker, samples: list[dict], seed: int = 0) -> dict[str, float]:
    """Shares of ``samples`` (masked with ``make_rng(seed, 0, i)``) that give each generation task."""
    counts = dict.fromkeys(
        ("caption_only_input", "whole_caption_to_whole_bboxes", "caption_only_to_whole_bboxes",
         "caption_to_rgb48", "caption_bboxes_only_to_rgb48", "image_only_to_whole_caption", "empty_encoder"),
        0,
    )  # fmt: skip
    seq_pairs = span_targets = seq_targets = cut = 0
    bboxes = {"targets": 0, "span": 0, "cut": 0}
    sentinels = set(SPECIALS.sentinels)
    for i, sample in enumerate(samples):
        enc, dec = roles(masker(sample, make_rng(seed, 0, i)), masker.order)
        whole_caption = _whole(enc.get("caption"), sample["caption"])
        counts["caption_only_input"] += set(enc) == {"caption"}
        whole_bboxes = _whole(dec.get("bboxes"), sample["bboxes"])
        counts["whole_caption_to_whole_bboxes"] += whole_caption and whole_bboxes
        counts["caption_only_to_whole_bboxes"] += whole_caption and whole_bboxes and set(enc) == {"caption"}
        rgb48 = len(dec.get("rgb", ())) >= 48
        counts["caption_to_rgb48"] += whole_caption and rgb48
        counts["caption_bboxes_only_to_rgb48"] += whole_caption and rgb48 and set(enc) <= {"caption", "bboxes"}
        image = "rgb_pixels" if "rgb_pixels" in sample else "rgb"
        counts["image_only_to_whole_caption"] += (
            set(enc) == {image} and len(enc[image]) == IMAGE_POSITIONS and _whole(dec.get("caption"), sample["caption"])
        )  # the rgb -> caption task of bench/eval_world.py: the whole image alone in, the whole caption out
        counts["empty_encoder"] += not enc
        for m in SEQUENCES:
            seq_pairs += m in sample
            if m in dec:
                seq_targets += 1
                span_targets += int(dec[m][0]) in sentinels
                cut += int(dec[m][-1]) != SPECIALS.eos
        if "bboxes" in dec:
            bboxes["targets"] += 1
            bboxes["span"] += int(dec["bboxes"][0]) in sentinels
            bboxes["cut"] += int(dec["bboxes"][-1]) != SPECIALS.eos
    out = {k: v / len(samples) for k, v in counts.items()}
    out["sequence_targets_span_masked"] = span_targets / max(seq_targets, 1)
    out["sequence_targets_cut_before_eos"] = cut / max(seq_targets, 1)
    out["bboxes_targets_span_masked"] = bboxes["span"] / max(bboxes["targets"], 1)
    out["bboxes_targets_cut_before_eos"] = bboxes["cut"] / max(bboxes["targets"], 1)
    out["span_masked_per_present_sequence"] = span_targets / max(seq_pairs, 1)
    return out


def small_sample_rgb_target_rate(masker: Masker, num: int, seed: int = 0) -> float:
    """Share of masks of a 69-token sample (64 rgb tokens + a 4-token caption and [EOS]) where rgb is a target."""
    hits = 0
    for i in range(num):
        rng = np.random.default_rng(i)
        sample = {"rgb": torch.from_numpy(rng.integers(0, 1024, 64)), "caption": _sequence(rng, 4)}
        _, dec = roles(masker(sample, make_rng(seed, 0, i)), masker.order)
        hits += "rgb" in dec
    return hits / num


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/masking/mixture.yaml")
    parser.add_argument("--num", type=int, default=4000)
    parser.add_argument("--chain", action="store_true", help="add rgb_pixels and caption_embedding to the modalities")
    args = parser.parse_args(argv)
    masker = world_masker(args.config, args.chain)
    samples = [world_sample(np.random.default_rng(i), world_modalities(args.chain)) for i in range(args.num)]
    print(f"{args.config}, {args.num} masks, modalities {', '.join(masker.order)}")
    for key, value in frequencies(masker, samples).items():
        print(f"  {key:36s} {100 * value:6.2f}%")
    print(f"  {'69-token sample: rgb is a target':36s} {100 * small_sample_rgb_target_rate(masker, 1000):6.2f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
