"""fourm-recipe folder --size: the size table, tokenizer grid == model grid for every size, a tiny
run at 128 px end to end, a refused resume at another size (and --overwrite), a bad --size."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_recipe import TINY, make_folder  # tests/recipe is on sys.path (pytest's rootdir-less import)

from fourm.cli.recipe import build_parser, main
from fourm.core.patches import patchify
from fourm.errors import FourmError
from fourm.model.config import FourMConfig
from fourm.model.fourm import FourM
from fourm.recipe.config import DEFAULT_SIZE, SIZES, RecipeConfig, size_plan
from fourm.recipe.stages import _Context

SIZE = 128
TINY_128 = [*TINY, "--size", str(SIZE), "--val-fraction", "0.25"]  # 16 images: 12 train, 4 val


def test_size_table():
    assert sorted(SIZES) == [64, 128, 224] and DEFAULT_SIZE == 64 and RecipeConfig().size == DEFAULT_SIZE
    for size, plan in SIZES.items():
        assert plan.size == size
        assert plan.grid * plan.downsample == size  # the tokenizer's grid covers the image
        assert (size // plan.patch) * plan.patch == size and size // plan.patch == plan.grid  # pixels on that grid
        assert plan.downsample & (plan.downsample - 1) == 0 and len(plan.channel_mult) == plan.levels
        assert plan.budget is None or plan.budget >= plan.num_tokens  # a whole image fits one side's budget
    assert (SIZES[64].grid, SIZES[128].grid, SIZES[224].grid) == (8, 16, 14)
    assert (SIZES[64].patch, SIZES[128].patch, SIZES[224].patch) == (8, 8, 16)


def test_unsupported_size_is_one_clear_error():
    with pytest.raises(FourmError, match=r"--size 100 is not supported \(supported sizes: 64, 128, 224\)"):
        size_plan(100)
    with pytest.raises(FourmError, match="supported sizes"):
        RecipeConfig(root="r", out="o", size=96).validate()


@pytest.mark.parametrize("size", sorted(SIZES))
def test_tokenizer_grid_is_the_model_grid(size, tmp_path):
    """The derived tokenizer configs encode an image of ``size`` to the grid the derived registry
    gives the model (and the pixel patches cover the same grid)."""
    from tokenizers_zoo.image import ImageTokenizer, ImageTokenizerConfig

    cfg = RecipeConfig(root="r", out=str(tmp_path), size=size, modalities=["rgb", "caption", "edges"])
    ctx = _Context(cfg, tmp_path, {"tokenizers": 1.0, "train": 1.0})
    plan = SIZES[size]
    registry = ctx.registry()
    model = FourM(FourMConfig.from_registry(registry, "tiny", dim=32, enc_depth=1, dec_depth=1, num_heads=2))
    mods = model.config.modalities
    for modality, channels in (("rgb", 3), ("edges", 1)):
        data, steps, _ = ctx.tokenizer_settings(modality, n_train=100)
        tok_cfg = ImageTokenizerConfig.from_dict(data)
        tok_cfg.validate()
        assert tok_cfg.image_size == size and tok_cfg.train.batch_size == plan.tokenizer_batch
        tokenizer = ImageTokenizer(tok_cfg).eval()
        shape = (1, channels, size, size)
        images = torch.rand(shape) * 2 - 1 if modality == "rgb" else (torch.rand(shape) > 0.5).float()
        tokens = tokenizer.encode(images)
        assert tokens.shape == (1, plan.num_tokens)
        assert tokenizer.grid_size == (plan.grid, plan.grid) == (mods[modality].grid_size,) * 2
        assert registry[modality].num_tokens == tokenizer.num_tokens and registry[modality].image_size == size
    pixels = registry["rgb_pixels"]
    assert (pixels.image_size, pixels.patch_size) == (size, plan.patch)
    patches = patchify(np.zeros((size, size, 3), np.uint8), plan.patch)
    assert patches.shape == (mods["rgb_pixels"].length, mods["rgb_pixels"].patch_dim)
    assert mods["rgb_pixels"].grid_size == mods["rgb"].grid_size == plan.grid


def test_bad_size_is_a_one_line_error(tmp_path, capsys):
    root = make_folder(tmp_path / "images", num=16)
    assert main(["folder", "--root", str(root), "--out", str(tmp_path / "out"), "--size", "100"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert "--size 100 is not supported" in err and "64, 128, 224" in err
    assert not (tmp_path / "out").exists()


def test_help_lists_the_sizes():
    folder = build_parser()._subparsers._group_actions[0].choices["folder"]
    text = " ".join(folder.format_help().split())
    assert "--size 64|128|224" in text and "(default 64)" in text and "16x16 rgb tokens" in text


@pytest.fixture(scope="module")
def run_128(tmp_path_factory):
    base = tmp_path_factory.mktemp("recipe128")
    root = make_folder(base / "images", num=16, size=48)
    out = base / "run"
    assert main(["folder", "--root", str(root), "--out", str(out), *TINY_128]) == 0
    return root, out


def test_recipe_at_128(run_128):
    from fourm.generation.pipeline import FourMPipeline
    from fourm.recipe.report import generate_samples

    _, out = run_128
    plan = SIZES[SIZE]
    assert json.loads((out / "recipe.json").read_text())["config"]["size"] == SIZE
    tok = json.loads((out / "tokenizers" / "rgb" / "tokenizer" / "config.json").read_text())
    tok = tok.get("config", tok)
    assert tok["image_size"] == SIZE and tok["downsample"] == plan.downsample
    registry = json.loads((out / "bundle" / "modalities.json").read_text())
    assert set(registry) == {"rgb", "caption", "rgb_pixels"}
    assert (registry["rgb"]["num_tokens"], registry["rgb"]["image_size"]) == (plan.num_tokens, SIZE)
    assert (registry["rgb_pixels"]["num_tokens"], registry["rgb_pixels"]["patch_size"]) == (plan.num_tokens, plan.patch)
    masking = json.loads(json.dumps(__import__("yaml").safe_load((out / "masking.yaml").read_text())))
    assert masking["input_budget"] == 32  # tiny mode's budgets

    pipe = FourMPipeline.from_pretrained(out / "bundle")
    rgb = pipe.model.config.modalities["rgb"]
    assert rgb.grid_size == plan.grid == 16
    images = generate_samples(pipe, ["a red circle on a pale ground"], samples=1)
    assert images.shape == (1, 1, SIZE, SIZE, 3) and images.dtype == np.uint8
    report = json.loads((out / "report.json").read_text())
    assert report["tokenizer"]["num"] >= 4 and report["generation"]["samples"] >= 1


def test_other_size_refused_then_overwritten(run_128, capsys):
    """Resuming a 128 folder at 64 is refused (nothing changes); --overwrite redoes it at 64."""
    root, out = run_128
    stamp = (out / "bundle" / "modalities.json").stat().st_mtime_ns
    assert main(["folder", "--root", str(root), "--out", str(out), *TINY, "--val-fraction", "0.25"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert "made at --size 128" in err and "--size 64" in err and "--overwrite" in err
    assert (out / "bundle" / "modalities.json").stat().st_mtime_ns == stamp

    assert main(["folder", "--root", str(root), "--out", str(out), *TINY, "--val-fraction", "0.25", "--overwrite"]) == 0
    printed = capsys.readouterr().out
    for stage in ("import", "tokenizer_rgb", "tokenize", "train", "bundle", "report"):
        assert f"[{stage}] inputs changed" in printed, stage
    registry = json.loads((out / "bundle" / "modalities.json").read_text())
    assert registry["rgb"]["num_tokens"] == 64 and registry["rgb_pixels"]["image_size"] == 64
    assert json.loads((out / "recipe.json").read_text())["config"]["size"] == 64
